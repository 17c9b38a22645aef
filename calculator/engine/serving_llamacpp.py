"""llama.cpp's (llama-server's) memory layout for a serving plan, on one GPU and the host.

Follows llama.cpp's own code (b4000-b6000, 2024-2025):
- src/llama-model.cpp `load_tensors`: with -ngl N the last min(N, n_layer) repeating layers go
  to the GPU, `i_gpu_start = max(n_layer + 1 - N, 0)`; the output layer (output.weight, the
  final norm) is offloaded only when N > n_layer ("offloaded 33/33 layers" for a 32-layer
  model). The token embedding matrix (token_embd) always stays in host memory (it is read by
  get_rows, LLM_TENSOR_LAYER_INPUT on the CPU buffer type). A model with tied embeddings loads
  token_embd a second time as the output (TENSOR_DUPLICATED) in the output layer's buffer.
- src/llama-kv-cache.cpp: each layer's K and V are n_ctx x n_embd_k_gqa and n_ctx x n_embd_v_gqa
  elements of --cache-type-k / --cache-type-v, in the buffer of the device holding that layer;
  llama-server's -c is the whole cache, shared by its -np slots (n_ctx_slot = n_ctx / n_parallel).
  n_ctx is padded up to a multiple of 256 (llama_context, GGML_PAD(n_ctx, 256)).
- ggml type traits (ggml/src/ggml.c): f32 4 bytes, f16/bf16 2; q8_0 blocks of 32 in 34 bytes,
  q4_0 32 in 18, q4_1 32 in 20, q5_0 32 in 22, q5_1 32 in 24, iq4_nl 32 in 18.
- the compute buffer: ggml_gallocr reserves the graph of n_ubatch tokens; with flash attention
  (the default, "auto", on CUDA) no n_ctx x n_ubatch score matrix exists, and the peak is the
  larger of the float32 logits (n_ubatch x n_vocab, where the output layer is) and the MLP's
  gate and up activations (2 x n_ubatch x n_ff) beside the residual stream (n_ubatch x n_embd).
- the output buffer (llama_context::output_reserve): n_vocab float32 logits for each of
  n_seq_max = n_parallel sequences, in pinned host memory ("CUDA_Host output buffer").
- models with state layers (src/llama-model.cpp create_memory, b6000-b7200, 2025): a recurrent
  architecture (Mamba-2) keeps only a llama_memory_recurrent, no KV cache; a hybrid (Jamba,
  Falcon-H1, Nemotron-H, Qwen3-Next) a llama_memory_hybrid: a KV cache for its attention layers
  (filter !is_recurrent; Falcon-H1 every layer, Nemotron-H the blocks that are neither recurrent
  nor an FFN) beside the recurrent memory of its state layers. src/llama-memory-recurrent.cpp:
  per state layer an r tensor of n_embd_r() and an s tensor of n_embd_s() float32 values
  (recurrent_type_r / _s GGML_TYPE_F32) for each of mem_size = max(1, n_seq_max) cells, in the
  buffer of the device holding the layer ("CUDA0 RS buffer size", "R (f32): .., S (f32): ..");
  src/llama-hparams.cpp: n_embd_r = (ssm_d_conv - 1) x (ssm_d_inner + 2 ssm_n_group
  ssm_d_state), the convolution state without its oldest column, n_embd_s = ssm_d_state x
  ssm_d_inner, the scan's state.
"""

from __future__ import annotations

from typing import Any

from calculator.engine.errors import EstimateError

MIB = 2**20
# llama-server defaults (common/common.h, common_params): -ub 512, -np 1, f16 cache,
# -ngl all layers (999 in common.h before the "auto" fitting of late 2025)
LLAMACPP_N_UBATCH = 512
LLAMACPP_N_PARALLEL = 1
LLAMACPP_CACHE_TYPE = "f16"
LLAMACPP_MAX_NGL = 999
LLAMACPP_CTX_PAD = 256
# --cache-type-k / -v: (elements per block, bytes per block), ggml type traits
LLAMACPP_CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "iq4_nl": (32, 18),
}
LLAMACPP_CACHE_TYPE_NAMES = tuple(LLAMACPP_CACHE_TYPES)
# Host memory bandwidth for layers left on the CPU when not given: dual-channel DDR5-6400,
# 2 x 8 bytes x 6.4 GT/s = 102.4 GB/s (a desktop; servers with 8-12 channels reach 300-600)
HOST_MEMORY_BANDWIDTH = 102_400_000_000
FLOAT32 = 4


