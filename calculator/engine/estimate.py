"""The engine's one door: `calculate(payload) -> dict`, speaking DESIGN.md's estimate contract."""

from __future__ import annotations

from typing import Any

from calculator.engine.architecture import Architecture
from calculator.engine.breakdown import Estimate
from calculator.engine.detailed import detailed_estimate
from calculator.engine.inputs import EstimateInputs, parse_inputs
from calculator.engine.standard import standard_estimate

# Bump when a formula or a constant changes a number: saved estimates record it
ENGINE_VERSION = "2.0.0"


def estimate(inputs: EstimateInputs, architecture: Architecture) -> Estimate:
    """Run the chosen method on validated inputs."""
    if inputs.method == "standard":
        return standard_estimate(inputs, architecture)
    return detailed_estimate(inputs, architecture)


def result_dict(inputs: EstimateInputs, result: Estimate, notes: list[str]) -> dict[str, Any]:
    breakdown = result.breakdown
    return {
        "parameters": {
            "total": result.total_parameters,
            "active": result.active_parameters,
            "trainable": result.trainable_parameters,
        },
        "breakdown": breakdown.as_dict(),
        "total_bytes": breakdown.total,
        "num_gpus": inputs.num_gpus,
        "inputs": inputs.as_dict(),
        "notes": notes + list(result.notes),
        "engine_version": ENGINE_VERSION,
    }


def calculate(
    payload: dict[str, Any], *, architecture: Architecture | None = None
) -> dict[str, Any]:
    """Estimate the memory per GPU of running or training a model.

    `payload` is the contract's flat request (DESIGN.md); `payload["model"]` is
    `{"hf_config": {...}}` or `{"architecture": {...}}`. Bad input raises `EstimateError`.
    `architecture`, when given, is used instead of parsing `payload["model"]` (a snapshot).
    """
    resolved = None if architecture is None else (architecture, ())
    inputs, architecture, notes = parse_inputs(payload, resolved)
    return result_dict(inputs, estimate(inputs, architecture), notes)
