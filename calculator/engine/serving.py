"""Serving plans: a deployment sized the way vLLM and SGLang allocate it at start-up.

`mode: "serving"` asks how a serving engine would lay out the GPUs' memory for the model, how
many tokens of KV cache and concurrent requests that leaves, whether it starts at all, and what
speed and cost a chosen concurrency gets.

vLLM (follows `Worker.determine_available_memory`, vllm/worker/worker.py after PR #10511 and
vllm/v1/worker/gpu_worker.py, 0.6.5 - 0.19): it may use total x gpu_memory_utilization; from
that it takes the weights, the torch activation peak of its profiling run and the memory
allocated outside torch during profiling (NCCL, cuBLAS); the rest becomes KV blocks of
block_size tokens (`KVCacheConfig`, kv_cache_utils.py). CUDA graphs are captured afterwards,
outside the budget. The profiling run (`vllm_version`): V1 (vLLM 0.8 on) runs a dummy forward of
max_num_batched_tokens tokens, frees its activations and runs the dummy sampler on
min(max_num_seqs, tokens) requests, so its peak is the larger of the two; V0 (0.6 - 0.10's
V0 worker) likewise, its forward eager and its sampler sorting the float32 logits for the dummy
top-k / top-p (`vllm_v0_forward_peak`, `vllm_v0_sampler_peak`). A float32 checkpoint is loaded as
bfloat16 (--dtype auto) unless weight_dtype asks for float32 (inputs.py). SGLang
(`ModelRunner.profile_max_num_token`): the KV pool is the memory free after the weights less
total x (1 - mem_fraction_static); activations live in that reserve.

Models with state layers (Qwen3-Next's Gated DeltaNet, Jamba's Mamba, Mamba-2, Nemotron-H,
Falcon-H1) follow vLLM v1's hybrid KV cache manager (`vllm_state_cache`); SGLang's Mamba pool
is not modelled, and those plans are refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calculator.engine.architecture import Architecture, StateLayers
from calculator.engine.errors import EstimateError
from calculator.engine.hardware import (
    MIN_FRACTION,
    TOKENS_PER_MILLION,
    Configuration,
    GpuSpec,
    HardwareRequest,
    Sizer,
    _number,
    _whole,
    configuration_for,
    forward_flops_per_token,
)
from calculator.engine.inputs import INPUT_LIMITS, SERVING_FIELDS
from calculator.engine.memory import CUDA_CONTEXT_BYTES
from calculator.engine.serving_llamacpp import (
    LLAMACPP_CACHE_TYPE,
    LLAMACPP_CACHE_TYPES,
    LLAMACPP_MAX_NGL,
    LLAMACPP_N_PARALLEL,
    LLAMACPP_N_UBATCH,
    llamacpp_memory,
    llamacpp_step_seconds,
)
from calculator.engine.speculative import (
    DraftMemory,
    Speculation,
    draft_memory,
    head_parameters,
    lm_head_parameters,
    parse_speculation,
)

SERVING_ENGINES = ("vllm", "sglang", "llama.cpp", "transformers")
GIB = 2**30
SECONDS_PER_HOUR = 3600

# vLLM: --gpu-memory-utilization 0.9 and --block-size 16 (vllm/config.py CacheConfig defaults)
VLLM_GPU_MEMORY_UTILIZATION = 0.9
VLLM_BLOCK_SIZE = 16
# vLLM's `vllm serve` defaults (vllm/engine/arg_utils.py, EngineArgs._set_default_args_v1,
# UsageContext.OPENAI_API_SERVER): GPUs of 70 GiB or more (H100-class) take 8192 batched tokens
# and 1024 sequences, smaller ones 2048 and 256
VLLM_LARGE_GPU_BYTES = 70 * GIB
VLLM_DEFAULTS_LARGE = (8192, 1024)
VLLM_DEFAULTS_SMALL = (2048, 256)
# Memory allocated outside torch while vLLM profiles (NCCL buffers and custom all-reduce grow it
# under tensor parallelism): vLLM PR #10511's sanity check, Meta-Llama-3-8B on H100,
# "non_torch_memory 1.79GiB" at -tp 1 and "3.58GiB" at -tp 2. An input: it varies by version.
VLLM_NON_TORCH_BYTES = {1: int(1.79 * GIB), 2: int(3.58 * GIB)}
# Whose profiling run the activation peak follows: "v1" (the V1 engine, vLLM 0.8 onwards and the
# only engine from 0.11: the dummy forward, then the dummy sampler on its freed activations) or
# "v0" (the V0 worker, vLLM 0.6 - 0.10: the eager forward, then the sorting sampler)
VLLM_VERSIONS = ("v1", "v0")
# SGLang's mem_fraction_static when not given, by tensor-parallel size (sglang/srt/server_args.py,
# ServerArgs.__post_init__, 0.4): 0.88 on one GPU, 0.87 from 2, 0.85 from 4, 0.81 from 8
SGLANG_MEM_FRACTION = ((8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))
# Output tokens per request when not given: the decode phase of the plan's requests
DEFAULT_OUTPUT_TOKENS = 256
# concurrency points of the curve (requests decoding at once)
CURVE_POINTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

SERVING_DEFAULTS: dict[str, Any] = {
    "engine": "vllm",
    "gpu_memory_utilization": None,  # vLLM 0.9; SGLang's mem_fraction_static by TP size
    "max_model_len": None,  # sequence_length
    "max_num_seqs": None,  # vLLM's default for the GPU
    "max_num_batched_tokens": None,  # vLLM's default for the GPU
    "block_size": VLLM_BLOCK_SIZE,
    "vllm_version": "v1",  # VLLM_VERSIONS: whose profiling run sizes the activation peak
    "output_tokens": DEFAULT_OUTPUT_TOKENS,
    "non_torch_bytes": None,  # VLLM_NON_TORCH_BYTES; SGLang: the CUDA context
    "target_output_tokens_per_s": None,  # no search for the cheapest deployment
    "speculative_method": None,  # no speculative decoding (engine.speculative)
    "num_speculative_tokens": None,  # required but for mtp (num_nextn_predict_layers)
    "draft_model": None,  # method draft_model: the draft's model object
    "acceptance_rate": None,  # speculative.DEFAULT_ACCEPTANCE_RATE
    # llama.cpp (llama-server): -ngl, -ub, -np, --cache-type-k, --cache-type-v
    "n_gpu_layers": None,  # all layers and the output layer
    "n_ubatch": LLAMACPP_N_UBATCH,
    "n_parallel": LLAMACPP_N_PARALLEL,
    "cache_type_k": LLAMACPP_CACHE_TYPE,
    "cache_type_v": LLAMACPP_CACHE_TYPE,
}
assert tuple(SERVING_DEFAULTS) == SERVING_FIELDS
# a share of the device's memory (vLLM --gpu-memory-utilization, SGLang --mem-fraction-static)
GPU_MEMORY_UTILIZATION_LIMITS = (MIN_FRACTION, 1)
SERVING_LIMITS: dict[str, tuple[int, int]] = {
    "max_model_len": INPUT_LIMITS["sequence_length"],
    "max_num_seqs": (1, 1_000_000),
    "max_num_batched_tokens": (1, 10_000_000),
    "block_size": (1, 1024),
    "output_tokens": (1, 10_000_000),
    "non_torch_bytes": (0, 2**40),
    "target_output_tokens_per_s": (1, 10**12),
    "n_gpu_layers": (0, LLAMACPP_MAX_NGL),
    "n_ubatch": (1, 1_000_000),
    "n_parallel": (1, 4096),
}


@dataclass(frozen=True)
class ServingRequest:
    engine: str
    gpu_memory_utilization: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    block_size: int
    output_tokens: int
    non_torch_bytes: int
    target_output_tokens_per_s: int | None
    speculation: Speculation | None = None
    vllm_version: str = "v1"

    @property
    def speculative_method(self) -> str | None:
        return None if self.speculation is None else self.speculation.method

    @property
    def num_speculative_tokens(self) -> int | None:
        return None if self.speculation is None else self.speculation.num_speculative_tokens

    @property
    def draft_model(self) -> Any:
        return None if self.speculation is None else self.speculation.draft_model

    @property
    def acceptance_rate(self) -> float | None:
        return None if self.speculation is None else self.speculation.acceptance_rate

    n_gpu_layers: int = LLAMACPP_MAX_NGL
    n_ubatch: int = LLAMACPP_N_UBATCH
    n_parallel: int = LLAMACPP_N_PARALLEL
    cache_type_k: str = LLAMACPP_CACHE_TYPE
    cache_type_v: str = LLAMACPP_CACHE_TYPE

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SERVING_FIELDS}


def _sglang_fraction(tensor_parallel: int) -> float:
    return next(f for size, f in SGLANG_MEM_FRACTION if tensor_parallel >= size)


def parse_serving(
    payload: Mapping[str, Any], gpu: GpuSpec, tensor_parallel: int, sequence_length: int
) -> ServingRequest:
    """The serving fields, validated, with the engine's own defaults filled in for `gpu`."""

    def given(name: str) -> Any:
        return payload.get(name)

    engine = given("engine") or "vllm"
    if engine not in SERVING_ENGINES:
        raise EstimateError("engine", f"must be one of {', '.join(SERVING_ENGINES)}")
    vllm_version = given("vllm_version") or "v1"
    if vllm_version not in VLLM_VERSIONS:
        raise EstimateError("vllm_version", f"must be one of {', '.join(VLLM_VERSIONS)}")
    whole = {
        name: _whole(name, given(name), *SERVING_LIMITS[name])
        for name in SERVING_LIMITS
        if given(name) is not None
    }
    utilization = given("gpu_memory_utilization")
    if utilization is None:
        utilization = {
            "vllm": VLLM_GPU_MEMORY_UTILIZATION,
            "sglang": _sglang_fraction(tensor_parallel),
            # transformers reserves nothing: its cache grows until the device is full
            "transformers": 1.0,
            # llama.cpp allocates its buffers at their sizes, up to the whole device
            "llama.cpp": 1.0,
        }[engine]
    utilization = _number(
        "gpu_memory_utilization", utilization, *GPU_MEMORY_UTILIZATION_LIMITS, open_low=False
    )
    large = gpu.memory_bytes >= VLLM_LARGE_GPU_BYTES and "a100" not in gpu.name.lower()
    batched_default, seqs_default = VLLM_DEFAULTS_LARGE if large else VLLM_DEFAULTS_SMALL
    max_model_len = whole.get("max_model_len", sequence_length)
    output_tokens = whole.get("output_tokens", min(DEFAULT_OUTPUT_TOKENS, max_model_len))
    if output_tokens > max_model_len:
        raise EstimateError(
            "output_tokens",
            f"must be at most max_model_len ({max_model_len:,}): a request's "
            "prompt and output share its context",
        )
    cache_types = {}
    for name in ("cache_type_k", "cache_type_v"):
        value = given(name)
        if value is None:
            value = LLAMACPP_CACHE_TYPE
        if not isinstance(value, str) or value not in LLAMACPP_CACHE_TYPES:
            raise EstimateError(name, f"must be one of {', '.join(LLAMACPP_CACHE_TYPES)}")
        cache_types[name] = value
    if engine == "llama.cpp" and tensor_parallel > 1:
        raise EstimateError(
            "gpu_count", "llama.cpp plans cover one GPU (its --split-mode layer is not modelled)"
        )
    if engine == "vllm":
        non_torch = VLLM_NON_TORCH_BYTES[1 if tensor_parallel == 1 else 2]
    elif engine == "transformers":
        non_torch = CUDA_CONTEXT_BYTES  # the whole device: the context is in it
    else:
        non_torch = CUDA_CONTEXT_BYTES
    return ServingRequest(
        engine=engine,
        gpu_memory_utilization=float(utilization),
        max_model_len=max_model_len,
        # llama-server decodes one request per slot (-np)
        max_num_seqs=whole.get(
            "max_num_seqs",
            whole.get("n_parallel", LLAMACPP_N_PARALLEL) if engine == "llama.cpp" else seqs_default,
        ),
        max_num_batched_tokens=whole.get("max_num_batched_tokens", batched_default),
        block_size=whole.get("block_size", 1 if engine == "transformers" else VLLM_BLOCK_SIZE),
        output_tokens=output_tokens,
        non_torch_bytes=whole.get("non_torch_bytes", non_torch),
        target_output_tokens_per_s=whole.get("target_output_tokens_per_s"),
        speculation=parse_speculation(payload, engine),
        vllm_version=vllm_version,
        n_gpu_layers=whole.get("n_gpu_layers", LLAMACPP_MAX_NGL),
        n_ubatch=whole.get("n_ubatch", LLAMACPP_N_UBATCH),
        n_parallel=whole.get("n_parallel", LLAMACPP_N_PARALLEL),
        **cache_types,
    )


