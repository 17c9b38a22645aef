"""API tokens: list, create (the key is returned once and only its digest is kept), revoke."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from knox.settings import knox_settings

from calculator.domain.selectors import User
from calculator.models import ApiToken

MAX_TOKENS_PER_USER = 50


def api_token_list(*, user: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token and its key: show the key now, it cannot be read back later."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Name the token after what will use it."})
    if api_token_list(user=user).count() >= MAX_TOKENS_PER_USER:
        raise ValidationError(f"You have {MAX_TOKENS_PER_USER} tokens: revoke one first.")
    token = ApiToken(name=name, user=user)
    token.full_clean(exclude=["digest", "token_key"])
    return ApiToken.objects.create(
        user=user, name=name, expiry=None, prefix=knox_settings.TOKEN_PREFIX
    )


def api_token_revoke(*, user: User, digest: str) -> ApiToken | None:
    """Delete one of the user's tokens; None when they have no such token."""
    token = api_token_list(user=user).filter(digest=digest).first()
    if token is not None:
        token.delete()
    return token
