"""Token authentication: django-rest-knox's digests, plus a coarse "last used" time for the
account page."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from knox import auth
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from calculator.domain.lockout import token_failure_record, token_failures_exceeded
from calculator.models import ApiToken

# Record use at most once a minute per token, so reads do not each write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(auth.TokenAuthentication):
    """`Authorization: Token <key>`; unknown and revoked keys are a 401, counted per address
    like failed logins: past the limit, the address gets 429 for the cool-off."""

    def authenticate(self, request: Request) -> tuple | None:
        if not get_authorization_header(request):
            return None
        if token_failures_exceeded(request):
            minutes = round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)
            raise exceptions.Throttled(
                wait=settings.AXES_COOLOFF_TIME.total_seconds(),
                detail=f"Too many invalid tokens: locked out for {minutes} minutes.",
            )
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            token_failure_record(request)
            raise

    def authenticate_credentials(self, token: bytes) -> tuple:
        try:
            token.decode()
        except UnicodeDecodeError:
            # knox decodes without a guard: a non-UTF-8 header would be a 500
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

    def validate_user(self, auth_token: ApiToken) -> tuple:
        user, token = super().validate_user(auth_token)
        now = timezone.now()
        if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used=now)
            token.last_used = now
        return user, token
