"""The estimate contract's request: validation and normalisation into `EstimateInputs`.

Every field of docs/design.md's contract is checked here, once; the formulas trust what they get.
Bad input raises `EstimateError(field, message)` naming the contract field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from calculator.engine import architecture as architecture_module
from calculator.engine import vision
from calculator.engine.architecture import LORA_ALL_LINEAR, Architecture
from calculator.engine.checkpoint import CheckpointFormat, describe_checkpoint
from calculator.engine.dtypes import DTYPES, FLOAT_FORMATS, KV_CACHE_DTYPES, WEIGHT_DTYPES
from calculator.engine.errors import EstimateError

# serving: inference sized as a serving engine lays it out (engine/serving.py; needs a gpu)
MODES = ("inference", "training", "serving")
METHODS = ("detailed", "standard")
ATTENTION_IMPLEMENTATIONS = ("flash", "eager")
# paged_*: bitsandbytes PagedAdamW / PagedAdamW8bit (states in CUDA unified memory)
OPTIMIZERS = (
    "adamw",
    "adamw_8bit",
    "sgd",
    "sgd_momentum",
    "paged_adamw",
    "paged_adamw_8bit",
    "adafactor",
)
# the original app's optimizers, all the standard method's formulas know (engine/standard.py)
STANDARD_OPTIMIZERS = ("adamw", "adamw_8bit", "sgd", "sgd_momentum")
FINETUNING_METHODS = ("full", "lora", "qlora", "partial")
ALL_LINEAR = LORA_ALL_LINEAR  # "all-linear"
LORA_TARGET_MODULES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    # fused or differently named projections of other families (each family's HF module names):
    # phi3 qkv_proj / gate_up_proj, gpt_neox and falcon query_key_value / dense /
    # dense_h_to_4h / dense_4h_to_h, gpt2 and gpt_bigcode c_attn / c_proj / c_fc, phi fc1 / fc2
    "qkv_proj",
    "gate_up_proj",
    "query_key_value",
    "dense",
    "dense_h_to_4h",
    "dense_4h_to_h",
    "c_attn",
    "c_proj",
    "c_fc",
    "fc1",
    "fc2",
    # state-space mixers' projections (Jamba's Mamba, the Mamba-2 families' Mamba2Mixer); PEFT
    # refuses out_proj of the Mamba-2 families (families/common.py LinearLayer.peft_refuses)
    "in_proj",
    "out_proj",
)
# What the estimate describes (docs/design.md, runtime_overhead): torch.cuda.max_memory_allocated
# reports (tensors only), torch.cuda.max_memory_reserved (the caching allocator's segments,
# engine/memory.py caching_allocator_reserved) or the whole device as nvidia-smi shows it (plus
# the CUDA context)
MEMORY_VIEWS = ("allocated", "reserved", "device")
# the dtype LoRA adapters are kept in: PEFT upcasts them to float32 (autocast_adapter_dtype);
# litgpt, torchtune and Unsloth keep them in the model's 16-bit dtype
LORA_ADAPTER_DTYPES = ("float32", "bfloat16", "float16")
# which positions the prefill computes logits for: generate() keeps the last (logits_to_keep=1);
# a plain forward (pipelines before transformers 4.45, litgpt, scoring runs) computes all
INFERENCE_LOGITS = ("last", "all")
# training loss: one cross-entropy over all the logits, torchtune's CEWithChunkedOutputLoss, or
# that loss with its compute_cross_entropy compiled (torchtune training.compile_loss)
CROSS_ENTROPY_IMPLEMENTATIONS = ("plain", "chunked", "chunked_compiled")
# How bitsandbytes' MatMul4Bit dequantises a 4-bit weight for a matmul over more than one token
# (F.dequantize_4bit(B, quant_state).to(A.dtype)): dequantize_4bit returns quant_state.dtype, the
# dtype the weight was quantised from. "compute": quantised from the compute dtype (bitsandbytes
# 0.43+ keeps the loaded dtype, Params4bit._quantize), one 16-bit copy; "float16_then_bfloat16":
# quantised from float16 (bitsandbytes 0.41-0.42 Params4bit.cuda `.half()`, Lightning Fabric's
# BitsandbytesPrecision `_quantize_weight` `.to(dtype=torch.half)`) and computed in bfloat16, so
# `.to(A.dtype)` makes a second copy; "float16_then_float32": the same cast to a float32 compute
# dtype (transformers' bnb_4bit_compute_dtype default, float32, on float16 inputs)
BNB_4BIT_DEQUANT_PATHS = ("compute", "float16_then_bfloat16", "float16_then_float32")
# The GPTQ QuantLinear that runs gptq_int4 layers (AutoGPTQ 0.5.0, chosen by transformers' /
# optimum's GPTQConfig use_exllama and exllama_config version): "exllama" (transformers' default,
# GPTQConfig.post_init exllama_config {"version": 1}), "exllamav2" (optimum's GPTQQuantizer
# default), "cuda_old" (use_exllama False without act-order); engine/detailed.py
# gptq_kernel_buffers
GPTQ_KERNELS = ("exllama", "exllamav2", "cuda_old")
# bitsandbytes LLM.int8's matmul (engine/detailed.py int8_matmul_buffers): "row_major"
# (bitsandbytes 0.45+, int8_linear_matmul on row-major int8 weights) or "col32" (0.37-0.44,
# igemmlt on col_turing / col_ampere weights)
BNB_INT8_MATMULS = ("row_major", "col32")
MODEL_SOURCES = ("hf_config", "architecture")
# Who shards under zero_stage 2 and 3: DeepSpeed with its own defaults, DeepSpeed as the HF
# Trainer configures "auto" (buckets of hidden_size**2), or PyTorch FSDP (stage 3 FULL_SHARD,
# stage 2 SHARD_GRAD_OP, one unit per decoder layer); engine/memory.py _sharding_working_set
SHARDINGS = ("deepspeed", "deepspeed_hf_auto", "fsdp")
# What training keeps in host RAM instead: DeepSpeed offload_optimizer (ZeRO-Offload, stage 1-3),
# with offload_param (ZeRO-3); FSDP's CPUOffload(offload_params=True) moves both (stage 3)
OFFLOADS = ("none", "optimizer", "optimizer_and_parameters")

# (min, max) of every numeric field; the forms and the API reuse them
INPUT_LIMITS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 1_000_000),
    "sequence_length": (1, 100_000_000),
    "trainable_percent": (0, 100),
    "lora_rank": (1, 65_536),
    "num_gpus": (1, 100_000),
    "tensor_parallel": (1, 100_000),
    "pipeline_parallel": (1, 100_000),
    "expert_parallel": (1, 100_000),
    "context_parallel": (1, 100_000),
    "zero_stage": (0, 3),
    "gradient_accumulation_steps": (1, 1_000_000),
    "checkpoint_every_k_layers": (1, 10_000),
    "runtime_overhead_bytes": (0, 2**40),
    # images in each sequence (vision-language models), and their size in pixels
    "images_per_request": (0, 10_000),
    "image_height": (1, 100_000),
    "image_width": (1, 100_000),
}

DEFAULTS: dict[str, Any] = {
    "mode": "inference",
    "method": "detailed",
    "batch_size": 1,
    "sequence_length": 2048,  # the original app's default
    "weight_dtype": None,  # the model's default dtype (nf4 for qlora)
    "kv_cache_dtype": None,  # follows the weights; bfloat16 beside quantised weights
    "attention_implementation": "flash",
    "optimizer": "adamw",
    "finetuning": "full",
    "trainable_percent": 100,
    "lora_rank": 16,
    "lora_target_modules": ALL_LINEAR,
    "mixed_precision": False,
    "gradient_checkpointing": False,
    "num_gpus": 1,
    "tensor_parallel": None,  # with pipeline_parallel: suggested for num_gpus (suggested_layout)
    "pipeline_parallel": None,
    "expert_parallel": 1,  # MoE: routed experts split over ranks (vLLM EP / Megatron-Core EP)
    "context_parallel": 1,  # training: the sequence split over ranks (Megatron-Core CP)
    "zero_stage": 0,
    "sharding": "deepspeed",
    "offload": "none",
    "gradient_accumulation_steps": 1,
    "checkpoint_every_k_layers": 1,
    "recompute_core_attention": False,
    "lora_adapter_dtype": "float32",
    "inference_logits": "last",
    "bnb_4bit_saves_inputs": False,
    "lora_dropout": False,  # PEFT LoraConfig's lora_dropout=0.0
    "bnb_4bit_dequant_path": "compute",
    "gptq_kernel": "exllama",
    "bnb_int8_matmul": "row_major",
    "quantise_lm_head": False,
    "fused_qkv_attention": False,  # transformers' separate q/k/v projections
    "previous_graph_alive": False,  # the loop drops each micro-batch's graph after backward
    "cross_entropy": "plain",  # one cross-entropy over the whole logits (transformers)
    "optimizer_in_backward": False,  # optimizer.step() after backward, every gradient kept
    "activation_offloading": False,  # saved activations stay on the GPU
    "memory_view": None,  # None: the runtime_overhead default of engine 2.3 (1 GiB)
    "runtime_overhead_bytes": None,  # the engine's default
    "images_per_request": 0,  # text only
    "image_height": None,  # the size the model's processor resizes every image to
    "image_width": None,
}
FIELDS = ("model", *DEFAULTS)
# Optional fields asking for GPU answers (fit, capacity, throughput, cost); engine.hardware
# validates them, the memory estimate ignores them
HARDWARE_FIELDS = (
    "gpu",
    "gpu_count",
    "price_per_hour",
    "memory_utilization",
    "decode_efficiency",
    "prefill_efficiency",
    "training_efficiency",
    "training_tokens",
    "epochs",
)
# Optional fields of a serving plan (mode "serving"); engine.serving validates them
SERVING_FIELDS = (
    "engine",
    "gpu_memory_utilization",
    "max_model_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "block_size",
    "vllm_version",
    "output_tokens",
    "non_torch_bytes",
    "target_output_tokens_per_s",
    "speculative_method",
    "num_speculative_tokens",
    "draft_model",
    "acceptance_rate",
    "n_gpu_layers",
    "n_ubatch",
    "n_parallel",
    "cache_type_k",
    "cache_type_v",
)
_KNOWN_FIELDS = frozenset((*FIELDS, *HARDWARE_FIELDS, *SERVING_FIELDS))

# Quantised base weights cannot be trained directly: only adapters on top of them
TRAINABLE_WEIGHT_DTYPES = FLOAT_FORMATS
# PEFT adapts GPTQ/AWQ/bitsandbytes/torchao layers; GGUF is dequantised on load by transformers
LORA_BASE_DTYPES = (
    "float32",
    "float16",
    "bfloat16",
    "float8",
    "int8",
    "int4",
    "gptq_int4",
    "awq_int4",
)
# bitsandbytes Linear4bit bases: NF4 with or without double quantisation, FP4
QLORA_BASE_DTYPES = ("nf4", "nf4_no_dq", "fp4")

_ARCHITECTURE_CACHE_SIZE = 256
_architecture_cache: dict[tuple[str, str], tuple[Architecture, tuple[str, ...]]] = {}


@dataclass(frozen=True)
class EstimateInputs:
    model: Mapping[str, Any]
    mode: str
    method: str
    batch_size: int
    sequence_length: int
    weight_dtype: str
    kv_cache_dtype: str
    attention_implementation: str
    optimizer: str
    finetuning: str
    trainable_percent: int | float
    lora_rank: int
    lora_target_modules: str | tuple[str, ...]
    mixed_precision: bool
    gradient_checkpointing: bool
    num_gpus: int
    tensor_parallel: int
    pipeline_parallel: int
    zero_stage: int
    runtime_overhead_bytes: int | None
    gradient_accumulation_steps: int = 1
    checkpoint_every_k_layers: int = 1
    recompute_core_attention: bool = False
    lora_adapter_dtype: str = "float32"
    inference_logits: str = "last"
    memory_view: str | None = None
    bnb_4bit_saves_inputs: bool = False
    lora_dropout: bool = False
    bnb_4bit_dequant_path: str = "compute"
    gptq_kernel: str = "exllama"
    bnb_int8_matmul: str = "row_major"
    quantise_lm_head: bool = False
    fused_qkv_attention: bool = False
    previous_graph_alive: bool = False
    cross_entropy: str = "plain"
    optimizer_in_backward: bool = False
    activation_offloading: bool = False
    sharding: str = "deepspeed"
    offload: str = "none"
    expert_parallel: int = 1
    context_parallel: int = 1
    images_per_request: int = 0
    image_height: int | None = None
    image_width: int | None = None
    given: frozenset[str] = frozenset()  # the fields the caller set (not defaulted)

    @property
    def training(self) -> bool:
        return self.mode == "training"

    @property
    def data_parallel(self) -> int:
        # Megatron-Core: world_size = tp x pp x cp x dp (megatron/training/arguments.py)
        return self.num_gpus // (
            self.tensor_parallel * self.pipeline_parallel * self.context_parallel
        )

    def with_value(self, field: str, value: Any) -> EstimateInputs:
        """A copy with one field changed (sweeps: cheaper than dataclasses.replace, which
        re-runs __init__ over every field)."""
        copy = object.__new__(EstimateInputs)
        copy.__dict__.update(self.__dict__)
        copy.__dict__[field] = value
        return copy

    def as_dict(self) -> dict[str, Any]:
        targets = self.lora_target_modules
        return {
            "model": self.model,
            "mode": self.mode,
            "method": self.method,
            "batch_size": self.batch_size,
            "sequence_length": self.sequence_length,
            "weight_dtype": self.weight_dtype,
            "kv_cache_dtype": self.kv_cache_dtype,
            "attention_implementation": self.attention_implementation,
            "optimizer": self.optimizer,
            "finetuning": self.finetuning,
            "trainable_percent": self.trainable_percent,
            "lora_rank": self.lora_rank,
            "lora_target_modules": targets if isinstance(targets, str) else list(targets),
            "mixed_precision": self.mixed_precision,
            "gradient_checkpointing": self.gradient_checkpointing,
            "num_gpus": self.num_gpus,
            "tensor_parallel": self.tensor_parallel,
            "pipeline_parallel": self.pipeline_parallel,
            "expert_parallel": self.expert_parallel,
            "context_parallel": self.context_parallel,
            "zero_stage": self.zero_stage,
            "sharding": self.sharding,
            "offload": self.offload,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "checkpoint_every_k_layers": self.checkpoint_every_k_layers,
            "recompute_core_attention": self.recompute_core_attention,
            "lora_adapter_dtype": self.lora_adapter_dtype,
            "inference_logits": self.inference_logits,
            "memory_view": self.memory_view,
            "bnb_4bit_saves_inputs": self.bnb_4bit_saves_inputs,
            "lora_dropout": self.lora_dropout,
            "bnb_4bit_dequant_path": self.bnb_4bit_dequant_path,
            "gptq_kernel": self.gptq_kernel,
            "bnb_int8_matmul": self.bnb_int8_matmul,
            "quantise_lm_head": self.quantise_lm_head,
            "fused_qkv_attention": self.fused_qkv_attention,
            "previous_graph_alive": self.previous_graph_alive,
            "cross_entropy": self.cross_entropy,
            "optimizer_in_backward": self.optimizer_in_backward,
            "activation_offloading": self.activation_offloading,
            "runtime_overhead_bytes": self.runtime_overhead_bytes,
            "images_per_request": self.images_per_request,
            "image_height": self.image_height,
            "image_width": self.image_width,
        }


def check_integer(field: str, value: Any) -> int:
    """`value` as an int within INPUT_LIMITS[field], or EstimateError."""
    if type(value) is int:
        number = value
    elif type(value) is float and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        raise EstimateError(field, f"must be a whole number, not {_describe(value)}")
    low, high = INPUT_LIMITS[field]
    if not low <= number <= high:
        raise EstimateError(field, f"must be between {low:,} and {high:,}, not {number:,}")
    return number


def _percent(field: str, value: Any) -> int | float:
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        low, high = INPUT_LIMITS[field]
        if not low <= value <= high:
            raise EstimateError(field, f"must be between {low} and {high}, not {value}")
        return int(value) if float(value).is_integer() else value
    raise EstimateError(field, f"must be a number between 0 and 100, not {_describe(value)}")


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    if type(value) is str and value in allowed:
        return value
    raise EstimateError(field, f"must be one of {', '.join(allowed)}; got {_describe(value)}")


def _boolean(field: str, value: Any) -> bool:
    if type(value) is bool:
        return value
    raise EstimateError(field, f"must be true or false, not {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return f"a {type(value).__name__}"


def _target_modules(value: Any) -> str | tuple[str, ...]:
    field = "lora_target_modules"
    if value == ALL_LINEAR and type(value) is str:
        return ALL_LINEAR
    if not isinstance(value, list | tuple) or not value:
        raise EstimateError(
            field, f'must be "{ALL_LINEAR}" or a non-empty list of {", ".join(LORA_TARGET_MODULES)}'
        )
    for name in value:
        if type(name) is not str or name not in LORA_TARGET_MODULES:
            raise EstimateError(
                field,
                f"unknown module {_describe(name)}; choose from {', '.join(LORA_TARGET_MODULES)}",
            )
    chosen = set(value)
    return tuple(name for name in LORA_TARGET_MODULES if name in chosen)


def _checkpoint_text(architecture: Architecture, checkpoint: CheckpointFormat) -> str:
    return describe_checkpoint(checkpoint, architecture.linear_layers, architecture.default_dtype)


def _published_default(
    architecture: Architecture, float_dtype: str, mode: str, finetuning: str, notes: list[str]
) -> str:
    """The weight_dtype left out: the published checkpoint's format (config.json
    quantization_config) where it can run as asked, else the model's 16-bit dtype."""
    checkpoint = architecture.checkpoint
    if checkpoint is None or checkpoint.weight_dtype is None:
        return float_dtype
    published = checkpoint.weight_dtype
    text = _checkpoint_text(architecture, checkpoint)
    trainable_base = finetuning == "lora" and published in LORA_BASE_DTYPES
    if mode != "training" or trainable_base:
        notes.append(
            f"Published checkpoint: {text} (config.json quantization_config), the default; "
            "set weight_dtype to size another format"
        )
        if published == "mxfp4":
            notes.append(
                "MXFP4 stays packed on GPUs with transformers' MXFP4 kernels (triton_kernels: "
                "Hopper, Blackwell); elsewhere transformers dequantises it to bfloat16 "
                "(weight_dtype bfloat16 sizes that)"
            )
        return published
    notes.append(
        f"Published checkpoint: {text}; training {finetuning} needs it dequantised, sized in "
        f"{float_dtype} (transformers dequantize=True)"
    )
    return float_dtype


