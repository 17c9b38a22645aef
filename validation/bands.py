"""Error bands from the published GPU measurements: how far a total may be from what a run
measures, by kind of workload, written to calculator/data/error_bands.json.

`python -m validation.bands` rewrites the file; tests/validation/test_bands.py recomputes it
from validation/published/ and fails when the two disagree. The service reads the file only
(calculator/domain/bands.py), so it needs neither this package nor the measurements at run time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from validation.published import compare_all

BANDS_PATH = Path(__file__).resolve().parent.parent / "calculator" / "data" / "error_bands.json"
# the smallest half-width a band is given: the published figures are rounded to 0.01 GB or
# 1 %, so a group whose cases all agree is still not exact
MIN_HALF_WIDTH = 0.02


def group_of(payload: dict[str, Any]) -> str:
    """The kind of workload a band covers: inference, or training by fine-tuning method."""
    if payload.get("mode", "inference") != "training":
        return "inference"
    return str(payload.get("finetuning", "full"))


def compute() -> dict[str, Any]:
    groups: dict[str, list[float]] = {}
    for comparison in compare_all():
        groups.setdefault(group_of(comparison.measurement.payload), []).append(comparison.error)
        # every case also bounds a workload no measurement covers yet (full training, serving)
        groups.setdefault("all", []).append(comparison.error)
    bands = {}
    for name, errors in sorted(groups.items()):
        # error = estimate / measured - 1, so measured = estimate / (1 + error)
        low, high = min(errors), max(errors)
        bands[name] = {
            "cases": len(errors),
            "min_error": round(min(low, -MIN_HALF_WIDTH), 4),
            "max_error": round(max(high, MIN_HALF_WIDTH), 4),
        }
    return {
        "source": "validation/published/measurements.json (python -m validation.bands)",
        "bands": bands,
    }


def main() -> None:
    BANDS_PATH.write_text(json.dumps(compute(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {BANDS_PATH}")


if __name__ == "__main__":
    main()
