"""The engine's one door: `calculate(payload) -> dict`, the estimate contract (docs/design.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from calculator.engine.architecture import Architecture
from calculator.engine.breakdown import Breakdown, MethodResult
from calculator.engine.checkpoint import describe_checkpoint
from calculator.engine.errors import EstimateError
from calculator.engine.hardware import (
    MAX_FIT_GPUS,
    GpuSpec,
    HardwareRequest,
    Sizer,
    configuration_for,
    hardware_answers,
    parse_hardware,
)
from calculator.engine.inputs import (
    HARDWARE_FIELDS,
    TRAINABLE_WEIGHT_DTYPES,
    EstimateInputs,
    parse_inputs,
)
from calculator.engine.memory import detailed_estimate
from calculator.engine.serving import parse_serving, serving_answer
from calculator.engine.standard import standard_estimate
from calculator.engine.vision import image_load

# Bump when a formula or a constant changes a number: saved estimates record it
# 2.5: the published checkpoint's format (quantization_config) is the default weight_dtype;
# mxfp4, fp8_block and nvfp4; ZeRO-2/3 and FSDP working sets (sharding), offload; hybrid
# linear-attention / state-space layers; Gemma 3's vision tower
# 2.6: vision-language models (LLaVA, Mistral 3, Qwen2.5-VL, Qwen3-VL) counted whole; image
# tokens (images_per_request) and the vision tower's activations
ENGINE_VERSION = "2.6.0"


def estimate(inputs: EstimateInputs, architecture: Architecture) -> MethodResult:
    """Run the chosen method on validated inputs."""
    if inputs.method == "standard":
        return standard_estimate(inputs, architecture)
    return detailed_estimate(inputs, architecture)


def active_without_embeddings(architecture: Architecture, active: int) -> int:
    """Active parameters less the input embedding table (and learned position embeddings), the
    convention of the gpt-oss model card (5.13B active for gpt-oss-120b): the LM head stays, as
    every token passes through it. A tied table is the LM head too, so it stays counted."""
    counts = architecture.parameters
    if counts is None:
        return active
    embeddings = counts.embeddings
    if architecture.tie_word_embeddings or counts.lm_head == 0:
        embeddings -= architecture.vocab_size * architecture.hidden_size
    return active - max(embeddings, 0)


def checkpoint_dict(architecture: Architecture) -> dict[str, Any] | None:
    """What config.json's quantization_config says the published weights are, or None."""
    checkpoint = architecture.checkpoint
    if checkpoint is None:
        return None
    return {
        "quant_method": checkpoint.quant_method,
        "weight_dtype": checkpoint.weight_dtype,
        "description": describe_checkpoint(
            checkpoint, architecture.linear_layers, architecture.default_dtype
        ),
    }


def peak_phase(inputs: EstimateInputs, breakdown: Breakdown) -> dict[str, Any] | None:
    """Training: which phase sets the peak and what it holds, in one sentence for people."""
    if not inputs.training or inputs.method != "detailed":
        return None
    gib = 2**30
    gradients = breakdown.gradients
    activations = breakdown.activation_peak
    if breakdown.activations > 0 and inputs.gradient_accumulation_steps > 1:
        phase = "backward"
        text = (
            f"The peak is in backward: with gradient accumulation every gradient "
            f"({gradients / gib:.2f} GiB) is kept between micro-batches, and the saved "
            f"activations ({activations / gib:.2f} GiB) come on top."
        )
    elif breakdown.activations > 0 and inputs.gradient_checkpointing and activations < gradients:
        # detailed.py _training_activations: the lowest checkpointed layer is recomputed last
        phase = "backward"
        text = (
            f"The peak is late in backward: gradient checkpointing recomputes the first layer "
            f"when nearly every gradient ({gradients / gib:.2f} GiB) exists, and that layer's "
            f"activations ({breakdown.activations / gib:.2f} GiB beyond them) come on top; "
            "sharding (ZeRO-2/3) or fewer trainable parameters lower it."
        )
    elif breakdown.activations > 0:
        phase = "backward"
        text = (
            f"The peak is in backward: the saved activations ({activations / gib:.2f} GiB) "
            f"outweigh the gradients ({gradients / gib:.2f} GiB), which appear as they are freed"
            "; gradient checkpointing or a smaller batch lowers it."
        )
    else:
        phase = "optimizer_step"
        text = (
            f"The peak is at the optimizer step: every gradient exists ({gradients / gib:.2f} "
            f"GiB) once backward has freed the activations ({activations / gib:.2f} GiB at "
            "most), so the activations line is 0 and gradient checkpointing or a smaller batch "
            "cannot lower it; sharding (ZeRO-2/3) or fewer trainable parameters can."
        )
    return {
        "phase": phase,
        "activation_peak_bytes": activations,
        "gradients_bytes": gradients,
        "text": text,
    }


