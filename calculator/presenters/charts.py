"""Results as numbers and pictures: pure functions from engine results to display values and
SVG geometry, so that templates only place what is computed here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# The two units offered, labelled honestly: GiB are binary (1024³), GB decimal (10⁹).
UNIT_BYTES = {"GiB": 1024**3, "GB": 10**9}

BREAKDOWN_LABELS = {
    "weights": "Weights",
    "kv_cache": "KV cache",
    "activations": "Activations",
    "gradients": "Gradients",
    "optimizer_states": "Optimizer states",
    "runtime_overhead": "Runtime overhead",
}


def in_unit(num_bytes: int, unit: str) -> str:
    """`num_bytes` in GiB or GB with two decimals: "14.96 GiB"."""
    return f"{num_bytes / UNIT_BYTES[unit]:,.2f} {unit}"


def parameter_count(count: int) -> str:
    """A parameter count for people: "8.03B", "494M", "124,439,808" below a million."""
    if count >= 10**9:
        return f"{count / 10**9:,.2f}B"
    if count >= 10**6:
        return f"{count / 10**6:,.1f}M"
    return f"{count:,}"


PARAMETER_LABELS = {
    "total": "Total",
    "active": "Active per token",
    "active_without_embeddings": "Active, without embeddings",
    "trainable": "Trainable",
}


BASIS_LABELS = {
    "exact": "exact",
    "default": "default",
    "measured": "measured once",
    "given": "as given",
    "none": "not counted",
}


def with_basis(
    rows: Sequence[BreakdownRow], bounds: Mapping[str, Any] | None, unit: str
) -> list[BreakdownRow]:
    """The rows with each line's provenance and, where modelled, its range."""
    if not bounds:
        return list(rows)
    lines = bounds["lines"]
    result = []
    for row in rows:
        line = lines.get(row.key)
        if line is None:
            result.append(row)
            continue
        if line["provenance"] == "modelled":
            basis = f"modelled: {in_unit(line['low'], unit)} – {in_unit(line['high'], unit)}"
        else:
            basis = BASIS_LABELS.get(line["provenance"], line["provenance"])
        result.append(replace(row, basis=basis))
    return result


def bounds_line(bounds: Mapping[str, Any] | None, unit: str) -> str | None:
    """ "A run of this kind measures 15.20 GiB – 18.41 GiB (…)"."""
    if not bounds:
        return None
    total = bounds["total"]
    kind = {"inference": "inference", "full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA"}
    if bounds["band_from"] == "all":
        source = f"all {bounds['cases']} published GPU measurements (none of this kind yet)"
    else:
        name = kind.get(bounds["band_from"], bounds["band_from"])
        source = f"{bounds['cases']} published {name} measurements"
    return (
        f"Measured on GPUs, runs like this one came to {in_unit(total['low'], unit)} – "
        f"{in_unit(total['high'], unit)} per GPU: the band of {source}."
    )


def parameter_rows(parameters: Mapping[str, int]) -> list[tuple[str, str, str]]:
    """(label, short, exact) for each count the result holds; "without embeddings" only where
    it differs from the active count (model cards quote either: gpt-oss-120b's 5.1B is without)."""
    rows = []
    for key, label in PARAMETER_LABELS.items():
        if key not in parameters:
            continue
        if key == "active_without_embeddings" and parameters[key] == parameters.get("active"):
            continue
        rows.append((label, parameter_count(parameters[key]), f"{parameters[key]:,}"))
    return rows


@dataclass(frozen=True)
class BreakdownRow:
    key: str
    label: str
    num_bytes: int
    bytes_display: str  # "268,435,456"
    unit_display: str  # "0.25 GiB"
    percent_display: str  # "1.6 %"
    basis: str = ""  # "exact", "modelled: 4.1-6.3 GiB" (breakdown_bounds)


def breakdown_rows(breakdown: Mapping[str, int], unit: str) -> list[BreakdownRow]:
    total = sum(breakdown.values())
    rows = []
    for key, label in BREAKDOWN_LABELS.items():
        num_bytes = breakdown.get(key, 0)
        share = 100 * num_bytes / total if total else 0.0
        rows.append(
            BreakdownRow(
                key=key,
                label=label,
                num_bytes=num_bytes,
                bytes_display=f"{num_bytes:,}",
                unit_display=in_unit(num_bytes, unit),
                percent_display=f"{share:.1f} %",
            )
        )
    return rows


