"""Measured runs: what a serving or training process printed about its GPU memory, read into the
estimate's lines (weights, KV cache, activations, non-torch/context, total), in bytes per GPU.

One parser per format, each reading the lines those projects print (the format strings are cited
at each pattern); `parse(text, fmt)` is the one door, `detect(text)` picks the format, and
`compare(estimate, run)` lays the estimate beside the measurement, line by line, with the signed
error. Input is bounded (`MAX_TEXT_BYTES`) and anything unreadable raises `EvidenceError` with a
message for the person who pasted it, never another exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_TEXT_BYTES = 65_536  # what is kept of a pasted or uploaded log: 64 KiB of UTF-8
MAX_MEASURED_BYTES = 2**50  # 1 PiB: no single GPU line is larger
MAX_CSV_ROWS = 64

GIB = 2**30
MIB = 2**20
# Binary units throughout: vLLM's GiB_bytes, SGLang's GB (1 << 30, get_available_gpu_memory),
# llama.cpp's MiB (/ 1024.0 / 1024.0), PyTorch's memory_summary (KiB ... PiB; KB ... GB before
# 1.10, also powers of 1024) and nvidia-smi's MiB.
UNITS = {
    "B": 1,
    "KIB": 2**10,
    "KB": 2**10,
    "MIB": 2**20,
    "MB": 2**20,
    "GIB": 2**30,
    "GB": 2**30,
    "TIB": 2**40,
    "TB": 2**40,
    "PIB": 2**50,
}

# The lines of an answer that a measurement can speak to, the estimate's breakdown key for each
# ("total" is the estimate's total_bytes), and their labels.
LINES: tuple[tuple[str, str, str | None], ...] = (
    ("weights", "Weights", "weights"),
    ("kv_cache", "KV cache", "kv_cache"),
    ("activations", "Activations", "activations"),
    ("non_torch", "Non-torch / context", "runtime_overhead"),
    ("total", "Total", None),
)
LINE_NAMES = tuple(name for name, _, _ in LINES)

FORMATS = {
    "vllm": "vLLM start-up log",
    "sglang": "SGLang start-up log",
    "llamacpp": "llama.cpp load log",
    "torch": "torch.cuda.memory_summary() or max_memory_allocated()",
    "nvidia_smi": "nvidia-smi --query-gpu=memory.used --format=csv",
    "manual": "Typed figures",
}

NUMBER = r"(-?\d{1,15}(?:\.\d{1,8})?)"
ANSI = re.compile(r"\x1b\[[0-9;]{0,20}[A-Za-z]")


class EvidenceError(ValueError):
    """The text is not a run this module can read; the message says why, for the user."""


@dataclass
class Measured:
    source_format: str
    lines: dict[str, int | None] = field(default_factory=dict)
    gpu_name: str = ""
    driver_version: str = ""
    cuda_version: str = ""
    framework_version: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def line(self, name: str) -> int | None:
        return self.lines.get(name)


def to_bytes(number: str, unit: str) -> int:
    """`number` `unit` (as the log printed them) in bytes, rounded to the nearest byte."""
    try:
        value = Decimal(number) * UNITS[unit.upper()]
    except (InvalidOperation, KeyError):
        raise EvidenceError(f"Cannot read {number!r} {unit!r} as an amount of memory.") from None
    result = int(value.to_integral_value())
    if abs(result) > MAX_MEASURED_BYTES:
        raise EvidenceError(f"{number} {unit} is more memory than any GPU holds.")
    return result


def clean_text(text: str) -> str:
    """The text as kept: bounded, without NUL characters (PostgreSQL stores none) or terminal
    colour codes, with Windows line ends made plain."""
    if not isinstance(text, str):
        raise EvidenceError("Paste the log as text.")
    if len(text.encode("utf-8", errors="replace")) > MAX_TEXT_BYTES:
        raise EvidenceError(
            f"The log is larger than {MAX_TEXT_BYTES // 1024} KiB: paste the start-up part only."
        )
    if "\x00" in text:
        raise EvidenceError("The text holds NUL characters: it is not a log.")
    return ANSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _first(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    return pattern.search(text)


def _sum_present(values: Iterable[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


# --- vLLM -------------------------------------------------------------------------------------

# vllm/model_executor/model_loader / worker/model_runner.py (V0) and v1/worker/gpu_model_runner.py:
#   logger.info("Model loading took %.4f GiB and %.6f seconds", ...)
# and before 0.6.4: "Loading model weights took %.4f GB"
VLLM_LOADING = re.compile(r"(?:Model loading|Loading model weights) took " + NUMBER + r" ?(GiB|GB)")
# vllm/worker/worker.py, Worker.determine_num_available_blocks (0.6.4 to 0.9, V0), one message:
#   "the current vLLM instance can use total_gpu_memory ({:.2f}GiB) x gpu_memory_utilization
#    ({:.2f}) = {:.2f}GiB\nmodel weights take {:.2f}GiB; non_torch_memory takes {:.2f}GiB;
#    PyTorch activation peak memory takes {:.2f}GiB; the rest of the memory reserved for KV
#    Cache is {:.2f}GiB."
VLLM_BUDGET = re.compile(
    r"total_gpu_memory \(" + NUMBER + r" ?GiB\) x gpu_memory_utilization \("
    r"(\d{1,3}(?:\.\d{1,4})?)\) = " + NUMBER + r" ?GiB"
)
VLLM_WEIGHTS = re.compile(r"model weights take " + NUMBER + r" ?GiB")
VLLM_NON_TORCH = re.compile(r"non_torch_memory takes " + NUMBER + r" ?GiB")
VLLM_ACTIVATIONS = re.compile(r"PyTorch activation peak memory takes " + NUMBER + r" ?GiB")
VLLM_KV = re.compile(r"the rest of the memory reserved for KV Cache is " + NUMBER + r" ?GiB")
# vllm/utils.py MemoryProfilingResult.__repr__ (V1 gpu_worker logs it at DEBUG):
#   "Memory profiling takes {:.2f} seconds. Total non KV cache memory: {:.2f}GiB; torch peak
#    memory increase: {:.2f}GiB; non-torch forward increase memory: {:.2f}GiB; weights memory:
#    {:.2f}GiB."
VLLM_V1_ACTIVATIONS = re.compile(r"torch peak memory increase: " + NUMBER + r" ?GiB")
VLLM_V1_NON_TORCH = re.compile(r"non-torch forward increase memory: " + NUMBER + r" ?GiB")
VLLM_V1_WEIGHTS = re.compile(r"weights memory: " + NUMBER + r" ?GiB")
VLLM_V1_NON_KV = re.compile(r"Total non KV cache memory: " + NUMBER + r" ?GiB")
# vllm/v1/worker/gpu_worker.py determine_available_memory:
#   logger.info("Available KV cache memory: %.2f GiB", ...)
VLLM_V1_KV = re.compile(r"Available KV cache memory: " + NUMBER + r" ?GiB")
# vllm/executor/executor_base.py (V0): "# %s blocks: %d, # CPU blocks: %d" (device_name: cuda),
# gpu_executor.py before it: "# GPU blocks: %d, # CPU blocks: %d"; v1 kv_cache_utils.py:
# "# GPU blocks: %d", "GPU KV cache size: %s tokens" (f"{num_tokens:,}") and
# "Maximum concurrency for %s tokens per request: %.2fx".
VLLM_BLOCKS = re.compile(r"# (?:GPU|cuda|CUDA|rocm|ROCm) blocks: ([\d,]{1,20})")
VLLM_KV_TOKENS = re.compile(r"GPU KV cache size: ([\d,]{1,20}) tokens")
VLLM_CONCURRENCY = re.compile(
    r"Maximum concurrency for ([\d,]{1,20}) tokens per request: (\d{1,12}(?:\.\d{1,4})?)x"
)
# vllm/worker/model_runner.py capture_model: "Graph capturing finished in %.0f secs, took %.2f GiB"
VLLM_GRAPHS = re.compile(r"Graph capturing finished in \d{1,9} secs?, took " + NUMBER + r" ?GiB")
# vllm/engine/llm_engine.py: "Initializing a V0 LLM engine (v%s) with config: ..." (V1: "an
# V1 LLM engine"); entrypoints/openai/api_server.py: "vLLM API server version %s".
VLLM_VERSION = re.compile(
    r"LLM engine \(v([\w.+-]{1,40})\)|vLLM API server version ([\w.+-]{1,40})"
)


def _count(text: str) -> int:
    return int(text.replace(",", ""))


def parse_vllm(text: str) -> Measured:
    run = Measured("vllm")

    def gib(*patterns: re.Pattern[str]) -> int | None:
        for pattern in patterns:
            match = _first(pattern, text)
            if match:
                return to_bytes(match.group(1), "GiB")
        return None

    loading = _first(VLLM_LOADING, text)
    weights = to_bytes(loading.group(1), loading.group(2)) if loading else None
    if weights is None:
        weights = gib(VLLM_WEIGHTS, VLLM_V1_WEIGHTS)
    run.lines = {
        "weights": weights,
        "kv_cache": gib(VLLM_KV, VLLM_V1_KV),
        "activations": gib(VLLM_ACTIVATIONS, VLLM_V1_ACTIVATIONS),
        "non_torch": gib(VLLM_NON_TORCH, VLLM_V1_NON_TORCH),
    }
    parts = [run.lines[name] for name in ("weights", "kv_cache", "activations", "non_torch")]
    budget = _first(VLLM_BUDGET, text)
    if budget:
        run.details["total_gpu_memory_bytes"] = to_bytes(budget.group(1), "GiB")
        run.details["gpu_memory_utilization"] = float(budget.group(2))
        run.details["budget_bytes"] = to_bytes(budget.group(3), "GiB")
    if all(part is not None for part in parts):
        run.lines["total"] = sum(part for part in parts if part is not None)
    elif budget:
        run.lines["total"] = run.details["budget_bytes"]
        run.notes.append("Total: the instance's budget (total memory x utilization).")
    else:
        run.lines["total"] = None
    non_kv = _first(VLLM_V1_NON_KV, text)
    if non_kv:
        run.details["non_kv_cache_bytes"] = to_bytes(non_kv.group(1), "GiB")
    if blocks := _first(VLLM_BLOCKS, text):
        run.details["gpu_blocks"] = _count(blocks.group(1))
    if tokens := _first(VLLM_KV_TOKENS, text):
        run.details["kv_cache_tokens"] = _count(tokens.group(1))
    if concurrency := _first(VLLM_CONCURRENCY, text):
        run.details["max_model_len"] = _count(concurrency.group(1))
        run.details["max_concurrency"] = float(concurrency.group(2))
    if graphs := _first(VLLM_GRAPHS, text):
        run.details["cuda_graph_bytes"] = to_bytes(graphs.group(1), "GiB")
    if version := _first(VLLM_VERSION, text):
        run.framework_version = f"vLLM {version.group(1) or version.group(2)}"
    if run.lines["kv_cache"] is not None:
        run.notes.append(
            "vLLM reserves all memory left within its budget for the KV cache: compare the "
            "KV line with an estimate of the same budget, not of one request."
        )
    return run


# --- SGLang -----------------------------------------------------------------------------------

# python/sglang/srt/model_executor/model_runner.py load_model:
#   f"Load weight end. type={...}, dtype={...}, avail mem={after_avail_memory:.2f} GB, "
#   f"mem usage={self.weight_load_mem_usage:.2f} GB."   (newer: "elapsed=... s, " first)
SGLANG_WEIGHTS = re.compile(r"Load weight end\..{0,400}?mem usage=" + NUMBER + r" ?GB")
# python/sglang/srt/mem_cache/memory_pool.py MHATokenToKVPool:
#   f"KV Cache is allocated. #tokens: {size}, K size: {k_size / GB:.2f} GB, V size: ... GB"
# and MLATokenToKVPool: f"KV Cache is allocated. #tokens: {size}, KV size: {kv_size / GB:.2f} GB"
SGLANG_KV = re.compile(
    r"KV Cache is allocated\. #tokens: (\d{1,15}), "
    r"(?:K size: " + NUMBER + r" ?GB, V size: " + NUMBER + r" ?GB|KV size: " + NUMBER + r" ?GB)"
)
# model_runner.py init_cuda_graphs: f"Capture cuda graph end. Time elapsed: {...:.2f} s. "
#   f"mem usage={(before_mem - after_mem):.2f} GB. avail mem={after_mem:.2f} GB."
SGLANG_GRAPHS = re.compile(
    r"Capture (?:cuda|npu) graph end\..{0,80}?mem usage=" + NUMBER + r" ?GB", re.IGNORECASE
)
SGLANG_TOTAL_TOKENS = re.compile(r"max_total_num_tokens=(\d{1,15})")
SGLANG_DTYPE = re.compile(r"Load weight end\..{0,300}?dtype=([\w.]{1,40})")


def parse_sglang(text: str) -> Measured:
    run = Measured("sglang")
    weights = _first(SGLANG_WEIGHTS, text)
    kv = _first(SGLANG_KV, text)
    kv_bytes = None
    if kv:
        run.details["kv_cache_tokens"] = int(kv.group(1))
        if kv.group(2) is not None:
            kv_bytes = to_bytes(kv.group(2), "GB") + to_bytes(kv.group(3), "GB")
        else:
            kv_bytes = to_bytes(kv.group(4), "GB")
    run.lines = {
        "weights": to_bytes(weights.group(1), "GB") if weights else None,
        "kv_cache": kv_bytes,
        "activations": None,
        "non_torch": None,
        "total": None,
    }
    if graphs := _first(SGLANG_GRAPHS, text):
        run.details["cuda_graph_bytes"] = to_bytes(graphs.group(1), "GB")
    if tokens := _first(SGLANG_TOTAL_TOKENS, text):
        run.details["max_total_num_tokens"] = int(tokens.group(1))
    if dtype := _first(SGLANG_DTYPE, text):
        run.details["dtype"] = dtype.group(1)
    run.notes.append("SGLang prints no activation or context figure, nor a total.")
    return run


# --- llama.cpp --------------------------------------------------------------------------------

# src/llama-model.cpp load_tensors: LLAMA_LOG_INFO("%s: %12s model buffer size = %8.2f MiB\n",
#   __func__, ggml_backend_buffer_name(buf), size / 1024.0 / 1024.0)  (before 2025: "%s: %10s
#   buffer size = %8.2f MiB" from llm_load_tensors)
# src/llama-kv-cache.cpp: "%s: %10s KV buffer size = %8.2f MiB\n"
# src/llama-context.cpp: "%s: %10s compute buffer size = %8.2f MiB\n"
LLAMA_BUFFER = re.compile(
    r"^[\w.:]{0,80}:\s{1,40}([\w-]{1,40}) (model |KV |compute |)buffer size =\s{0,20}"
    + NUMBER
    + r" MiB",
    re.MULTILINE,
)
# The KV cache as one figure, where no per-device line came: llama-kv-cache.cpp
#   "%s: size = %7.2f MiB (%6u cells, %3d layers, ...), K (%s): %7.2f MiB, V (%s): %7.2f MiB"
# and llama_new_context_with_model (2024): "KV self size  = %7.2f MiB, K (%s): ..., V (%s): ..."
LLAMA_KV_TOTAL = re.compile(
    r"(?:KV self size|llama_kv_cache\w{0,20}: size) {1,4}= {0,8}" + NUMBER + " MiB"
)
# ggml/src/ggml-cuda/ggml-cuda.cpp ggml_cuda_init:
#   GGML_LOG_INFO("  Device %d: %s, compute capability %d.%d, VMM: %s\n", id, prop.name, ...)
LLAMA_DEVICE = re.compile(r"Device 0: ([^,\n]{1,120}), compute capability (\d{1,3}\.\d{1,3})")
# common/common.cpp / the tools' main: "build: %d (%s) with %s for %s"
LLAMA_BUILD = re.compile(r"build: (\d{1,9}) \(([0-9a-f]{4,40})\)")


def _is_gpu_buffer(name: str) -> bool:
    upper = name.upper()
    return "CPU" not in upper and "HOST" not in upper


def parse_llamacpp(text: str) -> Measured:
    run = Measured("llamacpp")
    devices: dict[str, dict[str, int]] = {}
    kinds = {"model ": "weights", "": "weights", "KV ": "kv_cache", "compute ": "activations"}
    for match in LLAMA_BUFFER.finditer(text):
        name, kind, size = match.group(1), match.group(2), match.group(3)
        if not _is_gpu_buffer(name):
            continue
        lines = devices.setdefault(name, {})
        line = kinds[kind]
        lines[line] = lines.get(line, 0) + to_bytes(size, "MiB")
    if devices:
        busiest = max(devices, key=lambda name: sum(devices[name].values()))
        figures = devices[busiest]
        run.details["device"] = busiest
        if len(devices) > 1:
            run.details["devices"] = devices
            run.notes.append(
                f"{len(devices)} GPU devices; the figures are those of {busiest}, the fullest."
            )
    else:
        figures = {}
    kv = figures.get("kv_cache")
    if kv is None and (total_kv := _first(LLAMA_KV_TOTAL, text)):
        kv = to_bytes(total_kv.group(1), "MiB")
        run.notes.append("KV cache: the context's total, which includes any part kept on the CPU.")
    run.lines = {
        "weights": figures.get("weights"),
        "kv_cache": kv,
        "activations": figures.get("activations"),
        "non_torch": None,
    }
    run.lines["total"] = _sum_present(
        run.lines[name] for name in ("weights", "kv_cache", "activations")
    )
    if run.lines["total"] is not None:
        run.notes.append("Total: llama.cpp's own buffers; the CUDA context is not in it.")
    if device := _first(LLAMA_DEVICE, text):
        run.gpu_name = device.group(1).strip()
        run.details["compute_capability"] = device.group(2)
    if build := _first(LLAMA_BUILD, text):
        run.framework_version = f"llama.cpp build {build.group(1)} ({build.group(2)})"
    return run


# --- PyTorch ----------------------------------------------------------------------------------

# torch/cuda/memory.py memory_summary(): rows f"{metric_name:<21} | {cur} | {peak} | {alloc} |
# {freed} " where each value is _format_size: f"{sz:6d} {prefix}" (B, KiB, MiB, GiB, TiB, PiB;
# KB, MB, GB before PyTorch 1.10); metrics "Allocated memory" and "GPU reserved memory".
SIZE = r"(\d{1,15}(?:\.\d{1,8})?)\s{0,3}(B|KiB|MiB|GiB|TiB|PiB|KB|MB|GB|TB)"
TORCH_ROW = re.compile(
    r"^\|\s{0,4}(Allocated memory|GPU reserved memory|Reserved memory)\s{0,40}\|\s{0,12}"
    + SIZE
    + r"\s{0,12}\|\s{0,12}"
    + SIZE,
    re.MULTILINE,
)
TORCH_DEVICE = re.compile(r"PyTorch CUDA memory summary, device ID (\d{1,4})")
# A printout of torch.cuda.max_memory_allocated() / max_memory_reserved(): what a script prints,
# e.g. f"max_memory_allocated: {torch.cuda.max_memory_allocated()}" (bytes) or "... 15.20 GiB".
TORCH_MAX = re.compile(
    r"max[_ ]memory[_ ](allocated|reserved)\W{0,8}\s{0,4}[:=]?\s{0,4}"
    r"(\d{1,18}(?:\.\d{1,8})?)(?:\s{0,3}(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)\b)?",
    re.IGNORECASE,
)
BARE_INTEGER = re.compile(r"\s*(\d{1,18})\s*")


def parse_torch(text: str) -> Measured:
    run = Measured("torch", lines=dict.fromkeys(LINE_NAMES))
    rows: dict[str, re.Match[str]] = {}
    for match in TORCH_ROW.finditer(text):
        metric = "allocated" if match.group(1) == "Allocated memory" else "reserved"
        rows.setdefault(metric, match)
    if rows:
        for metric, match in rows.items():
            run.details[f"{metric}_current_bytes"] = to_bytes(match.group(2), match.group(3))
            run.details[f"{metric}_peak_bytes"] = to_bytes(match.group(4), match.group(5))
        if device := _first(TORCH_DEVICE, text):
            run.details["device_id"] = int(device.group(1))
    else:
        for match in TORCH_MAX.finditer(text):
            key = f"{match.group(1).lower()}_peak_bytes"
            run.details.setdefault(key, to_bytes(match.group(2), match.group(3) or "B"))
        if not run.details and (bare := BARE_INTEGER.fullmatch(text)):
            run.details["allocated_peak_bytes"] = to_bytes(bare.group(1), "B")
    peak = run.details.get("reserved_peak_bytes", run.details.get("allocated_peak_bytes"))
    run.lines["total"] = peak
    if peak is not None:
        which = "reserved" if "reserved_peak_bytes" in run.details else "allocated"
        run.notes.append(
            f"Total: PyTorch's peak {which} memory; the CUDA context and memory outside "
            "PyTorch's allocator are not in it."
        )
    return run


# --- nvidia-smi -------------------------------------------------------------------------------

# nvidia-smi --query-gpu=memory.used[,name,driver_version,...] --format=csv[,noheader][,nounits]:
# a header "memory.used [MiB]" (with a header), then one row a GPU: "15432 MiB" (or "15432").
SMI_VALUE = re.compile(r"\s*(\d{1,12}(?:\.\d{1,4})?)\s*(MiB|GiB|KiB|B)?\s*")
SMI_UNIT = re.compile(r"\[(MiB|GiB|KiB|B)\]")


def parse_nvidia_smi(text: str) -> Measured:
    run = Measured("nvidia_smi", lines=dict.fromkeys(LINE_NAMES))
    rows = [line for line in text.split("\n") if line.strip()]
    if not rows:
        raise EvidenceError("The nvidia-smi output is empty.")
    header = [cell.strip() for cell in rows[0].split(",")]
    names = [cell.split(" [")[0].strip().lower() for cell in header]
    if "memory.used" in names:
        column = names.index("memory.used")
        unit_match = SMI_UNIT.search(header[column])
        default_unit = unit_match.group(1) if unit_match else "MiB"
        rows = rows[1:]
    else:  # noheader: memory.used alone, or first
        column, default_unit, names = 0, "MiB", []
    if len(rows) > MAX_CSV_ROWS:
        raise EvidenceError(f"More than {MAX_CSV_ROWS} GPUs in the nvidia-smi output.")
    used: list[int] = []
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row.split(",")]
        if column >= len(cells) or not (value := SMI_VALUE.fullmatch(cells[column])):
            raise EvidenceError(f"nvidia-smi row {number}: no memory.used value in {row[:80]!r}.")
        used.append(to_bytes(value.group(1), value.group(2) or default_unit))
        if number == 1 and names:
            if "name" in names and names.index("name") < len(cells):
                run.gpu_name = cells[names.index("name")][:200]
            if "driver_version" in names and names.index("driver_version") < len(cells):
                run.driver_version = cells[names.index("driver_version")][:64]
    if not used:
        raise EvidenceError("The nvidia-smi output has a header but no GPU rows.")
    run.lines["total"] = max(used)
    if len(used) > 1:
        run.details["memory_used_bytes"] = used
        run.notes.append(f"{len(used)} GPUs; the total is the fullest one's.")
    run.notes.append(
        "memory.used is everything on the GPU: the CUDA context and other processes included."
    )
    return run


# --- Typed figures ----------------------------------------------------------------------------


def from_figures(figures: Mapping[str, int | None]) -> Measured:
    """Figures a person typed, in bytes: any of the five lines, at least one."""
    run = Measured("manual", lines={name: figures.get(name) for name in LINE_NAMES})
    for name, value in run.lines.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise EvidenceError(f"{name}: a whole number of bytes.")
        if value is not None and abs(value) > MAX_MEASURED_BYTES:
            raise EvidenceError(f"{name}: more memory than any GPU holds.")
    if all(value is None for value in run.lines.values()):
        raise EvidenceError("Type at least one measured figure.")
    if run.lines["total"] is None:
        parts = [run.lines[name] for name in ("weights", "kv_cache", "activations", "non_torch")]
        if all(part is not None for part in parts):
            run.lines["total"] = sum(part for part in parts if part is not None)
    return run


# --- The door ---------------------------------------------------------------------------------

PARSERS: dict[str, Callable[[str], Measured]] = {
    "vllm": parse_vllm,
    "sglang": parse_sglang,
    "llamacpp": parse_llamacpp,
    "torch": parse_torch,
    "nvidia_smi": parse_nvidia_smi,
}

# What tells the formats apart, tried in this order (an SGLang log may mention vLLM).
MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "torch",
        re.compile(r"PyTorch CUDA memory summary|max[_ ]memory[_ ](?:allocated|reserved)", re.I),
    ),
    ("nvidia_smi", re.compile(r"\A\s*[^\n]{0,200}\bmemory\.used\b")),
    ("llamacpp", re.compile(r"llama_|ggml_|load_tensors:|buffer size = ")),
    ("sglang", re.compile(r"Load weight end\.|KV Cache is allocated\.|sglang")),
    ("vllm", re.compile(r"vLLM|vllm|Model loading took|model weights take|KV cache memory:")),
)


def detect(text: str) -> str:
    for name, marker in MARKERS:
        if marker.search(text):
            return name
    raise EvidenceError(
        "Not a log this service reads: paste a vLLM, SGLang or llama.cpp start-up log, "
        "torch.cuda.memory_summary() output or nvidia-smi CSV, or type the figures."
    )


def parse(text: str, fmt: str = "auto") -> Measured:
    """The run in `text`, read as `fmt` ("auto": detect it). Raises EvidenceError."""
    text = clean_text(text)
    if not text.strip():
        raise EvidenceError("Paste or upload the log.")
    if fmt == "auto":
        fmt = detect(text)
    if fmt not in PARSERS:
        raise EvidenceError(f"Choose one of: {', '.join(['auto', *PARSERS])}.")
    run = PARSERS[fmt](text)
    if all(run.lines.get(name) is None for name in LINE_NAMES):
        raise EvidenceError(
            f"No memory figures found in this text as a {FORMATS[fmt]}: check the format, "
            "or paste the lines that follow the model's loading."
        )
    return run


# --- Estimate beside measurement --------------------------------------------------------------


@dataclass(frozen=True)
class ComparedLine:
    line: str
    label: str
    estimate_bytes: int
    measured_bytes: int | None
    error_bytes: int | None  # estimate - measured: positive when the estimate is above
    error_percent: float | None  # of the measured figure; None where it is 0 or absent


def compare(
    *, breakdown: Mapping[str, Any], total_bytes: int, measured: Mapping[str, int | None]
) -> list[ComparedLine]:
    """Each line: the estimate (its breakdown, per GPU), the measured figure and the signed
    error. Lines the run did not measure keep the estimate and no error."""
    rows = []
    for name, label, key in LINES:
        raw = total_bytes if key is None else breakdown.get(key, 0)
        estimate = raw if isinstance(raw, int) and not isinstance(raw, bool) else 0
        value = measured.get(name)
        error = None if value is None else estimate - value
        percent = None
        if error is not None and value:
            percent = round(error / abs(value) * 100, 1)
        rows.append(ComparedLine(name, label, estimate, value, error, percent))
    return rows