def resolve_model(model: Any) -> tuple[Architecture, tuple[str, ...]]:
    """The Architecture of `payload["model"]` and the parser's notes, cached by a cheap key."""
    if not isinstance(model, Mapping) or len(model) != 1:
        raise EstimateError(
            "model", 'must be an object with exactly one of "hf_config" or "architecture"'
        )
    ((source, spec),) = model.items()
    if source not in MODEL_SOURCES:
        raise EstimateError(
            "model",
            f'unknown model source {_describe(source)}: the engine takes "hf_config" or '
            '"architecture" (catalog slugs and profiles are resolved by the web layer)',
        )
    if not isinstance(spec, Mapping):
        raise EstimateError(f"model.{source}", "must be an object")
    # repr of a JSON-like dict is cheap and equal for equal content in the same key order
    key = (source, repr(spec))
    cached = _architecture_cache.get(key)
    if cached is not None:
        return cached
    if source == "hf_config":
        architecture, notes = architecture_module.architecture_from_hf_config(spec)
    else:
        architecture, notes = architecture_module.architecture_from_fields(spec)
    result = (architecture, tuple(notes))
    if len(_architecture_cache) >= _ARCHITECTURE_CACHE_SIZE:
        _architecture_cache.clear()  # simple and safe under threads; a full cache is rare
    _architecture_cache[key] = result
    return result


