"""Request rates for anonymous callers and users, from API_THROTTLE_ANON / API_THROTTLE_USER.

Counted per client address (`calculator.domain.lockout.client_address`, the one that failed logins
are counted for too) or per user, in the default cache (Redis with REDIS_URL: one count for every
worker and machine), with one atomic increment a request: "60/min" is 60 in each minute however many
workers answer them. (DRF's own throttles read a list, add to it and write it back, so concurrent
requests in several workers can each read the same count.)"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from calculator.domain.lockout import client_address


class _CountedThrottle(SimpleRateThrottle):
    window_ends = 0.0

    def get_rate(self) -> str | None:
        # DRF's throttles copy the rates once at import; read them per request instead, so a
        # settings override applies. No rate (an empty env value) turns the throttle off.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request: Request) -> str:
        # DRF's own reads X-Forwarded-For whole unless NUM_PROXIES is set: any forged header
        # would then be a fresh identity.
        return client_address(request) or ""

    def allow_request(self, request: Request, view: object) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        window = int(self.timer() // self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{key}:{window}"
        self.cache.add(key, 0, self.duration + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:  # expired between add and incr
            self.cache.add(key, 1, self.duration + 1)
            count = 1
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.timer(), 1)


class AnonThrottle(_CountedThrottle, AnonRateThrottle):
    pass


class UserThrottle(_CountedThrottle, UserRateThrottle):
    pass
