"""The history page's ids and its count, read as a union of the access rule's index ranges
(`selectors.listed_parts_q`), and the paginator that counts at most a limit: the query part of
the history page, beside the selectors whose conditions it reads."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

from calculator.models import Estimate

HISTORY_COUNT_LIMIT = 1_000


class ListedIds:
    """The ids of a list made of disjoint parts (`listed_parts_q`), in `ordering`: what the
    paginator counts and slices. With one part it is that part's query; with more, each part
    is ordered and limited to what the slice needs (its offset plus its length), the parts are
    joined with UNION ALL, and the union is ordered and sliced again. On PostgreSQL every part
    is one range of an index (`owner_id = u`; a team's team items in estimate_history_team),
    which newest or oldest first is read in the index's order: a page reads about as many
    entries as it skips and shows, whoever the user is, instead of testing the access filter
    on every row from the start; the capped count reads at most `limit` + 1 entries a part.

    `ordering` ends with the id, so the order is total and the merge exact."""

    ordered = True  # for Paginator's warning about unordered lists

    def __init__(
        self,
        parts: list[QuerySet[Estimate]],
        *,
        ordering: tuple[str, ...],
        count_parts: list[QuerySet[Estimate]] | None = None,
    ) -> None:
        self.parts = parts
        # the same rows as `parts`, maybe cut otherwise (fewer parts: fewer to count)
        self.count_parts = parts if count_parts is None else count_parts
        self.ordering = ordering
        # The union's columns: the id, then each ordering field; the union's ORDER BY names
        # them by position (1 the id), which PostgreSQL and SQLite read alike.
        names = [name.lstrip("-") for name in ordering]
        self.columns = ["pk", *(name for name in names if name not in ("id", "pk"))]
        position = {name: index for index, name in enumerate(self.columns, start=1)}
        position["id"] = 1
        self.order_by = ", ".join(
            f"{position[name.lstrip('-')]} {'DESC' if name.startswith('-') else 'ASC'}"
            for name in ordering
        )

    def capped_count(self, limit: int) -> int:
        """How many ids there are, or `limit` + 1 where there are more than `limit`."""
        parts = self.count_parts
        if not parts:
            return 0
        if len(parts) == 1:
            return parts[0].order_by()[: limit + 1].count()
        union = self._union([part.order_by().values("pk")[: limit + 1] for part in parts])
        if union is None:
            return 0
        sql, params, connection = union
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS listed", params)
            (count,) = cursor.fetchone()
        return min(count, limit + 1)

    def __getitem__(self, key: slice) -> list[int]:
        if not isinstance(key, slice) or key.step is not None or key.stop is None:
            raise TypeError("ListedIds takes a slice [start:stop] only")
        start, stop = key.start or 0, key.stop
        if start < 0:
            raise TypeError("ListedIds takes a slice [start:stop] only")
        if not self.parts or stop <= start:
            return []
        if len(self.parts) == 1:
            return list(
                self.parts[0].order_by(*self.ordering).values_list("pk", flat=True)[start:stop]
            )
        union = self._union(
            [part.order_by(*self.ordering).values_list(*self.columns)[:stop] for part in self.parts]
        )
        if union is None:
            return []
        sql, params, connection = union
        with connection.cursor() as cursor:
            cursor.execute(
                f"{sql} ORDER BY {self.order_by} LIMIT {int(stop - start)} OFFSET {int(start)}",
                params,
            )
            return [row[0] for row in cursor.fetchall()]

    @staticmethod
    def _union(parts: list[QuerySet]) -> tuple[str, list[Any], Any] | None:
        """The parts' SQL as one UNION ALL: `SELECT * FROM (part) AS part_N UNION ALL ...`, a
        form that PostgreSQL and SQLite both read with each part's ORDER BY and LIMIT (Django's
        own union() refuses sliced parts on SQLite). None when every part is empty."""
        sqls: list[str] = []
        params: list[Any] = []
        connection = connections[parts[0].db]
        for number, part in enumerate(parts):
            try:
                sql, part_params = part.query.get_compiler(connection=connection).as_sql()
            except EmptyResultSet:
                continue
            sqls.append(f"SELECT * FROM ({sql}) AS part_{number}")
            params.extend(part_params)
        if not sqls:
            return None
        return " UNION ALL ".join(sqls), params, connection


class HistoryPaginator(Paginator):
    """Counts at most `count_limit` rows, so that a page costs the same with 100 or 100,000
    estimates (an exact COUNT reads every matching index entry: 30 ms for 100,000 rows on
    PostgreSQL). Up to the limit it is Django's Paginator; past it, `count_capped` is True and
    pages go on for as long as rows come back (one more row than a page is read to know)."""

    # ListedIds is sliced and counted (`count` below), never iterated nor measured with len():
    # less than the stubs' protocol for an object list asks for
    object_list: ListedIds  # type: ignore[assignment]

    def __init__(self, object_list: ListedIds, per_page: int, *, count_limit: int) -> None:
        super().__init__(object_list, per_page)  # type: ignore[arg-type]
        self.count_limit = count_limit

    @cached_property
    def count(self) -> int:
        return self.object_list.capped_count(self.count_limit)

    @property
    def count_capped(self) -> bool:
        return self.count > self.count_limit

    def validate_number(self, number: Any) -> int:
        if not self.count_capped:
            return super().validate_number(number)
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number: Any) -> Page:
        if not self.count_capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = self.object_list[bottom : bottom + self.per_page + 1]
        if not rows:
            raise EmptyPage("That page contains no results")
        return OpenEndedPage(rows[: self.per_page], number, self, more=len(rows) > self.per_page)


class OpenEndedPage(Page):
    """A page past the count limit: whether another follows is known from the rows read."""

    def __init__(self, object_list: Any, number: int, paginator: Paginator, *, more: bool):
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more
