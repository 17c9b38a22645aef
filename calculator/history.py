"""The history page's filters and its CSV / JSON export.

The FilterSet only ever narrows `selectors.estimate_list(user=...)`, so nothing the user may not
see can enter a page, a count or an export. Exports stream a fixed number of queries however
many rows there are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.forms.utils import flatatt
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from calculator.charts import in_unit
from calculator.models import Estimate, ModelProfile, Team, Visibility
from calculator.selectors import estimate_list, profile_list, team_list

BREAKDOWN_KEYS = (
    "weights",
    "kv_cache",
    "activations",
    "gradients",
    "optimizer_states",
    "runtime_overhead",
)

SORTS = {
    "newest": ("-created", "-id"),
    "oldest": ("created", "id"),
    "largest": ("-total_bytes", "-created", "-id"),
    "smallest": ("total_bytes", "-created", "-id"),
    "title": ("title", "-created", "-id"),
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
    "engine_version",
    "created",
)

EXPORT_CHUNK_SIZE = 2000


def _visible_profiles(request: HttpRequest | None) -> QuerySet[ModelProfile]:
    if request is None:
        return ModelProfile.objects.none()
    return profile_list(user=request.user).select_related(None).only("public_id", "name")


def _visible_teams(request: HttpRequest | None) -> QuerySet[Team]:
    if request is None:
        return Team.objects.none()
    return team_list(user=request.user)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


class PlainSelect(forms.Select):
    """A <select> written in Python. Django renders every option through its own template: for
    the profile filter's 45 options that was 10 ms of each history page."""

    def render(self, name: str, value: Any, attrs: Any = None, renderer: Any = None) -> str:
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


class ListedChoiceIterator(django_filters.fields.ModelChoiceIterator):
    """The choices in one plain query. Django reads them with `.iterator()`, which on
    PostgreSQL opens a server-side cursor: DECLARE, FETCH and CLOSE, three round trips."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for item in self.queryset.all():
            yield self.choice(item)


class ListedModelChoiceField(django_filters.fields.ModelChoiceField):
    iterator = ListedChoiceIterator


class ListedModelChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = ListedModelChoiceField


class EstimateFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Search")
    whose = django_filters.ChoiceFilter(
        method="filter_whose",
        label="Whose",
        choices=[("mine", "Mine"), ("shared", "Shared with my teams")],
        empty_label="Mine and my teams'",
        widget=PlainSelect,
    )
    mode = django_filters.ChoiceFilter(
        choices=[("inference", "Inference"), ("training", "Training")],
        empty_label="Any mode",
        widget=PlainSelect,
    )
    method = django_filters.ChoiceFilter(
        choices=[("detailed", "Detailed"), ("standard", "Standard")],
        empty_label="Any method",
        widget=PlainSelect,
    )
    profile = ListedModelChoiceFilter(
        queryset=_visible_profiles,
        to_field_name="public_id",
        empty_label="Any profile",
        widget=PlainSelect,
    )
    team = ListedModelChoiceFilter(
        queryset=_visible_teams, to_field_name="slug", empty_label="Any team", widget=PlainSelect
    )
    created_after = django_filters.DateFilter(method="filter_created_after", label="From")
    created_before = django_filters.DateFilter(method="filter_created_before", label="To")
    sort = django_filters.ChoiceFilter(
        method="filter_sort",
        label="Sort",
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("largest", "Largest first"),
            ("smallest", "Smallest first"),
            ("title", "Title"),
        ],
        empty_label=None,
        widget=PlainSelect,
    )

    class Meta:
        model = Estimate
        fields: list[str] = []

    def filter_text(self, queryset: QuerySet[Estimate], name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(title__icontains=value) | Q(notes__icontains=value) | Q(model_name__icontains=value)
        )

    def filter_whose(self, queryset: QuerySet[Estimate], name: str, value: str) -> QuerySet:
        if value == "mine":
            return queryset.filter(owner=self.request.user)
        return queryset.exclude(owner=self.request.user)

    def filter_created_after(self, queryset: QuerySet[Estimate], name: str, value: date):
        return queryset.filter(created__gte=_day_start(value))

    def filter_created_before(self, queryset: QuerySet[Estimate], name: str, value: date):
        # Inclusive: everything saved on that day too (a range on the indexed column, no casts).
        return queryset.filter(created__lt=_day_start(value + timedelta(days=1)))

    def filter_sort(self, queryset: QuerySet[Estimate], name: str, value: str) -> QuerySet:
        return queryset.order_by(*SORTS.get(value, SORTS["newest"]))


def history_filter(request: HttpRequest) -> EstimateFilter:
    """The user's estimates and their teams' narrowed by the request's query string."""
    queryset = estimate_list(user=request.user).defer("inputs", "architecture", "result")
    return EstimateFilter(request.GET, queryset=queryset, request=request)


# --- Pages ------------------------------------------------------------------------------------

HISTORY_COUNT_LIMIT = 1_000


class HistoryPaginator(Paginator):
    """Counts at most `count_limit` rows, so that a page costs the same with 100 or 100,000
    estimates (an exact COUNT reads every matching index entry: 30 ms for 100,000 rows on
    PostgreSQL). Up to the limit it is Django's Paginator; past it, `count_capped` is True and
    pages go on for as long as rows come back (one more row than a page is read to know)."""

    def __init__(self, object_list: Any, per_page: int, *, count_limit: int) -> None:
        super().__init__(object_list, per_page)
        self.count_limit = count_limit

    @cached_property
    def count(self) -> int:
        # Unordered, so that PostgreSQL may stop after count_limit + 1 index entries.
        return self.object_list.order_by()[: self.count_limit + 1].count()

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
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
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
    rows = queryset.annotate(breakdown=KeyTransform("breakdown", "result")).values(
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
            "engine_version": row["engine_version"],
            "created": row["created"].isoformat(),
        }


class _Echo:
    """csv.writer writes into this and we hand each line to the response as it comes."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterable[dict]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        yield writer.writerow([_csv_cell(row[column]) for column in EXPORT_COLUMNS])


def _csv_cell(value: Any) -> Any:
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