# vLLM's rotary embedding (vllm/model_executor/layers/rotary_embedding.py, RotaryEmbedding
# __init__ and get_rope, 0.6 - 0.19): one cos_sin_cache buffer of [max_position, rotary_dim]
# (the cos and sin halves), cast to torch.get_default_dtype(), the model dtype while the model
# is built, and registered on the model: get_rope keeps one instance per shape (_ROPE_DICT), so
# the layers share it, every GPU holds it whole, and "Model loading took" counts it with the
# weights. max_position is max_position_embeddings, times the factor for the linear and dynamic
# scalings (LinearScalingRotaryEmbedding, DynamicNTKScalingRotaryEmbedding), the original
# length times the factor for YaRN (YaRNScalingRotaryEmbedding, DeepseekScalingRotaryEmbedding);
# Llama 3's rope_type "llama3" keeps max_position_embeddings. rotary_dim is head_dim x
# partial_rotary_factor (rotary_pct for GPT-NeoX), MLA's qk_rope_head_dim. Models without rope
# in their config (learned or no positions) and state-layer models add none; Gemma 3's second,
# local-attention cache is not counted.
VLLM_ROPE_SCALED = ("linear", "dynamic")
VLLM_ROPE_YARN = ("yarn", "deepseek_yarn")
VLLM_ROPE_KEYS = ("rope_theta", "rope_scaling", "rope_parameters", "rotary_pct", "rotary_emb_base")


