"""The GPUs section of a result (fit, capacity, throughput, cost) for people: pure functions from
the engine's answers to display strings and SVG geometry, so the template only places them.
The calculator page and the permalink both render `gpu_section(result, unit)`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from django.utils.safestring import SafeString
from django.utils.text import Truncator

from calculator.engine.hardware import MAX_FIT_GPUS as MAX_SEARCHED_GPUS
from calculator.presenters.charts import UNIT_BYTES, in_unit, nice_step


def layout_label(configuration: Mapping[str, int] | None) -> str:
    """A layout in words: "1 GPU", "TP 2", "TP 8 × PP 3", "TP 8 × EP 8", "TP 2 × ZeRO-3 DP 4",
    "TP 2 × CP 4", "TP 2 × CP 4 × ZeRO-3" (sharded over the context-parallel ranks alone)."""
    if not configuration:
        return "—"
    count = configuration["num_gpus"]
    if count == 1:
        return "1 GPU"
    parts = []
    if configuration["tensor_parallel"] > 1:
        parts.append(f"TP {configuration['tensor_parallel']}")
    if configuration["pipeline_parallel"] > 1:
        parts.append(f"PP {configuration['pipeline_parallel']}")
    context = configuration.get("context_parallel", 1)
    if context > 1:
        parts.append(f"CP {context}")
    if configuration.get("expert_parallel", 1) > 1:
        parts.append(f"EP {configuration['expert_parallel']}")
    zero = configuration["zero_stage"]
    if configuration["data_parallel"] > 1:
        parts.append(f"ZeRO-{zero} DP {configuration['data_parallel']}" if zero else "DP")
    elif zero and context > 1:
        parts.append(f"ZeRO-{zero}")
    return " × ".join(parts)


def _size(num_bytes: int | None, unit: str) -> str:
    return "—" if num_bytes is None else in_unit(num_bytes, unit)


def rate(value: float | None, unit: str) -> str:
    """Tokens per second for people: "143.6 tokens/s", "28,872 tokens/s"."""
    if value is None:
        return "—"
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def dollars(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:,.4f}"


def duration(seconds: float) -> str:
    """ "42 min", "9.0 h", "3.2 days"."""
    if seconds < 3600:
        return f"{seconds / 60:,.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} days"


@dataclass(frozen=True)
class FitBar:
    gpu: str
    name: str
    y: float  # top of the row, in SVG units
    width: float  # the GPU's memory, in SVG units
    fits: bool
    title: str  # "H100 SXM: 80.00 GiB, fits with 59.60 GiB to spare"
    label: str  # "fits" or "needs 2 (TP 2)"


@dataclass(frozen=True)
class FitChart:
    width: int
    height: int
    left: int  # bars start here (GPU names sit to the left)
    right: int
    row_height: int
    bar_height: int
    bars: list[FitBar]
    required_x: float  # the one-GPU requirement, a line across the rows
    required_title: str
    ticks: list[tuple[float, str]]
    description: str


def fit_chart(
    rows: Sequence[Mapping[str, Any]], unit: str, *, width: int = 720, row_height: int = 22
) -> FitChart | None:
    """Each GPU's memory as a bar, the memory one GPU needs as a line across them (at the
    right edge, with an arrow in its title, when it exceeds every GPU)."""
    if not rows or rows[0]["required_bytes"] is None:
        return None
    required = rows[0]["required_bytes"]
    left, right, top = 170, width - 200, 8
    largest = max(row["memory_bytes"] for row in rows)
    # scale to the largest GPU (and the requirement when it is within twice that)
    scale_max = (required if required <= 2 * largest else largest) / UNIT_BYTES[unit]
    scale_max = max(scale_max, largest / UNIT_BYTES[unit])
    step = nice_step(scale_max)
    top_value = step * -(-scale_max // step)

    def sx(num_bytes: int) -> float:
        return round(left + (right - left) * num_bytes / UNIT_BYTES[unit] / top_value, 2)

    bars = []
    for index, row in enumerate(rows):
        fits = row["fits_on_one"]
        if fits:
            label = "fits"
            title = f"fits with {in_unit(row['headroom_bytes'], unit)} to spare"
        elif row["fewest_gpus"]:
            label = f"needs {row['fewest_gpus']} ({layout_label(row['configuration'])})"
            title = f"{in_unit(-row['headroom_bytes'], unit)} short on one GPU"
        else:
            label = "does not fit"
            title = "no layout within the search limits fits"
        bars.append(
            FitBar(
                gpu=row["gpu"],
                name=row["name"],
                y=top + index * row_height,
                width=round(sx(row["memory_bytes"]) - left, 2),
                fits=fits,
                title=f"{row['name']}: {in_unit(row['memory_bytes'], unit)}, {title}",
                label=label,
            )
        )
    height = top + len(rows) * row_height + 28
    ticks = [
        (sx(round(i * step * UNIT_BYTES[unit])), f"{i * step:,.0f}")
        for i in range(int(round(top_value / step)) + 1)
    ]
    fitting = sum(1 for row in rows if row["fits_on_one"])
    return FitChart(
        width=width,
        height=height,
        left=left,
        right=right,
        row_height=row_height,
        bar_height=row_height - 8,
        bars=bars,
        required_x=min(sx(required), right),
        required_title=f"One GPU needs {in_unit(required, unit)}"
        + (" (beyond this scale →)" if sx(required) > right else ""),
        ticks=ticks,
        description=(
            f"One GPU needs {in_unit(required, unit)}: {fitting} of {len(rows)} GPUs hold it "
            "alone; the others need several."
        ),
    )


def _short_name(name: str, length: int = 28) -> str:
    """`name|truncatechars:28` (Django's Truncator), which leaves a name that short as it is."""
    return name if len(name) <= length else Truncator(name).chars(length)


def fit_chart_svg(chart: FitChart) -> SafeString:
    """The fit chart as SVG, written here rather than by template nodes: its rows (one per
    catalog GPU) were most of the fragment's rendering time. Every text is escaped; numbers
    are the geometry's. The bars' text is placed by the stylesheet (`.fit-bar text`: names end
    at the bars, labels start after them)."""
    grid_bottom, tick_y = chart.height - 20, chart.height - 6
    parts = [
        f'<svg class="chart fit-chart" viewBox="0 0 {chart.width} {chart.height}" role="img" '
        f'aria-labelledby="fit-chart-desc"><desc id="fit-chart-desc">'
        f"{escape(chart.description)}</desc>"
    ]
    parts.extend(
        f'<line class="grid" x1="{x}" x2="{x}" y1="4" y2="{grid_bottom}"/>'
        f'<text x="{x}" y="{tick_y}" text-anchor="middle">{escape(label)}</text>'
        for x, label in chart.ticks
    )
    name_x, label_x = chart.left - 6, chart.right + 6
    parts.extend(
        f'<g class="fit-bar {"fits" if bar.fits else "short"}" data-gpu="{escape(bar.gpu)}">'
        f'<text x="{name_x}" y="{bar.y + 11}">{escape(_short_name(bar.name))}</text>'
        f'<rect x="{chart.left}" y="{bar.y}" width="{bar.width}" height="{chart.bar_height}">'
        f"<title>{escape(bar.title)}</title></rect>"
        f'<text x="{label_x}" y="{bar.y + 11}">{escape(bar.label)}</text></g>'
        for bar in chart.bars
    )
    parts.append(
        f'<line class="required" x1="{chart.required_x}" x2="{chart.required_x}" y1="2" '
        f'y2="{grid_bottom}"><title>{escape(chart.required_title)}</title></line></svg>'
    )
    return SafeString("".join(parts))


def fit_rows_html(rows: Sequence[Mapping[str, Any]]) -> SafeString:
    """The fit table's rows (`gpu_section`'s fit_rows), written here for the same reason."""
    parts = []
    for row in rows:
        percent = row["headroom_percent"]
        parts.append(
            f'<tr id="fit-{escape(row["gpu"])}"><th scope="row">{escape(row["name"])}</th>'
            f'<td class="num">{escape(row["memory"])}</td>'
            f"<td>{'fits' if row['fits_on_one'] else 'no'}</td>"
            f'<td class="num">{escape(row["headroom"])}'
            f"{'' if percent is None else f' ({percent} %)'}</td>"
            f'<td class="num">{row["fewest_gpus"] or "—"}</td><td>{escape(row["layout"])}</td>'
            f'<td class="num">{escape(row["per_gpu"])}</td></tr>'
        )
    return SafeString("".join(parts))


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the column: "1 GPU"
    value: str  # above it: "125"


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    bottom: float
    columns: list[Column]
    title: str
    description: str


def column_chart(
    points: Sequence[tuple[int, int]], *, title: str, width: int = 300, height: int = 160
) -> ColumnChart | None:
    """One column per (GPU count, value), heights in proportion to the largest value."""
    if not points:
        return None
    top, bottom = 18, height - 24
    largest = max(value for _, value in points) or 1
    slot = width / len(points)
    column_width = round(slot * 0.6, 2)
    columns = []
    for index, (count, value) in enumerate(points):
        column_height = round((bottom - top) * value / largest, 2)
        columns.append(
            Column(
                x=round(index * slot + (slot - column_width) / 2, 2),
                y=round(bottom - column_height, 2),
                width=column_width,
                height=column_height,
                label=f"{count} GPU{'s' if count > 1 else ''}",
                value=f"{value:,}",
            )
        )
    words = ", ".join(f"{column.value} on {column.label}" for column in columns)
    return ColumnChart(width, height, bottom, columns, title, f"{title}: {words}.")


def gpu_name(result: Mapping[str, Any]) -> str:
    """The asked GPU's name: from its figures, or its catalog row among the fit rows."""
    gpu = result["inputs"]["gpu"]
    if isinstance(gpu, Mapping) and gpu.get("name"):
        return str(gpu["name"])
    slug = result["capacity"]["gpu"]
    return next((row["name"] for row in result["fit"] if row["gpu"] == slug), str(gpu))


def headline(result: Mapping[str, Any], unit: str) -> dict[str, Any] | None:
    """How many GPUs, in words, beside the total: "fits 1 × H100 SXM, 7.30 GiB spare" or
    "needs 2 × H100 SXM (TP 2)". None without a GPU, or for a result saved before the engine
    gave one (its figures are shown as they were saved)."""
    answer = result.get("answer")
    if answer is None:
        return None
    name, count = answer["name"], answer["gpu_count"]
    layout = layout_label(answer["configuration"])
    on = f"{count} × {name}" + (f" ({layout})" if count > 1 else "")
    if answer["fits"]:
        spare = in_unit(answer["spare_bytes"], unit)
        each = " each" if count > 1 else ""
        text = f"fits {on}, {spare} spare{each}"
        if answer.get("confidence") == "may_not_fit":
            high = in_unit(answer["per_gpu_high_bytes"], unit)
            text += f"; may not fit: runs like it measured up to {high}"
            return {"fits": False, "text": text}
        return {"fits": True, "text": text}
    needs = answer["needs"]
    if needs is None:
        text = f"does not fit {on}, nor any layout of up to {MAX_SEARCHED_GPUS:,} of them"
        return {"fits": False, "text": text}
    needed = f"{needs['gpu_count']} × {name}"
    needed += f" ({layout_label(needs['configuration'])})" if needs["gpu_count"] > 1 else ""
    short = in_unit(-answer["spare_bytes"], unit)
    return {"fits": False, "text": f"needs {needed}: {short} short on {on}"}


def gpu_section(
    result: Mapping[str, Any], unit: str, *, fit_catalog: bool = True, fit_open: bool = True
) -> dict[str, Any] | None:
    """What the GPUs section shows for an engine result; None when no GPU was asked for.

    `fit_catalog`: the result's `fit` covers the catalog's GPUs (else only the asked one, and
    the fit table has no rows until it is opened); `fit_open`: the fit table is shown open."""
    if "fit" not in result:
        return None
    capacity, throughput, cost = result["capacity"], result["throughput"], result["cost"]
    kv_cache = capacity["kv_cache"]
    decode, prefill, training = throughput["decode"], throughput["prefill"], throughput["training"]
    run = cost["training_run"]
    by_count = capacity["by_gpu_count"]
    efficiencies = throughput["efficiencies"]
    fit_rows = [
        {
            **row,
            "memory": in_unit(row["memory_bytes"], unit),
            "headroom": _size(row["headroom_bytes"], unit),
            "layout": layout_label(row["configuration"]),
            "per_gpu": _size(row["per_gpu_bytes"], unit),
        }
        for row in (result["fit"] if fit_catalog else ())
    ]
    chart = fit_chart(result["fit"], unit) if fit_catalog else None
    return {
        "headline": headline(result, unit),
        "gpu_name": gpu_name(result),
        "gpu_count": capacity["gpu_count"],
        "layout": layout_label(capacity["configuration"]),
        "fit_catalog": fit_catalog,
        "fit_open": fit_open,
        "fit_rows": fit_rows,
        "fit_rows_html": fit_rows_html(fit_rows),
        "fit_chart": chart,
        "fit_chart_svg": None if chart is None else fit_chart_svg(chart),
        "memory_utilization_percent": f"{100 * capacity['memory_utilization']:g} %",
        "usable": in_unit(capacity["usable_bytes"], unit),
        "max_batch_size": f"{capacity['max_batch_size']:,}",
        "max_sequence_length": f"{capacity['max_sequence_length']:,}",
        "max_position_embeddings": (
            f"{capacity['max_position_embeddings']:,}"
            if capacity["max_position_embeddings"]
            else None
        ),
        "kv_cache": None
        if kv_cache is None
        else {
            "budget": in_unit(kv_cache["budget_bytes"], unit),
            "bytes_per_token": f"{kv_cache['bytes_per_token']:,}",
            "tokens": f"{kv_cache['tokens']:,}",
            "concurrent_sequences": f"{kv_cache['concurrent_sequences']:,}",
        },
        "capacity_charts": [
            column_chart(
                [(row["gpu_count"], row["max_batch_size"]) for row in by_count],
                title="Largest batch size",
            ),
            column_chart(
                [(row["gpu_count"], row["max_sequence_length"]) for row in by_count],
                title="Longest sequence (tokens)",
            ),
        ],
        "efficiencies": {name: f"{100 * value:g} %" for name, value in efficiencies.items()},
        "decode_per_sequence": rate(decode and decode["tokens_per_s_per_sequence"], "tokens/s"),
        "decode_total": rate(decode and decode["tokens_per_s"], "tokens/s"),
        "decode_bytes_per_step": decode and f"{decode['bytes_per_step']:,}",
        "prefill": rate(prefill and prefill["tokens_per_s"], "tokens/s"),
        "training": rate(training and training["tokens_per_s"], "tokens/s"),
        "price_per_gpu_hour": dollars(cost["price_per_gpu_hour"]),
        "per_hour": dollars(cost["per_hour"]),
        "per_million_tokens": dollars(cost["per_million_tokens"]),
        "training_run": None
        if run is None
        else {
            "tokens": f"{run['tokens']:,}",
            "epochs": f"{run['epochs']:g}",
            "duration": duration(run["seconds"]),
            "cost": dollars(run["cost"]),
        },
        "has_price": cost["price_per_gpu_hour"] is not None,
    }
