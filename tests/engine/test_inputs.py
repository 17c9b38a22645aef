"""Validation and normalisation of the estimate contract's request."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from calculator.engine import DEFAULTS, FIELDS, INPUT_LIMITS, EstimateError, calculate

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
LLAMA = {"hf_config": json.loads((CONFIGS / "meta-llama--Llama-3.1-8B.json").read_text())}
FALCON_7B = {"hf_config": json.loads((CONFIGS / "tiiuae--falcon-7b.json").read_text())}


def error_of(**fields) -> EstimateError:
    payload = {"model": LLAMA, **fields}
    with pytest.raises(EstimateError) as caught:
        calculate(payload)
    return caught.value


def test_it_fills_every_default_and_keeps_the_model_as_given():
    result = calculate({"model": LLAMA})
    assert result["inputs"] == {
        "model": LLAMA,
        "mode": "inference",
        "method": "detailed",
        "batch_size": 1,
        "sequence_length": 2048,
        "weight_dtype": "bfloat16",  # Llama-3.1-8B config.json torch_dtype
        "kv_cache_dtype": "bfloat16",
        "attention_implementation": "flash",
        "optimizer": "adamw",
        "finetuning": "full",
        "trainable_percent": 100,
        "lora_rank": 16,
        "lora_target_modules": "all-linear",
        "mixed_precision": False,
        "gradient_checkpointing": False,
        "num_gpus": 1,
        "tensor_parallel": 1,
        "pipeline_parallel": 1,
        "expert_parallel": 1,
        "context_parallel": 1,
        "zero_stage": 0,
        "sharding": "deepspeed",
        "offload": "none",
        "gradient_accumulation_steps": 1,
        "checkpoint_every_k_layers": 1,
        "recompute_core_attention": False,
        "lora_adapter_dtype": "float32",
        "inference_logits": "last",
        "bnb_4bit_saves_inputs": False,
        "lora_dropout": False,
        "bnb_4bit_dequant_path": "compute",
        "gptq_kernel": "exllama",
        "bnb_int8_matmul": "row_major",
        "quantise_lm_head": False,
        "fused_qkv_attention": False,
        "previous_graph_alive": False,
        "cross_entropy": "plain",
        "optimizer_in_backward": False,
        "activation_offloading": False,
        "memory_view": None,
        "runtime_overhead_bytes": None,
        "images_per_request": 0,
        "image_height": None,
        "image_width": None,
    }
    assert set(result["inputs"]) == set(FIELDS)
    assert result["inputs"]["model"] is LLAMA


def test_its_result_has_the_contract_keys():
    result = calculate({"model": LLAMA})
    assert set(result) == {
        "parameters",
        "breakdown",
        "total_bytes",
        "host_memory_bytes",
        "num_gpus",
        "inputs",
        "notes",
        "warnings",
        "checkpoint",
        "peak",
        "engine_version",
    }
    assert set(result["breakdown"]) == {
        "weights",
        "kv_cache",
        "activations",
        "gradients",
        "optimizer_states",
        "runtime_overhead",
    }


def test_null_means_the_default():
    result = calculate({"model": LLAMA, "batch_size": None, "runtime_overhead_bytes": None})
    assert result["inputs"]["batch_size"] == DEFAULTS["batch_size"]


def test_it_accepts_whole_floats_as_integers():
    assert calculate({"model": LLAMA, "batch_size": 4.0})["inputs"]["batch_size"] == 4


def test_it_names_unknown_fields():
    error = error_of(batch=2, colour="red")
    assert error.field == "batch"
    assert "'batch', 'colour'" in error.message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", True),
        ("batch_size", 1.5),
        ("batch_size", "8"),
        ("batch_size", math.nan),
        ("sequence_length", math.inf),
        ("lora_rank", [16]),
        ("mixed_precision", 1),
        ("gradient_checkpointing", "yes"),
        ("trainable_percent", "50"),
        ("trainable_percent", math.nan),
        ("runtime_overhead_bytes", -1),
    ],
)
def test_it_rejects_wrong_types(field, value):
    assert error_of(**{field: value}).field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 0),
        ("batch_size", INPUT_LIMITS["batch_size"][1] + 1),
        ("sequence_length", 100_000_001),
        ("num_gpus", 100_001),
        ("lora_rank", 65_537),
        ("zero_stage", 4),
        ("trainable_percent", 100.5),
        ("trainable_percent", -1),
    ],
)
def test_it_rejects_values_out_of_range(field, value):
    error = error_of(**{field: value})
    assert error.field == field
    assert "between" in error.message


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("mode", "streaming", "inference, training, serving"),
        ("method", "exact", "detailed, standard"),
        ("weight_dtype", "fp16", "float32, float16, bfloat16"),
        ("kv_cache_dtype", "fp8", "float8"),
        ("optimizer", "adam", "adamw, adamw_8bit, sgd, sgd_momentum"),
        ("finetuning", "dora", "full, lora, qlora, partial"),
        ("attention_implementation", "sdpa", "flash, eager"),
        ("lora_target_modules", ["lm_head"], "q_proj"),
    ],
)
def test_it_lists_the_allowed_names(field, value, allowed):
    error = error_of(**{field: value})
    assert error.field == field
    assert allowed in error.message


@pytest.mark.parametrize(
    "model",
    [
        None,
        "llama",
        {},
        {"catalog": "llama-3-8b"},
        {"hf_config": {}, "architecture": {}},
    ],
)
def test_it_rejects_a_bad_model(model):
    with pytest.raises(EstimateError) as caught:
        calculate({"model": model})
    assert caught.value.field.startswith("model")


def test_it_requires_the_model():
    with pytest.raises(EstimateError) as caught:
        calculate({"batch_size": 1})
    assert caught.value.field == "model"


def test_it_rejects_a_payload_that_is_not_an_object():
    with pytest.raises(EstimateError):
        calculate(["model"])  # type: ignore[arg-type]


def test_it_passes_architecture_errors_with_their_dotted_field():
    with pytest.raises(EstimateError) as caught:
        calculate({"model": {"architecture": {"hidden_size": 4096, "num_layers": 32}}})
    assert caught.value.field.startswith("model.architecture")


def test_gpus_must_divide_into_tensor_and_pipeline_groups():
    error = error_of(num_gpus=6, tensor_parallel=4)
    assert error.field == "num_gpus"


def test_tensor_parallel_must_divide_the_heads():
    # falcon-7b has 71 attention heads
    with pytest.raises(EstimateError) as caught:
        calculate({"model": FALCON_7B, "num_gpus": 2, "tensor_parallel": 2})
    assert caught.value.field == "tensor_parallel"


def test_tensor_parallel_and_kv_heads_must_divide_one_another():
    # Llama-3.1-8B: 32 heads, 8 KV heads; tp 32 is a multiple of 8 (fine), tp 16 too; a model
    # with 12 KV heads and tp 8: neither divides the other
    model = {
        "architecture": {
            "num_parameters": 1_000_000_000,
            "hidden_size": 3072,
            "num_layers": 4,
            "num_attention_heads": 24,
            "num_key_value_heads": 12,
        }
    }
    with pytest.raises(EstimateError) as caught:
        calculate({"model": model, "num_gpus": 8, "tensor_parallel": 8})
    assert caught.value.field == "tensor_parallel"
    calculate({"model": LLAMA, "num_gpus": 32, "tensor_parallel": 32})


def test_pipeline_parallel_cannot_exceed_layers():
    assert error_of(num_gpus=33, pipeline_parallel=33).field == "pipeline_parallel"


def test_zero_needs_data_parallel_training():
    assert error_of(mode="training", num_gpus=2, tensor_parallel=2, zero_stage=1).field == (
        "zero_stage"
    )
    assert error_of(num_gpus=2, zero_stage=1).field == "zero_stage"  # inference


def test_weight_only_formats_cannot_hold_the_kv_cache():
    error = error_of(kv_cache_dtype="nf4")
    assert error.field == "kv_cache_dtype"
    assert "weight-only" in error.message


def test_qlora_needs_nf4():
    assert error_of(mode="training", finetuning="qlora", weight_dtype="int4").field == (
        "weight_dtype"
    )


def test_full_fine_tuning_needs_float_weights():
    error = error_of(mode="training", weight_dtype="int8")
    assert error.field == "weight_dtype"
    assert "lora" in error.message


def test_lora_targets_are_normalised_in_canonical_order():
    result = calculate(
        {
            "model": LLAMA,
            "mode": "training",
            "finetuning": "lora",
            "lora_target_modules": ["o_proj", "q_proj", "o_proj"],
        }
    )
    assert result["inputs"]["lora_target_modules"] == ["q_proj", "o_proj"]