def vllm_rope_cache_bytes(
    config: Mapping[str, Any] | None, architecture: Architecture, element: int
) -> int:
    """The bytes of vLLM's cos_sin_cache on each GPU, `config` the model's config.json."""
    if not isinstance(config, Mapping):
        return 0
    text = config.get("text_config")
    if isinstance(text, Mapping):
        config = {**config, **text}
    a = architecture
    if a.state_layers is not None or not any(key in config for key in VLLM_ROPE_KEYS):
        return 0
    positions = a.max_position_embeddings
    scaling = config.get("rope_scaling") or config.get("rope_parameters")
    if isinstance(scaling, Mapping):
        kind = scaling.get("rope_type") or scaling.get("type")
        factor = scaling.get("factor") or 1
        if kind in VLLM_ROPE_SCALED:
            positions = int(positions * factor)
        elif kind in VLLM_ROPE_YARN:
            original = scaling.get("original_max_position_embeddings") or positions
            positions = int(original * factor)
    if a.is_mla:
        rotary = a.qk_rope_head_dim
    else:
        fraction = config.get("partial_rotary_factor") or config.get("rotary_pct") or 1
        rotary = int(a.head_dim * fraction)
    return positions * rotary * element


# --- vLLM V0's profiling run (vllm/worker/model_runner.py, the V0 worker of 0.6 - 0.10) ------
# `ModelRunner.profile_run` splits max_num_batched_tokens over max_num_seqs dummy prompts with
# SamplingParams(top_p=0.99, top_k=vocab_size - 1) and runs `execute_model` once: the forward
# (eager, no torch.compile), whose intermediate tensors are freed when each layer returns, then
# `compute_logits` on the last position of each prompt and, on the driver worker (rank 0, whose
# profile the log prints) only, `Sampler.forward`. The torch peak worker.py reports is the larger
# of the two phases; the model's output hidden states stay alive through the sampler
# (execute_model's hidden_or_intermediate_states).
#
# The forward, a dense decoder layer as vLLM's models write it (llama.py LlamaDecoderLayer /
# LlamaMLP and the models that copy it): fused_add_rms_norm works in place on the hidden states
# and the residual, so a layer's peak is its MLP's: the residual, the normed input, the
# MergedColumnParallelLinear gate_up output [tokens, 2 x intermediate / tp], SiluAndMul's
# [tokens, intermediate / tp] and the RowParallelLinear down_proj output [tokens, hidden]
# (all-reduced in place by NCCL at profile sizes), in the model dtype. Non-gated MLPs hold one
# [tokens, intermediate / tp] less (fc1 and its activation). The attention block holds the
# residual, the normed input, the qkv output, the attention output and o_proj's output.
VLLM_V0_MLP_HIDDEN_TENSORS = 3  # residual, normed input, down_proj output
VLLM_V0_GATED_MLP_WIDTHS = 3  # gate_up (2) and SiluAndMul's output (1)
VLLM_V0_MLP_WIDTHS = 2  # fc1's output and its activation