def parse_inputs(
    payload: Any, resolved: tuple[Architecture, tuple[str, ...]] | None = None
) -> tuple[EstimateInputs, Architecture, list[str]]:
    """Validate a contract request; return the normalised inputs, the model and notes.

    `resolved` (an Architecture and its notes) skips parsing `payload["model"]`, e.g. when the
    caller already holds the architecture snapshot it describes."""
    if not isinstance(payload, Mapping):
        raise EstimateError("payload", "must be a JSON object of the contract's fields")
    unknown = sorted(str(name) for name in payload if name not in _KNOWN_FIELDS)
    if unknown:
        raise EstimateError(
            unknown[0] or "payload",
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join((*FIELDS, *HARDWARE_FIELDS, *SERVING_FIELDS))}",
        )
    if "model" not in payload:
        raise EstimateError("model", "is required")
    architecture, architecture_notes = resolved or resolve_model(payload["model"])
    notes = list(architecture_notes)

    given = frozenset(name for name, value in payload.items() if value is not None)

    def get(name: str) -> Any:
        value = payload.get(name)
        return DEFAULTS[name] if value is None else value

    mode = _choice("mode", get("mode"), MODES)
    method = _choice("method", get("method"), METHODS)
    batch_size = check_integer("batch_size", get("batch_size"))
    sequence_length = check_integer("sequence_length", get("sequence_length"))
    attention = _choice(
        "attention_implementation", get("attention_implementation"), ATTENTION_IMPLEMENTATIONS
    )
    optimizer = _choice("optimizer", get("optimizer"), OPTIMIZERS)
    finetuning = _choice("finetuning", get("finetuning"), FINETUNING_METHODS)
    trainable_percent = _percent("trainable_percent", get("trainable_percent"))
    lora_rank = check_integer("lora_rank", get("lora_rank"))
    targets = _target_modules(get("lora_target_modules"))
    mixed_precision = _boolean("mixed_precision", get("mixed_precision"))
    checkpointing = _boolean("gradient_checkpointing", get("gradient_checkpointing"))
    num_gpus = check_integer("num_gpus", get("num_gpus"))
    # Left out, both follow the GPU count: the layout the engine suggests for it (one GPU input)
    if payload.get("tensor_parallel") is None and payload.get("pipeline_parallel") is None:
        tensor_parallel, pipeline_parallel = suggested_layout(
            architecture, num_gpus, training=mode == "training"
        )
    else:
        tensor_parallel, pipeline_parallel = (
            1 if payload.get(name) is None else check_integer(name, payload[name])
            for name in ("tensor_parallel", "pipeline_parallel")
        )
    expert_parallel = check_integer("expert_parallel", get("expert_parallel"))
    context_parallel = check_integer("context_parallel", get("context_parallel"))
    zero_stage = check_integer("zero_stage", get("zero_stage"))
    sharding = _choice("sharding", get("sharding"), SHARDINGS)
    offload = _choice("offload", get("offload"), OFFLOADS)
    accumulation = check_integer("gradient_accumulation_steps", get("gradient_accumulation_steps"))
    every_k = check_integer("checkpoint_every_k_layers", get("checkpoint_every_k_layers"))
    core_attention = _boolean("recompute_core_attention", get("recompute_core_attention"))
    adapter_dtype = _choice("lora_adapter_dtype", get("lora_adapter_dtype"), LORA_ADAPTER_DTYPES)
    logits = _choice("inference_logits", get("inference_logits"), INFERENCE_LOGITS)
    saves_inputs = _boolean("bnb_4bit_saves_inputs", get("bnb_4bit_saves_inputs"))
    lora_dropout = _boolean("lora_dropout", get("lora_dropout"))
    dequant_path = _choice(
        "bnb_4bit_dequant_path", get("bnb_4bit_dequant_path"), BNB_4BIT_DEQUANT_PATHS
    )
    gptq_kernel = _choice("gptq_kernel", get("gptq_kernel"), GPTQ_KERNELS)
    int8_matmul = _choice("bnb_int8_matmul", get("bnb_int8_matmul"), BNB_INT8_MATMULS)
    quantise_lm_head = _boolean("quantise_lm_head", get("quantise_lm_head"))
    fused_qkv = _boolean("fused_qkv_attention", get("fused_qkv_attention"))
    previous_graph = _boolean("previous_graph_alive", get("previous_graph_alive"))
    cross_entropy = _choice("cross_entropy", get("cross_entropy"), CROSS_ENTROPY_IMPLEMENTATIONS)
    optimizer_in_backward = _boolean("optimizer_in_backward", get("optimizer_in_backward"))
    activation_offloading = _boolean("activation_offloading", get("activation_offloading"))
    memory_view = payload.get("memory_view")
    if memory_view is not None:
        memory_view = _choice("memory_view", memory_view, MEMORY_VIEWS)
    overhead = payload.get("runtime_overhead_bytes")
    if overhead is not None:
        overhead = check_integer("runtime_overhead_bytes", overhead)
    images = check_integer("images_per_request", get("images_per_request"))
    image_height, image_width = (
        None if payload.get(name) is None else check_integer(name, payload[name])
        for name in ("image_height", "image_width")
    )

    training = mode == "training"
    weight_dtype = payload.get("weight_dtype")
    if weight_dtype is None:
        if training and finetuning == "qlora" and method == "detailed":
            weight_dtype = "nf4"
            notes.append("QLoRA: base weights in NF4 (bitsandbytes, double quantisation)")
        else:
            weight_dtype = architecture.default_dtype
            if weight_dtype not in FLOAT_FORMATS:
                weight_dtype = "bfloat16"
            if method == "detailed":
                weight_dtype = _published_default(
                    architecture, weight_dtype, mode, finetuning, notes
                )
            if (
                mode == "serving"
                and (payload.get("engine") or "vllm") == "vllm"
                and weight_dtype == "float32"
            ):
                # vLLM's --dtype auto (vllm/config/model.py _resolve_auto_dtype, 0.10 - 0.19;
                # _get_and_verify_dtype before): "Downcast for float32 models" to the platform's
                # first supported dtype, bfloat16 on CUDA GPUs from compute capability 8.0
                weight_dtype = "bfloat16"
                notes.append(
                    "vLLM --dtype auto loads this float32 checkpoint as bfloat16; set "
                    "weight_dtype float32 to size --dtype float32"
                )
    else:
        weight_dtype = _choice("weight_dtype", weight_dtype, WEIGHT_DTYPES)
        published = architecture.checkpoint
        if (
            method == "detailed"
            and published is not None
            and published.weight_dtype not in (None, weight_dtype)
        ):
            notes.append(
                f"Published checkpoint: {_checkpoint_text(architecture, published)}; "
                f"sized as {weight_dtype}, as asked"
            )
    kv_cache_dtype = payload.get("kv_cache_dtype")
    if kv_cache_dtype is None:
        if DTYPES[weight_dtype].quantised:
            kv_cache_dtype = "bfloat16"
            if not training:
                notes.append(
                    f"KV cache in bfloat16 because the weights are quantised ({weight_dtype})"
                )
        else:
            kv_cache_dtype = weight_dtype
    elif (
        type(kv_cache_dtype) is str
        and kv_cache_dtype in WEIGHT_DTYPES
        and (kv_cache_dtype not in KV_CACHE_DTYPES)
    ):
        raise EstimateError(
            "kv_cache_dtype",
            f"{kv_cache_dtype} is a weight-only format; the KV cache takes one of "
            f"{', '.join(KV_CACHE_DTYPES)}",
        )
    else:
        kv_cache_dtype = _choice("kv_cache_dtype", kv_cache_dtype, KV_CACHE_DTYPES)

    inputs = EstimateInputs(
        model=payload["model"],
        mode=mode,
        method=method,
        batch_size=batch_size,
        sequence_length=sequence_length,
        weight_dtype=weight_dtype,
        kv_cache_dtype=kv_cache_dtype,
        attention_implementation=attention,
        optimizer=optimizer,
        finetuning=finetuning,
        trainable_percent=trainable_percent,
        lora_rank=lora_rank,
        lora_target_modules=targets,
        mixed_precision=mixed_precision,
        gradient_checkpointing=checkpointing,
        num_gpus=num_gpus,
        tensor_parallel=tensor_parallel,
        pipeline_parallel=pipeline_parallel,
        zero_stage=zero_stage,
        runtime_overhead_bytes=overhead,
        gradient_accumulation_steps=accumulation,
        checkpoint_every_k_layers=every_k,
        recompute_core_attention=core_attention,
        lora_adapter_dtype=adapter_dtype,
        inference_logits=logits,
        memory_view=memory_view,
        bnb_4bit_saves_inputs=saves_inputs,
        lora_dropout=lora_dropout,
        bnb_4bit_dequant_path=dequant_path,
        gptq_kernel=gptq_kernel,
        bnb_int8_matmul=int8_matmul,
        quantise_lm_head=quantise_lm_head,
        fused_qkv_attention=fused_qkv,
        previous_graph_alive=previous_graph,
        cross_entropy=cross_entropy,
        optimizer_in_backward=optimizer_in_backward,
        activation_offloading=activation_offloading,
        sharding=sharding,
        offload=offload,
        expert_parallel=expert_parallel,
        context_parallel=context_parallel,
        images_per_request=images,
        image_height=image_height,
        image_width=image_width,
        given=given,
    )
    check_combinations(inputs, architecture)
    return inputs, architecture, notes


