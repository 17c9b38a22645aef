"""Who is signed in, in as few database round trips as the rules allow.

Every signed-in request reads its session and its user. Django does both through the ORM,
which compiles the same queries anew each time; together they were over half of a kept
history page's time (docs/performance.md). Here:

- `AccountBackend` is Django's ModelBackend with `get_user` reading the row in one raw
  statement of the model's own columns, and the same check (`user_can_authenticate`: inactive
  users are refused). Authentication and permissions are ModelBackend's.
- `AuthenticationMiddleware` is Django's, except that a user it has verified is kept, per
  process, for the data version of the session's read (calculator/sessions.py reads the version
  with the session; calculator/pagecache.py says what the version covers). A later request of
  the same user id under the same version is given a copy of that user without a query, after
  the same checks Django's `get_user` makes: the session names an enabled backend and carries
  this user's session hash (the hash of the password: a password change is a write, so a new
  version). Every change of the user row (password, active flag, staff flags, name) gives a new
  version; logging out deletes the session row, so its next read finds nothing. The kept copy
  is taken before anything caches permissions on it, so permissions (group and permission
  links, which do not change the version) are read afresh in each request, as Django does.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from functools import cache
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthentication
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

KEPT_USERS_MAX = 2000

_kept_users: OrderedDict[tuple[str, str], Any] = OrderedDict()
_kept_users_lock = threading.Lock()


@cache
def _user_by_pk_sql(using: str) -> str:
    model = get_user_model()
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(field.column) for field in model._meta.concrete_fields)
    table = quote(model._meta.db_table)
    return f"SELECT {columns} FROM {table} WHERE {quote(model._meta.pk.column)} = %s"


class AccountBackend(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except ValidationError:  # a session holding something that is not a key
            return None
        using = router.db_for_read(model)
        users = list(model._default_manager.db_manager(using).raw(_user_by_pk_sql(using), [pk]))
        if not users or not self.user_can_authenticate(users[0]):
            return None
        return users[0]


def kept_users_clear() -> None:
    with _kept_users_lock:
        _kept_users.clear()


def _kept_user(request: HttpRequest) -> Any:
    """A copy of the user verified earlier for this session's user id and data version, after
    the checks Django's get_user makes; None when there is none or a check fails."""
    session = request.session
    user_id = session.get(SESSION_KEY)  # reads the session, and the data version with it
    version = getattr(session, "data_version", None)
    if version is None or user_id is None:
        return None
    with _kept_users_lock:
        kept = _kept_users.get((str(user_id), version))
    if kept is None or session.get(BACKEND_SESSION_KEY) not in settings.AUTHENTICATION_BACKENDS:
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, kept.get_session_auth_hash()):
        return None  # Django's get_user decides (fallback secrets, or the session is flushed)
    return copy.copy(kept)


def _keep(user: Any, version: str) -> None:
    with _kept_users_lock:
        _kept_users[(str(user.pk), version)] = copy.copy(user)
        while len(_kept_users) > KEPT_USERS_MAX:
            _kept_users.popitem(last=False)


def get_user(request: HttpRequest) -> Any:
    if not hasattr(request, "_cached_user"):
        user = _kept_user(request)
        if user is None:
            user = auth.get_user(request)
            version = getattr(request.session, "data_version", None)
            # read under this version (the session's read came first): keep a clean copy
            if user.is_authenticated and version is not None:
                _keep(user, version)
        request._cached_user = user
    return request._cached_user


class AuthenticationMiddleware(DjangoAuthentication):
    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)  # also request.auser, Django's own (no async views)
        request.user = SimpleLazyObject(lambda: get_user(request))
