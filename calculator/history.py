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
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
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
from calculator.selectors import User, estimate_list, profile_list, team_ids_for_user, team_list
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


def history_narrowed(queryset: QuerySet[Estimate], form: HistoryFilterForm, user: User):
    """`queryset` narrowed by what validated of the form; what did not is ignored."""
    form.is_valid()
    data = form.cleaned_data
    if text := data.get("q", "").strip():
        queryset = queryset.filter(
            Q(title__icontains=text) | Q(notes__icontains=text) | Q(model_name__icontains=text)
        )
    if whose := data.get("whose"):
        mine = Q(owner=user)
        queryset = queryset.filter(mine) if whose == "mine" else queryset.exclude(mine)
    if mode := data.get("mode"):
        queryset = queryset.filter(mode=mode)
    if method := data.get("method"):
        queryset = queryset.filter(method=method)
    if profile := data.get("profile"):
        queryset = queryset.filter(profile_id=form.listed_pk("profile", profile))
    if team := data.get("team"):
        queryset = queryset.filter(team_id=form.listed_pk("team", team))
    if after := data.get("created_after"):
        queryset = queryset.filter(created__gte=_day_start(after))
    if (before := data.get("created_before")) and before < date.max:
        # Inclusive: everything saved on that day too (a range on the indexed column, no casts).
        # The last day there is (9999-12-31) has no day after it: no upper bound then.
        queryset = queryset.filter(created__lt=_day_start(before + timedelta(days=1)))
    if sort := data.get("sort"):
        queryset = queryset.order_by(*SORTS[sort])
    return queryset


class HistoryFilter:
    """The history page's filters for one request: `form` to show, `qs` the user's estimates
    and their teams' narrowed by it. The user's team ids are read once, for both."""

    def __init__(self, request: HttpRequest) -> None:
        self.user = request.user
        team_ids = team_ids_for_user(self.user)
        self.form = HistoryFilterForm(request.GET, user=self.user, team_ids=team_ids)
        self.estimates = estimate_list(user=self.user, team_ids=team_ids).defer(
            "inputs", "architecture", "result"
        )

    @cached_property
    def qs(self) -> QuerySet[Estimate]:
        return history_narrowed(self.estimates, self.form, self.user)


def history_filter(request: HttpRequest) -> HistoryFilter:
    """The user's estimates and their teams' narrowed by the request's query string."""
    return HistoryFilter(request)


# --- Pages ------------------------------------------------------------------------------------

HISTORY_COUNT_LIMIT = 1_000


class HistoryPaginator(Paginator):
    """Counts at most `count_limit` rows, so that a page costs the same with 100 or 100,000
    estimates (an exact COUNT reads every matching index entry: 30 ms for 100,000 rows on
    PostgreSQL). Up to the limit it is Django's Paginator; past it, `count_capped` is True and
    pages go on for as long as rows come back (one more row than a page is read to know)."""

    object_list: QuerySet[Estimate, int]

    def __init__(
        self, object_list: QuerySet[Estimate, int], per_page: int, *, count_limit: int
    ) -> None:
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
            **{name: _json_scalar(row[f"x_{name}"]) for name in RESULT_PATHS},
            # SQLite keeps JSON booleans as 1 and 0
            "fits": None if row["x_fits"] is None else _json_scalar(row["x_fits"]) in (True, 1),
            "serving_starts": None
            if row["x_serving_starts"] is None
            else _json_scalar(row["x_serving_starts"]) in (True, 1),
            "engine_version": row["engine_version"],
            "created": row["created"].isoformat(),
        }


def _json_scalar(text: Any) -> Any:
    """A value KT read as text, back as the JSON scalar it was: 8 -> 8, true -> True; a string
    (a dtype, a GPU name) stays as it is, None (not in the result) as None."""
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