def _check_offload(inputs: EstimateInputs) -> None:
    if not inputs.training:
        raise EstimateError("offload", "offload moves training state to the host: use none")
    if inputs.method != "detailed":
        raise EstimateError("offload", "the standard method has no offload: use the detailed one")
    if inputs.zero_stage == 0:
        raise EstimateError(
            "offload", "offloading runs through ZeRO or FSDP: set zero_stage (3 for FSDP)"
        )
    if inputs.offload == "optimizer_and_parameters" and inputs.zero_stage < 3:
        raise EstimateError(
            "offload", "parameters are offloaded from their shards: use zero_stage 3"
        )
    if inputs.sharding == "fsdp" and inputs.offload != "optimizer_and_parameters":
        raise EstimateError(
            "offload",
            "FSDP's CPUOffload moves parameters, gradients and optimizer state together: use "
            "optimizer_and_parameters with zero_stage 3",
        )


def _divisors(number: int) -> list[int]:
    return [size for size in range(1, number + 1) if number % size == 0]


def _check_expert_parallel(inputs: EstimateInputs, architecture: Architecture) -> None:
    """Inference follows vLLM --enable-expert-parallel (vllm/model_executor/layers/fused_moe/
    config.py, FusedMoEParallelConfig.make): the MoE layers flatten the tensor- and data-parallel
    ranks of a pipeline stage into one expert-parallel group, ep_size = tp_size x dp_size, each
    rank holding num_experts / ep_size whole experts (no tensor split inside an expert);
    attention stays tensor parallel. So expert_parallel is 1 or tensor_parallel x data_parallel.
    Training follows Megatron-Core (megatron/core/parallel_state.py initialize_model_parallel,
    expert_tensor_parallel_size defaulting to tensor_model_parallel_size): the expert grid is
    etp x ep x edp x pp over the same GPUs, world_size % (etp x ep x pp) == 0, so with etp = tp
    expert_parallel divides context_parallel x data_parallel."""
    ep = inputs.expert_parallel
    field = "expert_parallel"
    if not architecture.is_moe:
        raise EstimateError(field, "this model is dense (no routed experts): use 1")
    if inputs.method != "detailed":
        raise EstimateError(
            field, "the standard method has no expert parallelism: use the detailed one"
        )
    if inputs.training:
        _check_training_expert_parallel(inputs, architecture)
    else:
        group = inputs.tensor_parallel * inputs.data_parallel
        if ep != group:
            raise EstimateError(
                field,
                "vLLM's expert-parallel group is every tensor- and data-parallel rank of a "
                f"pipeline stage: tensor_parallel x data_parallel = {inputs.tensor_parallel} x "
                f"{inputs.data_parallel} = {group}; "
                + (
                    f"use {group}, or 1" if group > 1 else "use 1, or add GPUs to split the experts"
                ),
            )
    if architecture.num_experts % ep:
        valid = _divisors(architecture.num_experts)
        raise EstimateError(
            field,
            f"must divide the model's {architecture.num_experts} routed experts: "
            f"the nearest valid are {_nearest(ep, valid)}"
            + ("" if inputs.training else " (with num_gpus / pipeline_parallel equal to it)"),
        )