def vllm_v0_forward_peak(
    architecture: Architecture, tokens: int, tensor_parallel: int, element: int
) -> int | None:
    """The torch bytes alive at the peak of vLLM V0's dummy forward of `tokens` tokens on one
    tensor-parallel rank; None where the layer is not a dense decoder layer (MoE, MLA, state
    layers, a vision tower), for which the generic inference forward is taken instead."""
    a = architecture
    if a.is_moe or a.is_mla or a.state_layers is not None or a.vision is not None:
        return None
    tp = tensor_parallel
    widths = VLLM_V0_GATED_MLP_WIDTHS if a.gated_mlp else VLLM_V0_MLP_WIDTHS
    mlp = VLLM_V0_MLP_HIDDEN_TENSORS * a.hidden_size + widths * a.intermediate_size // tp
    q = a.num_attention_heads * a.head_dim // tp
    kv = max(a.num_key_value_heads // tp, 1) * a.head_dim
    # residual, normed input, o_proj output; qkv; the attention output
    attention = 3 * a.hidden_size + (q + 2 * kv) + q
    return tokens * element * max(mlp, attention)


# The sampler (vllm/model_executor/layers/sampler.py, Sampler.forward and _apply_top_k_top_p;
# VLLM_USE_FLASHINFER_SAMPLER is off by default in 0.6.5, envs.py): compute_logits returns
# [requests, vocab] in the model dtype (LogitsProcessor gathers the vocabulary shards to rank 0:
# tensor_model_parallel_gather), held by execute_model; logits.to(torch.float) makes a float32
# copy (the same tensor for a float32 model); `logits.sort(dim=-1)` returns float32 values and
# int64 indices. PyTorch's CUDA sort (aten/src/ATen/native/cuda/Sort.cpp sort_cuda_kernel, then
# SortStable.cu launch_stable_sort_kernel, read at pytorch/pytorch 420d374; vLLM 0.6.5 pins torch
# 2.5.1) sorts a last dim over 4,096 (Sort.h should_use_small_sort) in segments of at most
# INT_MAX entries a pass, and allocates beside the outputs, for n = requests x vocab entries:
# - 128 or more segments, `segmented_sort_pairs`: reverse_indices (int64, 8 n) and
#   cub::DeviceSegmentedRadixSort::SortPairs' temporary storage, the alternate keys and values
#   buffers (DispatchSegmentedRadixSort, is_overwrite_okay false: 4 n + 8 n);
# - 2 to 127 segments, `segmented_sort_pairs_by_full_sort`: two int2 index-and-segment arrays
#   (8 n each), radix_sort_pairs' keys_out (4 n, keys_out is nullptr) and DeviceRadixSort's
#   alternate keys and int2 values (4 n + 8 n);
# - one segment (or a vocabulary of 1,000,000 or more), `segmented_sort_large_segments`: one
#   segment's worth at a time, nothing of n's size.
# After the sort, the top-k mask (bool), the softmax and its cumsum (float32), the top-p mask
# (bool) and the scatter's output (float32) are alive together with the sorted values and
# indices; the sampler's peak is the larger of that point and the sort's.
VLLM_V0_SORT_OUTPUT_BYTES = 4 + 8  # float32 values, int64 indices
VLLM_V0_SEGMENTED_SORT_BYTES = 8 + 4 + 8
VLLM_V0_FULL_SORT_BYTES = 8 + 8 + 4 + 4 + 8
VLLM_V0_FULL_SORT_MAX_SEGMENTS = 127
VLLM_V0_LARGE_SEGMENT = 1_000_000
VLLM_V0_SMALL_SORT = 4096
VLLM_V0_TOP_K_TOP_P_BYTES = 1 + 4 + 4 + 1 + 4  # masks, softmax, cumsum, scatter output
INT_MAX = 2**31 - 1


def vllm_v0_sort_temporaries(requests: int, vocab: int) -> int:
    """The bytes PyTorch's CUDA sort of [requests, vocab] float32 allocates beside its outputs."""
    if vocab <= VLLM_V0_SMALL_SORT:
        return 0  # sortKeyValueInplace: a bitonic sort in the outputs
    per_pass = min(requests * vocab, INT_MAX // vocab * vocab)
    segments = per_pass // vocab
    if segments == 1 or vocab >= VLLM_V0_LARGE_SEGMENT:
        # one segment's initial indices, and cub's alternate keys and values
        return vocab * VLLM_V0_SEGMENTED_SORT_BYTES
    if segments <= VLLM_V0_FULL_SORT_MAX_SEGMENTS:
        return per_pass * VLLM_V0_FULL_SORT_BYTES
    return per_pass * VLLM_V0_SEGMENTED_SORT_BYTES


def vllm_v0_sampler_peak(
    architecture: Architecture, tokens: int, requests: int, element: int
) -> int:
    """The torch bytes alive at vLLM V0's profiling sampler's peak on the driver worker,
    `element` the model dtype's."""
    vocab = architecture.vocab_size
    entries = requests * vocab
    hidden = tokens * architecture.hidden_size * element
    # the model-dtype logits and their float32 copy (none for a float32 model)
    logits = entries * (element + (4 if element != 4 else 0))
    sorted_ = entries * VLLM_V0_SORT_OUTPUT_BYTES
    at_sort = vllm_v0_sort_temporaries(requests, vocab)
    after_sort = entries * VLLM_V0_TOP_K_TOP_P_BYTES
    return hidden + logits + sorted_ + max(at_sort, after_sort)


# vLLM V1's profile_run (vllm/v1/worker/gpu_model_runner.py, 0.8 - 0.19): `_dummy_run` of
# max_num_batched_tokens tokens returns the last layer's hidden states, whose activations are
# freed before `_dummy_sampler_run` samples min(max_num_seqs, tokens) dummy requests; the torch
# peak gpu_worker.py reports ("torch peak memory increase") is the larger of the two. Alive at
# the sampler's peak:
# - profile_run's hidden states of every token and its copy at the requests' last positions
#   (hidden_states[logit_indices]), and _dummy_sampler_run's torch.rand_like of that copy, in the
#   model dtype;
# - the logits model.compute_logits returns, [requests, vocab] in the model dtype (every rank
#   gathers the whole vocabulary: LogitsProcessor's all-gather, so tensor parallelism does not
#   shrink it), held by _dummy_sampler_run;
# - Sampler.forward's logits.to(torch.float32) (vllm/v1/sample/sampler.py; the same tensor when
#   the model is float32), divided by the temperature in place;
# - TopKTopPSampler.forward_cuda's flashinfer_sample with the dummy top_k (vocab - 1) and top_p
#   (0.9): flashinfer.sampling.top_k_top_p_sampling_from_logits, top-k first, allocates the
#   masked logits (top_k_mask_logits) and their softmax, two float32 [requests, vocab] tensors
#   (vllm/v1/sample/ops/topk_topp_sampler.py; FlashInfer sampling.py). FlashInfer's path is
#   taken on CUDA when VLLM_USE_FLASHINFER_SAMPLER is not 0 and FlashInfer is installed (envs.py
#   defaults: None, then True); without it forward_native sorts the logits (float32 values and
#   int64 indices), which holds more. 14 bytes an entry in bfloat16 against the ~15 the 0.19
#   logs show is what points at the FlashInfer path there.
VLLM_V1_SAMPLER_FLOAT32_TENSORS = 2
VLLM_V1_HIDDEN_COPIES = 2  # hidden_states[logit_indices] and its rand_like


def vllm_v1_sampler_peak(
    architecture: Architecture, tokens: int, requests: int, element: int
) -> int:
    """The torch bytes alive at vLLM V1's dummy sampler's peak, `element` the model dtype's."""
    hidden = architecture.hidden_size * element * (tokens + VLLM_V1_HIDDEN_COPIES * requests)
    float32 = 4 * (VLLM_V1_SAMPLER_FLOAT32_TENSORS + (element != 4))
    return hidden + requests * architecture.vocab_size * (element + float32)


# --- vLLM v1's KV cache for models with state layers -------------------------------------------
# Followed from vLLM's code (v0.11, 2025-10; the files as read at commits 0144dd5 and 001cabc):
# - model_executor/layers/mamba/mamba_utils.py MambaStateShapeCalculator: per layer and request a
#   conv state of (conv_kernel - 1) x conv_dim / tp and a temporal (SSM) state: Mamba-1
#   (intermediate / tp, state_size), Mamba-2 (heads / tp, head_dim, state_size), Gated DeltaNet
#   (v_heads / tp, v_head_dim, k_head_dim); MambaStateDtypeCalculator: both in the model dtype
#   (mamba_cache_dtype and mamba_ssm_cache_dtype "auto": the SSM state takes the conv state's)
# - v1/kv_cache_interface.py MambaSpec.page_size_bytes: the sum of the two; with prefix caching
#   off (MambaModelConfig disables it for these models) its block is max_model_len tokens and a
#   request takes one block (max_memory_usage_bytes = page_size_bytes)
# - model_executor/models/config.py HybridAttentionMambaModelConfig: the attention block size
#   becomes 16 x cdiv(mamba page, 16 x attention page of one token) when the asked one is
#   smaller, and the mamba page is padded to that attention page ("Setting attention block size
#   to N tokens", "Padding mamba page size by X%"); pure state-space models
#   (Mamba2ForCausalLM: MambaModelConfig only) keep the unpadded mamba page
# - v1/core/kv_cache_utils.py: _get_kv_cache_groups_uniform_page_size splits each layer type
#   into groups of group_size layers (the fewest layers of a type, or the most when that is
#   under 1.5 x the fewest); get_kv_cache_config_from_groups: group_size tensors of num_blocks
#   pages, num_blocks = available // page // group_size, one block pool for every group;
#   _report_kv_cache_config logs num_blocks // groups x the smallest block size as "GPU KV cache
#   size: N tokens"; get_max_concurrency_for_kv_cache_config: num_blocks over the blocks of one
#   max_model_len request, cdiv(max_model_len, block) per attention group and one per state
#   group; _check_enough_kv_cache_memory: group_size x page x those blocks must fit
VLLM_BLOCK_ALIGNMENT = 16  # HybridAttentionMambaModelConfig: "multiple of 16" (FlashAttention)
VLLM_GROUP_SIZE_RATIO = 1.5  # _get_kv_cache_groups_uniform_page_size's heuristic


@dataclass(frozen=True)
class StateCache:
    """vLLM's KV cache for a model with state layers, on the busiest GPU."""

    attention_layers: int  # the model's, which the groups are made of
    state_layers: int
    block_size: int  # the attention layers' block (tokens); the state layers' is max_model_len
    state_page_bytes: int  # one layer's state of one request, before padding
    page_bytes: int  # one block of one layer, every group alike
    group_size: int  # layers a group has on this GPU: the tensors of num_blocks pages
    attention_groups: int
    state_groups: int
    num_blocks: int
    tokens: int  # "GPU KV cache size: N tokens"
    blocks_per_request: int  # a max_model_len request, all groups
    needed_bytes: int  # one max_model_len request: group_size x page x blocks_per_request
    max_model_len: int  # vLLM's estimate where one request does not fit (0: none)

    def as_dict(self) -> dict[str, int]:
        return {
            "attention_layers": self.attention_layers,
            "state_layers": self.state_layers,
            "block_size": self.block_size,
            "state_page_bytes": self.state_page_bytes,
            "page_bytes": self.page_bytes,
            "group_size": self.group_size,
            "attention_groups": self.attention_groups,
            "state_groups": self.state_groups,
            "blocks_per_request": self.blocks_per_request,
        }


def _model_dtype_bytes(weight_dtype: str) -> int:
    # vLLM runs quantised and 16-bit checkpoints in bfloat16 / float16 (--dtype auto), float32
    # only when asked; the states' "auto" dtype is that model dtype
    return 4 if weight_dtype == "float32" else 2


def vllm_state_page_bytes(state: StateLayers, tensor_parallel: int, element: int) -> int:
    """One layer's conv and temporal state of one request on one tensor-parallel rank
    (mamba_utils.py MambaStateShapeCalculator)."""
    tp = tensor_parallel
    conv_dim = state.conv_dim
    if state.kind == "mamba2" and state.groups % tp:
        # extra_groups_for_head_shards: B and C groups replicated up to tp so that each rank
        # holds the groups of its heads
        conv_dim += 2 * (tp - state.groups) * state.state_cols
    # Mamba-1 splits its intermediate channels (the state's rows), the others their heads
    split = state.state_rows if state.kind == "mamba" else state.state_heads
    for name, size in (("state channels", conv_dim), ("state heads", split)):
        if size % tp:
            # vllm/distributed/utils.py divide() asserts it
            raise EstimateError(
                "gpu_count",
                f"vLLM splits the {size} {name} of the {state.kind} layers over the "
                f"{tp} tensor-parallel ranks: they must divide evenly",
            )
    conv = conv_dim // tp * (state.conv_kernel - 1)
    return (conv + state.recurrent_elements // tp) * element


def vllm_state_cache(
    architecture: Architecture,
    configuration: Configuration,
    request: ServingRequest,
    element: int,
    bytes_per_token: int,
    available: int,
) -> StateCache:
    """vLLM v1's blocks for a model with state layers (hybrid or pure state space)."""
    state = architecture.state_layers
    assert state is not None
    # the groups are made from the whole model's layers (get_kv_cache_groups on the merged
    # specs); a pipeline stage holds about 1 / pp of each group's layers, which are strided over
    # the model (layers[i::num_groups]), and sizes its tensors by its largest group
    attention, states = architecture.num_attention_layers, state.count
    state_page = vllm_state_page_bytes(state, configuration.tensor_parallel, element)
    length = request.max_model_len
    if attention:
        # one layer's K and V of one token: the busiest stage's bytes over its attention layers
        stage_layers = -(-architecture.num_layers // configuration.pipeline_parallel)
        per_token = bytes_per_token // min(stage_layers, attention)
        unit = VLLM_BLOCK_ALIGNMENT * per_token
        block = max(request.block_size, VLLM_BLOCK_ALIGNMENT * -(-state_page // unit))
        page = block * per_token
        fewest, most = min(attention, states) or attention, max(attention, states)
        group_size = most if most < fewest * VLLM_GROUP_SIZE_RATIO else fewest
        attention_groups = -(-attention // group_size)
        smallest_block = min(block, length)
    else:
        block, page, group_size, attention_groups = length, state_page, states, 0
        smallest_block = length
    state_groups = -(-states // group_size)
    group_size = -(-group_size // configuration.pipeline_parallel)
    num_blocks = available // (page * group_size) if available > 0 else 0
    per_request = attention_groups * -(-length // block) + state_groups
    # _estimate_max_model_len_from_groups: the longest request whose blocks fit
    spare = max(available, 0) // (page * group_size) - state_groups
    longest = 0
    if attention_groups and spare >= attention_groups:
        longest = min(spare // attention_groups * block, length)
    return StateCache(
        attention_layers=attention,
        state_layers=states,
        block_size=block,
        state_page_bytes=state_page,
        page_bytes=page,
        group_size=group_size,
        attention_groups=attention_groups,
        state_groups=state_groups,
        num_blocks=num_blocks,
        tokens=num_blocks // (attention_groups + state_groups) * smallest_block,
        blocks_per_request=per_request,
        needed_bytes=group_size * page * per_request,
        max_model_len=longest,
    )


def _vllm_state_error(request: ServingRequest, available: int, cache: StateCache) -> str | None:
    """kv_cache_utils.py _check_enough_kv_cache_memory, in its words."""
    if available <= 0:
        return (
            "No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )
    if cache.needed_bytes <= available:
        return None
    estimate = (
        f"Based on the available memory, the estimated maximum model length is "
        f"{cache.max_model_len}. "
        if cache.max_model_len > 0
        else ""
    )
    return (
        f"To serve at least one request with the models's max seq len "
        f"({request.max_model_len}), ({cache.needed_bytes / GIB:.2f} GiB KV cache is needed, "
        f"which is larger than the available KV cache memory ({available / GIB:.2f} GiB). "
        f"{estimate}Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
        "when initializing the engine."
    )


def _start_error(
    request: ServingRequest, kv_bytes: int, tokens: int, per_token: int, state: int
) -> str | None:
    """What the engine says when it cannot hold one request of max_model_len, in its words."""
    needed = request.max_model_len * per_token + state
    # a pure state-space model's requests hold no tokens, only their state
    held = tokens >= request.max_model_len or per_token == 0
    if kv_bytes > 0 and held and kv_bytes >= needed:
        return None
    if request.engine == "sglang":
        # sglang/srt/model_executor/model_runner.py init_memory_pool
        return "Not enough memory. Please try to increase --mem-fraction-static."
    if request.engine == "transformers":
        return (
            "torch.OutOfMemoryError: CUDA out of memory: the weights, the prefill and the cache "
            f"of one {request.max_model_len}-token request need more than the GPU holds."
        )
    if kv_bytes <= 0:
        # vllm/v1/core/kv_cache_utils.py check_enough_kv_cache_memory
        return (
            "No available memory for the cache blocks. Try increasing "
            "`gpu_memory_utilization` when initializing the engine."
        )
    return (
        f"To serve at least one request with the models's max seq len "
        f"({request.max_model_len}), ({needed / GIB:.2f} GiB KV cache is needed, which is "
        f"larger than the available KV cache memory ({max(kv_bytes, 0) / GIB:.2f} GiB). "
        f"Based on the available memory, the estimated maximum model length is {tokens}. "
        "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
        "initializing the engine."
    )


def memory_plan(
    sizer: Sizer, configuration: Configuration, gpu: GpuSpec, request: ServingRequest
) -> dict[str, Any]:
    """How the engine lays out one GPU (the busiest) and what it says when it cannot start."""
    total = gpu.memory_bytes
    usable = int(total * request.gpu_memory_utilization)
    one = sizer.breakdown(configuration, batch_size=1, sequence_length=1)
    two = sizer.breakdown(configuration, batch_size=1, sequence_length=2)
    if one is None or two is None:
        raise EstimateError("gpu_count", "this model cannot be laid out on these GPUs")
    weights = one.weights
    if request.engine == "vllm":
        model = sizer.payload.get("model")
        weights += vllm_rope_cache_bytes(
            model.get("hf_config") if isinstance(model, Mapping) else None,
            sizer.architecture,
            _model_dtype_bytes(sizer.inputs.weight_dtype),
        )
    if request.engine == "llama.cpp":
        return llamacpp_memory(sizer.architecture, weights, total, request.non_torch_bytes, request)
    # what each token adds, and what a request holds whatever its length (hybrid models'
    # linear-attention / state-space layers keep a fixed state per sequence)
    bytes_per_token = two.kv_cache - one.kv_cache
    state_per_request = one.kv_cache - bytes_per_token
    state = sizer.architecture.state_layers
    if state is not None and request.engine == "sglang":
        raise EstimateError(
            "engine",
            "SGLang keeps the state of linear-attention / state-space layers in a separate Mamba "
            "pool (max_mamba_cache_size, mamba_full_memory_ratio) that this calculator does not "
            "model; plan this model with vllm or llama.cpp",
        )
    if state is not None and request.engine == "vllm" and request.speculation is not None:
        raise EstimateError(
            "speculative_method",
            "vLLM keeps num_speculative_tokens more conv positions and state blocks a request "
            "for state layers; speculative decoding is not modelled for this model",
        )
    draft = _draft(sizer, configuration, request)
    # vLLM v1 gives the draft's layers their own KV cache in the same blocks' budget: a block
    # of block_size tokens holds every layer's keys and values, the target's and the draft's
    bytes_per_token += draft.kv_bytes_per_token
    if request.engine == "vllm":
        profiled = sizer.breakdown(
            configuration, batch_size=1, sequence_length=request.max_num_batched_tokens
        )
        assert profiled is not None
        requests = min(request.max_num_seqs, request.max_num_batched_tokens)
        if request.vllm_version == "v0":
            element = _model_dtype_bytes(sizer.inputs.weight_dtype)
            forward = vllm_v0_forward_peak(
                sizer.architecture,
                request.max_num_batched_tokens,
                configuration.tensor_parallel,
                element,
            )
            sampler = vllm_v0_sampler_peak(
                sizer.architecture, request.max_num_batched_tokens, requests, element
            )
            activations = max(profiled.activations if forward is None else forward, sampler)
        else:
            sampler = vllm_v1_sampler_peak(
                sizer.architecture,
                request.max_num_batched_tokens,
                requests,
                _model_dtype_bytes(sizer.inputs.weight_dtype),
            )
            activations = max(profiled.activations, sampler)
        kv_bytes = usable - weights - draft.weights_bytes - activations - request.non_torch_bytes
    elif request.engine == "transformers":
        # generate() with a DynamicCache: nothing is reserved, the cache grows per token; what
        # the device holds beside the weights and the prefill's peak of one max_model_len
        # request (logits for its last position only) is what the requests' caches may take
        prefill = sizer.breakdown(
            configuration, batch_size=1, sequence_length=request.max_model_len
        )
        assert prefill is not None
        activations = prefill.activations
        kv_bytes = usable - weights - activations - request.non_torch_bytes
    else:
        # SGLang: free after the weights (and the context) less total x (1 - fraction)
        activations = 0
        kv_bytes = usable - weights - request.non_torch_bytes
    # the start-up budget, the same for every plan
    budget = {
        "total_memory_bytes": total,
        "usable_bytes": usable,
        "weights_bytes": weights,
        "activation_peak_bytes": activations,
        "non_torch_bytes": request.non_torch_bytes,
        "kv_cache_bytes": max(kv_bytes, 0),
        "kv_bytes_per_token": bytes_per_token,
    }
    if state is not None and request.engine == "vllm":
        cache = vllm_state_cache(
            sizer.architecture,
            configuration,
            request,
            _model_dtype_bytes(sizer.inputs.weight_dtype),
            bytes_per_token,
            kv_bytes,
        )
        error = _vllm_state_error(request, kv_bytes, cache)
        return {
            **budget,
            "num_blocks": cache.num_blocks,
            "kv_cache_tokens": cache.tokens,
            # the state groups' blocks of one request, their padding and padding layers with them
            "state_bytes_per_request": cache.state_groups * cache.group_size * cache.page_bytes,
            "max_concurrency": cache.num_blocks / cache.blocks_per_request,
            "starts": error is None,
            "error": error,
            "state_cache": cache.as_dict(),
        }
    blocks = 0
    page = bytes_per_token * request.block_size
    if kv_bytes > 0 and page:
        blocks = kv_bytes // page
    tokens = blocks * request.block_size
    if not bytes_per_token and state_per_request and kv_bytes > 0:
        # transformers on a pure state-space model: each request's state, whatever its length
        tokens = kv_bytes // state_per_request * request.max_model_len
    error = _start_error(request, kv_bytes, tokens, bytes_per_token, state_per_request)
    return {
        **budget,
        "num_blocks": blocks,
        "kv_cache_tokens": tokens,
        "state_bytes_per_request": state_per_request,
        # vLLM logs "Maximum concurrency for N tokens per request": its tokens / N; with a
        # fixed state per request (hybrid models) each request also takes that
        "max_concurrency": tokens / request.max_model_len
        if not state_per_request
        else max(kv_bytes, 0) / (request.max_model_len * bytes_per_token + state_per_request),
        "starts": error is None,
        "error": error,
        **(
            {
                "draft_weights_bytes": draft.weights_bytes,
                "draft_kv_bytes_per_token": draft.kv_bytes_per_token,
                "draft_parameters": draft.parameters,
            }
            if request.speculation is not None
            else {}
        ),
    }


def _draft(sizer: Sizer, configuration: Configuration, request: ServingRequest) -> DraftMemory:
    if request.speculation is None:
        return DraftMemory(0, 0, 0, None)
    return draft_memory(sizer, configuration, request.speculation)


def _step(
    sizer: Sizer,
    configuration: Configuration,
    gpu: GpuSpec,
    hardware: HardwareRequest,
    concurrency: int,
    context: int,
    tokens: int = 1,
) -> float:
    """Seconds of one decode step for `concurrency` requests at `context` tokens each: the
    slower of reading the active weights and their KV cache, and the matmuls (roofline)."""
    architecture = sizer.architecture
    # a request's cache at `context` tokens, its fixed state included (hybrid layers)
    one = sizer.breakdown(configuration, batch_size=1, sequence_length=context)
    assert one is not None
    total = architecture.num_parameters
    active = architecture.num_active_parameters or total
    weight_bytes = one.weights * active // total
    kv = one.kv_cache * concurrency
    efficiencies = hardware.efficiencies
    read = (weight_bytes + kv) / (gpu.memory_bandwidth_bytes_per_s * efficiencies.decode)
    # `tokens` a request (a speculative verification step scores k + 1 at once)
    flops = tokens * concurrency * forward_flops_per_token(architecture, context)
    compute = flops / (
        gpu.bf16_dense_flops_per_s * configuration.tensor_parallel * efficiencies.prefill
    )
    return configuration.pipeline_parallel * max(read, compute)


def performance(
    sizer: Sizer,
    configuration: Configuration,
    gpu: GpuSpec,
    hardware: HardwareRequest,
    request: ServingRequest,
    concurrency: int,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """TTFT, TPOT and tokens/s at `concurrency` requests decoding at once, per replica;
    `memory`: the plan's `memory_plan` where the caller has it (llama.cpp's step reads it)."""
    prompt = request.max_model_len - request.output_tokens
    # a request's context in the middle of its output, the average over its decode
    context = prompt + request.output_tokens // 2
    if request.engine == "llama.cpp":
        step = llamacpp_step_seconds(
            memory or memory_plan(sizer, configuration, gpu, request),
            sizer.architecture,
            gpu.memory_bandwidth_bytes_per_s,
            hardware.efficiencies.decode,
            concurrency,
            max(context, 1),
        )
    else:
        step = _step(sizer, configuration, gpu, hardware, concurrency, max(context, 1))
    speculative: dict[str, Any] | None = None
    if request.speculation is not None:
        speculative = speculative_step(
            sizer, configuration, gpu, hardware, request, concurrency, max(context, 1), step
        )
        step = speculative["seconds_per_token"]
    prefill_flops = max(prompt, 1) * forward_flops_per_token(sizer.architecture, max(prompt, 1))
    peak = (
        gpu.bf16_dense_flops_per_s * configuration.tensor_parallel * configuration.pipeline_parallel
    )
    ttft = prefill_flops / (peak * hardware.efficiencies.prefill)
    replicas = configuration.data_parallel
    return {
        "concurrency": concurrency,
        "ttft_s": ttft,
        "tpot_s": step,
        "output_tokens_per_s_per_request": 1 / step,
        "output_tokens_per_s": concurrency * replicas / step,
        "input_tokens_per_s": replicas * max(prompt, 1) / ttft,
        **({"speculative": speculative} if speculative is not None else {}),
    }


def speculative_step(
    sizer: Sizer,
    configuration: Configuration,
    gpu: GpuSpec,
    hardware: HardwareRequest,
    request: ServingRequest,
    concurrency: int,
    context: int,
    plain_step: float,
) -> dict[str, Any]:
    """One speculative step: k draft forwards and the target's verification of k + 1 tokens a
    request; the tokens it yields (Leviathan et al. 2023, eq. 1) and the time a token, against
    `plain_step`, the target's own decode step."""
    speculation = request.speculation
    assert speculation is not None
    k = speculation.num_speculative_tokens
    verify = _step(sizer, configuration, gpu, hardware, concurrency, context, tokens=k + 1)
    draft = _draft(sizer, configuration, request)
    if speculation.method == "ngram":
        draft_seconds = 0.0
    elif draft.sizer is not None:
        draft_seconds = _step(draft.sizer, configuration, gpu, hardware, concurrency, context)
    else:
        # the head's layer(s) and fc, and the target's LM head it shares for its logits
        one = sizer.breakdown(configuration, batch_size=1, sequence_length=1)
        assert one is not None
        head = lm_head_parameters(sizer.architecture)
        active = head_parameters(
            sizer.architecture, speculation.method, speculation.mtp_layers or 1, active=True
        )
        read_bytes = one.weights * (head + active) // sizer.architecture.num_parameters
        read_bytes += draft.kv_bytes_per_token * context * concurrency
        efficiencies = hardware.efficiencies
        read = read_bytes / (gpu.memory_bandwidth_bytes_per_s * efficiencies.decode)
        flops = 2 * concurrency * (active + head)
        compute = flops / (
            gpu.bf16_dense_flops_per_s * configuration.tensor_parallel * efficiencies.prefill
        )
        draft_seconds = configuration.pipeline_parallel * max(read, compute)
    step_seconds = verify + k * draft_seconds
    expected = speculation.tokens_per_step()
    return {
        "method": speculation.method,
        "num_speculative_tokens": k,
        "acceptance_rate": speculation.acceptance_rate,
        "tokens_per_step": expected,
        "verify_s": verify,
        "draft_s": draft_seconds,
        "step_s": step_seconds,
        "seconds_per_token": step_seconds / expected,
        "speedup": plain_step * expected / step_seconds,
    }


def _costs(
    price: float | None, gpu_count: int, rates: Mapping[str, Any]
) -> dict[str, float | None]:
    if price is None:
        return {
            "per_hour": None,
            "per_million_output_tokens": None,
            "per_million_input_tokens": None,
        }
    per_hour = price * gpu_count
    per_second = per_hour / SECONDS_PER_HOUR
    return {
        "per_hour": per_hour,
        "per_million_output_tokens": per_second * TOKENS_PER_MILLION / rates["output_tokens_per_s"],
        "per_million_input_tokens": per_second * TOKENS_PER_MILLION / rates["input_tokens_per_s"],
    }


def _plan_on(
    sizer: Sizer,
    configuration: Configuration,
    gpu: GpuSpec,
    hardware: HardwareRequest,
    request: ServingRequest,
    concurrency: int,
    price: float | None,
) -> dict[str, Any]:
    memory = memory_plan(sizer, configuration, gpu, request)
    # requests decode at once up to max_num_seqs and what the KV cache holds at full length
    held = max(int(memory["max_concurrency"]), 0)
    limit = min(request.max_num_seqs, held)
    running = min(concurrency, limit) if limit else 0
    plan: dict[str, Any] = {
        "memory": memory,
        "concurrency_limit": limit,
        "performance": None,
        "cost": None,
    }
    if memory["starts"] and running:
        rates = performance(sizer, configuration, gpu, hardware, request, running, memory)
        plan["performance"] = rates
        plan["cost"] = _costs(price, configuration.num_gpus, rates)
    return plan


def serving_answer(
    sizer: Sizer,
    configuration: Configuration,
    hardware: HardwareRequest,
    request: ServingRequest,
    *,
    fit_gpus: Sequence[GpuSpec] = (),
) -> dict[str, Any]:
    """The response's `serving`: the plan on the GPUs asked for, a curve of speed against
    concurrency, and (with a target rate) the cheapest catalog deployments that meet it."""
    gpu = hardware.gpu
    assert gpu is not None
    price = gpu.price_per_hour_usd if hardware.price_per_hour is None else hardware.price_per_hour
    concurrency = sizer.inputs.batch_size
    answer = _plan_on(sizer, configuration, gpu, hardware, request, concurrency, price)
    answer = {
        "engine": request.engine,
        "follows": ENGINE_CODE[request.engine],
        "gpu": gpu.slug,
        "gpu_count": configuration.num_gpus,
        "configuration": configuration.as_dict(),
        **answer,
        "curve": [],
        "deployments": None,
    }
    limit = answer["concurrency_limit"]
    if answer["memory"]["starts"] and limit:
        points = sorted({*(c for c in CURVE_POINTS if c < limit), limit})
        answer["curve"] = [
            {name: rates[name] for name in ("concurrency", "tpot_s", "output_tokens_per_s")}
            for rates in (
                performance(sizer, configuration, gpu, hardware, request, c, answer["memory"])
                for c in points
            )
        ]
    if request.target_output_tokens_per_s is not None:
        answer["deployments"] = cheapest_deployments(
            sizer, hardware, request, [gpu, *(g for g in fit_gpus if g != gpu)]
        )
    return answer


ENGINE_CODE = {
    "transformers": "transformers generate() with DynamicCache (no preallocation, block_size 1)",
    "vllm": "vLLM 0.6.5-0.19: determine_available_memory (V0 worker.py, V1 gpu_worker.py), "
    "kv_cache_utils.py",
    "sglang": "SGLang 0.4: ModelRunner.profile_max_num_token, ServerArgs.mem_fraction_static",
    "llama.cpp": "llama.cpp b4000-b6000: llama-model.cpp load_tensors, llama-kv-cache.cpp; "
    "flash attention on; layers on the CPU read at 102.4 GB/s host bandwidth (DDR5-6400 x2)",
}
# GPU counts the cheapest-deployment search tries (tensor parallel within one server)
DEPLOYMENT_GPU_COUNTS = (1, 2, 4, 8)


def cheapest_deployments(
    sizer: Sizer, hardware: HardwareRequest, request: ServingRequest, gpus: Sequence[GpuSpec]
) -> list[dict[str, Any]]:
    """Each GPU type at the fewest of 1, 2, 4, 8 that starts and reaches the target output
    rate at its concurrency limit, cheapest per hour first (unpriced GPUs last)."""
    target = request.target_output_tokens_per_s
    assert target is not None
    rows = []
    for gpu in gpus:
        price = (
            gpu.price_per_hour_usd if hardware.price_per_hour is None else hardware.price_per_hour
        )
        for count in DEPLOYMENT_GPU_COUNTS:
            configuration = configuration_for(sizer, count)
            try:
                gpu_request = parse_serving(
                    {
                        **sizer.payload,  # the model, which mtp's layer count is read from
                        **request.as_dict(),
                        "gpu_memory_utilization": request.gpu_memory_utilization,
                    },
                    gpu,
                    configuration.tensor_parallel,
                    request.max_model_len,
                )
                plan = _plan_on(
                    sizer, configuration, gpu, hardware, gpu_request, request.max_num_seqs, price
                )
            except EstimateError:
                continue
            rates = plan["performance"]
            if rates is None or rates["output_tokens_per_s"] < target:
                continue
            rows.append(
                {
                    "gpu": gpu.slug,
                    "name": gpu.name,
                    "gpu_count": count,
                    "configuration": configuration.as_dict(),
                    "concurrency": rates["concurrency"],
                    "output_tokens_per_s": rates["output_tokens_per_s"],
                    "tpot_s": rates["tpot_s"],
                    "per_hour": plan["cost"]["per_hour"],
                    "per_million_output_tokens": plan["cost"]["per_million_output_tokens"],
                }
            )
            break
    return sorted(rows, key=lambda row: (row["per_hour"] is None, row["per_hour"] or 0))
