"""The estimation engine: pure Python, imports nothing from Django.

Its one door is `calculate(payload) -> dict`, speaking the estimate contract of docs/design.md;
`sweep` runs it for many values of one field; with a `gpu` in the request it also answers which
GPUs fit, how many, how fast and at what cost (`hardware`). The option lists and limits are
exported for the forms and the API, which validate with the same figures.
"""

from __future__ import annotations

from calculator.engine.dtypes import DTYPES, KV_CACHE_DTYPES, WEIGHT_DTYPES, WEIGHT_ONLY_DTYPES
from calculator.engine.errors import EstimateError
from calculator.engine.estimate import ENGINE_VERSION, calculate
from calculator.engine.hardware import (
    HARDWARE_DEFAULTS,
    HARDWARE_LIMITS,
    Efficiencies,
    GpuSpec,
)
from calculator.engine.inputs import (
    ALL_LINEAR,
    ATTENTION_IMPLEMENTATIONS,
    DEFAULTS,
    FIELDS,
    FINETUNING_METHODS,
    HARDWARE_FIELDS,
    INFERENCE_LOGITS,
    INPUT_LIMITS,
    LORA_ADAPTER_DTYPES,
    LORA_TARGET_MODULES,
    MEMORY_VIEWS,
    METHODS,
    MODES,
    OFFLOADS,
    OPTIMIZERS,
    SHARDINGS,
)
from calculator.engine.sweep import SWEEP_FIELDS, sweep, sweep_breakdowns

__all__ = [
    "ALL_LINEAR",
    "ATTENTION_IMPLEMENTATIONS",
    "DEFAULTS",
    "DTYPES",
    "ENGINE_VERSION",
    "FIELDS",
    "FINETUNING_METHODS",
    "HARDWARE_DEFAULTS",
    "HARDWARE_FIELDS",
    "HARDWARE_LIMITS",
    "INFERENCE_LOGITS",
    "INPUT_LIMITS",
    "KV_CACHE_DTYPES",
    "LORA_ADAPTER_DTYPES",
    "LORA_TARGET_MODULES",
    "MEMORY_VIEWS",
    "OFFLOADS",
    "SHARDINGS",
    "METHODS",
    "MODES",
    "OPTIMIZERS",
    "SWEEP_FIELDS",
    "WEIGHT_DTYPES",
    "WEIGHT_ONLY_DTYPES",
    "Efficiencies",
    "EstimateError",
    "GpuSpec",
    "calculate",
    "sweep",
    "sweep_breakdowns",
]
