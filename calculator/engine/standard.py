"""The `standard` method: the original LLM Tools calculator's formulas, to the byte.

Source: /work/shared/reference/seed-formulas.md (what the original Streamlit app computed).
Exact arithmetic with Fraction; each breakdown line is rounded to the nearest byte at the end.
"""

from __future__ import annotations

from fractions import Fraction

from calculator.engine.architecture import Architecture
from calculator.engine.breakdown import Breakdown, MethodResult
from calculator.engine.errors import EstimateError
from calculator.engine.inputs import EstimateInputs

# The original app's precision table (bytes per parameter)
STANDARD_PRECISION_BYTES: dict[str, Fraction] = {
    "float32": Fraction(4),
    "float16": Fraction(2),
    "bfloat16": Fraction(2),
    "float8": Fraction(1),
    "int8": Fraction(1),
    "int4": Fraction(1, 2),
}
# The original app's optimizer table: AdamW 8 B, "Quantized AdamW" 2 B, SGD 4 B per parameter
STANDARD_OPTIMIZER_BYTES: dict[str, int] = {
    "adamw": 8,
    "adamw_8bit": 2,
    "sgd": 4,
    "sgd_momentum": 4,
}
# The original app: gradients always 4 bytes per trainable parameter
STANDARD_GRADIENT_BYTES = 4
# The original app: activations always 4 bytes per element, whatever the precision
STANDARD_ACTIVATION_BYTES = 4


def _nearest(value: Fraction) -> int:
    return round(value)  # Fraction.__round__: nearest integer, ties to even


def standard_estimate(inputs: EstimateInputs, architecture: Architecture) -> MethodResult:
    precision = STANDARD_PRECISION_BYTES.get(inputs.weight_dtype)
    if precision is None:
        raise EstimateError(
            "weight_dtype",
            f"the standard method knows only {', '.join(STANDARD_PRECISION_BYTES)}; "
            "use the detailed method for other formats",
        )
    if inputs.num_gpus != 1 or inputs.tensor_parallel != 1 or inputs.pipeline_parallel != 1:
        raise EstimateError(
            "num_gpus",
            "the standard method (the original calculator) has no multi-GPU model: "
            "use 1 GPU, or the detailed method",
        )
    notes = [
        "Standard method: the original calculator's formulas, exactly "
        "(KV cache from the hidden size in the weight precision, float32 activations of one "
        "layer with the attention scores, no runtime overhead unless set)"
    ]
    params = architecture.num_parameters
    batch, seq = inputs.batch_size, inputs.sequence_length
    hidden, layers, heads = (
        architecture.hidden_size,
        architecture.num_layers,
        architecture.num_attention_heads,
    )
    # seed-formulas.md: weights = params * precision_bytes
    weights = precision * params
    # seed-formulas.md: kv_cache = 2 * batch * seq * layers * hidden * precision_bytes
    kv_cache = 2 * batch * seq * layers * hidden * precision
    # seed-formulas.md: activations = batch * seq * hidden * (34 + 5 * seq * heads / hidden) * 4
    activations = (
        batch * seq * hidden * (34 + Fraction(5 * seq * heads, hidden)) * STANDARD_ACTIVATION_BYTES
    )
    if inputs.kv_cache_dtype != inputs.weight_dtype and "kv_cache_dtype" in inputs.given:
        notes.append("The standard method keeps the KV cache in the weight precision")

    gradients = optimizer_states = Fraction(0)
    trainable = 0
    if inputs.training:
        share = Fraction(inputs.trainable_percent) / 100
        trainable = _nearest(params * share)
        # seed-formulas.md: optimizer = optimizer_bytes * params * trainable_percent / 100
        optimizer_states = STANDARD_OPTIMIZER_BYTES[inputs.optimizer] * params * share
        # seed-formulas.md: gradients = 4 * params * trainable_percent / 100
        gradients = STANDARD_GRADIENT_BYTES * params * share
        if inputs.optimizer in ("sgd", "sgd_momentum"):
            notes.append("The original calculator had one SGD option at 4 bytes per parameter")
        if inputs.finetuning in ("lora", "qlora"):
            notes.append(
                f"The original calculator had no {inputs.finetuning.upper()}: "
                f"trainable parameters are trainable_percent ({inputs.trainable_percent} %) "
                "of the model"
            )
    overhead = inputs.runtime_overhead_bytes or 0
    breakdown = Breakdown(
        weights=_nearest(weights),
        kv_cache=_nearest(kv_cache),
        activations=_nearest(activations),
        gradients=_nearest(gradients),
        optimizer_states=_nearest(optimizer_states),
        runtime_overhead=overhead,
    )
    return MethodResult(
        breakdown=breakdown,
        total_parameters=params,
        active_parameters=architecture.num_active_parameters or params,
        trainable_parameters=trainable,
        notes=tuple(notes),
    )