@dataclass(frozen=True)
class BarSegment:
    key: str
    label: str
    x: float  # left edge, in percent of the bar's width
    width: float  # in percent of the bar's width
    title: str  # tooltip: "KV cache: 0.25 GiB (1.6 %)"


def stacked_bar(breakdown: Mapping[str, int], unit: str) -> list[BarSegment]:
    """One segment per non-zero part of the breakdown, left to right, widths summing to 100."""
    total = sum(breakdown.values())
    if total <= 0:
        return []
    segments = []
    x = 0.0
    for key, label in BREAKDOWN_LABELS.items():
        num_bytes = breakdown.get(key, 0)
        if num_bytes <= 0:
            continue
        width = 100 * num_bytes / total
        title = f"{label}: {in_unit(num_bytes, unit)} ({width:.1f} %)"
        segments.append(BarSegment(key, label, round(x, 4), round(width, 4), title))
        x += width
    return segments


def nice_step(span: float, target_ticks: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `target_ticks` ticks."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class Tick:
    position: float  # in SVG user units along its axis
    label: str


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    left: int  # the plot area inside the margins
    top: int
    right: int
    bottom: int
    polyline: str  # "x1,y1 x2,y2 ..." for <polyline points>
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    marker_x: float
    marker_y: float
    marker_title: str
    x_label: str
    y_label: str
    description: str  # the chart in words, for screen readers


def line_chart(
    points: Sequence[tuple[int, int]],
    *,
    current_x: int,
    unit: str,
    x_label: str,
    width: int = 640,
    height: int = 260,
) -> LineChart | None:
    """Total memory (y, in `unit`) against `points`' x (tokens), with the current input marked.
    None when there is nothing to draw."""
    if len(points) < 2:
        return None
    left, top, right, bottom = 64, 12, width - 16, height - 40
    xs = [x for x, _ in points]
    values = [num_bytes / UNIT_BYTES[unit] for _, num_bytes in points]
    x_max = max(xs)
    y_step = nice_step(max(values))
    y_max = y_step * math.ceil(max(values) / y_step) or y_step
    x_step = nice_step(x_max)
    x_top = x_step * math.ceil(x_max / x_step)

    def sx(x: float) -> float:
        return round(left + (right - left) * x / x_top, 2)

    def sy(value: float) -> float:
        return round(bottom - (bottom - top) * value / y_max, 2)

    polyline = " ".join(f"{sx(x)},{sy(v)}" for x, v in zip(xs, values, strict=True))
    x_ticks = [
        Tick(sx(i * x_step), f"{int(i * x_step):,}") for i in range(int(round(x_top / x_step)) + 1)
    ]
    y_decimals = 0 if y_step >= 1 else max(0, -math.floor(math.log10(y_step)))
    y_ticks = [
        Tick(sy(i * y_step), f"{i * y_step:,.{y_decimals}f}")
        for i in range(int(round(y_max / y_step)) + 1)
    ]
    current = min(points, key=lambda point: abs(point[0] - current_x))
    first, last = points[0], points[-1]
    description = (
        f"Total memory rises from {in_unit(first[1], unit)} at {first[0]:,} tokens to "
        f"{in_unit(last[1], unit)} at {last[0]:,} tokens; "
        f"{in_unit(current[1], unit)} at the chosen {current[0]:,}."
    )
    return LineChart(
        width=width,
        height=height,
        left=left,
        top=top,
        right=right,
        bottom=bottom,
        polyline=polyline,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        marker_x=sx(current[0]),
        marker_y=sy(current[1] / UNIT_BYTES[unit]),
        marker_title=f"{current[0]:,} tokens: {in_unit(current[1], unit)}",
        x_label=x_label,
        y_label=unit,
        description=description,
    )


def sequence_length_points(sequence_length: int, maximum: int, count: int = 24) -> list[int]:
    """`count` evenly spaced lengths up to twice the chosen one (which is always among them)."""
    top = min(2 * sequence_length, maximum)
    values = {max(1, round(top * i / count)) for i in range(1, count + 1)}
    values.add(sequence_length)
    return sorted(values)