def result_dict(
    inputs: EstimateInputs, result: MethodResult, notes: list[str], architecture: Architecture
) -> dict[str, Any]:
    breakdown = result.breakdown
    return {
        "parameters": {
            "total": result.total_parameters,
            "active": result.active_parameters,
            "active_without_embeddings": active_without_embeddings(
                architecture, result.active_parameters
            ),
            "trainable": result.trainable_parameters,
        },
        "checkpoint": checkpoint_dict(architecture),
        "peak": peak_phase(inputs, breakdown),
        "breakdown": breakdown.as_dict(),
        "total_bytes": breakdown.total,
        "host_memory_bytes": breakdown.host_bytes,
        "num_gpus": inputs.num_gpus,
        "inputs": inputs.as_dict(),
        "notes": notes + list(result.notes),
        "engine_version": ENGINE_VERSION,
    }


def _serving(
    payload: dict[str, Any],
    inputs: EstimateInputs,
    architecture: Architecture,
    hardware: HardwareRequest,
    fit_gpus: Sequence[GpuSpec] | None,
    result: dict[str, Any],
) -> dict[str, Any]:
    """mode "serving": the plan a serving engine makes on the GPUs asked for."""
    if hardware.gpu is None:
        raise EstimateError("gpu", "a serving plan needs a GPU: choose one")
    if inputs.method != "detailed":
        raise EstimateError("method", "serving plans use the detailed method")
    sizer = Sizer(payload, architecture)
    configuration = configuration_for(sizer, hardware.gpu_count)
    request = parse_serving(
        payload, hardware.gpu, configuration.tensor_parallel, inputs.sequence_length
    )
    if request.engine == "llama.cpp" and hardware.gpu_count > 1:
        raise EstimateError(
            "gpu_count", "llama.cpp plans cover one GPU (--split-mode layer is not modelled)"
        )
    result["inputs"].update(request.as_dict())
    answer = serving_answer(sizer, configuration, hardware, request, fit_gpus=fit_gpus or ())
    if request.engine == "llama.cpp":
        # llama.cpp's buffers in host RAM: layers left on the CPU, their KV, token embeddings
        result["host_memory_bytes"] = answer["memory"]["llamacpp"]["host_bytes"]
    return answer


def trained_positions(payload: dict[str, Any], architecture: Architecture) -> int:
    """The longest context the model was trained or extended for (0: unknown): config.json's
    max_position_embeddings, or rope scaling's factor times the original length where that is
    longer (YaRN, linear and dynamic scaling keep the original length there; Llama 3's own
    scaling already writes the extended one, transformers modeling_rope_utils)."""
    positions = architecture.max_position_embeddings
    config = (payload.get("model") or {}).get("hf_config")
    if isinstance(config, dict):
        text_config = config.get("text_config")
        if isinstance(text_config, dict):
            config = text_config
        scaling = config.get("rope_scaling")
        if isinstance(scaling, dict) and isinstance(scaling.get("factor"), int | float):
            original = scaling.get("original_max_position_embeddings") or positions
            if isinstance(original, int) and original > 0:
                positions = max(positions, int(scaling["factor"] * original))
    return positions


def warnings_for(
    payload: dict[str, Any], inputs: EstimateInputs, architecture: Architecture, result: dict
) -> list[dict[str, str]]:
    """Where the request leaves the model's or the catalog's envelope: said beside the answer,
    which is still computed as asked."""
    found = []
    positions = trained_positions(payload, architecture)
    images = image_load(inputs, architecture.vision)
    tokens = inputs.sequence_length + (images.tokens if images else 0)
    if positions and tokens > positions:
        held = f" (with {images.tokens:,} image tokens)" if images else ""
        found.append(
            {
                "field": "sequence_length",
                "message": f"{tokens:,} tokens{held} is beyond the {positions:,} "
                "positions the model was trained for (max_position_embeddings, with its rope "
                "scaling): memory is estimated as asked, but quality past it is not to be "
                "relied on.",
            }
        )
    fit_rows = result.get("fit") or []
    if len(fit_rows) > 1 and all(row["fewest_gpus"] is None for row in fit_rows):
        found.append(
            {
                "field": "gpu",
                "message": f"No GPU in the catalog holds this, even {MAX_FIT_GPUS:,} of them: "
                "lower the batch size or the sequence length, or quantise.",
            }
        )
    answer = result.get("answer")
    gpu = result["inputs"].get("gpu")
    if answer is not None and isinstance(gpu, dict) and is_unified_memory(gpu):
        found += _unified_memory_warnings(gpu, answer)
    return found


# Apple silicon: the GPU shares the machine's memory, and Metal lets it wire only part of it
# (recommendedMaxWorkingSetSize, printed by llama.cpp at load): two thirds on machines of up to
# 36 GB (16 GB: 10,922.67 MB, llama-cpp-python #687; 32 GB: 21,845.34 MB, ollama #434), three
# quarters above (96 GB: 73,728.00 MB, llama.cpp #3213). `sysctl iogpu.wired_limit_mb` raises it.
UNIFIED_SMALL_MACHINE_BYTES = 36 * 10**9
UNIFIED_SHARE_SMALL = (2, 3)
UNIFIED_SHARE_LARGE = (3, 4)