def _check_training_expert_parallel(inputs: EstimateInputs, architecture: Architecture) -> None:
    ep, field = inputs.expert_parallel, "expert_parallel"
    if inputs.finetuning in ("lora", "qlora"):
        raise EstimateError(
            field,
            "expert parallelism in training is modelled as Megatron-Core trains the whole "
            "model: use finetuning full or partial, or 1",
        )
    # the ranks an expert-parallel group is drawn from: Megatron's dense grid tp x cp x dp
    # becomes the expert grid etp x ep x edp with etp = tp
    ranks = inputs.context_parallel * inputs.data_parallel
    if ranks % ep:
        valid = [size for size in _divisors(ranks) if architecture.num_experts % size == 0]
        raise EstimateError(
            field,
            "Megatron-Core's expert-parallel size must divide context_parallel x "
            f"data_parallel = {inputs.context_parallel} x {inputs.data_parallel} = {ranks} "
            "(num_gpus / (tensor_parallel x pipeline_parallel x context_parallel) is the data "
            f"parallelism): the nearest valid are {_nearest(ep, valid)}",
        )


def _check_context_parallel(inputs: EstimateInputs, architecture: Architecture) -> None:
    """Context parallelism as Megatron-Core runs it (TransformerEngine's ring attention,
    AttnFuncWithCPAndKVP2P, cp_comm_type "p2p", Megatron's default): the sequence is split into
    2 x cp chunks, rank i keeping chunks i and 2cp - 1 - i (megatron/core/utils.py
    get_batch_on_this_cp_rank), and megatron/training/arguments.py asserts
    seq_length % (2 x context_parallel_size) == 0."""
    cp, field = inputs.context_parallel, "context_parallel"
    if not inputs.training:
        raise EstimateError(
            field,
            "context parallelism is modelled for training (Megatron-Core, TransformerEngine "
            "ring attention); use 1 for inference",
        )
    if inputs.method != "detailed":
        raise EstimateError(
            field, "the standard method has no context parallelism: use the detailed one"
        )
    if inputs.attention_implementation != "flash":
        raise EstimateError(
            field,
            "ring attention runs on flash / fused attention kernels (TransformerEngine, "
            "PyTorch's context_parallel on SDPA); eager attention has none: use "
            "attention_implementation flash, or 1",
        )
    if architecture.state_layers is not None:
        raise EstimateError(
            field,
            "context parallelism is modelled for attention layers; this model's linear-"
            "attention / state-space layers are not: use 1",
        )
    length = inputs.sequence_length
    if length % (2 * cp):
        # the context-parallel sizes these GPUs can hold that split this sequence
        ranks = inputs.num_gpus // (inputs.tensor_parallel * inputs.pipeline_parallel)
        valid = [size for size in _divisors(ranks) if length % (2 * size) == 0 or size == 1]
        step = 2 * cp
        lower, upper = length // step * step, (length // step + 1) * step
        lengths = f"{lower:,} or {upper:,}" if lower else f"{upper:,}"
        raise EstimateError(
            field,
            "Megatron-Core splits the sequence into 2 x context_parallel chunks (its "
            f"load-balanced causal split), so sequence_length {length:,} must be a multiple of "
            f"{step:,}: " + f"the nearest valid context_parallel are {_nearest(cp, valid)}, or use "
            f"sequence_length {lengths}",
        )


