"""Request rates for anonymous callers and users, from API_THROTTLE_ANON / API_THROTTLE_USER."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _RatesFromSettings:
    scope: str

    def get_rate(self) -> str | None:
        # DRF's throttles copy the rates once at import; read them per request instead, so a
        # settings override applies. No rate (an empty env value) turns the throttle off.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_RatesFromSettings, AnonRateThrottle):
    pass


class UserThrottle(_RatesFromSettings, UserRateThrottle):
    pass
