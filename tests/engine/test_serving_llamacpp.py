"""llama.cpp serving plans (engine "llama.cpp"): buffers as llama-server allocates them.

Published figures:
- fedora-copr/logdetective PR #106 (https://github.com/fedora-copr/logdetective/pull/106,
  2025-01-13), a Mistral 7B (freq_base 1000000, vocab 32768) GGUF on CUDA0, -c 2048 then 32768:
  "CUDA0 KV buffer size = 256.00 MiB" / "KV self size = 256.00 MiB, K (f16): 128.00 MiB,
  V (f16): 128.00 MiB", then "4096.00 MiB ... K (f16): 2048.00 MiB"; "CUDA_Host output buffer
  size = 0.12 MiB" (32768 float32 logits = 0.125 MiB) in both.
Hand arithmetic: Llama 3 8B, 32 layers, 8 KV heads x 128 = n_embd_k_gqa 1024; q8_0 rows of 1024
values are 32 blocks of 34 bytes = 1088 bytes; q4_0 32 blocks of 18 = 576 bytes.
State layers (llama.cpp src/llama-hparams.cpp n_embd_r / n_embd_s, src/llama-memory-recurrent.cpp,
float32 r and s rows for each of n_seq_max cells): Mamba-2's defaults (Mamba2Config: 64 layers,
inner 8192, 8 groups of state 128, 128 heads of 64, conv 4) and AI21-Jamba-Mini-1.5's config.json
(32 layers, attention where i % 8 == 4, so 4 of them with 8 KV heads of 128; Mamba inner 2 x 4096,
state 16, conv 4).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calculator.engine import EstimateError, calculate
from tests.engine.test_serving import MODELS, gpu

MiB = 2**20
LLAMA_3_8B = "meta-llama/Meta-Llama-3-8B"
MISTRAL_7B = "mistralai/Mistral-7B-Instruct-v0.3"
JAMBA_MINI = json.loads(
    (
        Path(__file__).parent / "fixtures" / "configs" / "ai21labs--AI21-Jamba-Mini-1.5.json"
    ).read_text()
)


def plan(slug: str = LLAMA_3_8B, gpu_slug: str = "h100-sxm", **fields: Any) -> dict[str, Any]:
    payload = {
        "model": {"hf_config": MODELS[slug]["config"]},
        "mode": "serving",
        "engine": "llama.cpp",
        "weight_dtype": "gguf_q4_k_m",
        "sequence_length": 8192,
        "gpu": gpu(gpu_slug),
        **fields,
    }
    return calculate(payload)


def test_kv_buffer_matches_the_published_log_at_2048_and_32768() -> None:
    for n_ctx, kv_mib in ((2048, 256), (32768, 4096)):
        memory = plan(MISTRAL_7B, max_model_len=n_ctx, sequence_length=n_ctx)["serving"]["memory"]
        cpp = memory["llamacpp"]
        assert cpp["gpu_kv_bytes"] == kv_mib * MiB
        assert cpp["k_bytes"] == cpp["v_bytes"] == kv_mib // 2 * MiB
        assert cpp["host_kv_bytes"] == 0
        # 0.12 MiB printed: 32768 x 4 bytes
        assert cpp["output_buffer_bytes"] == 32768 * 4
        assert cpp["offloaded"] == "33/33"


def test_quantised_cache_types_use_ggml_block_sizes() -> None:
    cpp = plan(max_model_len=4096, cache_type_k="q8_0", cache_type_v="q4_0")["serving"]["memory"]
    cpp = cpp["llamacpp"]
    assert cpp["k_bytes"] == 4096 * 32 * 1088
    assert cpp["v_bytes"] == 4096 * 32 * 576


def test_partial_offload_keeps_the_rest_in_host_ram() -> None:
    result = plan(n_gpu_layers=8, max_model_len=8192)
    cpp = result["serving"]["memory"]["llamacpp"]
    # -ngl 8 of 32 layers: the output layer stays on the CPU, "offloaded 8/33 layers"
    assert cpp["offloaded"] == "8/33"
    assert cpp["output_on_gpu"] is False
    # f16 KV: 8192 x (1024 + 1024) x 2 bytes = 32 MiB a layer; 8 on the GPU, 24 on the host
    assert cpp["gpu_kv_bytes"] == 8 * 32 * MiB
    assert cpp["host_kv_bytes"] == 24 * 32 * MiB
    # the logits of a 512-token ubatch are computed where the output layer is (host):
    # 512 x 128256 x 4 bytes
    assert cpp["host_compute_bytes"] >= 512 * 128256 * 4
    # the GPU's compute buffer: 512 x (2 x 14336 + 4096) float32 (gate, up, residual)
    assert cpp["gpu_compute_bytes"] == 512 * (2 * 14336 + 4096) * 4
    assert result["host_memory_bytes"] == cpp["host_bytes"]
    assert cpp["host_bytes"] > cpp["host_weights_bytes"] > cpp["gpu_weights_bytes"]


def test_all_layers_leave_only_the_token_embeddings_on_the_host() -> None:
    cpp = plan(max_model_len=8192)["serving"]["memory"]["llamacpp"]
    assert cpp["host_weights_bytes"] == cpp["embedding_bytes"]
    # -ngl 32 (not 33): every repeating layer but not the output
    partial = plan(max_model_len=8192, n_gpu_layers=32)["serving"]["memory"]["llamacpp"]
    assert partial["offloaded"] == "32/33"
    assert partial["gpu_weights_bytes"] < cpp["gpu_weights_bytes"]


def test_slots_split_the_context_and_bound_concurrency() -> None:
    serving = plan(max_model_len=4096, n_parallel=4, batch_size=16)["serving"]
    cpp = serving["memory"]["llamacpp"]
    # llama-server -c 16384 -np 4: four slots of 4096
    assert cpp["n_ctx"] == 16384 and cpp["n_ctx_per_slot"] == 4096
    assert serving["concurrency_limit"] == 4
    assert serving["performance"]["concurrency"] == 4


def test_context_is_padded_to_256() -> None:
    cpp = plan(max_model_len=1000)["serving"]["memory"]["llamacpp"]
    assert cpp["n_ctx"] == 1024


def test_cpu_layers_decode_at_host_bandwidth() -> None:
    on_gpu = plan(max_model_len=4096)["serving"]["performance"]["tpot_s"]
    on_cpu = plan(max_model_len=4096, n_gpu_layers=0)["serving"]["performance"]["tpot_s"]
    # H100 SXM reads at 3.35 TB/s, the host at 102.4 GB/s: over 30 times slower
    assert on_cpu > 20 * on_gpu


def test_too_small_gpu_fails_the_way_llama_cpp_says() -> None:
    serving = plan(
        "meta-llama/Meta-Llama-3-8B",
        gpu_slug="h100-sxm",
        weight_dtype="bfloat16",
        gpu=gpu("h100-sxm", memory_bytes=8 * 2**30),
        max_model_len=4096,
    )["serving"]
    assert serving["memory"]["starts"] is False
    assert "cudaMalloc failed: out of memory" in serving["memory"]["error"]
    assert "unable to allocate CUDA0 buffer" in serving["memory"]["error"]
    assert serving["performance"] is None


def test_kv_cache_that_does_not_fit_names_the_kv_buffer() -> None:
    # 8B in q4_k_m on 8 GiB, a 128k context: 16 GiB of f16 KV
    serving = plan(
        gpu=gpu("h100-sxm", memory_bytes=8 * 2**30), max_model_len=131072, sequence_length=131072
    )["serving"]
    assert "failed to allocate buffer for kv cache" in serving["memory"]["error"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cache_type_k": "q3_k"}, "cache_type_k"),
        ({"cache_type_v": 7}, "cache_type_v"),
        ({"n_gpu_layers": -1}, "n_gpu_layers"),
        ({"n_ubatch": 0}, "n_ubatch"),
        ({"n_parallel": "two"}, "n_parallel"),
        ({"gpu_count": 2}, "gpu_count"),
    ],
)
def test_bad_inputs_are_field_errors(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(EstimateError) as error:
        plan(**fields)
    assert error.value.field == field


def state_plan(config: dict[str, Any], **fields: Any) -> dict[str, Any]:
    payload = {
        "model": {"hf_config": config},
        "mode": "serving",
        "engine": "llama.cpp",
        "weight_dtype": "gguf_q4_k_m",
        "sequence_length": 4096,
        "gpu": gpu("h100-sxm"),
        **fields,
    }
    return calculate(payload)["serving"]


def test_a_recurrent_model_keeps_an_rs_buffer_and_no_kv_cache():
    memory = state_plan({"model_type": "mamba2"}, n_parallel=2)["memory"]
    cpp = memory["llamacpp"]
    # no attention layer: llama_memory_recurrent only
    assert cpp["gpu_kv_bytes"] == cpp["k_bytes"] == cpp["v_bytes"] == 0
    assert memory["kv_bytes_per_token"] == 0
    # r: (4 - 1) x (8,192 + 2 x 8 x 128) float32; s: 128 x 8,192 float32; 2 cells (-np 2)
    r_row = 3 * (8192 + 2 * 8 * 128) * 4
    s_row = 128 * 8192 * 4
    assert (r_row, s_row) == (122_880, 4_194_304)
    assert cpp["rs_cells"] == 2
    assert cpp["r_bytes"] == 2 * 64 * r_row
    assert cpp["s_bytes"] == 2 * 64 * s_row
    assert cpp["gpu_rs_bytes"] == 2 * 64 * (r_row + s_row) == 552_599_552
    assert memory["kv_cache_bytes"] == cpp["gpu_rs_bytes"]
    assert memory["state_bytes_per_request"] == 64 * (r_row + s_row)
    assert cpp["gpu_total_bytes"] == (
        cpp["gpu_weights_bytes"] + cpp["gpu_rs_bytes"] + cpp["gpu_compute_bytes"] + 1343 * MiB
    )


def test_a_hybrid_keeps_kv_for_its_attention_layers_and_rs_for_the_rest():
    memory = state_plan(JAMBA_MINI, max_model_len=4096)["memory"]
    cpp = memory["llamacpp"]
    # 4 attention layers: f16 K and V of 8 x 128 values, 4,096 cells
    assert cpp["kv_layers"] == 4
    assert cpp["gpu_kv_bytes"] == 4 * 4096 * (1024 + 1024) * 2 == 64 * MiB
    assert memory["kv_bytes_per_token"] == 4 * 2048 * 2
    # 28 Mamba layers, one cell: r = 3 x 8,192, s = 16 x 8,192 float32 values
    assert cpp["rs_layers"] == 28
    assert cpp["gpu_rs_bytes"] == 28 * (3 * 8192 + 16 * 8192) * 4 == 17_432_576
    assert memory["kv_cache_bytes"] == 64 * MiB + 17_432_576


def test_a_partly_offloaded_hybrid_puts_its_attention_layers_first_on_the_gpu():
    cpp = state_plan(JAMBA_MINI, max_model_len=4096, n_gpu_layers=6)["memory"]
    cpp = cpp["llamacpp"]
    # worst case for the GPU: its 6 layers hold the 4 attention layers and 2 Mamba layers
    assert cpp["gpu_kv_bytes"] == 64 * MiB and cpp["host_kv_bytes"] == 0
    per_layer = (3 * 8192 + 16 * 8192) * 4
    assert cpp["gpu_rs_bytes"] == 2 * per_layer
    assert cpp["host_rs_bytes"] == 26 * per_layer
    assert cpp["host_bytes"] >= cpp["host_weights_bytes"] + 26 * per_layer


def test_an_rs_buffer_that_does_not_fit_names_it():
    # 4,096 slots of Mamba-2 state: 4,096 x 64 x 4,317,184 bytes (1.05 TiB)
    memory = state_plan({"model_type": "mamba2"}, n_parallel=4096, max_model_len=16)["memory"]
    assert memory["starts"] is False
    assert "failed to allocate buffer for rs cache" in memory["error"]


def test_qwen3_next_and_falcon_h1_follow_their_gguf_state_sizes():
    """convert_hf_to_gguf.py Qwen3NextModel: ssm_d_state = linear_key_head_dim (128),
    ssm_n_group = linear_num_key_heads (16), ssm_d_inner = 32 value heads x 128; Falcon-H1 7B:
    d_inner 3,072, 1 group, d_state 256, attention and Mamba-2 in every layer (filter_attn and
    filter_recr both true)."""
    from tests.engine.test_mamba2 import FALCON_7B
    from tests.engine.test_serving import QWEN3_NEXT

    cpp = state_plan(QWEN3_NEXT, max_model_len=4096)["memory"]["llamacpp"]
    # 12 attention layers of 2 KV heads x 256, f16
    assert cpp["kv_layers"] == 12
    assert cpp["gpu_kv_bytes"] == 12 * 4096 * (512 + 512) * 2 == 96 * MiB
    # r: 3 x (4,096 + 2 x 16 x 128); s: 128 x 4,096; float32, one cell, 36 layers
    assert cpp["rs_layers"] == 36
    assert cpp["gpu_rs_bytes"] == 36 * (3 * 8192 + 128 * 4096) * 4 == 79_036_416

    cpp = state_plan(FALCON_7B, max_model_len=4096)["memory"]["llamacpp"]
    assert cpp["kv_layers"] == cpp["rs_layers"] == 44
    assert cpp["gpu_kv_bytes"] == 44 * 4096 * (256 + 256) * 2 == 176 * MiB
    assert cpp["gpu_rs_bytes"] == 44 * (3 * (3072 + 2 * 256) + 256 * 3072) * 4 == 140_304_384
