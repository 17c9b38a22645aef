"""Run ONE case in the current process and print its measurements as one JSON line.

    MALLOC_MMAP_THRESHOLD_=65536 python -m validation.measure <case-name>
    python -m validation.measure <case-name> --device cuda

Peak memory is the process's peak resident set (`VmHWM`, reset by writing 5 to
/proc/self/clear_refs) minus the resident set measured after a warm-up and before the model is
built, so that torch's code, the kernels it pages in and Python's own objects are excluded. With
MALLOC_MMAP_THRESHOLD_=65536 every block of 64 KiB or more is its own mapping and goes back to the
system when freed, so the resident set follows the live tensors (torch's CPU allocator has no
cache). Exact sizes (weights, KV cache, gradients, optimizer states) are summed from the tensors.

With `--device cuda` the same case runs on the GPU: the model is built there, and the peak is
`torch.cuda.max_memory_allocated()` minus `torch.cuda.memory_allocated()` taken after the warm-up
(and `torch.cuda.empty_cache()`) and before the model is built, so the weights count as on the
CPU. Everything else (warm-up, phases, exact sizes) is the CPU's code.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

from validation.cases import CASES_BY_NAME, Case

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
WARMUP_TOKENS = 16  # training warm-up batch of 1 x 16 tokens: pages in the kernels it uses
SEED = 0
# one thread: no OpenMP barriers to stall on a busy machine, no per-thread kernel scratch
THREADS = 1
TRAINING_STEPS = 2  # the second step runs with the optimizer states already allocated
DEVICES = ("cpu", "cuda")


def resident_bytes() -> tuple[int, int]:
    """(current, peak) resident set of this process, from /proc/self/status."""
    values: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


class ResidentSet:
    """CPU: the process's resident set (`VmRSS`) and its peak (`VmHWM`)."""

    device = "cpu"
    name = "resident"

    def read(self) -> tuple[int, int]:
        """(current, peak) bytes."""
        return resident_bytes()

    def reset_peak(self) -> None:
        reset_peak()

    def release_cache(self) -> None:
        """Nothing to release: torch's CPU allocator keeps no cache."""


