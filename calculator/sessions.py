"""Django's database sessions, read with one plain SQL statement.

Every signed-in request reads its session. Django's `db` store reads it through the ORM, which
builds and compiles the same query anew on each request: about a third of a kept history
page's time (docs/performance.md). This store reads the same row with the same condition
(the key, not expired) as one statement; writing, deleting, rotating and clearing expired
sessions are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        using = router.db_for_read(self.model)
        connection = connections[using]
        table = connection.ops.quote_name(self.model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data FROM {table} WHERE session_key = %s AND expire_date > %s",
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            # as Django's store: an unknown or expired key is dropped, a new one is made on save
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0])
