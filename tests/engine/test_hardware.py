"""GPU answers: fit, capacity, throughput and cost, checked by hand and against calculate()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate
from calculator.engine.hardware import (
    DEFAULT_DECODE_EFFICIENCY,
    DEFAULT_MEMORY_UTILIZATION,
    DEFAULT_PREFILL_EFFICIENCY,
    DEFAULT_TRAINING_EFFICIENCY,
    Configuration,
    Efficiencies,
    GpuSpec,
    Sizer,
    _largest_fitting,
    _smallest_fitting,
    attended_positions,
    capacity,
    capacity_by_gpu_count,
    configuration_for,
    cost,
    fit,
    hardware_answers,
    memory_payload,
    parse_hardware,
    tensor_parallel_sizes,
    throughput,
)

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def hf_config(name: str) -> dict:
    return {"hf_config": json.loads((CONFIGS / f"{name}.json").read_text())}


LLAMA = hf_config("meta-llama--Llama-3.1-8B")
GIB = 2**30

# NVIDIA H100 SXM datasheet: 80 GB HBM3 at 3.35 TB/s, BF16 1,979 TFLOPS with sparsity (989.4 dense)
H100 = GpuSpec("h100-sxm", "H100 SXM", 80 * GIB, 3_350_000_000_000, 989.4, 2.99)
# NVIDIA T4 datasheet: 16 GB GDDR6 at 320 GB/s, 65 TFLOPS mixed precision
T4 = GpuSpec("t4", "T4", 16 * GIB, 320_000_000_000, 65.0, None)
# NVIDIA L4 datasheet: 24 GB GDDR6 at 300 GB/s, BF16 242 TFLOPS with sparsity (121 dense)
L4 = GpuSpec("l4", "L4", 24 * GIB, 300_000_000_000, 121.0, 0.8)

# Llama-3.1-8B: 8,030,261,248 parameters (transformers meta-device count; "8B" on the card),
# 32 layers, 32 attention heads, 8 KV heads, head_dim 128
LLAMA_PARAMETERS = 8_030_261_248
LLAMA_BF16_WEIGHT_BYTES = 16_060_522_496  # 8,030,261,248 x 2 bytes
# K and V: 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 bytes per token
LLAMA_KV_BYTES_PER_TOKEN = 131_072


LAYOUT_FIELDS = ("num_gpus", "tensor_parallel", "pipeline_parallel", "zero_stage")


def total(payload: dict, **fields) -> int:
    return calculate({**payload, **fields})["total_bytes"]


# --- throughput ---------------------------------------------------------------------------------


def test_decode_bound_of_llama_8b_on_an_h100_by_hand():
    rates = throughput({"model": LLAMA}, H100, 1)
    decode = rates["decode"]
    weights = 8_030_261_248 * 2
    assert weights == LLAMA_BF16_WEIGHT_BYTES
    kv = 2 * 32 * 8 * 128 * 2048 * 2  # K and V, layers, KV heads, head_dim, tokens, bf16
    assert kv == 268_435_456
    assert decode["active_weight_bytes"] == 16_060_522_496
    assert decode["kv_cache_bytes"] == 268_435_456
    assert decode["bytes_per_step"] == 16_328_957_952
    # one step reads every weight and the whole KV cache once, at 70% of 3.35 TB/s
    assert DEFAULT_DECODE_EFFICIENCY == 0.7
    assert decode["tokens_per_s_per_sequence"] == pytest.approx(3.35e12 * 0.7 / 16_328_957_952)
    assert decode["tokens_per_s_per_sequence"] == pytest.approx(143.61, abs=0.01)
    assert decode["tokens_per_s"] == decode["tokens_per_s_per_sequence"]  # batch of one
    assert rates["training"] is None


def test_decode_of_a_batch_shares_the_weights_and_reads_every_kv_cache():
    efficiencies = Efficiencies(decode=0.8)
    decode = throughput({"model": LLAMA, "batch_size": 8}, H100, 1, efficiencies)["decode"]
    bytes_per_step = 16_060_522_496 + 8 * 268_435_456
    assert decode["bytes_per_step"] == bytes_per_step == 18_208_006_144
    assert decode["tokens_per_s_per_sequence"] == pytest.approx(3.35e12 * 0.8 / 18_208_006_144)
    assert decode["tokens_per_s"] == pytest.approx(8 * 3.35e12 * 0.8 / 18_208_006_144)


def test_decode_on_two_gpus_reads_half_the_weights_on_each():
    # tensor parallel 2: each GPU holds and reads its half of every split matrix, so a step
    # takes the busiest GPU's bytes (from calculate() at tensor_parallel 2) over its bandwidth
    split = calculate({"model": LLAMA, "num_gpus": 2, "tensor_parallel": 2})["breakdown"]
    decode = throughput({"model": LLAMA}, H100, 2)["decode"]
    assert split["kv_cache"] == 268_435_456 // 2
    assert decode["bytes_per_step"] == split["weights"] + split["kv_cache"]
    assert decode["tokens_per_s"] == pytest.approx(
        3.35e12 * 0.7 / (split["weights"] + split["kv_cache"])
    )


def test_moe_decode_reads_the_active_share_of_the_weights():
    # Qwen3-30B-A3B: 3.3B of 30.5B parameters active per token (model card)
    payload = {"model": hf_config("Qwen--Qwen3-30B-A3B")}
    result = calculate(payload)
    weights = result["breakdown"]["weights"]
    active, every = result["parameters"]["active"], result["parameters"]["total"]
    assert every == 30_532_122_624  # transformers meta-device count
    decode = throughput(payload, H100, 1)["decode"]
    assert decode["active_weight_bytes"] == weights * active // every
    assert decode["active_weight_bytes"] < weights / 9


def test_prefill_flops_per_token_by_hand():
    prefill = throughput({"model": LLAMA}, H100, 1)["prefill"]
    # PaLM appendix B: 2N + 4 x layers x (heads x head_dim) x context
    flops = 2 * 8_030_261_248 + 4 * 32 * (32 * 128) * 2048
    assert flops == 16_060_522_496 + 1_073_741_824 == 17_134_264_320
    assert prefill["flops_per_token"] == 17_134_264_320
    assert DEFAULT_PREFILL_EFFICIENCY == 0.5
    assert prefill["tokens_per_s"] == pytest.approx(989.4e12 * 0.5 / 17_134_264_320)


def test_training_tokens_per_second_by_hand():
    payload = {"model": LLAMA, "mode": "training", "mixed_precision": True}
    rates = throughput(payload, H100, 8)
    # 6N + 12 x layers x (heads x head_dim) x context (PaLM appendix B), at 40% MFU on 8 GPUs
    flops = 6 * 8_030_261_248 + 12 * 32 * 4096 * 2048
    assert flops == 51_402_792_960
    assert rates["training"]["flops_per_token"] == flops
    assert DEFAULT_TRAINING_EFFICIENCY == 0.4
    assert rates["training"]["tokens_per_s"] == pytest.approx(8 * 989.4e12 * 0.4 / flops)
    assert rates["decode"] is None and rates["prefill"] is None
    assert rates["efficiencies"] == {"decode": 0.7, "prefill": 0.5, "training": 0.4}


def test_overridden_efficiencies_show_in_the_result_and_scale_the_rates():
    payload = {"model": LLAMA, "mode": "training"}
    base = throughput(payload, H100, 1)["training"]["tokens_per_s"]
    rates = throughput(payload, H100, 1, Efficiencies(training=0.2))
    assert rates["efficiencies"]["training"] == 0.2
    assert rates["training"]["tokens_per_s"] == pytest.approx(base / 2)


def test_sliding_window_layers_attend_to_the_window_only():
    # gemma-2-9b: 42 layers, every other one (21) with a 4,096-token window
    architecture = Sizer({"model": hf_config("google--gemma-2-9b")}).architecture
    assert attended_positions(architecture, 8192) == 21 * 8192 + 21 * 4096
    assert attended_positions(architecture, 1000) == 42 * 1000
    prefill = throughput(
        {"model": hf_config("google--gemma-2-9b"), "sequence_length": 8192}, H100, 1
    )["prefill"]
    # 9,241,705,984 parameters (meta-device count); 16 heads x 256 head_dim
    assert prefill["flops_per_token"] == 2 * 9_241_705_984 + 4 * 16 * 256 * (21 * 8192 + 21 * 4096)


# --- cost ---------------------------------------------------------------------------------------


def test_cost_per_hour_and_per_million_generated_tokens():
    rates = throughput({"model": LLAMA, "batch_size": 8}, H100, 1)
    tokens_per_s = 8 * 3.35e12 * 0.7 / 18_208_006_144
    result = cost(rates, H100, 1)
    assert result["price_per_gpu_hour"] == 2.99
    assert result["per_hour"] == 2.99
    # a million tokens take 1e6 / tokens_per_s seconds, at $2.99 per 3,600 s
    assert result["per_million_tokens"] == pytest.approx(2.99 * (1e6 / tokens_per_s) / 3600)
    assert result["training_run"] is None


def test_price_override_and_gpu_count_multiply():
    rates = throughput({"model": LLAMA}, H100, 8)
    result = cost(rates, H100, 8, price_per_hour=2.0)
    assert result["price_per_gpu_hour"] == 2.0
    assert result["per_hour"] == 16.0


def test_cost_of_a_training_run():
    payload = {"model": LLAMA, "mode": "training", "mixed_precision": True}
    rates = throughput(payload, H100, 8)
    tokens_per_s = 8 * 989.4e12 * 0.4 / 51_402_792_960
    result = cost(rates, H100, 8, training_tokens=1_000_000_000, epochs=2)
    run = result["training_run"]
    seconds = 2 * 1_000_000_000 / tokens_per_s  # D x E / tokens per second
    assert run["seconds"] == pytest.approx(seconds)
    assert run["hours"] == pytest.approx(seconds / 3600)
    assert run["cost"] == pytest.approx(8 * 2.99 * seconds / 3600)
    assert result["per_million_tokens"] is None  # no decode in training


def test_without_a_price_there_is_no_cost():
    result = cost(throughput({"model": LLAMA}, T4, 1), T4, 1)
    assert result["per_hour"] is None
    assert result["per_million_tokens"] is None


# --- capacity -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"model": LLAMA},
        {"model": LLAMA, "sequence_length": 8192, "kv_cache_dtype": "float8"},
        {"model": LLAMA, "mode": "training", "finetuning": "lora"},
        {"model": hf_config("Qwen--Qwen3-30B-A3B"), "batch_size": 4},
        {"model": LLAMA, "method": "standard"},
    ],
)
def test_capacity_agrees_with_calculate_at_the_boundary(payload):
    usable = int(80 * GIB * 0.9)
    result = capacity(payload, H100, 1, memory_utilization=0.9)
    batch, length = result["max_batch_size"], result["max_sequence_length"]
    assert batch >= 1 and length >= 1
    assert total(payload, batch_size=batch) <= usable < total(payload, batch_size=batch + 1)
    assert total(payload, sequence_length=length) <= usable
    assert total(payload, sequence_length=length + 1) > usable


def test_capacity_on_several_gpus_uses_the_reported_layout():
    result = capacity({"model": LLAMA}, L4, 4, memory_utilization=0.9)
    assert result["configuration"] == {
        "num_gpus": 4,
        "tensor_parallel": 4,
        "pipeline_parallel": 1,
        "data_parallel": 1,
        "zero_stage": 0,
        "expert_parallel": 1,
        "context_parallel": 1,
    }
    layout = {"model": LLAMA, "num_gpus": 4, "tensor_parallel": 4}
    usable = int(24 * GIB * 0.9)
    batch = result["max_batch_size"]
    assert total(layout, batch_size=batch) <= usable < total(layout, batch_size=batch + 1)


def test_capacity_is_zero_when_nothing_fits():
    result = capacity({"model": LLAMA}, T4, 1, memory_utilization=0.9)
    # 16,060,522,496 bytes of weights alone exceed 90% of 16 GiB (15,461,882,265)
    assert int(16 * GIB * 0.9) == 15_461_882_265
    assert result["max_batch_size"] == 0
    assert result["max_sequence_length"] == 0
    assert result["kv_cache"]["tokens"] == 0


def test_kv_cache_tokens_serving_engine_style():
    breakdown = calculate({"model": LLAMA})["breakdown"]
    result = capacity({"model": LLAMA}, H100, 1, memory_utilization=0.9)
    usable = int(85_899_345_920 * 0.9)
    assert result["usable_bytes"] == usable == 77_309_411_328
    # vLLM: what is left after weights, peak activations and overhead holds the KV cache
    reserved = breakdown["weights"] + breakdown["activations"] + breakdown["runtime_overhead"]
    kv = result["kv_cache"]
    assert kv["reserved_bytes"] == reserved
    assert kv["budget_bytes"] == usable - reserved
    assert kv["bytes_per_token"] == LLAMA_KV_BYTES_PER_TOKEN
    assert kv["tokens"] == (usable - reserved) // 131_072
    assert kv["concurrent_sequences"] == kv["tokens"] // 2048
    assert result["max_position_embeddings"] == 131_072  # Llama 3.1 config.json


def test_training_capacity_has_no_kv_cache():
    result = capacity({"model": LLAMA, "mode": "training", "finetuning": "lora"}, H100, 1)
    assert result["kv_cache"] is None


def test_capacity_grows_with_gpus():
    rows = capacity_by_gpu_count({"model": LLAMA}, H100, (1, 2, 4, 8))
    assert [row["gpu_count"] for row in rows] == [1, 2, 4, 8]
    batches = [row["max_batch_size"] for row in rows]
    lengths = [row["max_sequence_length"] for row in rows]
    assert batches == sorted(batches) and len(set(batches)) == 4
    assert lengths == sorted(lengths) and len(set(lengths)) == 4


# --- layouts ------------------------------------------------------------------------------------


def test_tensor_parallel_sizes_follow_the_engine_validation():
    architecture = Sizer({"model": LLAMA}).architecture
    # 32 heads, 8 KV heads: tp divides 32, and 8 and tp divide one another
    assert tensor_parallel_sizes(architecture) == [1, 2, 4, 8, 16, 32]
    assert tensor_parallel_sizes(architecture, 8) == [1, 2, 4, 8]


def test_configuration_for_a_gpu_count():
    sizer = Sizer({"model": LLAMA})
    # 6 GPUs: tensor parallel 2 (6 is not a multiple of 4), three pipeline stages
    assert configuration_for(sizer, 6) == Configuration(6, 2, 3, 0)
    assert configuration_for(sizer, 8) == Configuration(8, 8, 1, 0)
    training = Sizer({"model": LLAMA, "mode": "training"})
    assert configuration_for(training, 4) == Configuration(4, 1, 1, 3)
    assert configuration_for(training, 1) == Configuration(1, 1, 1, 0)
    zero_one = Sizer({"model": LLAMA, "mode": "training", "zero_stage": 1, "num_gpus": 2})
    assert configuration_for(zero_one, 4) == Configuration(4, 1, 1, 1)
    asked = {"model": LLAMA, "num_gpus": 4, "tensor_parallel": 2, "pipeline_parallel": 2}
    assert configuration_for(Sizer(asked), 4) == Configuration(4, 2, 2, 0)


# --- fit ----------------------------------------------------------------------------------------


def test_fit_headroom_by_hand():
    one_gpu = total({"model": LLAMA})
    h100, t4 = fit({"model": LLAMA}, [H100, T4])
    assert h100["required_bytes"] == t4["required_bytes"] == one_gpu
    assert h100["fits_on_one"] and not t4["fits_on_one"]
    assert h100["headroom_bytes"] == 85_899_345_920 - one_gpu
    assert h100["headroom_percent"] == round(100 * (85_899_345_920 - one_gpu) / 85_899_345_920, 2)
    assert t4["headroom_bytes"] == 17_179_869_184 - one_gpu < 0
    assert h100["fewest_gpus"] == 1
    assert h100["configuration"]["num_gpus"] == 1


def test_fewest_gpus_for_inference_splits_the_model_with_tensor_parallelism():
    (t4,) = fit({"model": LLAMA}, [T4])
    # weights alone (16,060,522,496 B) fit in 16 GiB, but not with the KV cache and overhead;
    # two GPUs fit, and at equal count tensor parallelism beats pipeline stages
    assert total({"model": LLAMA}) > 16 * GIB
    assert t4["fewest_gpus"] == 2
    assert t4["configuration"]["tensor_parallel"] == 2
    assert t4["configuration"]["pipeline_parallel"] == 1
    split = total({"model": LLAMA, "num_gpus": 2, "tensor_parallel": 2})
    assert t4["per_gpu_bytes"] == split <= 16 * GIB


def test_fewest_gpus_for_training_is_the_fewest_that_fit():
    payload = {"model": LLAMA, "mode": "training", "mixed_precision": True}
    (l4,) = fit(payload, [L4])
    layout = l4["configuration"]
    count = l4["fewest_gpus"]
    assert layout["num_gpus"] == count
    asked = {
        name: layout[name]
        for name in ("num_gpus", "tensor_parallel", "zero_stage", "pipeline_parallel")
    }
    assert total(payload, **asked) == l4["per_gpu_bytes"] <= 24 * GIB
    # no layout the search considers (tensor parallel up to 8, ZeRO-3 over the rest) with
    # fewer GPUs fits
    for tp in (1, 2, 4, 8):
        for gpus in range(tp, count, tp):
            zero = 3 if gpus > tp else 0
            fields = {"num_gpus": gpus, "tensor_parallel": tp, "zero_stage": zero}
            assert total(payload, **fields) > 24 * GIB, fields


def test_fit_reports_every_gpu_in_order_with_a_fitting_layout():
    payload = {"model": hf_config("Qwen--Qwen3-30B-A3B"), "sequence_length": 32768}
    gpus = [H100, T4, L4]
    results = fit(payload, gpus)
    assert [row["gpu"] for row in results] == ["h100-sxm", "t4", "l4"]
    for gpu, row in zip(gpus, results, strict=True):
        layout = row["configuration"]
        fields = {
            name: layout[name] for name in ("num_gpus", "tensor_parallel", "pipeline_parallel")
        }
        assert total(payload, **fields) == row["per_gpu_bytes"] <= gpu.memory_bytes
        assert row["fewest_gpus"] == layout["tensor_parallel"] * layout["pipeline_parallel"]


def test_fit_with_a_memory_utilization():
    one_gpu = total({"model": LLAMA})
    gpu = GpuSpec("x", "X", one_gpu + 1000, 1, 1.0)
    assert fit({"model": LLAMA}, [gpu])[0]["fits_on_one"]
    (row,) = fit({"model": LLAMA}, [gpu], memory_utilization=0.9)
    assert row["usable_bytes"] == int((one_gpu + 1000) * 0.9)
    assert not row["fits_on_one"]
    assert row["fewest_gpus"] == 2


def test_standard_method_fits_on_one_gpu_or_says_none():
    (h100, t4) = fit({"model": LLAMA, "method": "standard"}, [H100, T4])
    assert h100["fewest_gpus"] == 1
    assert not t4["fits_on_one"]
    assert t4["fewest_gpus"] is None  # the original formulas have no multi-GPU model


# --- request handling and searches --------------------------------------------------------------


def test_hardware_fields_are_taken_out_of_the_memory_payload():
    payload = {"model": LLAMA, "gpu": {"name": "H100"}, "gpu_count": 2, "epochs": 3}
    assert memory_payload(payload) == {"model": LLAMA}
    assert fit(payload, [H100])[0]["fits_on_one"]


def test_bad_memory_inputs_name_their_field():
    with pytest.raises(EstimateError) as caught:
        fit({"model": LLAMA, "batch_size": 0}, [H100])
    assert caught.value.field == "batch_size"


@pytest.mark.parametrize("threshold", [1, 2, 3, 7, 8, 9, 100, 1000])
@pytest.mark.parametrize("guess", [None, 1, 5, 8, 64, 2000])
def test_smallest_fitting_finds_the_threshold_from_any_guess(threshold, guess):
    calls = []

    def fits(k):
        calls.append(k)
        return k >= threshold

    assert _smallest_fitting(fits, 1, 1000, guess) == threshold
    assert len(calls) <= 40
    assert _smallest_fitting(lambda k: k >= 1001, 1, 1000, guess) is None


@pytest.mark.parametrize("largest", [0, 1, 2, 5, 64, 65, 999, 1000])
@pytest.mark.parametrize("guess", [None, 1, 2, 5, 64, 500, 1000, 5000])
def test_largest_fitting_finds_the_boundary_from_any_guess(largest, guess):
    calls = []

    def fits(n):
        calls.append(n)
        return n <= largest

    assert _largest_fitting(fits, 1000, guess) == largest
    assert len(calls) <= 42


# --- the contract's hardware fields -------------------------------------------------------------

H100_FIELDS = {
    "slug": "h100-sxm",
    "name": "H100 SXM",
    "memory_bytes": 80 * GIB,
    "memory_bandwidth_bytes_per_s": 3_350_000_000_000,
    "bf16_dense_tflops": 989.4,
    "price_per_hour_usd": 2.99,
}


def test_hardware_fields_default():
    request = parse_hardware({"model": LLAMA}, num_gpus=4)
    assert request.gpu is None
    assert request.gpu_count == 4  # follows num_gpus
    assert request.as_dict() == {
        "gpu": None,
        "gpu_count": 4,
        "price_per_hour": None,
        "memory_utilization": 1.0,
        "decode_efficiency": 0.7,
        "prefill_efficiency": 0.5,
        "training_efficiency": 0.4,
        "training_tokens": None,
        "epochs": 1,
    }


def test_hardware_fields_normalised():
    request = parse_hardware(
        {
            "gpu": {key: H100_FIELDS[key] for key in H100_FIELDS if key != "slug"},
            "gpu_count": 8.0,
            "price_per_hour": 2,
            "memory_utilization": 0.95,
            "decode_efficiency": 1,
            "training_tokens": 1e9,
            "epochs": 1.5,
        },
        num_gpus=1,
    )
    assert request.gpu == GpuSpec("", "H100 SXM", 80 * GIB, 3_350_000_000_000, 989.4, 2.99)
    assert request.gpu_count == 8
    assert request.training_tokens == 1_000_000_000
    assert request.as_dict()["gpu"]["memory_bytes"] == 85_899_345_920
    assert request.efficiencies == Efficiencies(decode=1, prefill=0.5, training=0.4)
    assert request.epochs == 1.5


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"gpu": "h100-sxm"}, "gpu"),
        ({"gpu": {"memory_bytes": 1, "bf16_dense_tflops": 1}}, "gpu.memory_bandwidth_bytes_per_s"),
        ({"gpu": {**H100_FIELDS, "memory_bytes": 0}}, "gpu.memory_bytes"),
        ({"gpu": {**H100_FIELDS, "memory_bytes": 1.5}}, "gpu.memory_bytes"),
        ({"gpu": {**H100_FIELDS, "bf16_dense_tflops": 0}}, "gpu.bf16_dense_tflops"),
        ({"gpu": {**H100_FIELDS, "price_per_hour_usd": -1}}, "gpu.price_per_hour_usd"),
        ({"gpu": {**H100_FIELDS, "vendor": "NVIDIA"}}, "gpu.vendor"),
        ({"gpu": {**H100_FIELDS, "name": 7}}, "gpu.name"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"gpu_count": True}, "gpu_count"),
        ({"price_per_hour": -0.5}, "price_per_hour"),
        ({"memory_utilization": 0}, "memory_utilization"),
        ({"memory_utilization": 1.01}, "memory_utilization"),
        ({"decode_efficiency": "high"}, "decode_efficiency"),
        ({"prefill_efficiency": float("nan")}, "prefill_efficiency"),
        ({"training_efficiency": -0.1}, "training_efficiency"),
        ({"training_tokens": 0}, "training_tokens"),
        ({"training_tokens": 2.5}, "training_tokens"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_hardware_fields_name_their_field(fields, field):
    with pytest.raises(EstimateError) as caught:
        parse_hardware(fields, num_gpus=1)
    assert caught.value.field == field


def test_hardware_answers_bring_the_four_keys_together():
    payload = {"model": LLAMA, "batch_size": 8}
    request = parse_hardware(
        {"gpu": H100_FIELDS, "gpu_count": 2, "price_per_hour": 2.5}, num_gpus=1
    )
    answers = hardware_answers(payload, request, fit_gpus=[H100, T4, L4])
    assert list(answers) == ["answer", "fit", "capacity", "throughput", "cost"]
    assert [row["gpu"] for row in answers["fit"]] == ["h100-sxm", "t4", "l4"]
    assert answers["capacity"]["gpu_count"] == 2
    assert answers["capacity"] == {
        **capacity(payload, H100, 2),
        "by_gpu_count": [
            {
                "gpu_count": row["gpu_count"],
                "configuration": row["configuration"],
                "max_batch_size": row["max_batch_size"],
                "max_sequence_length": row["max_sequence_length"],
            }
            for row in capacity_by_gpu_count(payload, H100, (1, 2, 4, 8))
        ],
    }
    assert answers["throughput"] == throughput(payload, H100, 2)
    assert answers["cost"]["per_hour"] == 2 * 2.5
    # without fit_gpus the fit covers the GPU asked for
    assert [row["gpu"] for row in hardware_answers(payload, request)["fit"]] == ["h100-sxm"]


# --- calculate() with a GPU ---------------------------------------------------------------------


def test_calculate_without_gpu_fields_is_unchanged():
    result = calculate({"model": LLAMA})
    assert not {"fit", "capacity", "throughput", "cost"} & set(result)
    assert not {"gpu", "gpu_count", "epochs"} & set(result["inputs"])


def test_calculate_with_a_gpu_gains_the_four_answers():
    payload = {"model": LLAMA, "batch_size": 8, "gpu": H100_FIELDS, "training_tokens": 10**9}
    result = calculate(payload)
    memory_only = calculate({"model": LLAMA, "batch_size": 8})
    # existing keys keep their values
    for key in ("parameters", "breakdown", "total_bytes", "num_gpus", "notes", "engine_version"):
        assert result[key] == memory_only[key]
    assert {**memory_only["inputs"], **result["inputs"]} == result["inputs"]
    assert result["inputs"]["gpu"] == H100_FIELDS
    assert result["inputs"]["gpu_count"] == 1
    assert result["inputs"]["memory_utilization"] == 1.0  # the whole device: one definition
    assert result["inputs"]["training_tokens"] == 10**9
    # the decode bound of the batch of 8, by hand (see above)
    decode = result["throughput"]["decode"]
    assert decode["tokens_per_s"] == pytest.approx(8 * 3.35e12 * 0.7 / 18_208_006_144)
    assert result["cost"]["per_hour"] == 2.99
    assert [row["gpu"] for row in result["fit"]] == ["h100-sxm"]
    assert result["capacity"]["gpu_count"] == 1
    assert [row["gpu_count"] for row in result["capacity"]["by_gpu_count"]] == [1, 2, 4, 8]


def test_calculate_fits_across_the_gpus_it_is_given():
    result = calculate({"model": LLAMA, "gpu": H100_FIELDS}, fit_gpus=[H100, T4])
    assert [(row["gpu"], row["fewest_gpus"]) for row in result["fit"]] == [
        ("h100-sxm", 1),
        ("t4", 2),
    ]


def test_calculate_gpu_count_follows_num_gpus_and_price_overrides():
    payload = {
        "model": LLAMA,
        "num_gpus": 2,
        "tensor_parallel": 2,
        "gpu": H100_FIELDS,
        "price_per_hour": 4,
        "decode_efficiency": 0.5,
    }
    result = calculate(payload)
    assert result["inputs"]["gpu_count"] == 2
    assert result["throughput"]["configuration"]["tensor_parallel"] == 2
    assert result["throughput"]["efficiencies"]["decode"] == 0.5
    assert result["cost"]["per_hour"] == 8


def test_calculate_names_the_bad_hardware_field():
    with pytest.raises(EstimateError) as caught:
        calculate({"model": LLAMA, "gpu": {**H100_FIELDS, "memory_bytes": -1}})
    assert caught.value.field == "gpu.memory_bytes"
    with pytest.raises(EstimateError) as caught:
        calculate({"model": LLAMA, "memory_utilization": 2})
    assert caught.value.field == "memory_utilization"


def test_a_gpu_outside_the_fit_list_comes_first():
    own = {**H100_FIELDS, "slug": "", "name": "My H100", "price_per_hour_usd": None}
    result = calculate({"model": LLAMA, "gpu": own}, fit_gpus=[H100, T4])
    assert [row["name"] for row in result["fit"]] == ["My H100", "H100 SXM", "T4"]
    assert result["cost"]["per_hour"] is None


def _numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, float):
        yield value


@pytest.mark.parametrize("mode", ["inference", "training"])
def test_the_slowest_allowed_setup_still_gives_finite_numbers(mode):
    slowest = {
        "name": "slow",
        "memory_bytes": 1,
        "memory_bandwidth_bytes_per_s": 1,
        "bf16_dense_tflops": 0.001,
        "price_per_hour_usd": 1_000_000,
    }
    payload = {
        "model": hf_config("deepseek-ai--DeepSeek-V3"),
        "mode": mode,
        "gpu": slowest,
        "memory_utilization": 0.01,
        "decode_efficiency": 0.01,
        "prefill_efficiency": 0.01,
        "training_efficiency": 0.01,
        "training_tokens": 10**16,
        "epochs": 10_000,
    }
    result = calculate(payload)
    assert all(math.isfinite(number) for number in _numbers(result))
    assert result["fit"][0]["fewest_gpus"] is None  # one byte holds nothing


@pytest.mark.parametrize("field", ["memory_utilization", "decode_efficiency"])
def test_shares_below_one_percent_are_refused(field):
    with pytest.raises(EstimateError) as caught:
        parse_hardware({field: 0.001}, num_gpus=1)
    assert caught.value.field == field


# --- one usable memory, one headline (issue 14) -------------------------------------------------


def test_fit_capacity_and_the_headline_share_one_usable_memory():
    # An H100 at 90 %: 0.9 x 85,899,345,920 = 77,309,411,328 usable bytes for every answer
    assert DEFAULT_MEMORY_UTILIZATION == 1.0
    payload = {"model": LLAMA, "gpu": H100_FIELDS, "memory_utilization": 0.9}
    result = calculate(payload)
    usable = 77_309_411_328
    assert result["answer"]["usable_bytes"] == usable
    assert result["fit"][0]["usable_bytes"] == usable
    assert result["capacity"]["usable_bytes"] == usable


def test_a_gpu_that_fits_has_a_batch_that_fits():
    # the contradiction of issue 14: "fits, 9 % headroom" beside "largest batch 0"
    for utilization in (0.5, 0.9, 1.0):
        for gpu in (H100_FIELDS, {**H100_FIELDS, "slug": "x", "memory_bytes": 17 * GIB}):
            payload = {"model": LLAMA, "gpu": gpu, "memory_utilization": utilization}
            result = calculate(payload)
            fits = result["fit"][0]["fits_on_one"]
            assert fits == result["answer"]["fits"]
            assert fits == (result["capacity"]["max_batch_size"] >= 1)


def test_the_headline_says_what_is_spare_or_how_many_are_needed():
    llama = calculate({"model": LLAMA})
    # one H100: the whole device less the estimate is spare
    fits = calculate({"model": LLAMA, "gpu": H100_FIELDS})["answer"]
    assert fits["fits"] and fits["gpu_count"] == 1 and fits["needs"] is None
    assert fits["spare_bytes"] == 80 * GIB - llama["total_bytes"]
    # a 16 GiB card cannot hold 16,060,522,496 bytes of weights plus the rest: it needs two
    small = {**H100_FIELDS, "slug": "small", "name": "Small", "memory_bytes": 16 * GIB}
    needs = calculate({"model": LLAMA, "gpu": small})["answer"]
    assert not needs["fits"] and needs["spare_bytes"] < 0
    assert needs["needs"]["gpu_count"] == 2
    assert needs["needs"]["configuration"]["tensor_parallel"] == 2
    assert needs["needs"]["per_gpu_bytes"] <= 16 * GIB


# --- one GPU count: the layout follows it (issue 14) --------------------------------------------


def test_tensor_and_pipeline_parallel_follow_the_gpu_count_when_left_out():
    # Llama 3.1 8B: 32 heads, 8 KV heads, so tensor parallel sizes 1, 2, 4, 8, 16, 32
    two = calculate({"model": LLAMA, "num_gpus": 2})["inputs"]
    assert (two["tensor_parallel"], two["pipeline_parallel"]) == (2, 1)
    # 6 is no multiple of 4: tensor parallel 2, and the other factor 3 as pipeline stages
    six = calculate({"model": LLAMA, "num_gpus": 6})["inputs"]
    assert (six["tensor_parallel"], six["pipeline_parallel"]) == (2, 3)
    # training replicates (data parallelism) unless asked otherwise
    training = calculate({"model": LLAMA, "mode": "training", "num_gpus": 4})["inputs"]
    assert (training["tensor_parallel"], training["pipeline_parallel"]) == (1, 1)
    # one given, the other is 1 (as before)
    given = calculate({"model": LLAMA, "num_gpus": 8, "tensor_parallel": 4})["inputs"]
    assert (given["tensor_parallel"], given["pipeline_parallel"]) == (4, 1)


def test_an_impossible_layout_is_refused_with_the_nearest_valid_one():
    with pytest.raises(EstimateError) as caught:
        calculate({"model": LLAMA, "num_gpus": 3, "tensor_parallel": 2})
    assert caught.value.field == "num_gpus"
    assert "the nearest valid are 2 or 4 GPUs" in caught.value.message
    with pytest.raises(EstimateError) as caught:
        calculate({"model": LLAMA, "num_gpus": 3, "tensor_parallel": 3})
    assert caught.value.field == "tensor_parallel"
    assert "the nearest valid are 2 or 4" in caught.value.message
