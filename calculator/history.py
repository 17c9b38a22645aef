"""The history page's filters and its CSV / JSON export.

The filters only ever narrow `selectors.estimate_list(user=...)`, so nothing the user may not
see can enter a page, a count or an export. Exports stream a fixed number of queries however
many rows there are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import partial
from typing import Any

from django import forms
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT, KeyTransform
from django.forms.utils import flatatt
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from calculator.charts import in_unit
from calculator.engine import MODES
from calculator.engine.breakdown import BREAKDOWN_LINES
from calculator.models import Estimate, Visibility
from calculator.selectors import (
    User,
    estimate_list,
    listed_parts_q,
    profile_list,
    team_ids_for_user,
    team_list,
)
from calculator.typed import form_field

# the estimate's breakdown lines, in the engine's order (export columns, the compare table)
BREAKDOWN_KEYS = BREAKDOWN_LINES

SORTS = {
    "newest": ("-created", "-id"),
    "oldest": ("created", "id"),
    "largest": ("-total_bytes", "-created", "-id"),
    "smallest": ("total_bytes", "-created", "-id"),
    "title": ("title", "-created", "-id"),
}

# The workload as the engine read it, and the GPU answer (for estimates saved with a GPU): each
# column is a path into the saved result, read in the database (no result is loaded whole)
WORKLOAD_COLUMNS = (
    "batch_size",
    "sequence_length",
    "weight_dtype",
    "finetuning",
    "total_low_bytes",
    "total_high_bytes",
)
GPU_COLUMNS = (
    "gpu",
    "gpu_count",
    "fits",
    "per_gpu_bytes",
    "spare_bytes",
    "decode_tokens_per_s",
    "cost_per_hour",
    "cost_per_million_tokens",
    # serving plans (mode serving)
    "serving_engine",
    "serving_starts",
    "serving_kv_cache_tokens",
    "serving_max_concurrency",
    "serving_output_tokens_per_s",
    "serving_cost_per_million_output_tokens",
)
RESULT_PATHS = {
    "batch_size": "result__inputs__batch_size",
    "sequence_length": "result__inputs__sequence_length",
    "weight_dtype": "result__inputs__weight_dtype",
    "finetuning": "result__inputs__finetuning",
    # the band of published GPU measurements (calculator/bands.py), where the result has one
    "total_low_bytes": "result__breakdown_bounds__total__low",
    "total_high_bytes": "result__breakdown_bounds__total__high",
    "gpu": "result__answer__name",
    "gpu_count": "result__answer__gpu_count",
    "fits": "result__answer__fits",
    "per_gpu_bytes": "result__answer__per_gpu_bytes",
    "spare_bytes": "result__answer__spare_bytes",
    "decode_tokens_per_s": "result__throughput__decode__tokens_per_s",
    "cost_per_hour": "result__cost__per_hour",
    "cost_per_million_tokens": "result__cost__per_million_tokens",
    "serving_engine": "result__serving__engine",
    "serving_starts": "result__serving__memory__starts",
    "serving_kv_cache_tokens": "result__serving__memory__kv_cache_tokens",
    "serving_max_concurrency": "result__serving__memory__max_concurrency",
    "serving_output_tokens_per_s": "result__serving__performance__output_tokens_per_s",
    "serving_cost_per_million_output_tokens": ("result__serving__cost__per_million_output_tokens"),
}

EXPORT_COLUMNS = (
    "public_id",
    "url",
    "title",
    "model_name",
    "mode",
    "method",
    "owner",
    "team",
    "visibility",
    "total_bytes",
    "num_gpus",
    *(f"{key}_bytes" for key in BREAKDOWN_KEYS),
    *WORKLOAD_COLUMNS,
    *GPU_COLUMNS,
    "engine_version",
    "created",
)

EXPORT_CHUNK_SIZE = 2000


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class PlainSelect(forms.Select):
    """A <select> written in Python. Django renders every option through its own template: for
    the profile filter's 45 options that was 10 ms of each history page."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (option["value"], " selected" if option["selected"] else "", option["label"])
                for _, group, _ in widget["optgroups"]
                for option in group
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]), options
        )


# A choice that is not (or no longer) listed: the words of Django's ModelChoiceField.
NOT_LISTED = forms.ModelChoiceField.default_error_messages["invalid_choice"]


class DatePicker(forms.DateInput):
    """The browser's date picker: it sends and shows ISO dates (YYYY-MM-DD) only, so a date
    the address gave in another accepted format (10/25/2026) is shown as ISO, not as blank."""

    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = forms.DateField().to_python(value)
            except ValidationError:
                return value
        return super().format_value(value)


