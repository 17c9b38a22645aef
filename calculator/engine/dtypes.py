"""Number formats: what one weight, one KV-cache element or one activation costs in bytes.

Formats that only exist for weights (bitsandbytes NF4, GPTQ, AWQ, GGUF) carry per-block
metadata (scales, zeros, index tables); `linear_weight_bytes` counts it per matrix, exactly, from
the layout each library uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

FLOAT_FORMATS = ("float32", "float16", "bfloat16")
KV_CACHE_DTYPES = ("float32", "float16", "bfloat16", "float8", "int8", "int4")
WEIGHT_ONLY_DTYPES = (
    "nf4",
    "nf4_no_dq",
    "fp4",
    "gptq_int4",
    "awq_int4",
    "gguf_q8_0",
    "gguf_q4_k_m",
    "mxfp4",
    "fp8_block",
    "nvfp4",
)
WEIGHT_DTYPES = KV_CACHE_DTYPES + WEIGHT_ONLY_DTYPES

# bytes per element of the formats that exist as plain tensors (the original app's table)
ELEMENT_BYTES: dict[str, Fraction] = {
    "float32": Fraction(4),
    "float16": Fraction(2),
    "bfloat16": Fraction(2),
    "float8": Fraction(1),
    "int8": Fraction(1),
    "int4": Fraction(1, 2),
}

# Bytes of the 16-bit copies that quantised formats keep (embeddings, LM head, norms, biases)
UNQUANTISED_BYTES = 2
# GGUF files store norms and biases in float32 (llama.cpp convert_hf_to_gguf: 1-D tensors stay F32)
GGUF_NORM_BYTES = 4

# bitsandbytes NF4 (QLoRA paper, Dettmers et al. 2023): 4-bit codes, one absmax per 64 weights,
# double-quantised to 8 bits, with one fp32 absmax per 256 of those: 4 + 8/64 + 32/16384 = 4.127
NF4_BLOCK = 64
NF4_ABSMAX_BYTES = 1
NF4_DOUBLE_QUANT_BLOCK = 256
NF4_DOUBLE_QUANT_ABSMAX_BYTES = 4
# without double quantisation (bnb_4bit_use_double_quant=False, transformers' default; litgpt
# bnb.nf4 / bnb.fp4) each 64-value block keeps a float32 absmax: 4 + 32/64 = 4.5 bits per weight
# (bitsandbytes functional.quantize_4bit, blocksize=64); FP4 stores the same way
BNB_4BIT_ABSMAX_BYTES = 4
BNB_4BIT_DTYPES = ("nf4", "nf4_no_dq", "fp4")

# GPTQ / AWQ 4-bit, group size 128 (AutoGPTQ / AutoAWQ QuantLinear): packed int32 qweight,
# per group an fp16 scale and a 4-bit zero packed 8 per int32; GPTQ also keeps an int32 g_idx
# per input feature (act-order permutation)
GROUP_QUANT_SIZE = 128
GROUP_QUANT_SCALE_BYTES = 2
GROUP_QUANT_ZEROS_PER_INT32 = 8
GPTQ_G_IDX_BYTES = 4

# Plain int4 (torchao int4_weight_only, group 128): bf16 scale and bf16 zero point per group
INT4_GROUP_SIZE = 128
INT4_SCALE_AND_ZERO_BYTES = 4

# bitsandbytes LLM.int8 (Int8Params): int8 weights plus the fp32 absmax of each output row (SCB)
INT8_ROW_SCALE_BYTES = 4
# float8 weights (FBGEMM fp8 / compressed-tensors channel-wise): fp32 scale per output row
FLOAT8_ROW_SCALE_BYTES = 4

# bitsandbytes replaces `type(module) is nn.Linear` only (transformers integrations/bitsandbytes.py
# replace_with_bnb_linear): transformers 5's fused MoE experts and routers, bare nn.Parameters,
# stay in 16-bit
LINEAR_MODULE_ONLY_DTYPES = ("nf4", "nf4_no_dq", "fp4", "int8")

# GGUF Q8_0 (ggml block_q8_0): 32 int8 weights + an fp16 scale = 34 bytes per 32 weights
GGUF_Q8_0_BLOCK = 32
GGUF_Q8_0_BLOCK_BYTES = 34
# GGUF Q4_K_M mixes Q4_K with Q6_K for some tensors; llama.cpp tools/quantize QUANT_OPTIONS
# lists 4.58 GiB for Llama-3-8B (8,030,261,248 params): 4.58 * 2**33 / 8,030,261,248 = 4.90 bpw
GGUF_Q4_K_M_BITS_PER_WEIGHT = Fraction(49, 10)

# OCP Microscaling (MX) v1.0 MXFP4: blocks of 32 FP4 E2M1 values (4 bits) along the input
# dimension sharing one E8M0 scale (1 byte): 4.25 bits per weight (transformers
# integrations/mxfp4.py Mxfp4GptOssExperts: *_blocks uint8 [.., out, in/32, 16] and
# *_scales uint8 [.., out, in/32])
MXFP4_BLOCK = 32
MXFP4_SCALE_BYTES = 1
# FP8 E4M3 with block scales (DeepSeek-V3 README_WEIGHTS, transformers finegrained_fp8.FP8Linear):
# 1 byte per weight and one float32 weight_scale_inv per 128 x 128 tile, ceil-divided per dimension
FP8_BLOCK = 128
FP8_BLOCK_SCALE_BYTES = 4
# NVIDIA NVFP4 (TensorRT Model Optimizer, compressed-tensors nvfp4-pack-quantized): blocks of 16
# FP4 E2M1 values with an FP8 E4M3 scale each (4.5 bits per weight), plus one float32
# weight_global_scale per tensor
NVFP4_BLOCK = 16
NVFP4_SCALE_BYTES = 1
NVFP4_GLOBAL_SCALE_BYTES = 4
# Formats whose checkpoints keep the MoE routers in 16-bit (transformers 5's routers are bare
# parameters that finegrained_fp8 does not replace; gpt-oss lists `mlp.router` in
# modules_to_not_convert; compressed-tensors recipes ignore `mlp.gate`)
ROUTER_16_BIT_DTYPES = ("mxfp4", "fp8_block", "nvfp4")


@dataclass(frozen=True)
class Dtype:
    name: str
    label: str  # for people: "bfloat16", "bitsandbytes NF4 (double quantisation)"
    quantised: bool  # linear weights stored in fewer than 16 bits, with metadata
    weight_only: bool  # exists only as a weight format (not for the KV cache)
    gguf: bool = False


DTYPES: dict[str, Dtype] = {
    "float32": Dtype("float32", "float32", quantised=False, weight_only=False),
    "float16": Dtype("float16", "float16", quantised=False, weight_only=False),
    "bfloat16": Dtype("bfloat16", "bfloat16", quantised=False, weight_only=False),
    "float8": Dtype("float8", "float8 (per-channel scales)", quantised=True, weight_only=False),
    "int8": Dtype("int8", "int8 (bitsandbytes LLM.int8)", quantised=True, weight_only=False),
    "int4": Dtype("int4", "int4 (group 128)", quantised=True, weight_only=False),
    "nf4": Dtype("nf4", "NF4 (bitsandbytes, double quant)", quantised=True, weight_only=True),
    "nf4_no_dq": Dtype(
        "nf4_no_dq", "NF4 (bitsandbytes, no double quant)", quantised=True, weight_only=True
    ),
    "fp4": Dtype("fp4", "FP4 (bitsandbytes)", quantised=True, weight_only=True),
    "gptq_int4": Dtype("gptq_int4", "GPTQ 4-bit, group 128", quantised=True, weight_only=True),
    "awq_int4": Dtype("awq_int4", "AWQ 4-bit, group 128", quantised=True, weight_only=True),
    "gguf_q8_0": Dtype("gguf_q8_0", "GGUF Q8_0", quantised=True, weight_only=True, gguf=True),
    "gguf_q4_k_m": Dtype("gguf_q4_k_m", "GGUF Q4_K_M", quantised=True, weight_only=True, gguf=True),
    "mxfp4": Dtype("mxfp4", "MXFP4 (OCP microscaling)", quantised=True, weight_only=True),
    "fp8_block": Dtype(
        "fp8_block", "FP8 E4M3, 128x128 block scales", quantised=True, weight_only=True
    ),
    "nvfp4": Dtype("nvfp4", "NVFP4 (16-value blocks)", quantised=True, weight_only=True),
}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def linear_weight_bytes(dtype: str, in_features: int, out_features: int) -> Fraction:
    """Bytes of one `in_features x out_features` weight matrix stored in `dtype`, metadata
    included (biases are not part of it)."""
    n = in_features * out_features
    if dtype in ELEMENT_BYTES and not DTYPES[dtype].quantised:
        return ELEMENT_BYTES[dtype] * n
    if dtype == "nf4":
        # bitsandbytes quantize_4bit: blocks of 64 over the flattened matrix, then
        # quantize_blockwise(absmax, blocksize=256) for the double quantisation
        blocks = _ceil_div(n, NF4_BLOCK)
        return (
            Fraction(n, 2)
            + blocks * NF4_ABSMAX_BYTES
            + _ceil_div(blocks, NF4_DOUBLE_QUANT_BLOCK) * NF4_DOUBLE_QUANT_ABSMAX_BYTES
        )
    if dtype in ("nf4_no_dq", "fp4"):
        return Fraction(n, 2) + _ceil_div(n, NF4_BLOCK) * BNB_4BIT_ABSMAX_BYTES
    if dtype in ("gptq_int4", "awq_int4"):
        groups = _ceil_div(in_features, GROUP_QUANT_SIZE)
        size = (
            Fraction(n, 2)
            + groups * out_features * GROUP_QUANT_SCALE_BYTES
            + groups * _ceil_div(out_features, GROUP_QUANT_ZEROS_PER_INT32) * 4
        )
        return size + in_features * GPTQ_G_IDX_BYTES if dtype == "gptq_int4" else size
    if dtype == "int4":
        groups = _ceil_div(in_features, INT4_GROUP_SIZE)
        return Fraction(n, 2) + groups * out_features * INT4_SCALE_AND_ZERO_BYTES
    if dtype == "int8":
        return Fraction(n) + out_features * INT8_ROW_SCALE_BYTES
    if dtype == "float8":
        return Fraction(n) + out_features * FLOAT8_ROW_SCALE_BYTES
    if dtype == "gguf_q8_0":
        return Fraction(_ceil_div(n, GGUF_Q8_0_BLOCK) * GGUF_Q8_0_BLOCK_BYTES)
    if dtype == "gguf_q4_k_m":
        return GGUF_Q4_K_M_BITS_PER_WEIGHT * n / 8
    if dtype == "mxfp4":
        # per output row: ceil(in/32) blocks of 16 bytes of FP4 pairs plus a 1-byte scale
        blocks = out_features * _ceil_div(in_features, MXFP4_BLOCK)
        return Fraction(blocks * (MXFP4_BLOCK // 2 + MXFP4_SCALE_BYTES))
    if dtype == "fp8_block":
        tiles = _ceil_div(out_features, FP8_BLOCK) * _ceil_div(in_features, FP8_BLOCK)
        return Fraction(n + tiles * FP8_BLOCK_SCALE_BYTES)
    if dtype == "nvfp4":
        blocks = out_features * _ceil_div(in_features, NVFP4_BLOCK)
        return Fraction(blocks * (NVFP4_BLOCK // 2 + NVFP4_SCALE_BYTES) + NVFP4_GLOBAL_SCALE_BYTES)
    raise KeyError(dtype)


def other_parameter_bytes(dtype: str) -> Fraction:
    """Bytes per parameter of what is neither a linear weight nor an embedding (norms, biases,
    routers): the format itself for float formats, 16-bit beside quantised linear layers,
    float32 in GGUF files."""
    if not DTYPES[dtype].quantised:
        return ELEMENT_BYTES[dtype]
    if DTYPES[dtype].gguf:
        return Fraction(GGUF_NORM_BYTES)
    return Fraction(UNQUANTISED_BYTES)


def embedding_bytes(dtype: str, parameters: int) -> Fraction:
    """Bytes of token embeddings / LM head: kept 16-bit beside quantised linear layers
    (bitsandbytes, GPTQ, AWQ skip them), quantised like the rest in GGUF files (llama.cpp
    quantises token_embd and output; the Q4_K_M average above already includes them)."""
    if DTYPES[dtype].gguf:
        return linear_weight_bytes(dtype, parameters, 1)
    return other_parameter_bytes(dtype) * parameters
