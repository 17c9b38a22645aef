"""The history's rows as printed and its CSV / JSON export: display values read as plain
values from the (already access-filtered) list, a fixed number of queries however many rows
there are."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from html import escape
from typing import Any

from django.db.models import QuerySet
from django.db.models.fields.json import KT, KeyTransform
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from calculator.charts import in_unit
from calculator.engine.breakdown import BREAKDOWN_LINES
from calculator.models import Estimate, Visibility

# the estimate's breakdown lines, in the engine's order (export columns, the compare table)
BREAKDOWN_KEYS = BREAKDOWN_LINES

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


# --- Rows ------------------------------------------------------------------------------------


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


class HistoryRows(list[HistoryRow]):
    """The page's rows, and their table body as HTML (`html`): written here rather than by
    the template's nine variable nodes a row (25 rows: the most of the page's rendering)."""

    @property
    def html(self) -> SafeString:
        return SafeString(
            "".join(
                f'<tr><td><input type="checkbox" name="ids" value="{escape(row.public_id)}" '
                f'aria-label="Select {escape(row.label)}"></td>'
                f'<td><a href="{escape(row.url)}">{escape(row.title)}</a></td>'
                f"<td>{escape(row.model_name)}</td><td>{escape(row.mode)}</td>"
                f"<td>{escape(row.method)}</td>"
                f'<td class="num" title="{row.total_bytes} bytes">{escape(row.total)}</td>'
                f"<td>{escape(row.owner)}</td><td>{escape(row.shared)}</td>"
                f'<td><time datetime="{escape(row.created_iso)}">{escape(row.created)}</time>'
                "</td></tr>"
                for row in self
            )
        )


def history_rows(queryset: QuerySet[Estimate], ids: list[int]) -> HistoryRows:
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
    return HistoryRows(rows[pk] for pk in ids if pk in rows)


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