class HistoryFilterForm(forms.Form):
    """The history page's filters: a GET form, every field optional. A value that does not
    validate is left out of `cleaned_data` and so ignored (the page says so). The profile and
    team choices are what the user may list."""

    q = forms.CharField(label="Search", required=False)
    whose = forms.ChoiceField(
        label="Whose",
        required=False,
        choices=[("", "Mine and my teams'"), ("mine", "Mine"), ("shared", "Shared with my teams")],
        widget=PlainSelect,
    )
    mode = forms.ChoiceField(
        label="Mode",
        required=False,
        choices=[("", "Any mode"), *((mode, mode.capitalize()) for mode in MODES)],
        widget=PlainSelect,
    )
    method = forms.ChoiceField(
        label="Method",
        required=False,
        choices=[("", "Any method"), ("detailed", "Detailed"), ("standard", "Standard")],
        widget=PlainSelect,
    )
    profile = forms.ChoiceField(
        label="Profile",
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        widget=PlainSelect,
    )
    team = forms.ChoiceField(
        label="Team",
        required=False,
        error_messages={"invalid_choice": NOT_LISTED},
        widget=PlainSelect,
    )
    created_after = forms.DateField(label="From", required=False, widget=DatePicker)
    created_before = forms.DateField(label="To", required=False, widget=DatePicker)
    sort = forms.ChoiceField(
        label="Sort",
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("largest", "Largest first"),
            ("smallest", "Smallest first"),
            ("title", "Title"),
        ],
        widget=PlainSelect,
    )

    def __init__(self, data: Any, *, user: User, team_ids: list[int]) -> None:
        super().__init__(data)
        # Each read in one query when first needed: to render the select, or to check a value.
        # An export without a profile or team filter needs neither.
        self.listed = {
            "profile": profile_list(user=user, team_ids=team_ids).values_list(
                "pk", "public_id", "name"
            ),
            "team": team_list(user=user, team_ids=team_ids).values_list("pk", "slug", "name"),
        }
        form_field(self, "profile", forms.ChoiceField).choices = partial(
            self._choices, "profile", "Any profile"
        )
        form_field(self, "team", forms.ChoiceField).choices = partial(
            self._choices, "team", "Any team"
        )

    def _choices(self, field: str, empty_label: str) -> list[tuple[str, str]]:
        return [("", empty_label), *((key, name) for _, key, name in self.listed[field])]

    def listed_pk(self, field: str, key: str) -> int:
        """The primary key of the listed profile or team that `key` (a validated choice) names."""
        return next(pk for pk, listed_key, _ in self.listed[field] if listed_key == key)


def _filters_q(form: HistoryFilterForm) -> Q:
    """What validated of the form but `whose` and `sort`, as one condition; what did not
    validate is ignored."""
    form.is_valid()
    data = form.cleaned_data
    q = Q()
    if text := data.get("q", "").strip():
        q &= Q(title__icontains=text) | Q(notes__icontains=text) | Q(model_name__icontains=text)
    if mode := data.get("mode"):
        q &= Q(mode=mode)
    if method := data.get("method"):
        q &= Q(method=method)
    if profile := data.get("profile"):
        q &= Q(profile_id=form.listed_pk("profile", profile))
    if team := data.get("team"):
        q &= Q(team_id=form.listed_pk("team", team))
    if after := data.get("created_after"):
        q &= Q(created__gte=_day_start(after))
    if (before := data.get("created_before")) and before < date.max:
        # Inclusive: everything saved on that day too (a range on the indexed column, no casts).
        # The last day there is (9999-12-31) has no day after it: no upper bound then.
        q &= Q(created__lt=_day_start(before + timedelta(days=1)))
    return q


def _ordering(form: HistoryFilterForm) -> tuple[str, ...]:
    form.is_valid()
    return SORTS[form.cleaned_data.get("sort") or "newest"]


def history_narrowed(queryset: QuerySet[Estimate], form: HistoryFilterForm, user: User):
    """`queryset` narrowed by what validated of the form; what did not is ignored."""
    queryset = queryset.filter(_filters_q(form))
    if whose := form.cleaned_data.get("whose"):
        mine = Q(owner=user)
        queryset = queryset.filter(mine) if whose == "mine" else queryset.exclude(mine)
    if form.cleaned_data.get("sort"):
        queryset = queryset.order_by(*_ordering(form))
    return queryset


class HistoryFilter:
    """The history page's filters for one request: `form` to show, `qs` the user's estimates
    and their teams' narrowed by it, `ids` the same list's ids for the page's count and rows.
    The user's team ids are read once, for all of them."""

    def __init__(self, request: HttpRequest) -> None:
        self.user = request.user
        self.team_ids = team_ids_for_user(self.user)
        self.form = HistoryFilterForm(request.GET, user=self.user, team_ids=self.team_ids)
        self.estimates = estimate_list(user=self.user, team_ids=self.team_ids).defer(
            "inputs", "architecture", "result"
        )

    @cached_property
    def qs(self) -> QuerySet[Estimate]:
        return history_narrowed(self.estimates, self.form, self.user)

    @cached_property
    def ids(self) -> ListedIds:
        """The ids of `qs`, in its order, read as a union of the access rule's parts (the
        user's own, their teams' team items), each part narrowed by the same filters."""
        self.form.is_valid()
        whose = self.form.cleaned_data.get("whose")
        filters = _filters_q(self.form)

        def parts(*, per_team: bool) -> list[QuerySet[Estimate]]:
            listed = listed_parts_q(self.user, self.team_ids, per_team=per_team)
            if whose == "mine":
                listed = listed[:1]
            elif whose == "shared":
                listed = listed[1:]
            return [Estimate.objects.filter(part).filter(filters) for part in listed]

        # The count: two parts, own and all teams' (unordered, each stops after the limit); the
        # page: one part per team, each read in its index's order.
        return ListedIds(
            parts(per_team=True), count_parts=parts(per_team=False), ordering=_ordering(self.form)
        )