# Widest tensor parallelism considered (Megatron-LM and vLLM split attention heads; beyond 64 ranks
# the all-reduces dominate, pipeline stages are added instead)
MAX_TENSOR_PARALLEL = 64


def tensor_parallel_sizes(
    architecture: Architecture, limit: int = MAX_TENSOR_PARALLEL
) -> list[int]:
    """Tensor-parallel sizes the engine accepts (they divide the attention heads, and the KV
    heads and they divide one another), ascending, up to `limit`."""
    heads, kv_heads = architecture.num_attention_heads, architecture.num_key_value_heads
    return [
        tp
        for tp in range(1, min(heads, limit) + 1)
        if heads % tp == 0 and (kv_heads % tp == 0 or tp % kv_heads == 0)
    ]


def suggested_layout(
    architecture: Architecture, num_gpus: int, *, training: bool
) -> tuple[int, int]:
    """(tensor_parallel, pipeline_parallel) for `num_gpus` GPUs when the request names neither:
    inference splits the model with the widest tensor parallelism that divides the count and
    pipeline stages for the rest (replicas beyond the layers); training replicates (data
    parallelism, sharded when a ZeRO stage is asked for)."""
    if training or num_gpus == 1:
        return 1, 1
    tp = max(size for size in tensor_parallel_sizes(architecture) if num_gpus % size == 0)
    rest = num_gpus // tp
    pp = max(
        stages for stages in range(1, min(rest, architecture.num_layers) + 1) if rest % stages == 0
    )
    return tp, pp


