"""Properties of calculate() over many generated inputs (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calculator.engine import (
    FIELDS,
    LORA_TARGET_MODULES,
    EstimateError,
    calculate,
)

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
MODELS = {
    name: {"hf_config": json.loads((CONFIGS / f"{name}.json").read_text())}
    for name in (
        "meta-llama--Llama-3.1-8B",
        "mistralai--Mixtral-8x7B-v0.1",
        "deepseek-ai--DeepSeek-V2-Lite",
        "google--gemma-2-9b",
        "openai-community--gpt2",
        "Qwen--Qwen3-30B-A3B",
    )
}
MANUAL = {
    "architecture": {
        "num_parameters": 7_000_000_000,
        "hidden_size": 4096,
        "num_layers": 32,
        "num_attention_heads": 32,
    }
}
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@st.composite
def valid_payloads(draw):
    model = draw(st.sampled_from([*MODELS.values(), MANUAL]))
    mode = draw(st.sampled_from(["inference", "training"]))
    method = draw(st.sampled_from(["detailed", "detailed", "standard"]))
    payload = {
        "model": model,
        "mode": mode,
        "method": method,
        "batch_size": draw(st.integers(1, 64)),
        "sequence_length": draw(st.integers(1, 40_000)),
        "attention_implementation": draw(st.sampled_from(["flash", "eager"])),
        "runtime_overhead_bytes": draw(st.none() | st.integers(0, 2**32)),
    }
    if method == "standard":
        payload["weight_dtype"] = draw(
            st.sampled_from(["float32", "float16", "bfloat16", "float8", "int8", "int4"])
        )
        payload["trainable_percent"] = draw(st.integers(0, 100))
        payload["optimizer"] = draw(st.sampled_from(["adamw", "adamw_8bit", "sgd"]))
        return payload
    tp = draw(st.sampled_from([1, 2]))
    pp = draw(st.sampled_from([1, 2]))
    dp = draw(st.sampled_from([1, 2]))
    payload.update(num_gpus=tp * pp * dp, tensor_parallel=tp, pipeline_parallel=pp)
    if mode == "inference":
        payload["weight_dtype"] = draw(
            st.sampled_from(["bfloat16", "float32", "int8", "nf4", "gptq_int4", "gguf_q4_k_m"])
        )
        payload["kv_cache_dtype"] = draw(st.sampled_from([None, "bfloat16", "float8", "int4"]))
        return payload
    finetuning = draw(st.sampled_from(["full", "partial", "lora", "qlora"]))
    payload.update(
        finetuning=finetuning,
        optimizer=draw(st.sampled_from(["adamw", "adamw_8bit", "sgd", "sgd_momentum"])),
        mixed_precision=draw(st.booleans()),
        gradient_checkpointing=draw(st.booleans()),
        trainable_percent=draw(st.integers(0, 100)),
        lora_rank=draw(st.integers(1, 256)),
        zero_stage=draw(st.integers(0, 3)) if dp > 1 else 0,
    )
    if finetuning in ("full", "partial"):
        payload["weight_dtype"] = draw(st.sampled_from(["bfloat16", "float16", "float32"]))
    elif finetuning == "lora":
        payload["weight_dtype"] = draw(st.sampled_from(["bfloat16", "int8", "gptq_int4"]))
    return payload


def _calculate_or_skip(payload):
    try:
        return calculate(payload)
    except EstimateError:
        # e.g. tensor_parallel 2 with an odd number of heads, LoRA on a model without shapes
        assume(False)


@SETTINGS
@given(valid_payloads())
def test_totals_are_non_negative_ints_equal_to_the_breakdown(payload):
    result = _calculate_or_skip(payload)
    breakdown = result["breakdown"]
    assert all(type(value) is int and value >= 0 for value in breakdown.values())
    assert type(result["total_bytes"]) is int
    assert result["total_bytes"] == sum(breakdown.values())
    if result["inputs"]["mode"] == "inference":
        assert breakdown["gradients"] == breakdown["optimizer_states"] == 0


@SETTINGS
@given(valid_payloads(), st.integers(1, 64), st.integers(1, 40_000))
def test_totals_never_decrease_as_batch_or_sequence_grow(payload, more_batch, more_tokens):
    base = _calculate_or_skip(payload)["total_bytes"]
    bigger_batch = {**payload, "batch_size": payload["batch_size"] + more_batch}
    longer = {**payload, "sequence_length": payload["sequence_length"] + more_tokens}
    assert calculate(bigger_batch)["total_bytes"] >= base
    assert calculate(longer)["total_bytes"] >= base


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["all-linear", "nf4", "training", "lora", "qlora", "standard", "eager"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ARCHITECTURE_KEYS = [
    "num_parameters",
    "hidden_size",
    "num_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "num_experts",
    "num_experts_per_token",
    "kv_lora_rank",
    "sliding_window",
    "num_sliding_window_layers",
    "model_type",
    "torch_dtype",
    "num_hidden_layers",
    "tie_word_embeddings",
]
SMALL_INTEGERS = st.integers(-2, 70_000) | JSON_SCALARS
MODEL_SPECS = st.dictionaries(
    st.sampled_from(ARCHITECTURE_KEYS) | st.text(max_size=6), SMALL_INTEGERS | JSON_VALUES
)
JUNK_MODELS = (
    st.builds(lambda spec: {"architecture": spec}, MODEL_SPECS)
    | st.builds(lambda spec: {"hf_config": spec}, MODEL_SPECS)
    | st.sampled_from(list(MODELS.values()))
    | JSON_VALUES
)
FIELD_VALUES = (
    JSON_VALUES
    | st.integers(-3, 100)
    | st.lists(st.sampled_from([*LORA_TARGET_MODULES, "x"]), max_size=3)
)
JUNK_PAYLOADS = st.fixed_dictionaries(
    {"model": JUNK_MODELS},
    optional={
        name: FIELD_VALUES | st.sampled_from(["inference", "training", "nf4", "lora"])
        for name in FIELDS
        if name != "model"
    },
) | st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5)


@settings(max_examples=300, deadline=None)
@given(JUNK_PAYLOADS)
def test_junk_raises_only_estimate_errors(payload):
    try:
        result = calculate(payload)
    except EstimateError as error:
        assert isinstance(error.field, str) and error.field
        assert isinstance(error.message, str) and error.message
    else:
        assert result["total_bytes"] == sum(result["breakdown"].values())