def layer_split(architecture: Any, gpu_layers: int) -> tuple[int, int, int, int]:
    """Attention (KV) and state (RS) layers on the GPU and on the host: (gpu KV, host KV, gpu
    RS, host RS). The layer order of a hybrid is not known here: worst case for the GPU, its
    -ngl layers hold as many attention layers as they can (detailed.kv_cache_bytes does the
    same for a pipeline stage)."""
    state = architecture.state_layers
    layers = architecture.num_layers
    if state is None:
        return gpu_layers, layers - gpu_layers, 0, 0
    attention = architecture.num_attention_layers
    gpu_attention = min(gpu_layers, attention)
    free = gpu_layers if state.beside_attention else gpu_layers - gpu_attention
    gpu_state = min(free, state.count)
    return gpu_attention, attention - gpu_attention, gpu_state, state.count - gpu_state


def row_bytes(cache_type: str, elements: int, field: str) -> int:
    """ggml_row_size: bytes of `elements` values of a cache type (whole blocks only)."""
    block, size = LLAMACPP_CACHE_TYPES[cache_type]
    if elements % block:
        raise EstimateError(
            field,
            f"{cache_type} stores blocks of {block} values; this model's KV rows of {elements} "
            "do not divide into them (llama.cpp refuses it too)",
        )
    return elements // block * size


