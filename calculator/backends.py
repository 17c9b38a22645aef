"""Password sign-in (Django's ModelBackend), with the signed-in user read in one statement.

Every signed-in request loads its user by primary key. ModelBackend does it through the ORM,
which compiles the same query anew each time (a quarter of a kept history page's time,
docs/performance.md); this backend reads the same row with a raw query of the model's own
columns, and applies the same check (`user_can_authenticate`: inactive users are refused).
Authentication and permissions are ModelBackend's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.db import connections, router


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
