"""Many estimates that differ in one field, for "memory against sequence length" charts.

The model is parsed and the inputs validated once; each point only re-runs the formulas.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from calculator.engine.errors import EstimateError
from calculator.engine.estimate import estimate
from calculator.engine.inputs import check_integer, parse_inputs

SWEEP_FIELDS = ("sequence_length", "batch_size")
MAX_SWEEP_POINTS = 4096


def _points(payload: dict[str, Any], field: str, values: Iterable[Any]):
    if field not in SWEEP_FIELDS:
        raise EstimateError("field", f"sweeps vary one of {', '.join(SWEEP_FIELDS)}, not {field!r}")
    values = list(values)
    if len(values) > MAX_SWEEP_POINTS:
        raise EstimateError("values", f"at most {MAX_SWEEP_POINTS:,} points")
    inputs, architecture, _ = parse_inputs(payload)
    for value in values:
        number = check_integer(field, value)
        point = dataclasses.replace(inputs, **{field: number})
        yield number, estimate(point, architecture).breakdown


def sweep(payload: dict[str, Any], field: str, values: Iterable[Any]) -> list[int]:
    """total_bytes per GPU of `payload` with `field` set to each of `values`, in order."""
    return [breakdown.total for _, breakdown in _points(payload, field, values)]


def sweep_breakdowns(
    payload: dict[str, Any], field: str, values: Iterable[Any]
) -> list[dict[str, Any]]:
    """Like `sweep`, with each point's breakdown: [{field: value, "total_bytes", "breakdown"}]."""
    return [
        {field: value, "total_bytes": breakdown.total, "breakdown": breakdown.as_dict()}
        for value, breakdown in _points(payload, field, values)
    ]
