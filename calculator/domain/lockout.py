"""Failed logins (django-axes): what is counted, when a login is refused, and what it then sees.

Axes locks the pair (username, address) after AXES_FAILURE_LIMIT failures
(AXES_LOCKOUT_PARAMETERS); `LoginAttemptsHandler` adds a separate, much higher limit per address
(AXES_ADDRESS_FAILURE_LIMIT), counted over every username tried from it within the cool-off. So
failures for a made-up name lock nobody else out, and guesses at one account from elsewhere do
not lock its owner out, while one address guessing across many accounts is still stopped."""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_ip_address, get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKOUT_STATUS = 429  # Too Many Requests, as for the API's throttles
USERNAME_COLUMN_LENGTH = AccessAttempt._meta.get_field("username").max_length


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    cool_off = get_cool_off(request)
    minutes = round(cool_off.total_seconds() / 60) if cool_off else None
    failure_limit = get_failure_limit(request, credentials)
    if request.path.startswith("/api/"):
        return JsonResponse(
            {
                "detail": f"Too many failed logins: locked out for {minutes} minutes."
                if minutes
                else "Too many failed logins: locked out."
            },
            status=LOCKOUT_STATUS,
        )
    context = {
        "address_locked": getattr(request, "axes_address_locked", False),
        "address_failure_limit": settings.AXES_ADDRESS_FAILURE_LIMIT,
        "failure_limit": failure_limit,
        "username": get_client_username(request, credentials) or "",
        "cooloff_minutes": minutes,
    }
    return render(request, "registration/lockout.html", context, status=LOCKOUT_STATUS)


def address_failures(request: HttpRequest) -> int:
    """Failed logins from the request's address within the cool-off, whatever the username."""
    address = getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    if address is None:
        return 0
    attempts = AccessAttempt.objects.filter(
        ip_address=address, attempt_time__gte=get_cool_off_threshold(request)
    )
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class LoginAttemptsHandler(AxesDatabaseHandler):
    """Axes' database handler (the counts are rows, so they hold across workers and machines),
    with the per-address limit beside the per-pair one."""

    def is_locked(self, request: HttpRequest, credentials: dict | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        return self._address_locked(request)

    def user_login_failed(
        self, sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        # Axes keeps the username in a 255-character column (PostgreSQL refuses longer); no
        # real username is longer than 150, so a cut one still names the same (made-up) name.
        username = credentials.get("username")
        if isinstance(username, str) and len(username) > USERNAME_COLUMN_LENGTH:
            credentials = {**credentials, "username": username[:USERNAME_COLUMN_LENGTH]}
        super().user_login_failed(sender, credentials, request, **kwargs)
        # Axes answers with its lockout page when this flag is set; it sets it for the pair.
        locked = request is None or getattr(request, "axes_locked_out", False)
        if request is not None and not locked and self._address_locked(request):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]

    @staticmethod
    def _address_locked(request: HttpRequest) -> bool:
        if address_failures(request) >= settings.AXES_ADDRESS_FAILURE_LIMIT:
            request.axes_address_locked = True  # type: ignore[attr-defined]
            return True
        return False


class LoginAttemptsBackend(AxesStandaloneBackend):
    """django-axes' check on every login over HTTP. Without a request (manage.py shell, the test
    client's login()) nothing can be guessed from the network, so there is nothing to count."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def client_address(request: HttpRequest) -> str | None:
    """The address that failed logins are counted for (AXES_CLIENT_IP_CALLABLE). Behind
    TRUSTED_PROXY_COUNT reverse proxies, each appending the address it saw to X-Forwarded-For,
    it is the entry that the outermost proxy added: earlier ones are the client's to forge."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        addresses = [address.strip() for address in forwarded if address.strip()]
        if len(addresses) >= proxies:
            return addresses[-proxies]
    return request.META.get("REMOTE_ADDR")


def _token_failures_key(request: HttpRequest) -> str:
    return f"api-token-failures:{client_address(request)}"


def token_failures_exceeded(request: HttpRequest) -> bool:
    """Invalid API tokens count like failed logins from an address that tries no username: at
    AXES_ADDRESS_FAILURE_LIMIT within the cool-off, the address is refused (the API's 429).
    The count lives in the default cache (Redis with REDIS_URL), shared by every worker."""
    return cache.get(_token_failures_key(request), 0) >= settings.AXES_ADDRESS_FAILURE_LIMIT


def token_failure_record(request: HttpRequest) -> None:
    key = _token_failures_key(request)
    timeout = settings.AXES_COOLOFF_TIME.total_seconds()
    cache.add(key, 0, timeout)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout)
