"""Warnings where a request leaves the model's envelope (issue 14): said beside the answer,
which is still computed as asked."""

from __future__ import annotations

import json
from pathlib import Path

from calculator.engine import calculate
from calculator.engine.estimate import unified_usable_bytes

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def hf_config(name: str) -> dict:
    return {"hf_config": json.loads((CONFIGS / f"{name}.json").read_text())}


LLAMA = hf_config("meta-llama--Llama-3.1-8B")
TINY = {
    "architecture": {
        "hidden_size": 64,
        "num_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 1000,
    }
}


def fields(result: dict) -> list[str]:
    return [warning["field"] for warning in result["warnings"]]


def test_a_context_beyond_the_trained_positions_is_warned_about():
    # Llama 3.1's config.json: max_position_embeddings 131,072 (its rope scaling, "llama3",
    # factor 8 over 8,192 original positions = 65,536, is already included in it)
    assert fields(calculate({"model": LLAMA, "sequence_length": 131_072})) == []
    beyond = calculate({"model": LLAMA, "sequence_length": 131_073})
    assert fields(beyond) == ["sequence_length"]
    assert "beyond the 131,072 positions" in beyond["warnings"][0]["message"]


def test_rope_scaling_extends_the_trained_positions():
    # Qwen2.5's documented YaRN setting: factor 4 over 32,768 original positions = 131,072
    config = dict(LLAMA["hf_config"])
    config["max_position_embeddings"] = 32_768
    config["rope_scaling"] = {
        "type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32_768,
    }
    model = {"hf_config": config}
    assert fields(calculate({"model": model, "sequence_length": 131_072})) == []
    assert fields(calculate({"model": model, "sequence_length": 131_073})) == ["sequence_length"]


def test_a_typed_architecture_without_positions_is_not_warned_about():
    assert fields(calculate({"model": TINY, "sequence_length": 10_000_000})) == []


def test_nothing_in_the_catalog_holding_it_is_warned_about():
    small = {
        "slug": "small",
        "name": "Small",
        "memory_bytes": 2**30,
        "memory_bandwidth_bytes_per_s": 10**12,
        "bf16_dense_tflops": 100,
    }
    from calculator.engine import GpuSpec

    catalog = [GpuSpec(**small), GpuSpec(**{**small, "slug": "small2", "name": "Small 2"})]
    # 10 million tokens of Llama 3.1 8B KV cache alone: 131,072 bytes a token = 1.31e12 bytes;
    # inference splits at most 32 ways by heads x 32 by layers = 1,024 GPUs, and
    # 1.31e12 / 1,024 = 1.28e9 bytes a GPU, more than 1 GiB (1.07e9)
    result = calculate(
        {"model": LLAMA, "sequence_length": 10_000_000, "gpu": small}, fit_gpus=catalog
    )
    assert "gpu" in fields(result)


APPLE_M2_ULTRA = {
    "slug": "apple-m2-ultra-192gb",
    "name": "Apple M2 Ultra 192GB (76-core GPU)",
    "memory_bytes": 192 * 2**30,
    "memory_bandwidth_bytes_per_s": 800 * 10**9,
    "bf16_dense_tflops": 27.2,
}


def test_a_mac_warns_when_the_request_passes_what_metal_lets_the_gpu_wire():
    # Metal's recommendedMaxWorkingSetSize is three quarters of a large Mac's memory (llama.cpp
    # prints 73,728 MB on a 96 GB M2 Max, issue #3213): 192 GiB x 3/4 = 144 GiB
    fields = {"model": LLAMA, "gpu": APPLE_M2_ULTRA, "batch_size": 8, "sequence_length": 131072}
    result = calculate(fields)
    assert result["answer"]["per_gpu_bytes"] > 144 * 2**30
    (warning,) = [w for w in result["warnings"] if w["field"] == "gpu"]
    assert "about 144.0 GiB of it (recommendedMaxWorkingSetSize)" in warning["message"]
    small = calculate({"model": LLAMA, "gpu": APPLE_M2_ULTRA})
    assert [w for w in small["warnings"] if w["field"] == "gpu"] == []


def test_a_small_mac_wires_two_thirds():
    # llama.cpp on a 32 GB M1 Max: recommendedMaxWorkingSetSize = 21,845.34 MB (ollama #434)
    assert unified_usable_bytes(32 * 2**30) == 32 * 2**30 * 2 // 3
    assert abs(unified_usable_bytes(32 * 2**30) / 2**20 - 21845.34) < 0.02


def test_macs_are_not_split_by_tensor_parallelism():
    result = calculate({"model": LLAMA, "gpu": APPLE_M2_ULTRA, "num_gpus": 2})
    assert any(w["field"] == "num_gpus" for w in result["warnings"])


QWEN_05B = hf_config("Qwen--Qwen2.5-0.5B")


def test_lora_above_full_fine_tuning_says_why():
    fields = {"model": QWEN_05B, "mode": "training", "batch_size": 4, "sequence_length": 8192}
    lora = calculate({**fields, "finetuning": "lora"})
    full = calculate({**fields, "finetuning": "full"})
    # a small model at long sequences: PEFT's float32 copies of the adapted layers' inputs
    # (8,192 x 4 tokens x 896 wide x 4 bytes per adapted projection) outgrow 0.5B parameters'
    # gradients and AdamW states
    assert lora["total_bytes"] > full["total_bytes"]
    (warning,) = [w for w in lora["warnings"] if w["field"] == "finetuning"]
    assert "PEFT keeps each adapted layer's input in float32" in warning["message"]
    short = calculate({**fields, "finetuning": "lora", "sequence_length": 256})
    assert short["total_bytes"] < calculate({**fields, "sequence_length": 256})["total_bytes"]
    assert not [w for w in short["warnings"] if w["field"] == "finetuning"]
