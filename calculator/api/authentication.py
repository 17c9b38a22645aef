"""Token authentication: django-rest-knox's digests, plus a coarse "last used" time for the
account page."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from knox import auth
from rest_framework import exceptions

from calculator.models import ApiToken

# Record use at most once a minute per token, so reads do not each write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(auth.TokenAuthentication):
    """`Authorization: Token <key>`; unknown and revoked keys are a 401."""

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
