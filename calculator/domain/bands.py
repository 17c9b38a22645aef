"""How far each line of an answer can be trusted: its provenance and a band from the published
GPU measurements (calculator/data/error_bands.json, written by `python -m validation.bands`).

- weights, KV cache, gradients and optimizer states are **exact**: counted from the model's
  shape and formats, 0 bytes off transformers' own tensors in the CPU harness (docs/accuracy.md);
- activations are **modelled** from the libraries' code: what the published totals miss by
  is theirs, so the total's band is carried by this line;
- the runtime overhead is a **default** (1 GiB), or the CUDA context measured once
  (memory_view device), or 0 (allocated), or the figure the request gave.

The band: the published errors of the workload's kind (error = estimate / measured - 1), so a
run of the same kind measured between total / (1 + max_error) and total / (1 + min_error).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

BANDS_PATH = Path(__file__).resolve().parent.parent / "data" / "error_bands.json"
EXACT_LINES = ("weights", "kv_cache", "gradients", "optimizer_states")


@cache
def band_table() -> dict[str, Any]:
    return json.loads(BANDS_PATH.read_text(encoding="utf-8"))


def workload_group(inputs: dict[str, Any]) -> str:
    if inputs.get("mode") != "training":
        return "inference"  # serving plans' requests are inference
    return str(inputs.get("finetuning") or "full")


def _overhead_provenance(inputs: dict[str, Any]) -> str:
    if inputs.get("runtime_overhead_bytes") is not None:
        return "given"
    view = str(inputs.get("memory_view"))
    return {"allocated": "none", "device": "measured"}.get(view, "default")


def breakdown_bounds(result: dict[str, Any]) -> dict[str, Any]:
    """The response's `breakdown_bounds`: each line's provenance and range, and the total's."""
    inputs = result["inputs"]
    group = workload_group(inputs)
    bands = band_table()["bands"]
    band = bands.get(group)
    source_group = group if band is not None else "all"
    band = band or bands["all"]
    total = result["total_bytes"]
    low = round(total / (1 + band["max_error"]))
    high = round(total / (1 + band["min_error"]))
    breakdown = result["breakdown"]
    lines: dict[str, dict[str, Any]] = {}
    for name, value in breakdown.items():
        if name in EXACT_LINES:
            lines[name] = {"provenance": "exact", "low": value, "high": value}
        elif name == "activations":
            lines[name] = {
                "provenance": "modelled",
                "low": max(value - (total - low), 0),
                "high": value + (high - total),
            }
        else:
            lines[name] = {"provenance": _overhead_provenance(inputs), "low": value, "high": value}
    return {
        "workload": group,
        "band_from": source_group,
        "cases": band["cases"],
        "min_error": band["min_error"],
        "max_error": band["max_error"],
        "total": {"low": low, "high": high},
        "lines": lines,
    }


def fit_confidence(result: dict[str, Any]) -> None:
    """With a GPU: whether the answer's "fits" holds across the band, in `answer`."""
    answer = result.get("answer")
    bounds = result.get("breakdown_bounds")
    if answer is None or bounds is None or answer.get("per_gpu_bytes") is None:
        return
    per_gpu = answer["per_gpu_bytes"]
    high = round(per_gpu / (1 + bounds["min_error"]))
    answer["per_gpu_high_bytes"] = high
    if high <= answer["usable_bytes"]:
        answer["confidence"] = "fits"
    elif per_gpu <= answer["usable_bytes"]:
        answer["confidence"] = "may_not_fit"
    else:
        answer["confidence"] = "does_not_fit"
