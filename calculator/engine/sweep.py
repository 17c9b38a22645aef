"""Many estimates that differ in one field, for "memory against sequence length" charts.

The model is parsed, the inputs validated and everything that does not depend on batch size or
sequence length planned once; each point only re-runs the size formulas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from calculator.engine.breakdown import Breakdown
from calculator.engine.errors import EstimateError
from calculator.engine.inputs import check_integer, parse_inputs
from calculator.engine.memory import plan_for, worst_breakdown
from calculator.engine.standard import standard_estimate

SWEEP_FIELDS = ("sequence_length", "batch_size")
MAX_SWEEP_POINTS = 4096


def _points(
    payload: dict[str, Any], field: str, values: Iterable[Any]
) -> Iterator[tuple[int, Breakdown]]:
    if field not in SWEEP_FIELDS:
        raise EstimateError("field", f"sweeps vary one of {', '.join(SWEEP_FIELDS)}, not {field!r}")
    values = list(values)
    if len(values) > MAX_SWEEP_POINTS:
        raise EstimateError("values", f"at most {MAX_SWEEP_POINTS:,} points")
    numbers = [check_integer(field, value) for value in values]
    inputs, architecture, _ = parse_inputs(payload)
    if inputs.method == "standard":
        for number in numbers:
            point = inputs.with_value(field, number)
            yield number, standard_estimate(point, architecture).breakdown
        return
    plan = plan_for(inputs, architecture, [])
    for number in numbers:
        yield number, worst_breakdown(plan, inputs.with_value(field, number), architecture)[1]


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
