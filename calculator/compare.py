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
from calculator.evidence import ComparedLine
from calculator.presenters.history import BREAKDOWN_KEYS

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


def _inputs_of(estimate: ComparedEstimate) -> dict[str, Any]:
    # the engine's normalised inputs (every default filled in), else what was sent
    return estimate.result.get("inputs") or estimate.inputs


def _gpu_display(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("slug") or "GPU")
    return "none" if value is None else str(value)


def input_rows(
    estimates: Sequence[ComparedEstimate], training_only: frozenset[str] = frozenset()
) -> list[Row]:
    """Every input field any of the estimates has, first the model, flagged where they differ:
    the normalised values (a default and the same value given are the same), training-only
    fields only where an estimate is a training one ("—" for the others), the GPU by name and
    left out where none of them chose one."""
    rows = [
        Row(
            "model",
            tuple(e.model_name for e in estimates),
            len({e.model_name for e in estimates}) > 1,
        )
    ]
    all_inputs = [_inputs_of(e) for e in estimates]
    training = [inputs.get("mode") == "training" for inputs in all_inputs]
    keys: list[str] = []
    for inputs in all_inputs:
        keys += [key for key in inputs if key != "model" and key not in keys]
    for key in keys:
        if key in training_only and not any(training):
            continue
        raw = [inputs.get(key) for inputs in all_inputs]
        if all(value is None for value in raw):
            continue  # nobody chose it (no GPU, no overhead given): nothing to compare
        values = tuple(
            "—"
            if key in training_only and not is_training
            else (_gpu_display(value) if key == "gpu" else _display(value))
            for value, is_training in zip(raw, training, strict=True)
        )
        rows.append(Row(key, values, len(set(values)) > 1))
    return rows


def measured_rows(lines_of: Sequence[Sequence[ComparedLine] | None]) -> list[Row]:
    """Each estimate's latest measured run beside it, line by line: "12.10 GiB (+3.2 %)", the
    error signed as estimate minus measured; a dash where there is no run or no such figure."""
    if not any(lines is not None for lines in lines_of):
        return []
    labels = next(lines for lines in lines_of if lines is not None)
    rows = []
    for index, first in enumerate(labels):
        values = []
        for lines in lines_of:
            line = None if lines is None else lines[index]
            if line is None or line.measured_bytes is None:
                values.append("—")
                continue
            measured = f"{line.measured_bytes / GIB:,.2f} GiB"
            values.append(
                measured
                if line.error_percent is None
                else f"{measured} ({line.error_percent:+.1f} %)"
            )
        if any(value != "—" for value in values):
            rows.append(Row(first.label, tuple(values), len(set(values)) > 1))
    return rows


def serving_rows(estimates: Sequence[ComparedEstimate]) -> list[Row]:
    """Serving plans side by side: the engine, whether it starts, its KV cache and speed."""
    if not any("serving" in e.result for e in estimates):
        return []

    def row(label: str, value_of: Any) -> Row:
        values = tuple(
            value_of(e.result["serving"]) if "serving" in e.result else "—" for e in estimates
        )
        return Row(label, values, len(set(values)) > 1)

    def performance(key: str, text: str) -> Any:
        def value(plan: dict[str, Any]) -> str:
            rates = plan.get("performance")
            return "—" if not rates else text.format(rates[key])

        return value

    def per_million(plan: dict[str, Any]) -> str:
        amount = (plan.get("cost") or {}).get("per_million_output_tokens")
        return "—" if amount is None else f"${amount:,.2f}"

    def llamacpp(key: str, text: str) -> Any:
        def value(plan: dict[str, Any]) -> str:
            buffers = plan["memory"].get("llamacpp")
            return "—" if not buffers else text.format(buffers[key])

        return value

    rows = [
        row("Serving engine", lambda plan: str(plan["engine"])),
        row("Starts", lambda plan: "yes" if plan["memory"]["starts"] else "no"),
        row("KV cache tokens", lambda plan: f"{plan['memory']['kv_cache_tokens']:,}"),
        row("Concurrency at max length", lambda plan: f"{plan['memory']['max_concurrency']:,.2f}"),
        row("Output tokens/s", performance("output_tokens_per_s", "{:,.0f}")),
        row("Per million output tokens", per_million),
    ]
    if any("llamacpp" in e.result.get("serving", {}).get("memory", {}) for e in estimates):
        # llama.cpp plans: how many layers went to the GPU, and the host RAM the rest takes
        rows += [
            row("Layers offloaded (llama.cpp)", llamacpp("offloaded", "{}")),
            row("Host RAM (llama.cpp)", llamacpp("host_bytes", "{:,} B")),
        ]
    return rows


def answer_rows(estimates: Sequence[ComparedEstimate]) -> list[Row]:
    """The GPU answer of each (saved with a GPU): which, how many, fit, spare, speed, cost."""
    if not any("answer" in e.result for e in estimates):
        return []

    def row(label: str, value_of: Any) -> Row:
        values = tuple(value_of(e.result) if "answer" in e.result else "—" for e in estimates)
        return Row(label, values, len(set(values)) > 1)

    def answer(result: dict[str, Any]) -> dict[str, Any]:
        return result["answer"]

    def decode(result: dict[str, Any]) -> str:
        rate = ((result.get("throughput") or {}).get("decode") or {}).get("tokens_per_s")
        return "—" if rate is None else f"{rate:,.1f} tokens/s"

    def money(key: str) -> Any:
        def value(result: dict[str, Any]) -> str:
            amount = (result.get("cost") or {}).get(key)
            return "—" if amount is None else f"${amount:,.2f}"

        return value

    return [
        row("GPU", lambda r: str(answer(r)["name"])),
        row("GPUs", lambda r: f"{answer(r)['gpu_count']:,}"),
        row("Fits", lambda r: "yes" if answer(r)["fits"] else "no"),
        row(
            "Spare per GPU",
            lambda r: (
                "—"
                if answer(r).get("spare_bytes") is None
                else f"{answer(r)['spare_bytes'] / GIB:,.2f} GiB"
            ),
        ),
        row("Decode", decode),
        row("Per hour", money("per_hour")),
        row("Per million tokens", money("per_million_tokens")),
    ]


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
class GroupLabel:
    x: float
    text: str
    # every other label one line lower: seven labels of up to 16 characters do not fit side by
    # side in 720 px
    dy: int = 0


@dataclass(frozen=True)
class GroupedBarChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[charts.Tick, ...]  # positions along y
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
        groups.append(
            GroupLabel(left + (g + 0.5) * group_width, BREAKDOWN_LABELS[key], dy=14 * (g % 2))
        )
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
        ticks.append(charts.Tick(round(bottom - value * scale, 2), f"{value:g} {unit}"))
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
