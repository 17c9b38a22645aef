"""Whole pages kept until the data they show changes (docs/performance.md, "What is kept").

The permalink and history pages are read far more often than what they show is written. Each
process keeps the HTML it rendered for them, keyed by the page's address, whether htmx asked
for it, the visitor and the *data version*: the token of the single DataVersion row. Every write
of an estimate, profile, team, membership or user gives that row a new random token inside the
writer's own transaction (the receivers below; estimate deletes in the model), so the new
token becomes visible together with the data, and the row lock orders concurrent writers. A
signed-in request reads the token in the same statement as its session
(calculator/sessions.py), an anonymous one in a single-row query by primary key: a kept page
then costs that read and a cache lookup instead of the view's queries and templates.

A kept page is sent without checking access again. That is sound because whether a visitor may
read a page depends only on rows of those five tables (an estimate's owner, team and
visibility; the visitor's memberships and account), every change of which gives a new token,
and the key holds the visitor. What differs per request is not kept: the CSRF token is rendered
as a placeholder and filled in for each response; a request with messages to show is not
answered from the cache (base.html shows them); only 200 answers are kept. A token is random,
never a counter: a restored or flushed database cannot bring back the key of other data.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import caches
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token

from calculator.models import DataVersion, Estimate, Membership, ModelProfile, Team

PAGE_CACHE = "whole_pages"
# Rendered where the CSRF token goes in a page that may be kept. Random per process, so no one
# can write it into a title or a note to have it replaced.
CSRF_PLACEHOLDER = f"csrf-placeholder-{secrets.token_hex(16)}"
# response headers a kept page is sent with again (the rest is added by the middleware)
KEPT_HEADERS = ("Content-Type", "HX-Push-Url", "Vary")


def data_version(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The current token, or None when the row is missing (a flushed test database)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(DataVersion.token_sql(connection))
        row = cursor.fetchone()
    return row[0] if row else None


def data_changed(using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    """Signal receiver: give the data a new version (DataVersion.changed)."""
    DataVersion.changed(using)


def _version_for(request: HttpRequest) -> str | None:
    """The data version, as read with the session where there is one (calculator/sessions.py:
    one statement for both), else on its own. Read before anything the page shows, so a page is
    never kept under a version newer than its data."""
    request.user.is_authenticated  # noqa: B018 (reads the session, and the user if not kept)
    version = getattr(request.session, "data_version", None)
    return version if version is not None else data_version()


def _user_saved(update_fields: Any = None, using: str = DEFAULT_DB_ALIAS, **_: Any) -> None:
    # every login saves last_login alone: no page shows it
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    data_changed(using)


# Estimates have no delete receiver on purpose: their deletes change the version in the model
# (Estimate.delete, its queryset's delete; calculator/models.py says why); the cascades of a
# user, team or profile delete come through those models' receivers.
for _model in (Estimate, ModelProfile, Team, Membership):
    post_save.connect(data_changed, sender=_model, dispatch_uid=f"pagecache-save-{_model}")
for _model in (ModelProfile, Team, Membership):
    post_delete.connect(data_changed, sender=_model, dispatch_uid=f"pagecache-delete-{_model}")
post_save.connect(_user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="pagecache-user")
post_delete.connect(
    data_changed, sender=settings.AUTH_USER_MODEL, dispatch_uid="pagecache-user-delete"
)


def csrf_placeholder(request: HttpRequest) -> dict[str, str]:
    """Context processor: while a page that may be kept renders, its CSRF token is the
    placeholder (this processor runs after Django's own csrf one, so it wins)."""
    if getattr(request, "rendering_to_keep", False):
        return {"csrf_token": CSRF_PLACEHOLDER}
    return {}


def _has_messages(request: HttpRequest) -> bool:
    # len() reads the stored messages without marking them shown
    return len(messages.get_messages(request)) > 0


def _sent(request: HttpRequest, content: str, status: int, headers: dict[str, str]) -> HttpResponse:
    return HttpResponse(
        content.replace(CSRF_PLACEHOLDER, get_token(request)), status=status, headers=headers
    )


def _key(view: Callable[..., HttpResponse], request: HttpRequest, version: str) -> str:
    user = request.user.pk if request.user.is_authenticated else 0
    htmx = request.headers.get("HX-Request") == "true"
    address = hashlib.sha256(request.get_full_path().encode()).hexdigest()
    return f"{view.__module__}.{view.__name__}:{version}:{user}:{int(htmx)}:{address}"


def kept_until_data_changes(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Keep a GET view's 200 answers per address, htmx or not, visitor and data version."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "GET" or _has_messages(request):
            return view(request, *args, **kwargs)
        version = _version_for(request)
        if version is None:
            return view(request, *args, **kwargs)
        key = _key(view, request, version)
        cache = caches[PAGE_CACHE]
        kept = cache.get(key)
        if kept is not None:
            return _sent(request, *kept)
        request.rendering_to_keep = True
        try:
            response = view(request, *args, **kwargs)
        finally:
            # an exception's page (404, 403) renders after this, with the real token
            request.rendering_to_keep = False
        if response.streaming:
            return response
        content = response.content.decode(response.charset)
        headers = {name: response[name] for name in KEPT_HEADERS if response.has_header(name)}
        if response.status_code == 200:
            cache.set(key, (content, response.status_code, headers))
        sent = _sent(request, content, response.status_code, headers)
        for name, value in response.items():
            if name not in headers:
                sent[name] = value
        sent.cookies = response.cookies
        return sent

    return wrapper