class CudaAllocated:
    """GPU: bytes held by tensors in torch's caching allocator (`torch.cuda.memory_allocated`)
    and their peak (`torch.cuda.max_memory_allocated`). Reserved-but-free blocks, the CUDA
    context and the libraries' own memory are not counted, as the engine's `runtime_overhead`
    line (0 here) stands for them."""

    device = "cuda"
    name = "allocated"

    def read(self) -> tuple[int, int]:
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()

    def reset_peak(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def release_cache(self) -> None:
        """Hand the blocks the warm-up freed back to the driver."""
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


Memory = ResidentSet | CudaAllocated


def tensor_bytes(tensors: Iterator[torch.Tensor]) -> int:
    """Logical bytes of distinct tensors (a tensor seen twice, e.g. tied weights, counts once)."""
    seen: set[int] = set()
    total = 0
    for tensor in tensors:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


def storage_bytes(tensors: Iterator[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (a view keeps its whole base alive)."""
    storages: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def build_model(case: Case, device: str = "cpu") -> torch.nn.Module:
    """The case's model with random weights; on a GPU, built there (no CPU copy first)."""
    placement = torch.device(device) if device != "cpu" else nullcontext()
    with placement:
        model = _build_model(case)
    if device != "cpu":
        model.to(device)  # anything transformers or PEFT made on the CPU regardless
    return model


def _build_model(case: Case) -> torch.nn.Module:
    config = AutoConfig.for_model(**case.config)
    torch.manual_seed(SEED)
    # a vision-language model (a vision_config) is built whole, its tower and projector too
    auto = AutoModelForImageTextToText if "vision_config" in case.config else AutoModelForCausalLM
    model = auto.from_config(
        config, dtype=TORCH_DTYPES[case.dtype], attn_implementation=case.attention
    )
    if case.finetuning == "lora":
        from peft import LoraConfig, get_peft_model

        # PEFT's defaults: adapters on every linear layer but the LM head, cast to float32
        # (autocast_adapter_dtype=True) even when the base model is bfloat16.
        lora_config = LoraConfig(
            r=case.lora_rank,
            lora_alpha=2 * case.lora_rank,
            lora_dropout=0.0,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora_config)
    if case.gradient_checkpointing:
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
    return model


def other_dtype_parameters(model: torch.nn.Module, dtype: torch.dtype) -> dict[str, int]:
    """Parameter counts by name pattern (layer numbers dropped) of the base model's parameters
    whose dtype is not `dtype`."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        if parameter.dtype != dtype and "lora_" not in name:
            pattern = ".".join(part for part in name.split(".") if not part.isdigit())
            key = f"{pattern} ({str(parameter.dtype).removeprefix('torch.')})"
            counts[key] = counts.get(key, 0) + parameter.numel()
    return counts


def input_ids(case: Case, batch_size: int, sequence_length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(SEED)
    vocab_size = int(case.config.get("text_config", case.config)["vocab_size"])
    if case.images_per_request:
        # text tokens below the image token (LLaVA's added tokens sit at 32000 and above)
        vocab_size = int(case.config["image_token_index"])
    ids = torch.randint(0, vocab_size, (batch_size, sequence_length), generator=generator)
    if not case.images_per_request:
        return ids
    # the processor-free path: each image's tokens (its placeholder repeated once per feature,
    # as LlavaProcessor expands "<image>") ahead of the text
    image_tokens = torch.full(
        (batch_size, case.images_per_request * image_tokens_per_image(case)),
        int(case.config["image_token_index"]),
    )
    return torch.cat([image_tokens, ids], dim=1)


def image_tokens_per_image(case: Case) -> int:
    """LLaVA + CLIP: one token per patch, the [CLS] feature dropped by the "default" strategy
    (modeling_llava.py get_image_features, transformers 5.25)."""
    vision = case.config["vision_config"]
    if case.config["model_type"] != "llava" or vision["model_type"] != "clip_vision_model":
        raise ValueError(f"{case.name}: images are fed to LLaVA + CLIP only")
    if case.image_height is not None or case.image_width is not None:
        raise ValueError(f"{case.name}: CLIP takes images at its image_size only")
    patches = (int(vision["image_size"]) // int(vision["patch_size"])) ** 2
    full = case.config.get("vision_feature_select_strategy", "default") == "full"
    return patches + full


def pixel_values(case: Case, batch_size: int, device: str) -> dict[str, torch.Tensor]:
    """The images as CLIPImageProcessor hands them over: (batch x images, 3, size, size) in the
    weights' dtype, one random image per slot."""
    if not case.images_per_request:
        return {}
    image_tokens_per_image(case)  # refuses what this path cannot feed
    size = int(case.config["vision_config"]["image_size"])
    generator = torch.Generator().manual_seed(SEED)
    shape = (batch_size * case.images_per_request, 3, size, size)
    pixels = torch.randn(shape, generator=generator).to(TORCH_DTYPES[case.dtype])
    return {"pixel_values": pixels.to(device)}


def training_labels(case: Case, ids: torch.Tensor) -> torch.Tensor:
    """The tokens as their own labels; image tokens ignored (-100), as collators mask them."""
    if not case.images_per_request:
        return ids
    return ids.masked_fill(ids == int(case.config["image_token_index"]), -100)


def kv_cache_tensors(cache: Any) -> list[torch.Tensor]:
    tensors: list[torch.Tensor] = []
    for layer in cache.layers:
        # attention layers keep keys and values; linear-attention / state-space layers
        # (cache_utils.py LinearAttentionLayer) their conv_states and recurrent_states, per state
        # index; Falcon-H1's hybrid layers both
        keys_values = (getattr(layer, "keys", None), getattr(layer, "values", None))
        tensors.extend(t for t in keys_values if isinstance(t, torch.Tensor))
        for name in ("conv_states", "recurrent_states"):
            states = getattr(layer, name, None)
            if isinstance(states, dict):
                tensors.extend(t for t in states.values() if isinstance(t, torch.Tensor))
    return tensors


def run_inference(
    model: torch.nn.Module, ids: torch.Tensor, images: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """One prefill as generate() runs it: no grad, a DynamicCache, logits of the last position."""
    model.eval()
    with torch.no_grad():
        outputs = model(input_ids=ids, use_cache=True, logits_to_keep=1, **images)
    cache = getattr(outputs, "past_key_values", None) or outputs.cache
    tensors = kv_cache_tensors(cache)
    result = {
        "kv_cache_bytes": tensor_bytes(iter(tensors)),
        "kv_cache_storage_bytes": storage_bytes(iter(tensors)),
        "logits_bytes": tensor_bytes(iter([outputs.logits])),
    }
    del outputs, cache, tensors
    return result


def autocast_context(case: Case, device: str = "cpu") -> AbstractContextManager[Any]:
    if case.mixed_precision:
        return torch.autocast(device, dtype=torch.bfloat16)
    return nullcontext()


VIEW_FUNCTIONS = {"TBackward0", "ViewBackward0", "TransposeBackward0", "PermuteBackward0"}


class AutocastCopies:
    """Counts the 16-bit copies autocast makes of float32 parameters that autograd saves for
    backward: saved tensors made by a `_to_copy` straight from a parameter."""

    def __init__(self, parameters: list[torch.nn.Parameter]) -> None:
        self.parameter_ids = {id(p) for p in parameters}
        self.storages: dict[int, int] = {}

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        function = tensor.grad_fn
        # matmuls save the copy through a view (`weight.t()`)
        while function is not None and type(function).__name__ in VIEW_FUNCTIONS:
            function = function.next_functions[0][0]
        if function is not None and type(function).__name__ == "ToCopyBackward0":
            source = function.next_functions[0][0]
            if id(getattr(source, "variable", None)) in self.parameter_ids:
                storage = tensor.untyped_storage()
                self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    def context(self) -> AbstractContextManager[Any]:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


def make_optimizer(case: Case, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if case.optimizer == "adamw":
        # fused: the HF Trainer default (optim="adamw_torch_fused" for torch >= 2.8); no
        # whole-model temporaries in step(), on a GPU as here.
        return torch.optim.AdamW(parameters, lr=1e-5, fused=True)
    if case.optimizer == "sgd_momentum":
        # foreach, as torch defaults to on a GPU; without weight decay it updates in place.
        return torch.optim.SGD(parameters, lr=1e-5, momentum=0.9, foreach=True)
    raise ValueError(f"unknown optimizer {case.optimizer!r}")


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """(states that scale with the parameters, the scalar `step` counters) in bytes."""
    states: list[torch.Tensor] = []
    steps: list[torch.Tensor] = []
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                (steps if key == "step" else states).append(value)
    return tensor_bytes(iter(states)), tensor_bytes(iter(steps))


def run_training(
    model: torch.nn.Module,
    ids: torch.Tensor,
    images: dict[str, torch.Tensor],
    case: Case,
    memory: Memory,
) -> dict[str, Any]:
    """Steps as the HF Trainer runs them: autocast around the forward and loss only, the outputs
    dropped before backward, gradients set to None after each step."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(case, trainable)
    phase_peaks: dict[str, int] = {}
    gradient_bytes = 0
    # transformers' non-reentrant checkpointing installs its own hooks inside each layer, so
    # the copies made there are not seen (nor kept: they are made again while recomputing)
    copies = AutocastCopies(trainable) if case.mixed_precision else None
    labels = training_labels(case, ids)
    for step in range(1, TRAINING_STEPS + 1):
        memory.reset_peak()
        counting = copies.context() if copies and step == 1 else nullcontext()
        with counting, autocast_context(case, memory.device):
            outputs = model(input_ids=ids, labels=labels, use_cache=False, **images)
        loss = outputs.loss
        del outputs
        phase_peaks[f"step{step}_forward"] = memory.read()[1]
        memory.reset_peak()
        loss.backward()
        del loss
        phase_peaks[f"step{step}_backward"] = memory.read()[1]
        gradient_bytes = tensor_bytes(p.grad for p in trainable if p.grad is not None)
        memory.reset_peak()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        phase_peaks[f"step{step}_optimizer"] = memory.read()[1]
    state_bytes, step_counter_bytes = optimizer_state_bytes(optimizer)
    result = {
        "trainable_parameters": sum(p.numel() for p in trainable),
        "trainable_bytes": tensor_bytes(iter(trainable)),
        "gradient_bytes": gradient_bytes,
        "optimizer_state_bytes": state_bytes,
        "optimizer_step_counter_bytes": step_counter_bytes,
        "phase_peaks": phase_peaks,
        "autocast_copy_bytes": copies.bytes if copies and not case.gradient_checkpointing else None,
    }
    del optimizer, trainable
    return result


def run(
    model: torch.nn.Module, case: Case, batch_size: int, sequence_length: int, memory: Memory
) -> dict:
    ids = input_ids(case, batch_size, sequence_length)
    if memory.device != "cpu":
        ids = ids.to(memory.device)  # the same tokens as on the CPU
    images = pixel_values(case, batch_size, memory.device)
    if case.mode == "inference":
        return run_inference(model, ids, images)
    return run_training(model, ids, images, case, memory)


def warm_up(case: Case, memory: Memory) -> None:
    """Run the case once before the baseline is taken, so that lazily loaded code and the
    buffers CPU kernel libraries keep after a first call (oneDNN; up to ~20 MiB for the batched
    MoE experts) are resident already: a prefill at the case's own shape, a training step on a
    tiny batch (a full-size one would double the run time; training peaks are large enough)."""
    model = build_model(case, memory.device)
    if case.mode == "inference":
        run(model, case, case.batch_size, case.sequence_length, memory)
    else:
        run(model, case, 1, WARMUP_TOKENS, memory)
    del model
    gc.collect()


def measure(case: Case, device: str = "cpu") -> dict[str, Any]:
    memory: Memory = CudaAllocated() if device == "cuda" else ResidentSet()
    on_cuda = isinstance(memory, CudaAllocated)
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    warm_up(case, memory)
    gc.collect()
    memory.release_cache()
    baseline, _ = memory.read()
    reserved_baseline = torch.cuda.memory_reserved() if on_cuda else 0
    memory.reset_peak()
    model = build_model(case, memory.device)
    gc.collect()
    after_build, build_peak = memory.read()
    parameters = list(model.parameters())
    result: dict[str, Any] = {
        "case": case.name,
        "parameters": sum(p.numel() for p in parameters),
        # the model's own parameters, without LoRA adapters
        "base_parameters": sum(
            p.numel() for name, p in model.named_parameters() if "lora_" not in name
        ),
        "weight_bytes": tensor_bytes(iter(parameters)),
        # parameters transformers keeps in another dtype than the case's (e.g. float32 routers)
        "other_dtype_parameters": other_dtype_parameters(model, TORCH_DTYPES[case.dtype]),
        "buffer_bytes": tensor_bytes(model.buffers()),
        f"{memory.name}_after_build_bytes": after_build - baseline,
        "build_peak_bytes": build_peak - baseline,
    }
    del parameters
    memory.reset_peak()
    result |= run(model, case, case.batch_size, case.sequence_length, memory)
    current, _ = memory.read()
    phase_peaks = result.get("phase_peaks")
    peak = max(phase_peaks.values()) if phase_peaks else memory.read()[1]
    if phase_peaks:
        result["phase_peaks"] = {phase: value - baseline for phase, value in phase_peaks.items()}
    result |= {
        "peak_bytes": peak - baseline,
        f"{memory.name}_after_run_bytes": current - baseline,
        "baseline_bytes": baseline,
        "seconds": round(time.perf_counter() - started, 2),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    if on_cuda:
        result |= {
            "device": memory.device,
            "device_name": torch.cuda.get_device_name(),
            "cuda": torch.version.cuda,
            # what the caching allocator holds after the run (it keeps freed blocks, so about
            # its peak): what nvidia-smi adds to the context, for the report's allocator note
            "reserved_after_run_bytes": torch.cuda.memory_reserved() - reserved_baseline,
        }
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", help=f"one of: {', '.join(sorted(CASES_BY_NAME))}")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    args = parser.parse_args(argv)
    if args.case not in CASES_BY_NAME:
        parser.error(f"unknown case {args.case!r}; cases: {sorted(CASES_BY_NAME)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"--device cuda: torch {torch.__version__} sees no CUDA GPU "
            "(torch.cuda.is_available() is False)",
            file=sys.stderr,
        )
        return 2
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    print(json.dumps(measure(CASES_BY_NAME[args.case], args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