def _nearest(value: int, valid: list[int]) -> str:
    """The valid values on either side of `value`: "4 or 8", or the one nearest."""
    below = [v for v in valid if v < value]
    above = [v for v in valid if v > value]
    nearest = [*below[-1:], *above[:1]]
    return " or ".join(f"{v:,}" for v in nearest)


def check_combinations(inputs: EstimateInputs, architecture: Architecture) -> None:
    """Reject combinations of valid values that describe no possible run."""
    training = inputs.training
    tp, pp = inputs.tensor_parallel, inputs.pipeline_parallel
    # Each refusal names the nearest valid values, so that the user can pick one.
    heads, kv_heads = architecture.num_attention_heads, architecture.num_key_value_heads
    valid_tp = tensor_parallel_sizes(architecture, limit=heads)
    if heads % tp:
        raise EstimateError(
            "tensor_parallel",
            f"must divide the model's {heads} attention heads: "
            f"the nearest valid are {_nearest(tp, valid_tp)}",
        )
    if kv_heads % tp and tp % kv_heads:
        raise EstimateError(
            "tensor_parallel",
            f"and the model's {kv_heads} key/value heads must divide one another: "
            f"the nearest valid are {_nearest(tp, valid_tp)}",
        )
    if pp > architecture.num_layers:
        raise EstimateError(
            "pipeline_parallel",
            f"cannot exceed the model's {architecture.num_layers} layers",
        )
    if inputs.optimizer_in_backward and inputs.gradient_accumulation_steps > 1:
        # torchtune full_finetune_single_device: "Gradient accumulation is not supported with
        # optimizer in bwd" (the hooks free each gradient as soon as it is stepped)
        raise EstimateError(
            "optimizer_in_backward",
            "steps each gradient as it is computed: use gradient_accumulation_steps 1",
        )
    cp = inputs.context_parallel
    if cp > 1:
        # first: where context parallelism does not apply, the GPU count is not the question
        _check_context_parallel(inputs, architecture)
    if inputs.num_gpus % (tp * pp * cp):
        step = tp * pp * cp
        lower, upper = inputs.num_gpus // step * step, (inputs.num_gpus // step + 1) * step
        gpus = f"{lower:,} or {upper:,}" if lower else f"{upper:,}"
        if cp == 1:
            product = f"tensor_parallel x pipeline_parallel ({tp} x {pp} = {step})"
        else:
            product = (
                "tensor_parallel x pipeline_parallel x context_parallel "
                f"({tp} x {pp} x {cp} = {step})"
            )
        raise EstimateError(
            "num_gpus",
            f"must be a multiple of {product}: "
            f"the nearest valid are {gpus} GPUs, or leave tensor and pipeline parallel blank "
            "to lay out these GPUs automatically",
        )
    if inputs.expert_parallel > 1:
        _check_expert_parallel(inputs, architecture)
    if inputs.zero_stage:
        if not training:
            raise EstimateError("zero_stage", "ZeRO shards training state: use 0 for inference")
        # Megatron's distributed optimizer shards over data x context parallel ranks
        if inputs.data_parallel * cp == 1:
            raise EstimateError(
                "zero_stage",
                "ZeRO needs data parallelism: num_gpus must exceed "
                "tensor_parallel x pipeline_parallel",
            )
        if inputs.zero_stage == 1 and inputs.sharding == "fsdp":
            raise EstimateError(
                "zero_stage",
                "FSDP has no stage 1: use 2 (SHARD_GRAD_OP) or 3 (FULL_SHARD), or sharding "
                "deepspeed for ZeRO-1",
            )
    if inputs.offload != "none":
        _check_offload(inputs)
    if inputs.images_per_request or inputs.image_height or inputs.image_width:
        vision.check_images(inputs, architecture.vision)
    if training and inputs.method == "standard" and inputs.optimizer not in STANDARD_OPTIMIZERS:
        raise EstimateError(
            "optimizer",
            "the standard method (the original formulas) knows "
            f"{', '.join(STANDARD_OPTIMIZERS)}; size {inputs.optimizer} with the detailed method",
        )
    if not training or inputs.method != "detailed":
        return
    finetuning, weight_dtype = inputs.finetuning, inputs.weight_dtype
    if finetuning == "qlora" and weight_dtype not in QLORA_BASE_DTYPES:
        raise EstimateError(
            "weight_dtype",
            "QLoRA trains adapters on a bitsandbytes 4-bit base: use "
            + ", ".join(QLORA_BASE_DTYPES),
        )
    if finetuning in ("full", "partial") and weight_dtype not in TRAINABLE_WEIGHT_DTYPES:
        raise EstimateError(
            "weight_dtype",
            f"{finetuning} fine-tuning trains the weights themselves, which needs "
            f"{', '.join(TRAINABLE_WEIGHT_DTYPES)}; use lora or qlora over quantised weights",
        )
    if finetuning == "lora" and weight_dtype not in LORA_BASE_DTYPES:
        raise EstimateError(
            "weight_dtype",
            f"LoRA base weights must be one of {', '.join(LORA_BASE_DTYPES)} "
            "(GGUF files are dequantised when loaded for training)",
        )
    if finetuning in ("lora", "qlora") and inputs.method == "detailed":
        if not architecture.linear_layers:
            raise EstimateError(
                "lora_target_modules",
                "this model's linear layers are unknown (entered without a shape): "
                "give intermediate_size and vocab_size, or a config.json",
            )
        # raises EstimateError("lora_target_modules") for names that select nothing
        architecture_module.lora_target_layers(architecture, inputs.lora_target_modules)
