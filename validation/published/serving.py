"""Published vLLM start-up logs: the serving plan (mode "serving", engine "vllm") against the
lines vLLM printed.

`serving.json` holds one case per printed line (the weights, the profiled activation peak, the
memory left for the KV cache, the KV cache's tokens), each with its source, the setup the log
states and the payload that expresses it. The line is compared with the plan's field of the same
meaning (`calculate(...)["serving"]["memory"][quantity]`); the non-torch figure the log prints is
an input (`non_torch_bytes`), as it varies with the stack. A sibling of the measured set in
`validation/published/__init__.py`, with its own summary: these are lines of a plan, not one peak.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from calculator.engine import calculate

HERE = Path(__file__).resolve().parent
DATA_PATH = HERE / "serving.json"
CATALOG = HERE.parent.parent / "calculator" / "data"
QUANTITIES = (
    "weights_bytes",
    "activation_peak_bytes",
    "kv_cache_bytes",
    "kv_cache_tokens",
    "num_blocks",
)
# vLLM prints memory in GiB (bytes / 2**30, vllm/utils GiB_bytes; V0's model_runner labels the
# same quotient "GB") and the KV cache in tokens (V1) or blocks (V0's "# GPU blocks")
UNITS = {"GiB": 2**30, "tokens": 1, "blocks": 1}
# the GPU a log ran on, as calculator/data/gpus.json has it (its memory is the log's);
# an H100 unless the case names another (`gpu_slug`)
GPU_SLUG = "h100-sxm"
GPU_KEYS = (
    "slug",
    "name",
    "memory_bandwidth_bytes_per_s",
    "bf16_dense_tflops",
    "price_per_hour_usd",
)


@dataclass(frozen=True)
class LogLine:
    id: str
    source: dict[str, str]
    row: str
    quantity: str
    reported: str
    setup: str
    payload: dict[str, Any]

    @property
    def measured(self) -> int:
        value, unit = self.reported.split()
        return round(Fraction(value) * UNITS[unit])


@dataclass(frozen=True)
class Comparison:
    line: LogLine
    planned: int

    @property
    def error(self) -> float:
        """Signed relative error, (plan - printed) / printed."""
        return (self.planned - self.line.measured) / self.line.measured


def load_data() -> dict[str, Any]:
    return json.loads(DATA_PATH.read_text())


def _catalog(name: str) -> list[dict[str, Any]]:
    return json.loads((CATALOG / name).read_text())


def engine_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The contract payload: the catalog config, the log's GPU memory and its non-torch bytes."""
    models = {entry["slug"]: entry for entry in _catalog("models.json")}
    slug = payload.get("gpu_slug", GPU_SLUG)
    gpu = next(entry for entry in _catalog("gpus.json") if entry["slug"] == slug)
    fields = {
        key: value
        for key, value in payload.items()
        if key not in ("model", "gpu_slug", "gpu_memory_gib", "non_torch_gib")
    }
    return {
        **fields,
        "model": {"hf_config": models[payload["model"]]["config"]},
        "gpu": {key: gpu[key] for key in GPU_KEYS}
        | {"memory_bytes": round(Fraction(payload["gpu_memory_gib"]) * 2**30)},
        "non_torch_bytes": round(Fraction(payload["non_torch_gib"]) * 2**30),
    }


def lines(data: dict[str, Any] | None = None) -> list[LogLine]:
    data = load_data() if data is None else data
    return [
        LogLine(
            id=case["id"],
            source=data["sources"][case["source"]],
            row=case["row"],
            quantity=case["quantity"],
            reported=case["reported"],
            setup=case["setup"],
            payload=case["payload"],
        )
        for case in data["cases"]
    ]


def compare_all(data: dict[str, Any] | None = None) -> list[Comparison]:
    plans: dict[str, dict[str, Any]] = {}
    comparisons = []
    for line in lines(data):
        key = json.dumps(line.payload, sort_keys=True)
        if key not in plans:
            plans[key] = calculate(engine_payload(line.payload))["serving"]["memory"]
        comparisons.append(Comparison(line, plans[key][line.quantity]))
    return comparisons


@dataclass(frozen=True)
class Summary:
    quantity: str
    count: int
    median_abs_error: float
    within_10_percent: int
    worst: Comparison


def _summary(quantity: str, chosen: list[Comparison]) -> Summary:
    errors = [abs(comparison.error) for comparison in chosen]
    return Summary(
        quantity=quantity,
        count=len(chosen),
        median_abs_error=statistics.median(errors),
        within_10_percent=sum(error <= 0.10 for error in errors),
        worst=max(chosen, key=lambda comparison: abs(comparison.error)),
    )


def overall(comparisons: list[Comparison]) -> Summary:
    """Every line together (quantity "all")."""
    return _summary("all", comparisons)


def summarise(comparisons: list[Comparison]) -> list[Summary]:
    """One summary a quantity, in QUANTITIES order (the lines do not add up to one figure)."""
    summaries = []
    for quantity in QUANTITIES:
        chosen = [comparison for comparison in comparisons if comparison.line.quantity == quantity]
        if chosen:
            summaries.append(_summary(quantity, chosen))
    return summaries


def section(data: dict[str, Any] | None = None) -> str:
    data = load_data() if data is None else data
    comparisons = compare_all(data)
    lines_out = [
        "### vLLM start-up logs against the serving plan",
        "",
        f"{len(comparisons)} lines vLLM printed at start-up, from {len(data['sources'])} sources, "
        'against `mode: "serving"` (`validation/published/serving.json`); the non-torch figure '
        "each log prints is an input. Errors are (plan - printed) / printed.",
        "",
        "| line | lines | median abs. error | within ±10 % | worst |",
        "|---|---:|---:|---:|---|",
    ]
    for summary in [*summarise(comparisons), overall(comparisons)]:
        lines_out.append(
            f"| `{summary.quantity}` | {summary.count} | {summary.median_abs_error:.1%} | "
            f"{summary.within_10_percent} of {summary.count} | "
            f"{summary.worst.error:+.1%} ({summary.worst.line.id}) |"
        )
    lines_out += ["", "Sources:", ""]
    for key, source in data["sources"].items():
        lines_out.append(
            f"- `{key}`: [{source['repository']} {source['path']}]({source['url']}). "
            f"{source['how']}"
        )
    lines_out += [
        "",
        "| case | printed | printed (B or tokens) | plan | error |",
        "|---|---:|---:|---:|---:|",
    ]
    for comparison in comparisons:
        line = comparison.line
        lines_out.append(
            f"| {line.id} | {line.reported} | {line.measured:,} | {comparison.planned:,} | "
            f"{comparison.error:+.1%} |"
        )
    lines_out += [
        "",
        f"Not expressible ({len(data['not_expressible'])} published logs, "
        "listed rather than dropped):",
        "",
        "| source | row | reported | why |",
        "|---|---|---:|---|",
    ]
    for entry in data["not_expressible"]:
        lines_out.append(
            f"| {entry['source']} | {entry['row']} | {entry['reported']} | {entry['reason']} |"
        )
    return "\n".join(lines_out) + "\n"