def is_unified_memory(gpu: dict[str, Any]) -> bool:
    text = f"{gpu.get('slug', '')} {gpu.get('name', '')}".lower()
    return "apple" in text


def unified_usable_bytes(memory_bytes: int) -> int:
    top, bottom = (
        UNIFIED_SHARE_SMALL if memory_bytes <= UNIFIED_SMALL_MACHINE_BYTES else UNIFIED_SHARE_LARGE
    )
    return memory_bytes * top // bottom


def _unified_memory_warnings(gpu: dict[str, Any], answer: dict[str, Any]) -> list[dict[str, str]]:
    found = []
    usable = unified_usable_bytes(gpu["memory_bytes"])
    per_gpu = answer.get("per_gpu_bytes")
    if per_gpu is not None and per_gpu > usable:
        found.append(
            {
                "field": "gpu",
                "message": f"{gpu.get('name') or 'This Mac'} shares its memory with the system: "
                f"Metal lets the GPU use about {usable / 2**30:,.1f} GiB of it "
                "(recommendedMaxWorkingSetSize) and this needs "
                f"{per_gpu / 2**30:,.1f} GiB; raise the limit with "
                "`sysctl iogpu.wired_limit_mb` or choose a smaller setup.",
            }
        )
    if answer["gpu_count"] > 1:
        found.append(
            {
                "field": "num_gpus",
                "message": "Apple machines are not split by tensor parallelism across machines: "
                "each holds its own copy (or a pipeline stage over the network, much slower).",
            }
        )
    return found


def _lora_above_full(
    inputs: EstimateInputs, architecture: Architecture, total: int
) -> list[dict[str, str]]:
    """LoRA that takes more than full fine-tuning of the same model and batch: said, with why."""
    if not (inputs.training and inputs.method == "detailed" and inputs.finetuning == "lora"):
        return []
    if inputs.weight_dtype not in TRAINABLE_WEIGHT_DTYPES:
        return []  # full fine-tuning cannot train quantised weights: nothing to compare with
    full = estimate(inputs.with_value("finetuning", "full"), architecture).breakdown.total
    if total <= full:
        return []
    gib = 2**30
    why = (
        "PEFT keeps each adapted layer's input in float32 for the adapters "
        "(autocast_adapter_dtype), and at this many tokens those copies outweigh the gradients "
        "and optimizer states that full fine-tuning adds; lora_adapter_dtype bfloat16 (litgpt, "
        "torchtune, Unsloth) or gradient checkpointing avoids it"
        if inputs.lora_adapter_dtype == "float32"
        else "the adapters' saved inputs at this many tokens outweigh the gradients and "
        "optimizer states full fine-tuning adds"
    )
    return [
        {
            "field": "finetuning",
            "message": f"LoRA needs more here than full fine-tuning ({total / gib:,.2f} GiB "
            f"against {full / gib:,.2f} GiB per GPU): {why}.",
        }
    ]


def calculate(
    payload: dict[str, Any],
    *,
    architecture: Architecture | None = None,
    fit_gpus: Sequence[GpuSpec] | None = None,
) -> dict[str, Any]:
    """Estimate the memory per GPU of running or training a model.

    `payload` is the contract's flat request (docs/design.md); `payload["model"]` is
    `{"hf_config": {...}}` or `{"architecture": {...}}`. Bad input raises `EstimateError`.
    `architecture`, when given, is used instead of parsing `payload["model"]` (a snapshot).

    With a `gpu` in the payload the response gains `fit` (for each of `fit_gpus`, else the GPU
    asked for), `capacity`, `throughput` and `cost`, and `inputs` echoes the hardware fields,
    normalised; without any hardware field the response is exactly the memory estimate's.
    """
    resolved = None if architecture is None else (architecture, ())
    inputs, architecture, notes = parse_inputs(payload, resolved)
    hardware = parse_hardware(payload, inputs.num_gpus)
    result = result_dict(inputs, estimate(inputs, architecture), notes, architecture)
    if any(payload.get(name) is not None for name in HARDWARE_FIELDS):
        result["inputs"].update(hardware.as_dict())
    if hardware.gpu is not None:
        result.update(
            hardware_answers(payload, hardware, architecture=architecture, fit_gpus=fit_gpus)
        )
    if inputs.mode == "serving":
        result["serving"] = _serving(payload, inputs, architecture, hardware, fit_gpus, result)
    result["warnings"] = warnings_for(payload, inputs, architecture, result)
    result["warnings"] += _lora_above_full(inputs, architecture, result["total_bytes"])
    return result