def history_filter(request: HttpRequest) -> HistoryFilter:
    """The user's estimates and their teams' narrowed by the request's query string."""
    return HistoryFilter(request)


# --- Pages ------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class HistoryRow:
    """One line of the history table, every value ready to print."""

    public_id: str
    url: str
    label: str  # what the row's checkbox is called: the title, or model and mode
    title: str
    model_name: str
    mode: str
    method: str
    total: str
    total_bytes: int
    owner: str
    shared: str
    created_iso: str
    created: str


def history_rows(queryset: QuerySet[Estimate], ids: list[int]) -> list[HistoryRow]:
    """The page's rows in the order of `ids`: only the columns shown, read as plain values (no
    model instances, one URL reversed for all of them)."""
    prefix = reverse("estimate-permalink", args=["x"])[: -len("x/")]
    values = queryset.filter(pk__in=ids).values_list(
        "pk",
        "public_id",
        "title",
        "model_name",
        "mode",
        "method",
        "total_bytes",
        "owner__username",
        "visibility",
        "team__name",
        "created",
    )
    rows = {}
    for row in values:
        pk, public_id, title, model, mode, method, total, owner, visibility, team, created = row
        shown = timezone.localtime(created)
        rows[pk] = HistoryRow(
            public_id=public_id,
            url=f"{prefix}{public_id}/",
            label=title or f"{model} ({mode})",  # as Estimate.__str__
            title=title or "(untitled)",
            model_name=model,
            mode=mode,
            method=method,
            total=in_unit(total, "GiB"),
            total_bytes=total,
            owner=owner,
            shared=Visibility(visibility).label + (f" · {team}" if team else ""),
            created_iso=shown.isoformat(),
            created=shown.strftime("%Y-%m-%d %H:%M"),
        )
    return [rows[pk] for pk in ids if pk in rows]


# --- Export -----------------------------------------------------------------------------------


def export_rows(queryset: QuerySet[Estimate], *, permalink_prefix: str) -> Iterator[dict]:
    """One dict per estimate, in EXPORT_COLUMNS order, read in chunks with one query."""
    paths = {f"x_{name}": KT(path) for name, path in RESULT_PATHS.items()}
    rows = queryset.annotate(breakdown=KeyTransform("breakdown", "result"), **paths).values(
        *paths,
        "public_id",
        "title",
        "model_name",
        "mode",
        "method",
        "owner__username",
        "team__name",
        "visibility",
        "total_bytes",
        "num_gpus",
        "breakdown",
        "engine_version",
        "created",
    )
    for row in rows.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        yield {
            "public_id": row["public_id"],
            "url": permalink_prefix + row["public_id"] + "/",
            "title": row["title"],
            "model_name": row["model_name"],
            "mode": row["mode"],
            "method": row["method"],
            "owner": row["owner__username"],
            "team": row["team__name"] or "",
            "visibility": row["visibility"],
            "total_bytes": row["total_bytes"],
            "num_gpus": row["num_gpus"],
            **{f"{key}_bytes": (row["breakdown"] or {}).get(key) for key in BREAKDOWN_KEYS},
            **{name: _json_scalar(row[f"x_{name}"], name) for name in RESULT_PATHS},
            "engine_version": row["engine_version"],
            "created": row["created"].isoformat(),
        }


# result columns that hold a JSON boolean: SQLite's json_extract gives them as 1 and 0
BOOLEAN_RESULT_COLUMNS = frozenset({"fits", "serving_starts"})


def _json_scalar(text: Any, name: str = "") -> Any:
    """A value KT read as text, back as the JSON scalar it was: 8 -> 8, true -> True; a string
    (a dtype, a GPU name) stays as it is, None (not in the result) as None."""
    if name in BOOLEAN_RESULT_COLUMNS and text is not None:
        return _json_scalar(text) in (True, 1)
    if not isinstance(text, str):  # SQLite's json_extract gives numbers as numbers
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) else text


class _Echo:
    """csv.writer writes into this and we hand each line to the response as it comes."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        yield writer.writerow([csv_cell(row[column]) for column in EXPORT_COLUMNS])


def csv_cell(value: Any) -> Any:
    # Spreadsheets run cells starting with = + - @ as formulas: quote user text that does.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def _json_chunks(rows: Iterable[dict]) -> Iterator[str]:
    yield "["
    separator = "\n"
    for row in rows:
        yield separator + json.dumps(row, ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def export_response(request: HttpRequest, queryset: QuerySet[Estimate], *, fmt: str):
    """A streaming download of the filtered list: `fmt` is "csv" or "json"."""
    prefix = request.build_absolute_uri(reverse("estimate-permalink", args=["x"]))[: -len("x/")]
    rows = export_rows(queryset, permalink_prefix=prefix)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_chunks(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="estimates-{stamp}.{fmt}"'
    return response
