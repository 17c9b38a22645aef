"""The six lines of an estimate, in bytes per GPU."""

from __future__ import annotations

from dataclasses import dataclass

BREAKDOWN_LINES = (
    "weights",
    "kv_cache",
    "activations",
    "gradients",
    "optimizer_states",
    "runtime_overhead",
)


@dataclass(frozen=True)
class Breakdown:
    weights: int
    kv_cache: int
    activations: int
    gradients: int
    optimizer_states: int
    runtime_overhead: int
    # host (CPU) RAM the GPU's process needs beside it: offloaded optimizer state, parameters;
    # not part of the GPU total
    host_bytes: int = 0
    # training: the activations' own peak in backward, before the gradients that replace them
    # as they are freed (the activations line is what is left above the gradients)
    activation_peak: int = 0

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.kv_cache
            + self.activations
            + self.gradients
            + self.optimizer_states
            + self.runtime_overhead
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "activations": self.activations,
            "gradients": self.gradients,
            "optimizer_states": self.optimizer_states,
            "runtime_overhead": self.runtime_overhead,
        }


@dataclass(frozen=True)
class MethodResult:
    """What a method computes: per-GPU breakdown, parameter counts and its notes."""

    breakdown: Breakdown
    total_parameters: int
    active_parameters: int
    trainable_parameters: int
    notes: tuple[str, ...]
