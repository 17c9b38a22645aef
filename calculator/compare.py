"""Side-by-side comparison of saved estimates: the rows that differ and a grouped bar chart.

Pure functions over plain data (the estimates' stored inputs and results): nothing here
recomputes a saved result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from calculator import charts
from calculator.history import BREAKDOWN_KEYS

GIB = 1024**3  # GiB = 1024^3 bytes (IEC), as the calculator labels it
# The chart's axis unit: the largest binary unit that the largest bar reaches.
BINARY_UNITS = (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024), ("bytes", 1))

# the breakdown lines as the calculator names them, and the total
BREAKDOWN_LABELS = {**charts.BREAKDOWN_LABELS, "total": "Total per GPU"}

MIN_COMPARED, MAX_COMPARED = 2, 4


@dataclass(frozen=True)
class Row:
    label: str
    values: tuple[str, ...]
    differs: bool


@dataclass(frozen=True)
class BytesRow:
    key: str
    label: str
    values: tuple[int, ...]
    differs: bool


@dataclass(frozen=True)
class ComparedEstimate:
    """What the comparison needs from one saved estimate."""

    label: str
    model_name: str
    inputs: dict[str, Any]
    result: dict[str, Any]


def _display(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "default"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def input_rows(estimates: Sequence[ComparedEstimate]) -> list[Row]:
    """Every input field any of the estimates has, first the model, flagged where they differ."""
    rows = [
        Row(
            "model",
            tuple(e.model_name for e in estimates),
            len({e.model_name for e in estimates}) > 1,
        )
    ]
    keys: list[str] = []
    for estimate in estimates:
        keys += [key for key in estimate.inputs if key != "model" and key not in keys]
    for key in keys:
        values = tuple(_display(e.inputs.get(key)) for e in estimates)
        rows.append(Row(key, values, len(set(values)) > 1))
    return rows


def breakdown_rows(estimates: Sequence[ComparedEstimate]) -> list[BytesRow]:
    """The breakdown lines and the total, in bytes per GPU, flagged where they differ."""
    rows = []
    for key in (*BREAKDOWN_KEYS, "total"):
        values = tuple(_bytes_of(e.result, key) for e in estimates)
        rows.append(BytesRow(key, BREAKDOWN_LABELS[key], values, len(set(values)) > 1))
    return rows


def _bytes_of(result: dict[str, Any], key: str) -> int:
    if key == "total":
        return int(result.get("total_bytes", 0))
    return int(result.get("breakdown", {}).get(key, 0))


# --- Grouped bar chart ------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: int
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class GroupLabel:
    x: float
    text: str


@dataclass(frozen=True)
class GroupedBarChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    groups: tuple[GroupLabel, ...]
    series_labels: tuple[str, ...]

    @property
    def tick_label_x(self) -> float:
        return self.plot_left - 6

    @property
    def group_label_y(self) -> float:
        return self.plot_bottom + 16


def nice_step(maximum: float, *, max_ticks: int = 5) -> float:
    """The smallest 1, 2 or 5 x 10^k step that covers `maximum` in at most `max_ticks` steps."""
    if maximum <= 0:
        return 1.0
    raw = maximum / max_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude  # unreachable: 10 x magnitude > raw by construction


def grouped_bar_chart(
    estimates: Sequence[ComparedEstimate], *, width: int = 720, height: int = 300
) -> GroupedBarChart:
    """One group per breakdown line (and the total), one bar per estimate; the axis in GiB, or
    in MiB, KiB or bytes for small estimates."""
    keys = [*BREAKDOWN_KEYS, "total"]
    left, right, top, bottom = 64.0, width - 8.0, 12.0, height - 40.0
    values_bytes = [[_bytes_of(e.result, key) for e in estimates] for key in keys]
    largest = max((v for group in values_bytes for v in group), default=0)
    unit, unit_bytes = next(((u, b) for u, b in BINARY_UNITS if largest >= b), BINARY_UNITS[0])
    values_in_unit = [[v / unit_bytes for v in group] for group in values_bytes]
    step = nice_step(largest / unit_bytes)
    top_value = step * max(1, math.ceil(largest / unit_bytes / step))
    scale = (bottom - top) / top_value
    group_width = (right - left) / len(keys)
    bar_width = group_width * 0.8 / max(1, len(estimates))
    bars, groups = [], []
    for g, key in enumerate(keys):
        group_left = left + g * group_width + group_width * 0.1
        groups.append(GroupLabel(left + (g + 0.5) * group_width, BREAKDOWN_LABELS[key]))
        for s, value in enumerate(values_in_unit[g]):
            bar_height = value * scale
            bars.append(
                Bar(
                    x=round(group_left + s * bar_width, 2),
                    y=round(bottom - bar_height, 2),
                    width=round(bar_width, 2),
                    height=round(bar_height, 2),
                    series=s,
                    title=f"{estimates[s].label}: {BREAKDOWN_LABELS[key]} {value:,.2f} {unit}",
                )
            )
    ticks = []
    for i in range(round(top_value / step) + 1):
        value = i * step
        ticks.append(Tick(round(bottom - value * scale, 2), f"{value:g} {unit}"))
    return GroupedBarChart(
        width=width,
        height=height,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        bars=tuple(bars),
        ticks=tuple(ticks),
        groups=tuple(groups),
        series_labels=tuple(e.label for e in estimates),
    )
