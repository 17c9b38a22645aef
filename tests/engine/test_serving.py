"""Serving plans (mode "serving"): the memory a serving engine lays out, and what it gives.

Published figures:
- vLLM PR #10511 ("[core] overhaul memory profiling", 2024-12-14, youkaichao's sanity check):
  `vllm serve meta-llama/Meta-Llama-3-8B` on an H100: total_gpu_memory 79.22GiB,
  gpu_memory_utilization 0.90, "the current vLLM instance can use 71.29GiB", model weights take
  14.96GiB, non_torch_memory 1.79GiB, PyTorch activation peak memory 1.26GiB,
  available_kv_cache_memory 53.29GiB (vLLM 0.6.5 defaults: max_model_len 8192,
  max_num_seqs 256, max_num_batched_tokens = max_model_len without chunked prefill).
- Llama 3 8B: 32 layers, 8 KV heads, head_dim 128: 2 x 32 x 8 x 128 x 2 bytes = 131,072 bytes
  of bfloat16 KV cache a token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calculator.engine import EstimateError, calculate

MODELS = {
    entry["slug"]: entry
    for entry in json.loads(
        (Path(__file__).parents[2] / "calculator" / "data" / "models.json").read_text()
    )
}
GPUS = {
    gpu["slug"]: gpu
    for gpu in json.loads(
        (Path(__file__).parents[2] / "calculator" / "data" / "gpus.json").read_text()
    )
}
GiB = 2**30
LLAMA_3_8B = "meta-llama/Meta-Llama-3-8B"
KV_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # 131,072
H100_AS_VLLM_SAW_IT = int(79.22 * GiB)


def gpu(slug: str, **changes: Any) -> dict[str, Any]:
    names = ("slug", "name", "memory_bytes", "memory_bandwidth_bytes_per_s", "bf16_dense_tflops")
    return {name: GPUS[slug][name] for name in names} | {
        "price_per_hour_usd": GPUS[slug]["price_per_hour_usd"],
        **changes,
    }


def serve(slug: str = LLAMA_3_8B, **fields: Any) -> dict[str, Any]:
    payload = {
        "model": {"hf_config": MODELS[slug]["config"]},
        "mode": "serving",
        "sequence_length": 8192,
        "gpu": gpu("h100-sxm", memory_bytes=H100_AS_VLLM_SAW_IT),
        **fields,
    }
    return calculate(payload)["serving"]


def test_vllm_lays_out_an_h100_as_its_own_log_says():
    # vLLM 0.6.5 (the V0 worker): its profile counts the forward and the sampler together
    plan = serve(max_num_seqs=256, max_num_batched_tokens=8192, vllm_version="v0")["memory"]
    # 79.22 GiB x 0.90 = 71.298 GiB (vLLM prints 71.29GiB)
    assert plan["usable_bytes"] == int(H100_AS_VLLM_SAW_IT * 0.9)
    # 8,030,261,248 parameters x 2 bytes and the rotary cos_sin_cache of 8,192 positions x 128
    # (bfloat16) = 14.96 GiB, as vLLM prints
    assert plan["weights_bytes"] == 8_030_261_248 * 2 + 8192 * 128 * 2
    assert round(plan["weights_bytes"] / GiB, 2) == 14.96
    # the activation peak of profiling 8,192 tokens, the sampler's sort of the logits: 1.26GiB
    assert abs(plan["activation_peak_bytes"] / (1.26 * GiB) - 1) < 0.03
    # what is left for KV blocks: 53.29GiB
    assert abs(plan["kv_cache_bytes"] / (53.29 * GiB) - 1) < 0.02
    # blocks of 16 tokens x 131,072 bytes
    assert plan["kv_bytes_per_token"] == KV_PER_TOKEN
    assert plan["num_blocks"] == plan["kv_cache_bytes"] // (16 * KV_PER_TOKEN)
    assert plan["kv_cache_tokens"] == 16 * plan["num_blocks"]
    assert plan["max_concurrency"] == plan["kv_cache_tokens"] / 8192
    assert plan["starts"] is True and plan["error"] is None


LLAMA_3_1_8B = "meta-llama/Llama-3.1-8B-Instruct"
# Llama 3.1 8B: hidden 4096, vocabulary 128,256 (its config.json); vLLM's H100 defaults: 8,192
# batched tokens and 1,024 sequences (arg_utils.py, UsageContext.OPENAI_API_SERVER)
LLAMA_3_1_V1_SAMPLER_PEAK = (
    # profile_run's hidden states of 8,192 tokens, the 1,024 last positions and their rand_like
    4096 * 2 * (8192 + 2 * 1024)
    # the bfloat16 logits, their float32 copy, FlashInfer's masked logits and probabilities
    + 1024 * 128_256 * (2 + 4 + 4 + 4)
)  # 83,886,080 + 1,838,678,016 = 1,922,564,096 bytes = 1.79 GiB


def test_vllm_v1_profiles_the_dummy_samplers_peak_after_the_forward():
    # llm-d-planner v0.19.0 logs (vLLM 0.19.0, H100 80GB): "torch peak memory increase: 1.89GiB"
    # for Llama 3.1 8B at -tp 1 and at -tp 2: the sampler's [1024, vocab] tensors, which every
    # rank holds whole, set the peak; the forward's activations are freed before it
    plan = serve(LLAMA_3_1_8B)["memory"]
    assert plan["activation_peak_bytes"] == LLAMA_3_1_V1_SAMPLER_PEAK
    assert abs(LLAMA_3_1_V1_SAMPLER_PEAK / (1.89 * GiB) - 1) < 0.06
    split = serve(LLAMA_3_1_8B, tensor_parallel=2, num_gpus=2)["memory"]
    assert split["activation_peak_bytes"] == LLAMA_3_1_V1_SAMPLER_PEAK
    # V0 sorts the float32 logits instead (below): at 1,024 requests its sampler is the larger
    v0 = serve(LLAMA_3_1_8B, vllm_version="v0")["memory"]["activation_peak_bytes"]
    assert v0 == 4096 * 2 * 8192 + 1024 * 128_256 * (2 + 4 + 12 + 20)
    assert v0 > LLAMA_3_1_V1_SAMPLER_PEAK


# vLLM V0's profile_run on Meta-Llama-3-8B (hidden 4096, intermediate 14336, vocabulary 128,256)
# at 8,192 tokens and 256 dummy prompts (vLLM PR #10511's sanity check):
# - the eager forward's peak, the MLP's: residual, normed input and down_proj's output of 4,096,
#   gate_up's 2 x 14,336 and SiluAndMul's 14,336, bfloat16: 8,192 x 2 x (3 x 4,096 + 3 x 14,336)
LLAMA_3_8B_V0_FORWARD = 8192 * 2 * (3 * 4096 + 3 * 14336)  # 905,969,664 bytes, 0.84 GiB
# - the sampler on rank 0, at PyTorch's sort of the [256, 128,256] float32 logits: the hidden
#   states of 8,192 tokens (bfloat16), the bfloat16 logits and their float32 copy, the sort's
#   float32 values and int64 indices, and segmented_sort_pairs' int64 reverse indices and cub's
#   alternate float32 keys and int64 values (256 segments: SortStable.cu)
LLAMA_3_8B_V0_SAMPLER = 8192 * 4096 * 2 + 256 * 128_256 * (2 + 4 + (4 + 8) + (8 + 4 + 8))
# 67,108,864 + 1,247,674,368 = 1,314,783,232 bytes = 1.22 GiB; vLLM printed 1.26GiB


def test_vllm_v0_profile_peak_is_the_sorting_sampler_on_the_driver_worker():
    from calculator.engine.architecture import architecture_from_hf_config
    from calculator.engine.serving import vllm_v0_forward_peak, vllm_v0_sampler_peak

    llama = architecture_from_hf_config(MODELS[LLAMA_3_8B]["config"])[0]
    assert vllm_v0_forward_peak(llama, 8192, 1, 2) == LLAMA_3_8B_V0_FORWARD
    assert vllm_v0_sampler_peak(llama, 8192, 256, 2) == LLAMA_3_8B_V0_SAMPLER
    fields = {"max_num_seqs": 256, "max_num_batched_tokens": 8192, "vllm_version": "v0"}
    plan = serve(**fields)["memory"]
    assert plan["activation_peak_bytes"] == LLAMA_3_8B_V0_SAMPLER
    assert abs(LLAMA_3_8B_V0_SAMPLER / (1.26 * GiB) - 1) < 0.03
    # -tp 2: the forward halves its MLP widths (8,192 x 2 x (3 x 4,096 + 3 x 7,168) = 0.52
    # GiB), the logits are gathered whole to rank 0, which samples: the same 1.26GiB printed
    split = serve(tensor_parallel=2, num_gpus=2, **fields)["memory"]
    assert vllm_v0_forward_peak(llama, 8192, 2, 2) == 8192 * 2 * (3 * 4096 + 3 * 7168)
    assert split["activation_peak_bytes"] == LLAMA_3_8B_V0_SAMPLER


def test_vllm_v0_long_profiles_are_the_forwards_mlp():
    # vLLM issue 10517: Llama 3.1 8B on an RTX 3090, one prefill of 20,000 tokens; the log's
    # peak_torch_memory 17.06 GiB less the 14.9888 GiB of weights is 2.07 GiB
    fields = {"max_num_seqs": 256, "max_num_batched_tokens": 20_000, "vllm_version": "v0"}
    plan = serve(LLAMA_3_1_8B, sequence_length=20_000, **fields)["memory"]
    forward = 20_000 * 2 * (3 * 4096 + 3 * 14336)  # 2,211,840,000 bytes = 2.06 GiB
    sampler = 20_000 * 4096 * 2 + 256 * 128_256 * 38  # 1,411,514,368 bytes
    assert plan["activation_peak_bytes"] == max(forward, sampler) == forward
    assert abs(forward / ((17.06 - 14.9888) * GiB) - 1) < 0.01


def test_vllm_v0_sampler_of_a_wider_vocabulary():
    # vLLM issue 13882 (0.7.3 V0, Qwen2.5-7B bnb 4-bit, 4,096 tokens, 256 prompts): the sort of
    # 256 x 152,064 logits above the bfloat16 hidden states of 4,096 x 3,584, and above the
    # forward's MLP (4,096 x 2 x (3 x 3,584 + 3 x 18,944) = 0.52 GiB); the log prints 1.42 GiB
    from calculator.engine.architecture import architecture_from_hf_config
    from calculator.engine.serving import vllm_v0_forward_peak, vllm_v0_sampler_peak

    qwen = architecture_from_hf_config(MODELS["Qwen/Qwen2.5-7B-Instruct"]["config"])[0]
    sampler = 4096 * 3584 * 2 + 256 * 152_064 * (2 + 4 + 12 + 20)  # 1,508,638,720 bytes
    assert vllm_v0_sampler_peak(qwen, 4096, 256, 2) == sampler
    assert vllm_v0_forward_peak(qwen, 4096, 1, 2) == 4096 * 2 * (3 * 3584 + 3 * 18944) < sampler
    assert abs(sampler / (1.42 * GiB) - 1) < 0.02


def test_pytorchs_cuda_sort_temporaries_follow_its_segment_count():
    from calculator.engine.serving import vllm_v0_sort_temporaries

    vocab = 128_256
    # 128 segments or more: reverse indices (8) and cub's alternate keys (4) and values (8)
    assert vllm_v0_sort_temporaries(256, vocab) == 256 * vocab * 20
    # 2 to 127: two int2 arrays (8 + 8), keys_out (4) and the radix sort's alternates (4 + 8)
    assert vllm_v0_sort_temporaries(64, vocab) == 64 * vocab * 32
    # one segment: its own indices and alternates only
    assert vllm_v0_sort_temporaries(1, vocab) == vocab * 20
    # 4,096 or fewer: the bitonic sort in place
    assert vllm_v0_sort_temporaries(256, 4096) == 0
    # a pass takes at most INT_MAX entries: 16,384 x 152,064 = 2.49e9 entries sort 14,122
    # rows a pass (2,147,483,647 // 152,064)
    assert vllm_v0_sort_temporaries(16_384, 152_064) == 14_122 * 152_064 * 20


def test_vllm_v0_sampler_peak_of_a_float32_model_and_a_small_batch():
    from calculator.engine.architecture import architecture_from_hf_config
    from calculator.engine.serving import vllm_v0_sampler_peak

    llama = architecture_from_hf_config(MODELS[LLAMA_3_8B]["config"])[0]
    # float32: logits.to(torch.float) is the logits; 4 + 12 + 20 bytes an entry at the sort
    assert vllm_v0_sampler_peak(llama, 8192, 256, 4) == 8192 * 4096 * 4 + 256 * 128_256 * 36
    # 64 requests: the full-sort path's 32 bytes at the sort against 14 after it
    assert vllm_v0_sampler_peak(llama, 8192, 64, 2) == (
        8192 * 4096 * 2 + 64 * 128_256 * (2 + 4 + 12 + 32)
    )
    # one request: the sort's one segment (20 bytes an entry) is above the top-k / top-p
    # tensors after it (masks 1 + 1, softmax, cumsum and the scatter's output 4 + 4 + 4)
    assert vllm_v0_sampler_peak(llama, 8192, 1, 2) == (
        8192 * 4096 * 2 + 128_256 * (2 + 4 + 12 + 20)
    )


def test_vllm_v1_sampler_peak_of_a_float32_model_has_no_float32_copy():
    # logits.to(torch.float32) returns the float32 logits themselves: 4 + 4 + 4 bytes an entry
    from calculator.engine.architecture import architecture_from_hf_config
    from calculator.engine.serving import vllm_v1_sampler_peak

    llama = architecture_from_hf_config(MODELS[LLAMA_3_1_8B]["config"])[0]
    assert vllm_v1_sampler_peak(llama, 8192, 1024, 4) == (
        4096 * 4 * (8192 + 2 * 1024) + 1024 * 128_256 * (4 + 4 + 4)
    )  # 167,772,160 + 1,576,009,728
    assert vllm_v1_sampler_peak(llama, 8192, 1024, 2) == LLAMA_3_1_V1_SAMPLER_PEAK


def test_vllm_auto_dtype_loads_a_float32_checkpoint_as_bfloat16():
    # google/gemma-2-2b-it's config.json says torch_dtype float32; vLLM's --dtype auto
    # (vllm/config/model.py _resolve_auto_dtype: "Downcast for float32 models") loads it as
    # bfloat16: 2,614,341,888 parameters x 2 bytes = 4.87 GiB (vLLM 0.19 prints "Model loading
    # took 4.9 GiB memory")
    answer = calculate(
        {
            "model": {"hf_config": MODELS["google/gemma-2-2b-it"]["config"]},
            "mode": "serving",
            "sequence_length": 8192,
            "gpu": gpu("h100-sxm", memory_bytes=H100_AS_VLLM_SAW_IT),
        }
    )
    # and the cos_sin_cache of 8,192 positions x head_dim 256 in the same dtype
    assert answer["serving"]["memory"]["weights_bytes"] == 2_614_341_888 * 2 + 8192 * 256 * 2
    assert any("--dtype auto" in note for note in answer["notes"])
    # --dtype float32 is asked for by weight_dtype
    asked = serve("google/gemma-2-2b-it", weight_dtype="float32")["memory"]
    assert asked["weights_bytes"] == 2_614_341_888 * 4 + 8192 * 256 * 4


def test_vllm_loads_one_rotary_cache_with_the_weights():
    # rotary_embedding.py: one cos_sin_cache of [max_position, rotary_dim] in the model dtype,
    # shared by the layers (get_rope's _ROPE_DICT) and whole on every GPU
    from calculator.engine.architecture import architecture_from_hf_config
    from calculator.engine.serving import vllm_rope_cache_bytes

    def cache(slug: str, element: int = 2) -> int:
        config = MODELS[slug]["config"]
        return vllm_rope_cache_bytes(config, architecture_from_hf_config(config)[0], element)

    # Llama 3.1 (rope_type llama3 keeps max_position_embeddings): 131,072 x 128 x 2 = 32 MiB,
    # what 'Loading model weights took 14.9888 GB' has over the 14.9575 GiB of parameters
    assert cache(LLAMA_3_1_8B) == 131_072 * 128 * 2
    assert cache(LLAMA_3_1_8B, 4) == 131_072 * 128 * 4
    # phi-2: partial_rotary_factor 0.4 of head_dim 80, 2,048 positions
    assert cache("microsoft/phi-2") == 2048 * 32 * 2
    # GPT-NeoX: rotary_pct 0.25 of head_dim 96
    assert cache("EleutherAI/gpt-neox-20b") == 2048 * 24 * 2
    # gpt-oss: YaRN over original_max_position_embeddings 4,096 x factor 32, head_dim 64
    assert cache("openai/gpt-oss-20b") == 4096 * 32 * 64 * 2
    # DeepSeek-V2-Lite (MLA): YaRN 4,096 x 40 positions of qk_rope_head_dim 64
    assert cache("deepseek-ai/DeepSeek-V2-Lite") == 4096 * 40 * 64 * 2
    # GPT-2's learned positions: none; a state-layer model: none
    assert cache("openai-community/gpt2") == 0
    assert cache("ai21labs/AI21-Jamba-Mini-1.5") == 0
    # on each of -tp 2's GPUs whole, beside half the sharded parameters and the replicated
    # RMSNorm weights (32 layers x 2 x 4,096 + the final 4,096 = 266,240)
    split = serve(LLAMA_3_8B, tensor_parallel=2, num_gpus=2)["memory"]
    norms = 32 * 2 * 4096 + 4096
    assert split["weights_bytes"] == (8_030_261_248 - norms) + norms * 2 + 8192 * 128 * 2


def test_vllm_defaults_follow_the_gpu():
    # vllm serve on an H100-class GPU (>= 70 GiB): 8192 batched tokens, 1024 sequences
    inputs = calculate(
        {
            "model": {"hf_config": MODELS[LLAMA_3_8B]["config"]},
            "mode": "serving",
            "gpu": gpu("h100-sxm"),
        }
    )["inputs"]
    assert (inputs["max_num_batched_tokens"], inputs["max_num_seqs"]) == (8192, 1024)
    assert inputs["gpu_memory_utilization"] == 0.9
    assert inputs["block_size"] == 16
    assert inputs["max_model_len"] == inputs["sequence_length"]
    # an L4 (24 GB): 2048 and 256
    small = calculate(
        {
            "model": {"hf_config": MODELS[LLAMA_3_8B]["config"]},
            "mode": "serving",
            "gpu": gpu("l4"),
            "sequence_length": 4096,
        }
    )["inputs"]
    assert (small["max_num_batched_tokens"], small["max_num_seqs"]) == (2048, 256)


def test_it_says_so_when_vllm_would_not_start():
    # 16 GB of a T4 x 0.9 cannot hold 16 GB of weights: vLLM's own message
    plan = serve(gpu=gpu("t4"))
    assert plan["memory"]["starts"] is False
    assert plan["memory"]["error"].startswith("No available memory for the cache blocks")
    assert plan["performance"] is None and plan["curve"] == []
    # an L4 holds the weights but not one 131,072-token request's KV cache (16 GiB)
    long = serve(gpu=gpu("l4"), sequence_length=131_072)["memory"]
    assert long["starts"] is False
    assert "To serve at least one request with the models's max seq len (131072)" in long["error"]
    assert f"the estimated maximum model length is {long['kv_cache_tokens']}" in long["error"]


def test_sglang_keeps_activations_in_its_reserve():
    plan = serve(engine="sglang")["memory"]
    # mem_fraction_static 0.88 on one GPU; the KV pool is that share less the weights and the
    # CUDA context (1,343 MiB), activations live in the other 12 %
    expected = int(H100_AS_VLLM_SAW_IT * 0.88) - 8_030_261_248 * 2 - 1343 * 2**20
    assert plan["activation_peak_bytes"] == 0
    assert plan["kv_cache_bytes"] == expected
    assert plan["kv_cache_tokens"] == expected // (16 * KV_PER_TOKEN) * 16


def test_decode_speed_is_the_roofline_of_weights_and_kv_cache():
    h100 = gpu("h100-sxm", memory_bytes=H100_AS_VLLM_SAW_IT)
    plan = serve(batch_size=1, output_tokens=192, gpu=h100)
    rates = plan["performance"]
    # one request: 8,000 prompt tokens, at the middle of its 192 output tokens 8,096 in context;
    # a step reads 16,060,522,496 bytes of weights and 8,096 x 131,072 of KV cache at 70 % of
    # 3.35 TB/s (memory-bound: 2 x 8.03e9 FLOPs a token are far below the compute roof)
    step = (16_060_522_496 + 8096 * KV_PER_TOKEN) / (3.35e12 * 0.7)
    assert rates["tpot_s"] == pytest.approx(step, rel=1e-9)
    assert rates["output_tokens_per_s"] == pytest.approx(1 / step, rel=1e-9)
    # cost per million output tokens at $2.99 an hour (the catalog's H100 price)
    per_million = 2.99 / 3600 * 1_000_000 * step
    assert plan["cost"]["per_million_output_tokens"] == pytest.approx(per_million, rel=1e-9)


def test_concurrency_is_capped_by_max_num_seqs_and_the_kv_cache():
    plan = serve(batch_size=10_000, max_num_seqs=256)
    limit = min(256, int(plan["memory"]["max_concurrency"]))
    assert plan["concurrency_limit"] == limit
    assert plan["performance"]["concurrency"] == limit
    curve = plan["curve"]
    assert [point["concurrency"] for point in curve][-1] == limit
    # more requests at once: more tokens a second in all, each a little slower
    rates = [point["output_tokens_per_s"] for point in curve]
    assert rates == sorted(rates)


def test_the_cheapest_deployment_meets_the_target_and_is_sorted_by_price():
    payload = {
        "model": {"hf_config": MODELS[LLAMA_3_8B]["config"]},
        "mode": "serving",
        "sequence_length": 8192,
        "gpu": gpu("h100-sxm"),
        "target_output_tokens_per_s": 3000,
    }
    deployments = calculate(payload)["serving"]["deployments"]
    assert deployments, "an H100 deployment reaches 3,000 tokens/s"
    assert all(row["output_tokens_per_s"] >= 3000 for row in deployments)
    prices = [row["per_hour"] for row in deployments]
    assert prices == sorted(prices)
    # per hour = GPUs x the price per GPU-hour
    assert deployments[0]["per_hour"] == pytest.approx(2.99 * deployments[0]["gpu_count"])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"gpu": None}, "gpu"),
        ({"engine": "tgi"}, "engine"),
        ({"output_tokens": 9000}, "output_tokens"),
        ({"block_size": 0}, "block_size"),
        ({"vllm_version": "v2"}, "vllm_version"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"method": "standard"}, "method"),
    ],
)
def test_bad_serving_fields_name_the_field(fields, field):
    with pytest.raises(EstimateError) as error:
        serve(**fields)
    assert error.value.field == field


QWEN3_NEXT = json.loads(
    (
        Path(__file__).parent / "fixtures" / "configs" / "Qwen--Qwen3-Next-80B-A3B-Instruct.json"
    ).read_text()
)
# Mamba2Config() (transformers configuration_mamba2.py defaults): 64 layers, hidden 4096, 128
# heads of 64 (expand 2), state 128, 8 groups, conv_kernel 4
MAMBA2_DEFAULT = {"model_type": "mamba2"}


def test_a_hybrid_models_attention_blocks_hold_its_state_pages():
    """vLLM v1 on Qwen3-Next (12 attention, 36 Gated DeltaNet layers), 4 tensor-parallel GPUs:
    the mamba page of one layer and request (mamba_utils.py gated_delta_net_state_shape, both
    states in bfloat16 by "auto"), the attention block that holds it
    (HybridAttentionMambaModelConfig) and the groups of 12 layers (kv_cache_utils.py)."""
    serving = calculate(
        {
            "model": {"hf_config": QWEN3_NEXT},
            "mode": "serving",
            "sequence_length": 32768,
            "gpu": gpu("h200"),
            "gpu_count": 4,
        }
    )["serving"]
    plan = serving["memory"]
    # 2 KV heads of 256 on 4 ranks: one (replicated) a rank; K and V, bfloat16: 1,024 bytes a
    # token and layer, 12 layers
    assert plan["kv_bytes_per_token"] == 12 * 1 * 256 * 2 * 2
    # conv state: conv_dim 2 x 16 x 128 + 32 x 128 = 8,192 channels, 2,048 a rank, 3 positions
    # (conv_kernel 4 - 1): 6,144 values; SSM state: 32 / 4 = 8 heads x 128 x 128 = 131,072
    state_page = (2048 * 3 + 8 * 128 * 128) * 2
    assert state_page == 274_432
    # 16 x cdiv(274,432, 16 x 1,024) = 16 x 17 = 272 tokens a block; pages of 272 x 1,024
    cache = plan["state_cache"]
    assert cache["state_page_bytes"] == state_page
    assert cache["block_size"] == 272
    page = 272 * 1024
    assert cache["page_bytes"] == page == 278_528
    # 12 attention and 36 state layers: groups of 12, one attention group and three state groups
    assert (cache["group_size"], cache["attention_groups"], cache["state_groups"]) == (12, 1, 3)
    blocks = plan["kv_cache_bytes"] // (page * 12)
    assert plan["num_blocks"] == blocks
    # "GPU KV cache size": blocks // 4 groups x 272 tokens
    assert plan["kv_cache_tokens"] == blocks // 4 * 272
    # a 32,768-token request: cdiv(32,768, 272) = 121 attention blocks and 3 state blocks
    assert cache["blocks_per_request"] == 121 + 3
    assert plan["max_concurrency"] == blocks / 124
    assert plan["state_bytes_per_request"] == 3 * 12 * page
    assert serving["concurrency_limit"] == min(1024, blocks // 124)
    assert plan["starts"] is True


def test_pipeline_stages_hold_half_of_each_group():
    """kv_cache_utils.py: groups are made from the whole model, each of 12 layers strided over
    it (layers[i::num_groups]); two pipeline stages hold 6 of each, so a stage's tensors are 6
    and its blocks twice as many for the same bytes."""
    plan = serve_config(
        QWEN3_NEXT,
        sequence_length=32768,
        num_gpus=8,
        tensor_parallel=4,
        pipeline_parallel=2,
    )["memory"]
    cache = plan["state_cache"]
    assert cache["group_size"] == 6
    assert (cache["attention_groups"], cache["state_groups"]) == (1, 3)
    assert plan["num_blocks"] == plan["kv_cache_bytes"] // (6 * 272 * 1024)


def test_a_pure_state_space_model_takes_one_state_block_a_request():
    """vLLM v1 on Mamba-2 (64 Mamba2Mixer layers, no attention): MambaModelConfig only, so the
    mamba page is not padded, its block is max_model_len tokens and a request takes one."""
    plan = calculate(
        {
            "model": {"hf_config": MAMBA2_DEFAULT},
            "mode": "serving",
            "sequence_length": 8192,
            "gpu": gpu("h200"),
        }
    )["serving"]["memory"]
    # conv state: 3 positions x (8,192 + 2 x 8 groups x 128) = 30,720 values; SSM state 128
    # heads x 64 x 128 = 1,048,576; bfloat16
    page = (3 * (8192 + 2 * 8 * 128) + 128 * 64 * 128) * 2
    assert page == 2_158_592
    cache = plan["state_cache"]
    assert cache["state_page_bytes"] == cache["page_bytes"] == page
    assert (cache["group_size"], cache["attention_groups"], cache["state_groups"]) == (64, 0, 1)
    assert cache["block_size"] == 8192
    assert plan["kv_bytes_per_token"] == 0
    blocks = plan["kv_cache_bytes"] // (page * 64)
    assert plan["num_blocks"] == blocks
    assert plan["kv_cache_tokens"] == blocks * 8192
    assert plan["max_concurrency"] == blocks
    assert plan["state_bytes_per_request"] == 64 * page


def test_mamba2_groups_are_replicated_up_to_the_tensor_parallel_size():
    """mamba2_state_shape: 1 group does not divide over 2 ranks, so it becomes 2
    (extra_groups_for_head_shards); Falcon-H1 7B's mixer (3,072 wide, 24 heads of 128, state
    256, conv 4) beside attention in all 44 layers."""
    from tests.engine.test_mamba2 import FALCON_7B

    plan = calculate(
        {
            "model": {"hf_config": FALCON_7B},
            "mode": "serving",
            "sequence_length": 8192,
            "gpu": gpu("h100-sxm"),
            "gpu_count": 2,
        }
    )["serving"]["memory"]
    cache = plan["state_cache"]
    # conv: (3,072 + 2 x 2 x 256) / 2 = 2,048 channels x 3; SSM: 12 heads x 128 x 256; bf16
    assert cache["state_page_bytes"] == (2048 * 3 + 12 * 128 * 256) * 2 == 798_720
    # attention: 2 KV heads / 2 = 1 a rank, 128 wide: 512 bytes a token and layer;
    # 16 x cdiv(798,720, 16 x 512) = 16 x 98 = 1,568 tokens a block
    assert cache["block_size"] == 1568
    assert cache["page_bytes"] == 1568 * 512
    # 44 attention and 44 mamba layers: one group each
    assert (cache["group_size"], cache["attention_groups"], cache["state_groups"]) == (44, 1, 1)
    assert cache["blocks_per_request"] == -(-8192 // 1568) + 1 == 7


def test_a_state_model_that_does_not_fit_says_so_as_vllm_does():
    plan = calculate(
        {
            "model": {"hf_config": MAMBA2_DEFAULT},
            "mode": "serving",
            "sequence_length": 8192,
            "gpu": gpu("h100-sxm", memory_bytes=16 * GiB),
        }
    )["serving"]["memory"]
    # 7.3B parameters in bfloat16 (14.6 GB) over 0.9 x 16 GiB: nothing left for the blocks
    assert plan["starts"] is False
    assert plan["num_blocks"] == 0
    assert plan["error"].startswith("No available memory for the cache blocks.")


def test_a_hybrid_too_long_for_its_blocks_gets_vllms_estimate_of_the_length():
    serving = serve_config(
        QWEN3_NEXT,
        gpu_count=4,
        sequence_length=262_144,
        gpu_memory_utilization=0.313,
    )
    plan = serving["memory"]
    available = plan["kv_cache_bytes"]
    page = 272 * 1024  # as in the test above: 12 layers a group
    # one 262,144-token request: cdiv(262,144, 272) = 964 attention blocks and 3 state blocks
    needed = 12 * page * (964 + 3)
    assert 0 < available < needed
    assert plan["starts"] is False
    # _estimate_max_model_len_from_groups: the blocks left after the 3 state blocks, 272 tokens
    # each
    longest = (available // (12 * page) - 3) * 272
    assert f"({needed / 2**30:.2f} GiB KV cache is needed" in plan["error"]
    assert f"the estimated maximum model length is {longest}." in plan["error"]


def test_transformers_holds_a_pure_state_space_models_requests_by_their_state():
    plan = serve_config(MAMBA2_DEFAULT, engine="transformers")["memory"]
    # DynamicCache's LinearAttentionLayer per request: 64 layers of a bfloat16 conv state of
    # 10,240 channels x 4 positions and a float32 SSM state of 128 x 64 x 128
    state = 64 * (10240 * 4 * 2 + 128 * 64 * 128 * 4)
    assert plan["state_bytes_per_request"] == state
    assert plan["starts"] is True
    assert plan["max_concurrency"] == plan["kv_cache_bytes"] / state
    assert plan["kv_cache_tokens"] == plan["kv_cache_bytes"] // state * 8192


def test_sglang_and_speculation_are_refused_for_state_models():
    with pytest.raises(EstimateError) as error:
        serve_config(MAMBA2_DEFAULT, engine="sglang")
    assert error.value.field == "engine"
    assert "Mamba pool" in error.value.message
    with pytest.raises(EstimateError) as error:
        serve_config(QWEN3_NEXT, engine="sglang", gpu_count=4)
    assert error.value.field == "engine"
    with pytest.raises(EstimateError) as error:
        serve_config(QWEN3_NEXT, gpu_count=4, speculative_method="ngram", num_speculative_tokens=3)
    assert error.value.field == "speculative_method"


def serve_config(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    payload = {
        "model": {"hf_config": config},
        "mode": "serving",
        "sequence_length": 8192,
        "gpu": gpu("h200"),
        **fields,
    }
    return calculate(payload)["serving"]


def test_transformers_reserves_nothing_and_grows_its_cache():
    plan = serve(engine="transformers")["memory"]
    # the whole device; no blocks (one token at a time); the CUDA context (1,343 MiB) and one
    # 8,192-token request's prefill peak beside the weights
    assert plan["usable_bytes"] == H100_AS_VLLM_SAW_IT
    expected = (
        H100_AS_VLLM_SAW_IT - 8_030_261_248 * 2 - plan["activation_peak_bytes"] - 1343 * 2**20
    )
    assert plan["kv_cache_bytes"] == expected
    assert plan["kv_cache_tokens"] == expected // KV_PER_TOKEN
    assert plan["activation_peak_bytes"] > 0


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ("sglang", "Not enough memory. Please try to increase --mem-fraction-static."),
        ("transformers", "torch.OutOfMemoryError: CUDA out of memory"),
    ],
)
def test_each_engine_says_it_will_not_start_in_its_own_words(engine, message):
    plan = serve(engine=engine, gpu=gpu("t4"))["memory"]
    assert plan["starts"] is False
    assert plan["error"].startswith(message)
