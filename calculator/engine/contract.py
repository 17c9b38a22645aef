"""The estimate contract's fields, each declared once: kind, default, limits, choices, label, help.

The engine validates with the constants these rows point at (`inputs.DEFAULTS`, `INPUT_LIMITS`,
`hardware.HARDWARE_DEFAULTS` / `HARDWARE_LIMITS`, `serving.SERVING_DEFAULTS` / `SERVING_LIMITS`);
the calculator form's fields, the API serializer's fields and their OpenAPI descriptions, the
query-string encoder and docs/limits.md are generated from the rows
(calculator/web/forms/contract.py, calculator/api/serializers.py, calculator/web/querystring.py).
tests/web/test_contract_declared_once.py fails when any of them disagrees with a row, or a
contract field has no row.

The model (`model`) and the GPU given by its figures (`gpu` as an object) are shapes of their own,
validated by `architecture` and `hardware`; their rows here say only how the page offers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from calculator.engine.dtypes import KV_CACHE_DTYPES, WEIGHT_DTYPES
from calculator.engine.hardware import HARDWARE_DEFAULTS, HARDWARE_LIMITS
from calculator.engine.inputs import (
    ATTENTION_IMPLEMENTATIONS,
    BNB_4BIT_DEQUANT_PATHS,
    BNB_INT8_MATMULS,
    CROSS_ENTROPY_IMPLEMENTATIONS,
    DEFAULTS,
    FIELDS,
    FINETUNING_METHODS,
    GPTQ_KERNELS,
    HARDWARE_FIELDS,
    INFERENCE_LOGITS,
    INPUT_LIMITS,
    LORA_ADAPTER_DTYPES,
    LORA_TARGET_MODULES,
    MEMORY_VIEWS,
    METHODS,
    MODES,
    OFFLOADS,
    OPTIMIZERS,
    SERVING_FIELDS,
    SHARDINGS,
)
from calculator.engine.serving import (
    GPU_MEMORY_UTILIZATION_LIMITS,
    SERVING_DEFAULTS,
    SERVING_ENGINES,
    SERVING_LIMITS,
    VLLM_VERSIONS,
)
from calculator.engine.serving_llamacpp import LLAMACPP_CACHE_TYPES
from calculator.engine.speculative import (
    ACCEPTANCE_RATE_LIMITS,
    DEFAULT_ACCEPTANCE_RATE,
    NUM_SPECULATIVE_TOKENS_LIMITS,
    SPECULATIVE_METHODS,
)

Kind = Literal["integer", "number", "choice", "boolean", "modules", "gpu", "text"]
# Where a field belongs: the page's panels, and which requests read it
Group = Literal["workload", "training", "parallel", "view", "hardware", "serving"]

DTYPE_LABELS = {
    "float32": "float32 (4 bytes)",
    "float16": "float16 (2 bytes)",
    "bfloat16": "bfloat16 (2 bytes)",
    "float8": "float8 (1 byte)",
    "int8": "int8 (1 byte)",
    "int4": "int4 (½ byte)",
    "nf4": "nf4 (bitsandbytes 4-bit)",
    "nf4_no_dq": "nf4, no double quantisation",
    "fp4": "fp4 (bitsandbytes 4-bit)",
    "gptq_int4": "GPTQ 4-bit",
    "awq_int4": "AWQ 4-bit",
    "gguf_q8_0": "GGUF Q8_0",
    "gguf_q4_k_m": "GGUF Q4_K_M",
    "mxfp4": "MXFP4 (4.25 bits; gpt-oss experts)",
    "fp8_block": "FP8, 128×128 block scales",
    "nvfp4": "NVFP4 (4.5 bits)",
}


@dataclass(frozen=True)
class ContractField:
    name: str
    kind: Kind
    group: Group
    label: str
    help: str
    # How the default reads when the engine derives it (None in the defaults table); else the
    # default value itself is shown
    default_note: str = ""
    choices: tuple[str, ...] = ()
    choice_labels: Mapping[str, str] = field(default_factory=dict)
    # the form may leave it blank, the API leave it out: the engine's default
    blank: bool = False
    # the lower limit itself is refused (hardware.parse_hardware open_low)
    open_low: bool = False
    # the select's text for blank (choices that may be blank)
    blank_label: str = ""
    # the longest text (kind "text")
    max_length: int = 0
    # the calculator form offers it (gpu_count: the page has one GPU count, num_gpus)
    on_form: bool = True

    @property
    def default(self) -> Any:
        for table in (DEFAULTS, HARDWARE_DEFAULTS, SERVING_DEFAULTS):
            if self.name in table:
                return table[self.name]
        raise KeyError(self.name)

    @property
    def limits(self) -> tuple[float, float] | None:
        for table in (INPUT_LIMITS, HARDWARE_LIMITS, SERVING_LIMITS, _OTHER_LIMITS):
            if self.name in table:
                return table[self.name]
        return None

    @property
    def default_text(self) -> str:
        if self.default_note:
            return self.default_note
        value = self.default
        if isinstance(value, bool):
            return "true" if value else "false"
        return f"{value:g}" if isinstance(value, float) else str(value)

    @property
    def nullable(self) -> bool:
        """The API takes null for the default (the GPU answers, serving, and the two overhead
        fields); elsewhere the default is had by leaving the field out."""
        return self.blank and (
            self.group in ("hardware", "serving") or self.name in _NULLABLE_FIELDS
        )

    def choice_label(self, value: str) -> str:
        return self.choice_labels.get(value, value)


_NULLABLE_FIELDS = ("runtime_overhead_bytes", "memory_view", "image_height", "image_width")
# Limits the engine keeps beside the fields that use them (serving, speculative)
_OTHER_LIMITS: dict[str, tuple[float, float]] = {
    "gpu_memory_utilization": GPU_MEMORY_UTILIZATION_LIMITS,
    "num_speculative_tokens": NUM_SPECULATIVE_TOKENS_LIMITS,
    "acceptance_rate": ACCEPTANCE_RATE_LIMITS,
}


def _choice(name: str, group: Group, label: str, help: str, choices: tuple[str, ...], **kw: Any):
    return ContractField(name, "choice", group, label, help, choices=choices, **kw)


CONTRACT: tuple[ContractField, ...] = (
    # --- the workload ------------------------------------------------------------------------
    _choice(
        "mode",
        "workload",
        "Mode",
        "inference, training or serving (a serving engine's plan; needs a gpu).",
        MODES,
    ),
    _choice(
        "method",
        "workload",
        "Method",
        "detailed (architecture-aware) or standard (the original formulas).",
        METHODS,
        choice_labels={
            "detailed": "Detailed (architecture-aware)",
            "standard": "Standard (the original formulas)",
        },
    ),
    ContractField("batch_size", "integer", "workload", "Batch size", "Sequences at once."),
    ContractField(
        "sequence_length",
        "integer",
        "workload",
        "Sequence length",
        "Tokens per sequence: prompt plus generated (inference), or per sample (training).",
    ),
    _choice(
        "weight_dtype",
        "workload",
        "Weights",
        "The format the weights are held in.",
        WEIGHT_DTYPES,
        choice_labels=DTYPE_LABELS,
        blank=True,
        blank_label="Model default",
        default_note="the published checkpoint's format (quantization_config), else the "
        "model's own dtype",
    ),
    _choice(
        "kv_cache_dtype",
        "workload",
        "KV cache",
        "The format of the KV cache.",
        KV_CACHE_DTYPES,
        choice_labels=DTYPE_LABELS,
        blank=True,
        blank_label="Follow the weights",
        default_note="follows the weights (bfloat16 beside quantised weights)",
    ),
    _choice(
        "attention_implementation",
        "workload",
        "Attention",
        "flash (FlashAttention / SDPA: scores not stored) or eager (scores stored).",
        ATTENTION_IMPLEMENTATIONS,
        choice_labels={
            "flash": "FlashAttention / SDPA (scores not stored)",
            "eager": "Eager (scores stored)",
        },
    ),
    ContractField(
        "images_per_request",
        "integer",
        "workload",
        "Images per request",
        "Vision-language models: images in each sequence (each sample in training); their "
        "tokens add to the sequence and the vision tower encodes them.",
    ),
    ContractField(
        "image_height",
        "integer",
        "workload",
        "Image height (px)",
        "The images' height in pixels, for models whose image tokens follow the size "
        "(Qwen2.5-VL, Qwen3-VL, Mistral 3 / Pixtral).",
        blank=True,
        default_note="the size the model resizes every image to (Gemma 3, LLaVA); required "
        "where the tokens follow the size",
    ),
    ContractField(
        "image_width",
        "integer",
        "workload",
        "Image width (px)",
        "The images' width in pixels (with image_height).",
        blank=True,
        default_note="as image_height",
    ),
    ContractField(
        "runtime_overhead_bytes",
        "integer",
        "workload",
        "Runtime overhead (bytes)",
        "CUDA context and allocator reserve.",
        blank=True,
        default_note="the engine's estimate (see memory_view)",
    ),
    # --- training ----------------------------------------------------------------------------
    _choice(
        "optimizer",
        "training",
        "Optimizer",
        "Training: the optimizer whose states are kept.",
        OPTIMIZERS,
        choice_labels={
            "adamw": "AdamW",
            "adamw_8bit": "AdamW 8-bit",
            "sgd": "SGD",
            "sgd_momentum": "SGD with momentum",
            "paged_adamw": "Paged AdamW (bitsandbytes)",
            "paged_adamw_8bit": "Paged AdamW 8-bit (bitsandbytes)",
            "adafactor": "Adafactor (factored, no first moment)",
        },
    ),
    _choice(
        "finetuning",
        "training",
        "Fine-tuning",
        "Training: which weights learn.",
        FINETUNING_METHODS,
        choice_labels={
            "full": "Full",
            "lora": "LoRA",
            "qlora": "QLoRA",
            "partial": "Partial (a share of the weights)",
        },
    ),
    ContractField(
        "trainable_percent",
        "number",
        "training",
        "Trainable %",
        "Partial fine-tuning, and the standard method's LoRA stand-in.",
    ),
    ContractField("lora_rank", "integer", "training", "LoRA rank", "lora and qlora: the rank."),
    ContractField(
        "lora_target_modules",
        "modules",
        "training",
        "LoRA targets",
        'lora and qlora: the modules adapted, or "all-linear" (PEFT\'s all-linear).',
        choices=LORA_TARGET_MODULES,
    ),
    ContractField(
        "mixed_precision",
        "boolean",
        "training",
        "Mixed precision (fp32 master weights, 16-bit compute)",
        "Training: fp32 master weights, 16-bit compute.",
    ),
    ContractField(
        "gradient_checkpointing",
        "boolean",
        "training",
        "Gradient checkpointing",
        "Training: recompute each layer's activations in backward.",
    ),
    ContractField(
        "checkpoint_every_k_layers",
        "integer",
        "training",
        "Checkpoint one layer in every k",
        "With gradient checkpointing: every k-th layer only (torchtune / torchtitan ac_option).",
        blank=True,
        default_note="1 (every layer)",
    ),
    ContractField(
        "recompute_core_attention",
        "boolean",
        "training",
        "Recompute the attention core (Megatron selective)",
        "Training: the attention scores are recomputed in backward, q, k and v kept.",
    ),
    ContractField(
        "gradient_accumulation_steps",
        "integer",
        "training",
        "Gradient accumulation steps",
        "Training: micro-batches per optimizer step (gradients kept).",
        blank=True,
        default_note="1",
    ),
    _choice(
        "lora_adapter_dtype",
        "training",
        "LoRA adapter dtype",
        "lora and qlora: float32 (PEFT) or 16-bit (litgpt, torchtune).",
        LORA_ADAPTER_DTYPES,
        blank=True,
        blank_label="Default (float32)",
        default_note="float32",
    ),
    ContractField(
        "bnb_4bit_saves_inputs",
        "boolean",
        "training",
        "bitsandbytes before 0.43.2 (4-bit layers keep their inputs)",
        "qlora: bitsandbytes before 0.43.2 keeps each 4-bit layer's input.",
    ),
    ContractField(
        "lora_dropout",
        "boolean",
        "training",
        "LoRA dropout on the adapters' input",
        "lora and qlora: lora_dropout > 0 (litgpt's 0.05); each adapter keeps the dropped input "
        "and its one-byte mask.",
    ),
    # --- what the figure describes -----------------------------------------------------------
    _choice(
        "inference_logits",
        "view",
        "Logits",
        "Inference: logits for the last position (generate()) or all (a plain forward).",
        INFERENCE_LOGITS,
        blank=True,
        blank_label="Default (last)",
        default_note="last",
    ),
    _choice(
        "bnb_4bit_dequant_path",
        "view",
        "bitsandbytes 4-bit dequantisation",
        "nf4 / fp4: each matmul's dequantised weight in the compute dtype, or float16 then cast "
        "(bitsandbytes before 0.43, Lightning Fabric).",
        BNB_4BIT_DEQUANT_PATHS,
        choice_labels={
            "compute": "straight to the compute dtype (bitsandbytes 0.43+)",
            "float16_then_bfloat16": "float16, then a bfloat16 copy",
            "float16_then_float32": "float16, then a float32 copy",
        },
        blank=True,
        blank_label="Default (compute dtype)",
        default_note="compute",
    ),
    _choice(
        "gptq_kernel",
        "view",
        "GPTQ kernel",
        "gptq_int4: the AutoGPTQ kernel and the buffers it holds: exllama (transformers' "
        "default, a float16 copy of the largest matrix), exllamav2 (a scratch sized for 2048 "
        "tokens x 8 sequences), or cuda-old (dequantises each matmul over 128+ tokens).",
        GPTQ_KERNELS,
        choice_labels={
            "exllama": "exllama (transformers' default)",
            "exllamav2": "exllamav2 (optimum's default)",
            "cuda_old": "cuda-old (use_exllama=False)",
        },
        blank=True,
        blank_label="Default (exllama)",
        default_note="exllama",
    ),
    _choice(
        "bnb_int8_matmul",
        "view",
        "bitsandbytes LLM.int8 matmul",
        "int8: int8 input copies and the int32 product of each matmul, row-major (bitsandbytes "
        "0.45+) or col32 (before 0.45: three int8 copies, and the first forward's weight "
        "transform to the col_turing / col_ampere layout).",
        BNB_INT8_MATMULS,
        choice_labels={
            "row_major": "row-major (bitsandbytes 0.45+)",
            "col32": "col32 / col_ampere (bitsandbytes 0.37-0.44)",
        },
        blank=True,
        blank_label="Default (row-major)",
        default_note="row_major",
    ),
    ContractField(
        "quantise_lm_head",
        "boolean",
        "view",
        "LM head quantised too (Lightning Fabric / litgpt)",
        "nf4 / fp4 / int8: the LM head is quantised like every nn.Linear (transformers skips it).",
    ),
    ContractField(
        "fused_qkv_attention",
        "boolean",
        "view",
        "Fused qkv attention (litgpt)",
        "Training: one qkv projection; SDPA keeps V, a view of its output, and K/V repeated "
        "to every query head (litgpt CausalSelfAttention).",
    ),
    ContractField(
        "previous_graph_alive",
        "boolean",
        "view",
        "Loop keeps the last micro-batch's graph (litgpt)",
        "Training: the loop's float32 logits keep the previous micro-batch's graph until the "
        "next forward returns (litgpt finetune/lora.py with Lightning Fabric).",
    ),
    _choice(
        "cross_entropy",
        "view",
        "Cross-entropy",
        "Training: one float32 cross-entropy over all the logits, torchtune's "
        "CEWithChunkedOutputLoss (8 chunks, each upcast on its own), or that loss compiled "
        "(only the 16-bit logits saved).",
        CROSS_ENTROPY_IMPLEMENTATIONS,
        choice_labels={
            "plain": "one float32 cross-entropy (transformers, litgpt)",
            "chunked": "chunked, 8 chunks (torchtune CEWithChunkedOutputLoss)",
            "chunked_compiled": "chunked and compiled (torchtune compile=True)",
        },
        blank=True,
        blank_label="Default (one float32 cross-entropy)",
        default_note="plain",
    ),
    ContractField(
        "optimizer_in_backward",
        "boolean",
        "view",
        "Optimizer step in backward (torchtune optimizer_in_bwd)",
        "Training: each parameter is stepped and its gradient freed as soon as it is computed "
        "(torchtune register_optim_in_bwd_hooks); no gradient accumulation.",
    ),
    ContractField(
        "activation_offloading",
        "boolean",
        "view",
        "Activation offloading (torchtune)",
        "Training: saved activations moved to host memory in forward, brought back one layer "
        "ahead in backward (torchtune OffloadActivations); the LM head's stay.",
    ),
    _choice(
        "memory_view",
        "view",
        "Memory view",
        "allocated (torch.cuda.max_memory_allocated), reserved (max_memory_reserved) or device "
        "(what nvidia-smi shows).",
        MEMORY_VIEWS,
        blank=True,
        blank_label="Default (1 GiB overhead)",
        default_note="the 1 GiB runtime overhead",
    ),
    # --- parallelism -------------------------------------------------------------------------
    ContractField("num_gpus", "integer", "parallel", "GPUs", "GPUs the model runs on."),
    ContractField(
        "tensor_parallel",
        "integer",
        "parallel",
        "Tensor parallel",
        "Tensor-parallel ranks.",
        blank=True,
        default_note="with pipeline_parallel blank too, laid out from num_gpus (inference: "
        "the widest tensor parallelism dividing it, pipeline stages for the rest; training: 1)",
    ),
    ContractField(
        "pipeline_parallel",
        "integer",
        "parallel",
        "Pipeline parallel",
        "Pipeline stages.",
        blank=True,
        default_note="as tensor_parallel says; else 1",
    ),
    ContractField(
        "expert_parallel",
        "integer",
        "parallel",
        "Expert parallel",
        "MoE, detailed method: routed experts split over this many GPUs. Inference: whole "
        "experts each (vLLM --enable-expert-parallel), 1 or tensor_parallel x data_parallel. "
        "Training (full or partial): Megatron-Core's rule, a divisor of context_parallel x "
        "data_parallel, each expert still split over tensor_parallel. It must divide "
        "num_experts.",
        blank=True,
        default_note="1",
    ),
    ContractField(
        "context_parallel",
        "integer",
        "parallel",
        "Context parallel",
        "Training, detailed method: each sequence split over this many GPUs (Megatron-Core "
        "context parallelism, ring attention); num_gpus = tensor_parallel x pipeline_parallel x "
        "context_parallel x data parallel, and sequence_length must be a multiple of 2 x "
        "context_parallel.",
        blank=True,
        default_note="1",
    ),
    ContractField(
        "zero_stage",
        "integer",
        "parallel",
        "ZeRO stage",
        "Training with data parallelism: 0 (off) to 3.",
    ),
    _choice(
        "offload",
        "parallel",
        "Offload to CPU",
        "Training state kept in host RAM (host_memory_bytes sizes it): optimizer (DeepSpeed "
        "offload_optimizer, zero_stage 1-3) or optimizer_and_parameters (zero_stage 3; FSDP's "
        "CPUOffload).",
        OFFLOADS,
        choice_labels={
            "none": "Nothing",
            "optimizer": "Optimizer state (ZeRO-Offload)",
            "optimizer_and_parameters": "Optimizer state and parameters (ZeRO-3, FSDP)",
        },
        blank=True,
        blank_label="Nothing (default)",
        default_note="none",
    ),
    _choice(
        "sharding",
        "parallel",
        "Sharded by",
        "What ZeRO stages 2 and 3 gather and bucket: FSDP stage 3 is FULL_SHARD, stage 2 "
        "SHARD_GRAD_OP.",
        SHARDINGS,
        choice_labels={
            "deepspeed": "DeepSpeed (its own defaults)",
            "deepspeed_hf_auto": 'DeepSpeed via HF Trainer ("auto" buckets)',
            "fsdp": "PyTorch FSDP (per decoder layer)",
        },
        blank=True,
        blank_label="Default (DeepSpeed)",
        default_note="deepspeed",
    ),
    # --- GPUs: fit, capacity, throughput, cost -----------------------------------------------
    ContractField(
        "gpu",
        "gpu",
        "hardware",
        "GPU",
        "A catalog slug or the GPU's figures: which GPUs fit, how many, how fast and at what cost.",
        blank=True,
        default_note="none (the page opens with an H100)",
    ),
    ContractField(
        "gpu_count",
        "integer",
        "hardware",
        "GPU count",
        "GPUs the answers are for.",
        blank=True,
        default_note="num_gpus",
        on_form=False,
    ),
    ContractField(
        "price_per_hour",
        "number",
        "hardware",
        "Price per GPU-hour (USD)",
        "USD per GPU-hour.",
        blank=True,
        default_note="the catalog's indicative on-demand price",
    ),
    ContractField(
        "memory_utilization",
        "number",
        "hardware",
        "Memory for capacity",
        "Share of GPU memory a server may use (fit and capacity).",
        blank=True,
    ),
    ContractField(
        "decode_efficiency",
        "number",
        "hardware",
        "Decode efficiency",
        "Share of peak memory bandwidth decoding reaches (serving engines measure 0.6-0.8).",
        blank=True,
    ),
    ContractField(
        "prefill_efficiency",
        "number",
        "hardware",
        "Prefill efficiency",
        "Share of peak bf16 compute prefill reaches (PaLM 0.46, Megatron-LM 0.52).",
        blank=True,
    ),
    ContractField(
        "training_efficiency",
        "number",
        "hardware",
        "Training efficiency",
        "Share of peak bf16 compute training reaches, MFU (Llama 3 reached 0.38-0.43).",
        blank=True,
    ),
    ContractField(
        "training_tokens",
        "integer",
        "hardware",
        "Training tokens",
        "Tokens in the data set, to cost a training run.",
        blank=True,
        default_note="no training run costed",
    ),
    ContractField(
        "epochs",
        "number",
        "hardware",
        "Epochs",
        "Epochs of that run.",
        blank=True,
        open_low=True,
    ),
    # --- serving plans (mode serving) --------------------------------------------------------
    _choice(
        "engine",
        "serving",
        "Serving engine",
        "Whose accounting the plan follows: vllm, sglang, llama.cpp (llama-server, one GPU, "
        "layers left on the CPU in host RAM) or transformers (generate(): nothing reserved, the "
        "cache grows).",
        SERVING_ENGINES,
        choice_labels={
            "vllm": "vLLM",
            "sglang": "SGLang",
            "llama.cpp": "llama.cpp (llama-server)",
            "transformers": "transformers generate()",
        },
        blank=True,
        blank_label="vLLM (default)",
    ),
    ContractField(
        "gpu_memory_utilization",
        "number",
        "serving",
        "GPU memory utilization",
        "vLLM --gpu-memory-utilization or SGLang --mem-fraction-static.",
        blank=True,
        default_note="vLLM 0.9; SGLang 0.88 on one GPU, 0.87 from 2, 0.85 from 4, 0.81 from 8",
    ),
    ContractField(
        "max_model_len",
        "integer",
        "serving",
        "Max model length",
        "--max-model-len: the longest request.",
        blank=True,
        default_note="sequence_length",
    ),
    ContractField(
        "output_tokens",
        "integer",
        "serving",
        "Output tokens per request",
        "The rest of max model length is the prompt.",
        blank=True,
    ),
    ContractField(
        "max_num_seqs",
        "integer",
        "serving",
        "Max sequences",
        "--max-num-seqs.",
        blank=True,
        default_note="vLLM's for the GPU (1024 from 70 GiB, else 256)",
    ),
    ContractField(
        "max_num_batched_tokens",
        "integer",
        "serving",
        "Max batched tokens",
        "--max-num-batched-tokens, the profiled prefill chunk.",
        blank=True,
        default_note="vLLM's for the GPU (8192 from 70 GiB, else 2048)",
    ),
    ContractField(
        "block_size",
        "integer",
        "serving",
        "KV block size",
        "--block-size, tokens a KV block holds.",
        blank=True,
    ),
    _choice(
        "vllm_version",
        "serving",
        "vLLM profiling",
        "Whose start-up profile sizes vLLM's activation peak: v1 (the V1 engine, vLLM 0.8 on: "
        "the larger of the dummy forward and the dummy sampler) or v0 (the V0 worker, vLLM "
        "0.6.5 - 0.7: the larger of the eager forward and the sampler's sort of the float32 "
        "logits).",
        VLLM_VERSIONS,
        choice_labels={"v1": "V1 engine (vLLM 0.8 on)", "v0": "V0 engine (vLLM 0.6.5 - 0.7)"},
        blank=True,
        blank_label="V1 engine (default)",
    ),
    ContractField(
        "non_torch_bytes",
        "integer",
        "serving",
        "Non-torch memory (bytes)",
        "Memory outside torch: NCCL, cuBLAS, the CUDA context.",
        blank=True,
        default_note="vLLM's logged 1.79 GiB, 3.58 GiB with tensor parallelism; SGLang 1,343 MiB",
    ),
    ContractField(
        "target_output_tokens_per_s",
        "integer",
        "serving",
        "Target output tokens/s",
        "Lists the cheapest catalog deployments that reach it (serving.deployments).",
        blank=True,
        default_note="no search",
    ),
    # --- speculative decoding (engine vllm; engine/speculative.py) ---------------------------
    _choice(
        "speculative_method",
        "serving",
        "Speculative decoding",
        "vLLM speculative_config method (engine vllm): draft_model, eagle, eagle3, mtp (the "
        "model's own MTP layers, e.g. DeepSeek-V3) or ngram.",
        SPECULATIVE_METHODS,
        blank=True,
        blank_label="Off",
        default_note="off",
    ),
    ContractField(
        "num_speculative_tokens",
        "integer",
        "serving",
        "Speculative tokens",
        "Tokens proposed a step (k); required but for mtp.",
        blank=True,
        default_note="for mtp, num_nextn_predict_layers",
    ),
    ContractField(
        "draft_model",
        "text",
        "serving",
        "Draft model",
        "speculative_method draft_model: the draft's catalog slug.",
        blank=True,
        max_length=200,
        default_note="none",
    ),
    ContractField(
        "acceptance_rate",
        "number",
        "serving",
        "Acceptance rate",
        "Per-token acceptance rate a; a step yields (1 - a^(k+1)) / (1 - a) tokens "
        "(Leviathan et al. 2023, eq. 1).",
        blank=True,
        default_note=f"{DEFAULT_ACCEPTANCE_RATE}",
    ),
    # --- llama.cpp (llama-server's flags; engine/serving_llamacpp.py) ------------------------
    ContractField(
        "n_gpu_layers",
        "integer",
        "serving",
        "GPU layers (-ngl)",
        "llama.cpp -ngl: layers offloaded to the GPU, the output layer too above the model's "
        "layer count; the rest, and the token embeddings, stay in host RAM.",
        blank=True,
        default_note="all",
    ),
    ContractField(
        "n_parallel",
        "integer",
        "serving",
        "Slots (-np)",
        "llama.cpp -np: requests decoding at once; the context -c is max_model_len x slots.",
        blank=True,
    ),
    ContractField(
        "n_ubatch",
        "integer",
        "serving",
        "Micro-batch (-ub)",
        "llama.cpp -ub: tokens of the compute graph llama.cpp reserves.",
        blank=True,
    ),
    _choice(
        "cache_type_k",
        "serving",
        "K cache type (-ctk)",
        "llama.cpp --cache-type-k.",
        tuple(LLAMACPP_CACHE_TYPES),
        blank=True,
        blank_label="f16 (default)",
    ),
    _choice(
        "cache_type_v",
        "serving",
        "V cache type (-ctv)",
        "llama.cpp --cache-type-v (a quantised V needs flash attention).",
        tuple(LLAMACPP_CACHE_TYPES),
        blank=True,
        blank_label="f16 (default)",
    ),
)
FIELD_SPECS: dict[str, ContractField] = {spec.name: spec for spec in CONTRACT}
# every contract field but the model has its row, and no row names a field the engine lacks
assert set(FIELD_SPECS) == {*FIELDS, *HARDWARE_FIELDS, *SERVING_FIELDS} - {"model"}, sorted(
    {*FIELDS, *HARDWARE_FIELDS, *SERVING_FIELDS} ^ {"model", *FIELD_SPECS}
)


def fields_of(group: Group) -> tuple[str, ...]:
    return tuple(spec.name for spec in CONTRACT if spec.group == group)


def _figure(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() else f"{value:g}"


def limits_table(title: str, limits: Mapping[str, tuple[float, float]], open_low=()) -> list[str]:
    lines = [f"### {title}", "", "| field | smallest | largest |", "|---|---:|---:|"]
    for name, (low, high) in limits.items():
        smallest = f"more than {_figure(low)}" if name in open_low else _figure(low)
        lines.append(f"| `{name}` | {smallest} | {_figure(high)} |")
    return [*lines, ""]


def contract_limits(group: tuple[Group, ...]) -> dict[str, tuple[float, float]]:
    return {
        spec.name: limits
        for spec in CONTRACT
        if spec.group in group and (limits := spec.limits) is not None
    }


OPEN_LOW = tuple(spec.name for spec in CONTRACT if spec.open_low)