def padded_context(n_ctx: int) -> int:
    return -(-n_ctx // LLAMACPP_CTX_PAD) * LLAMACPP_CTX_PAD


def llamacpp_memory(
    architecture: Any, weights: int, gpu_memory: int, context_bytes: int, request: Any
) -> dict[str, Any]:
    """Buffers on the GPU and in host RAM as llama.cpp allocates them, and whether it starts."""
    layers = architecture.num_layers
    ngl = request.n_gpu_layers
    gpu_layers = min(ngl, layers)
    output_on_gpu = ngl > layers
    # the weights' bytes per parameter on average, applied to the embeddings and output
    per_parameter = weights / architecture.num_parameters
    embedding = round(architecture.vocab_size * architecture.hidden_size * per_parameter)
    output = embedding  # untied: its own matrix; tied: token_embd duplicated as the output
    repeating = weights - embedding - (0 if architecture.tie_word_embeddings else output)
    per_layer = repeating / layers
    gpu_weights = round(per_layer * gpu_layers) + (output if output_on_gpu else 0)
    host_weights = (
        embedding + round(per_layer * (layers - gpu_layers)) + (0 if output_on_gpu else output)
    )
    state = architecture.state_layers
    gpu_kv_layers, host_kv_layers, gpu_rs_layers, host_rs_layers = layer_split(
        architecture, gpu_layers
    )
    kv_layers = gpu_kv_layers + host_kv_layers
    n_ctx = padded_context(request.max_model_len * request.n_parallel)
    if kv_layers:
        kv_width = architecture.num_key_value_heads * architecture.head_dim
        k_row = row_bytes(request.cache_type_k, kv_width, "cache_type_k")
        v_row = row_bytes(request.cache_type_v, kv_width, "cache_type_v")
    else:
        k_row = v_row = 0  # a recurrent model: no KV cache, --cache-type-k/-v unused
    kv_per_layer = n_ctx * (k_row + v_row)
    gpu_kv = kv_per_layer * gpu_kv_layers
    host_kv = kv_per_layer * host_kv_layers
    # the RS buffer: r and s rows of float32 for each of n_parallel cells, per state layer
    r_row = s_row = 0
    if state is not None:
        r_row = FLOAT32 * (state.conv_kernel - 1) * state.conv_dim
        s_row = FLOAT32 * state.recurrent_elements
    cells = max(1, request.n_parallel)
    rs_per_layer = cells * (r_row + s_row)
    gpu_rs = rs_per_layer * gpu_rs_layers
    host_rs = rs_per_layer * host_rs_layers
    ubatch = request.n_ubatch
    logits = FLOAT32 * ubatch * architecture.vocab_size
    mlp = FLOAT32 * ubatch * (2 * architecture.intermediate_size + architecture.hidden_size)
    gpu_compute = max(logits if output_on_gpu else 0, mlp if gpu_layers else 0)
    host_compute = max(0 if output_on_gpu else logits, mlp if gpu_layers < layers else 0)
    output_buffer = FLOAT32 * architecture.vocab_size * request.n_parallel
    error = None
    free = gpu_memory - context_bytes
    buffers = [("model", gpu_weights), ("kv cache", gpu_kv)]
    if state is not None:
        # llama_memory_hybrid makes its KV cache, then its recurrent memory
        buffers.append(("rs cache", gpu_rs))
    buffers.append(("compute", gpu_compute))
    for name, size in buffers:
        if size > free:
            error = (
                f"ggml_backend_cuda_buffer_type_alloc_buffer: allocating {size / MIB:.2f} MiB "
                "on device 0: cudaMalloc failed: out of memory; "
                + {
                    "model": "llama_model_load: error loading model: unable to allocate "
                    "CUDA0 buffer",
                    "kv cache": "llama_kv_cache_init: failed to allocate buffer for kv cache",
                    "rs cache": "llama_memory_recurrent: failed to allocate buffer for rs cache",
                    "compute": "failed to allocate compute buffers",
                }[name]
            )
            break
        free -= size
    host = host_weights + host_kv + host_compute + output_buffer
    gpu_total = gpu_weights + gpu_kv + gpu_compute + context_bytes
    recurrent: dict[str, int] = {}
    if state is not None:
        host += host_rs
        gpu_total += gpu_rs
        recurrent = {
            "kv_layers": kv_layers,
            "rs_layers": gpu_rs_layers + host_rs_layers,
            "rs_cells": cells,
            "gpu_rs_bytes": gpu_rs,
            "host_rs_bytes": host_rs,
            "r_bytes": cells * r_row * (gpu_rs_layers + host_rs_layers),
            "s_bytes": cells * s_row * (gpu_rs_layers + host_rs_layers),
        }
    return {
        "total_memory_bytes": gpu_memory,
        "usable_bytes": gpu_memory,
        "weights_bytes": gpu_weights,
        "activation_peak_bytes": gpu_compute,
        "non_torch_bytes": context_bytes,
        # the GPU's caches: its KV buffer and (state layers) its RS buffer
        "kv_cache_bytes": gpu_kv + gpu_rs,
        "kv_bytes_per_token": kv_layers * (k_row + v_row),
        "num_blocks": n_ctx,
        "kv_cache_tokens": n_ctx,
        # one sequence's cell in every state layer
        "state_bytes_per_request": (r_row + s_row) * (gpu_rs_layers + host_rs_layers),
        # llama-server decodes one request per slot: -np of them, each n_ctx / np long
        "max_concurrency": request.n_parallel,
        "starts": error is None,
        "error": error,
        "llamacpp": {
            "n_ctx": n_ctx,
            "n_ctx_per_slot": n_ctx // request.n_parallel,
            "gpu_layers": gpu_layers,
            "output_on_gpu": output_on_gpu,
            "offloaded": f"{gpu_layers + int(output_on_gpu)}/{layers + 1}",
            "embedding_bytes": embedding,
            "gpu_weights_bytes": gpu_weights,
            "host_weights_bytes": host_weights,
            "gpu_kv_bytes": gpu_kv,
            "host_kv_bytes": host_kv,
            "k_bytes": n_ctx * k_row * kv_layers,
            "v_bytes": n_ctx * v_row * kv_layers,
            "gpu_compute_bytes": gpu_compute,
            "host_compute_bytes": host_compute,
            "output_buffer_bytes": output_buffer,
            "gpu_total_bytes": gpu_total,
            "host_bytes": host,
            "host_memory_bandwidth_bytes_per_s": HOST_MEMORY_BANDWIDTH,
            **recurrent,
        },
    }


def llamacpp_step_seconds(
    memory: dict[str, Any],
    architecture: Any,
    gpu_bandwidth: float,
    decode_efficiency: float,
    concurrency: int,
    context: int,
) -> float:
    """One decode step: the GPU's layers read at its bandwidth, the host's at host bandwidth,
    one after the other (llama.cpp runs the layer split in sequence). A state layer reads
    each sequence's r and s cells once a step."""
    plan = memory["llamacpp"]
    total = architecture.num_parameters
    active = (architecture.num_active_parameters or total) / total
    gpu_kv_layers, host_kv_layers, gpu_rs_layers, host_rs_layers = layer_split(
        architecture, plan["gpu_layers"]
    )
    kv_layers = gpu_kv_layers + host_kv_layers
    kv_token_layer = memory["kv_bytes_per_token"] / kv_layers if kv_layers else 0
    rs_layers = gpu_rs_layers + host_rs_layers
    state_layer = memory["state_bytes_per_request"] / rs_layers if rs_layers else 0
    gpu_read = plan["gpu_weights_bytes"] * active + (
        kv_token_layer * gpu_kv_layers * context * concurrency
    )
    gpu_read += state_layer * gpu_rs_layers * concurrency
    # the host's token embedding rows are a lookup, not a read of the matrix
    host_read = (plan["host_weights_bytes"] - plan["embedding_bytes"]) * active + (
        kv_token_layer * host_kv_layers * context * concurrency
    )
    host_read += state_layer * host_rs_layers * concurrency
    return gpu_read / (gpu_bandwidth * decode_efficiency) + max(host_read, 0) / (
        plan["host_memory_bandwidth_bytes_per_s"] * decode_efficiency
    )
