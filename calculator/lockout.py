"""What a locked-out login sees (django-axes' AXES_LOCKOUT_CALLABLE): the reason and how long."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

LOCKOUT_STATUS = 429  # Too Many Requests, as for the API's throttles


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
        "failure_limit": failure_limit,
        "username": get_client_username(request, credentials) or "",
        "cooloff_minutes": minutes,
    }
    return render(request, "registration/lockout.html", context, status=LOCKOUT_STATUS)


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
