# ruff: noqa: E501 (log lines are quoted whole, as the projects print them)
"""The parsers of calculator/domain/evidence.py on logs written from each project's own format strings
(cited at each log), and on hostile text: bounded, and a clear EvidenceError, never another
exception. Expected bytes are the printed figure times its binary unit, worked out by hand."""

from __future__ import annotations

import pytest

from calculator.domain import evidence
from calculator.domain.evidence import EvidenceError

GIB = 2**30
MIB = 2**20

# vLLM 0.8.4. vllm/worker/model_runner.py load_model:
#   logger.info("Model loading took %.4f GiB and %.6f seconds", ...)
# vllm/worker/worker.py determine_num_available_blocks, one message of four lines:
#   f"Memory profiling takes {result.profile_time:.2f} seconds\n"
#   "the current vLLM instance can use total_gpu_memory ({...:.2f}GiB) x gpu_memory_utilization
#   ({...:.2f}) = {...:.2f}GiB\n" "model weights take {:.2f}GiB; non_torch_memory takes
#   {:.2f}GiB; PyTorch activation peak memory takes {:.2f}GiB; the rest of the memory reserved
#   for KV Cache is {:.2f}GiB."
# vllm/executor/executor_base.py: "# %s blocks: %d, # CPU blocks: %d" and
#   "Maximum concurrency for %s tokens per request: %.2fx"
# vllm/engine/llm_engine.py: "Initializing a V0 LLM engine (v%s) with config: ..."
VLLM_V0_LOG = """\
INFO 04-02 21:41:02 [llm_engine.py:240] Initializing a V0 LLM engine (v0.8.4) with config: model='Qwen/Qwen2.5-VL-7B-Instruct', speculative_config=None, tokenizer='Qwen/Qwen2.5-VL-7B-Instruct'
INFO 04-02 21:41:05 [cuda.py:292] Using Flash Attention backend.
Loading safetensors checkpoint shards: 100% Completed | 4/4 [01:47<00:00, 26.86s/it]
INFO 04-02 21:42:59 [model_runner.py:1146] Model loading took 15.5083 GiB and 108.152210 seconds
INFO 04-02 21:43:03 [worker.py:267] Memory profiling takes 4.42 seconds
INFO 04-02 21:43:03 [worker.py:267] the current vLLM instance can use total_gpu_memory (23.67GiB) x gpu_memory_utilization (0.90) = 21.30GiB
INFO 04-02 21:43:03 [worker.py:267] model weights take 15.51GiB; non_torch_memory takes 0.28GiB; PyTorch activation peak memory takes 1.16GiB; the rest of the memory reserved for KV Cache is 4.36GiB.
INFO 04-02 21:43:03 [executor_base.py:111] # cuda blocks: 5102, # CPU blocks: 4681
INFO 04-02 21:43:03 [executor_base.py:116] Maximum concurrency for 8192 tokens per request: 9.96x
INFO 04-02 21:43:21 [model_runner.py:1598] Graph capturing finished in 18 secs, took 0.53 GiB
"""


def test_a_vllm_v0_log_gives_every_line():
    run = evidence.parse(VLLM_V0_LOG)
    assert run.source_format == "vllm"
    assert run.lines == {
        "weights": 16_651_910_329,  # "Model loading took 15.5083 GiB": 15.5083 x 2^30
        "kv_cache": 4_681_514_353,  # 4.36 x 2^30
        "activations": 1_245_540_516,  # 1.16 x 2^30
        "non_torch": 300_647_711,  # 0.28 x 2^30
        "total": 22_879_612_909,  # their sum
    }
    assert run.details["total_gpu_memory_bytes"] == 25_415_468_974  # 23.67 x 2^30
    assert run.details["gpu_memory_utilization"] == 0.90
    assert run.details["budget_bytes"] == 22_870_700_851  # 21.30 x 2^30
    assert run.details["gpu_blocks"] == 5102
    assert run.details["max_model_len"] == 8192
    assert run.details["max_concurrency"] == 9.96
    assert run.details["cuda_graph_bytes"] == 569_083_167  # 0.53 x 2^30 = 569,083,166.72
    assert run.framework_version == "vLLM 0.8.4"


# vLLM V1 (0.9 to 0.10) at INFO: v1/worker/gpu_model_runner.py "Model loading took %.4f GiB and
# %.6f seconds"; v1/worker/gpu_worker.py "Available KV cache memory: %.2f GiB";
# v1/core/kv_cache_utils.py "GPU KV cache size: %s tokens" (f"{num_tokens:,}") and "Maximum
# concurrency for %s tokens per request: %.2fx" (f"{max_model_len:,}"); at DEBUG, vllm/utils.py
# MemoryProfilingResult.__repr__ "Memory profiling takes {:.2f} seconds. Total non KV cache
# memory: {:.2f}GiB; torch peak memory increase: {:.2f}GiB; non-torch forward increase memory:
# {:.2f}GiB; weights memory: {:.2f}GiB."
VLLM_V1_LOG = """\
INFO 07-14 09:12:01 [core.py:69] Initializing a V1 LLM engine (v0.9.2) with config: model='meta-llama/Llama-3.1-8B-Instruct'
INFO 07-14 09:12:20 [gpu_model_runner.py:1770] Model loading took 14.9889 GiB and 6.215 seconds
DEBUG 07-14 09:12:31 [gpu_worker.py:232] Memory profiling takes 10.11 seconds. Total non KV cache memory: 16.43GiB; torch peak memory increase: 1.23GiB; non-torch forward increase memory: 0.21GiB; weights memory: 14.99GiB.
INFO 07-14 09:12:31 [gpu_worker.py:233] Available KV cache memory: 54.85 GiB
INFO 07-14 09:12:31 [kv_cache_utils.py:716] GPU KV cache size: 449,328 tokens
INFO 07-14 09:12:31 [kv_cache_utils.py:720] Maximum concurrency for 131,072 tokens per request: 3.43x
"""


def test_a_vllm_v1_log_reads_the_debug_breakdown_and_the_kv_budget():
    run = evidence.parse(VLLM_V1_LOG)
    assert run.lines["weights"] == 16_094_208_826  # 14.9889 x 2^30 = 16,094,208,825.75
    assert run.lines["kv_cache"] == 58_894_739_046  # 54.85 x 2^30 = 58,894,739,046.4
    assert run.lines["activations"] == 1_320_702_444  # 1.23 x 2^30 = 1,320,702,443.52
    assert run.lines["non_torch"] == 225_485_783  # 0.21 x 2^30 = 225,485,783.04
    assert run.lines["total"] == 16_094_208_826 + 58_894_739_046 + 1_320_702_444 + 225_485_783
    assert run.details["kv_cache_tokens"] == 449_328
    assert run.details["max_model_len"] == 131_072
    assert run.details["non_kv_cache_bytes"] == 17_641_578_168  # 16.43 x 2^30
    assert run.framework_version == "vLLM 0.9.2"


def test_a_vllm_log_at_info_only_has_no_total_but_keeps_what_it_has():
    text = "\n".join(line for line in VLLM_V1_LOG.splitlines() if not line.startswith("DEBUG"))
    run = evidence.parse(text, "vllm")
    assert run.lines["activations"] is None and run.lines["non_torch"] is None
    assert run.lines["total"] is None
    assert run.lines["kv_cache"] == 58_894_739_046


# SGLang. python/sglang/srt/model_executor/model_runner.py load_model:
#   f"Load weight end. elapsed={...:.2f} s, type={type(self.model).__name__}, dtype={self.dtype},
#   avail mem={after_avail_memory:.2f} GB, mem usage={self.weight_load_mem_usage:.2f} GB."
# python/sglang/srt/mem_cache/memory_pool.py MHATokenToKVPool:
#   f"KV Cache is allocated. #tokens: {size}, K size: {k_size / GB:.2f} GB, V size: {v_size /
#   GB:.2f} GB"   (GB = 1024 * 1024 * 1024 there)
# model_runner.py init_device_graphs: f"Capture cuda graph end. Time elapsed: {...:.2f} s.
#   mem usage={...:.2f} GB. avail mem={...:.2f} GB."
SGLANG_LOG = """\
[2025-06-10 11:02:13 TP0] Load weight begin. avail mem=78.68 GB
[2025-06-10 11:02:19 TP0] Load weight end. elapsed=5.94 s, type=LlamaForCausalLM, dtype=torch.bfloat16, avail mem=63.69 GB, mem usage=14.99 GB.
[2025-06-10 11:02:19 TP0] KV Cache is allocated. #tokens: 414505, K size: 25.30 GB, V size: 25.30 GB
[2025-06-10 11:02:19 TP0] Memory pool end. avail mem=12.05 GB
[2025-06-10 11:02:31 TP0] Capture cuda graph end. Time elapsed: 11.52 s. mem usage=0.43 GB. avail mem=11.61 GB.
[2025-06-10 11:02:32 TP0] max_total_num_tokens=414505, chunked_prefill_size=8192, max_prefill_tokens=16384, max_running_requests=4096, context_len=131072
"""


def test_an_sglang_log_gives_weights_and_the_kv_pool():
    run = evidence.parse(SGLANG_LOG)
    assert run.source_format == "sglang"
    assert run.lines["weights"] == 16_095_389_942  # 14.99 x 2^30 = 16,095,389,941.76
    # K + V: 25.30 + 25.30 GB, each 27,165,668,147.2 bytes, rounded each
    assert run.lines["kv_cache"] == 2 * 27_165_668_147
    assert run.lines["activations"] is None and run.lines["total"] is None
    assert run.details["kv_cache_tokens"] == 414_505
    assert run.details["max_total_num_tokens"] == 414_505
    assert run.details["cuda_graph_bytes"] == 461_708_984  # 0.43 x 2^30 = 461,708,984.32
    assert run.details["dtype"] == "torch.bfloat16"


def test_an_sglang_mla_pool_prints_one_kv_size():
    # memory_pool.py MLATokenToKVPool: f"KV Cache is allocated. #tokens: {size}, KV size:
    # {kv_size / GB:.2f} GB"
    text = "[2025-11-04 05:27:13 DP0 TP0 EP0] KV Cache is allocated. #tokens: 524288, KV size: 17.16 GB\n"
    run = evidence.parse(text, "sglang")
    assert run.lines["kv_cache"] == 18_425_409_700  # 17.16 x 2^30 = 18,425,409,699.84


# llama.cpp. src/llama-model.cpp load_tensors: "%s: %12s model buffer size = %8.2f MiB\n";
# src/llama-kv-cache.cpp: "%s: %10s KV buffer size = %8.2f MiB\n" and "%s: size = %7.2f MiB
# (%6u cells, %3d layers, %2u/%u seqs), K (%s): %7.2f MiB, V (%s): %7.2f MiB\n";
# src/llama-context.cpp: "%s: %10s compute buffer size = %8.2f MiB\n";
# ggml/src/ggml-cuda/ggml-cuda.cpp: "  Device %d: %s, compute capability %d.%d, VMM: %s\n";
# common/common.cpp: "build: %d (%s) with %s for %s\n"
LLAMACPP_LOG = """\
build: 5327 (27ebfcac) with cc (Ubuntu 13.3.0-6ubuntu2~24.04) 13.3.0 for x86_64-linux-gnu
ggml_cuda_init: GGML_CUDA_FORCE_MMQ:    no
ggml_cuda_init: found 1 CUDA devices:
  Device 0: NVIDIA GeForce RTX 4090, compute capability 8.9, VMM: yes
load_tensors: offloaded 33/33 layers to GPU
load_tensors:        CUDA0 model buffer size =  4403.49 MiB
load_tensors:   CPU_Mapped model buffer size =   281.81 MiB
llama_context:  CUDA_Host  output buffer size =     0.49 MiB
llama_kv_cache_unified:      CUDA0 KV buffer size =  1024.00 MiB
llama_kv_cache_unified: size = 1024.00 MiB (  8192 cells,  32 layers,  1 seqs), K (f16):  512.00 MiB, V (f16):  512.00 MiB
llama_context:      CUDA0 compute buffer size =   560.00 MiB
llama_context:  CUDA_Host compute buffer size =    24.01 MiB
"""


def test_a_llamacpp_log_counts_the_gpu_buffers_only():
    run = evidence.parse(LLAMACPP_LOG)
    assert run.source_format == "llamacpp"
    assert run.lines == {
        "weights": 4_617_393_930,  # 4403.49 x 2^20 = 4,617,393,930.24; CPU_Mapped left out
        "kv_cache": 1_073_741_824,  # 1024.00 MiB
        "activations": 587_202_560,  # 560.00 MiB; CUDA_Host left out
        "non_torch": None,
        "total": 4_617_393_930 + 1_073_741_824 + 587_202_560,
    }
    assert run.gpu_name == "NVIDIA GeForce RTX 4090"
    assert run.details["compute_capability"] == "8.9"
    assert run.framework_version == "llama.cpp build 5327 (27ebfcac)"


def test_a_2024_llamacpp_log_and_two_gpus():
    # llm_load_tensors: "%s: %10s buffer size = %8.2f MiB\n" (before the "model" word),
    # llama_kv_cache_init: "%s: %10s KV buffer size = %8.2f MiB\n",
    # llama_new_context_with_model: "%s: %10s compute buffer size = %8.2f MiB\n"
    text = """\
llm_load_tensors:        CPU buffer size =   417.66 MiB
llm_load_tensors:      CUDA0 buffer size =  3577.56 MiB
llm_load_tensors:      CUDA1 buffer size =  3204.69 MiB
llama_kv_cache_init:      CUDA0 KV buffer size =   136.00 MiB
llama_kv_cache_init:      CUDA1 KV buffer size =   120.00 MiB
llama_new_context_with_model: KV self size  =  256.00 MiB, K (f16):  128.00 MiB, V (f16):  128.00 MiB
llama_new_context_with_model:      CUDA0 compute buffer size =   400.00 MiB
llama_new_context_with_model:      CUDA1 compute buffer size =   400.00 MiB
"""
    run = evidence.parse(text)
    assert run.details["device"] == "CUDA0"  # 3577.56 + 136 + 400 beats 3204.69 + 120 + 400
    assert run.lines["weights"] == 3_751_343_555  # 3577.56 x 2^20 = 3,751,343,554.56
    assert run.lines["kv_cache"] == 136 * MIB
    assert run.lines["activations"] == 400 * MIB
    assert set(run.details["devices"]) == {"CUDA0", "CUDA1"}


# PyTorch. torch/cuda/memory.py memory_summary(): the header " {_:16} PyTorch CUDA memory
# summary, device ID {device:<17d} ", then rows f"{metric_name:<21} | {cur} | {peak} | {alloc} |
# {freed} " with _format_size(sz) = f"{sz:6d} {prefix}" (B  , KiB, MiB, GiB, ...).
TORCH_SUMMARY = """\
|===========================================================================|
|                  PyTorch CUDA memory summary, device ID 0                 |
|---------------------------------------------------------------------------|
|            CUDA OOMs: 0            |        cudaMalloc retries: 0         |
|===========================================================================|
|        Metric         | Cur Usage  | Peak Usage | Tot Alloc  | Tot Freed  |
|---------------------------------------------------------------------------|
| Allocated memory      |  14324 MiB |  14324 MiB |  14324 MiB |      0 B   |
|       from large pool |  14324 MiB |  14324 MiB |  14324 MiB |      0 B   |
|       from small pool |      0 MiB |      0 MiB |      0 MiB |      0 B   |
|---------------------------------------------------------------------------|
| Active memory         |  14324 MiB |  14324 MiB |  14324 MiB |      0 B   |
|---------------------------------------------------------------------------|
| GPU reserved memory   |  14330 MiB |  15102 MiB |  15102 MiB |    772 MiB |
|       from large pool |  14328 MiB |  15100 MiB |  15100 MiB |    772 MiB |
|---------------------------------------------------------------------------|
"""


def test_a_torch_memory_summary_gives_the_peak_reserved_as_total():
    run = evidence.parse(TORCH_SUMMARY)
    assert run.source_format == "torch"
    assert run.lines["total"] == 15102 * MIB
    assert run.details["allocated_peak_bytes"] == 14324 * MIB
    assert run.details["reserved_current_bytes"] == 14330 * MIB
    assert run.details["device_id"] == 0
    assert run.lines["weights"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_memory_allocated: 17179869184\n", 17_179_869_184),
        ("torch.cuda.max_memory_allocated() = 16.00 GiB\n", 16 * GIB),
        ("Max memory reserved: 20.5 GB\nmax memory allocated: 18 GB\n", 22_011_707_392),
    ],
)
def test_a_max_memory_printout(text, expected):
    # 20.5 x 2^30 = 22,011,707,392: the reserved figure wins over the allocated one
    assert evidence.parse(text).lines["total"] == expected


def test_a_bare_integer_is_read_only_when_torch_is_chosen():
    assert evidence.parse("17179869184\n", "torch").lines["total"] == 17_179_869_184
    with pytest.raises(EvidenceError):
        evidence.parse("17179869184\n")


# nvidia-smi --query-gpu=... --format=csv: a header naming each field, with its unit in
# brackets ("memory.used [MiB]"), then one row a GPU, values with units ("15432 MiB");
# ",nounits" drops the units from the rows.
def test_nvidia_smi_csv_one_gpu():
    run = evidence.parse("memory.used [MiB]\n15432 MiB\n")
    assert run.source_format == "nvidia_smi"
    assert run.lines["total"] == 16_181_624_832  # 15432 x 2^20


def test_nvidia_smi_csv_with_names_and_two_gpus_takes_the_fullest():
    text = (
        "name, driver_version, memory.used [MiB], memory.total [MiB]\n"
        "NVIDIA H100 80GB HBM3, 550.54.15, 75432, 81559\n"
        "NVIDIA H100 80GB HBM3, 550.54.15, 75988, 81559\n"
    )
    run = evidence.parse(text)
    assert run.lines["total"] == 75988 * MIB
    assert run.gpu_name == "NVIDIA H100 80GB HBM3"
    assert run.driver_version == "550.54.15"
    assert run.details["memory_used_bytes"] == [75432 * MIB, 75988 * MIB]


def test_nvidia_smi_noheader_rows():
    assert evidence.parse("8123 MiB\n", "nvidia_smi").lines["total"] == 8123 * MIB


def test_typed_figures_sum_to_a_total_when_all_four_are_given():
    run = evidence.from_figures(
        {"weights": 10, "kv_cache": 20, "activations": 3, "non_torch": 4, "total": None}
    )
    assert run.lines["total"] == 37
    assert evidence.from_figures({"weights": 10}).lines["total"] is None
    with pytest.raises(EvidenceError):
        evidence.from_figures({})
    with pytest.raises(EvidenceError):
        evidence.from_figures({"weights": 2**51})


def test_compare_gives_the_signed_error_of_each_line():
    rows = evidence.compare(
        breakdown={"weights": 1000, "kv_cache": 200, "activations": 30, "runtime_overhead": 4},
        total_bytes=1234,
        measured={
            "weights": 800,
            "kv_cache": 250,
            "activations": None,
            "non_torch": 0,
            "total": 1234,
        },
    )
    by_line = {row.line: row for row in rows}
    assert (by_line["weights"].error_bytes, by_line["weights"].error_percent) == (200, 25.0)
    assert (by_line["kv_cache"].error_bytes, by_line["kv_cache"].error_percent) == (-50, -20.0)
    assert by_line["activations"].error_bytes is None
    assert (by_line["non_torch"].error_bytes, by_line["non_torch"].error_percent) == (4, None)
    assert (by_line["total"].error_bytes, by_line["total"].error_percent) == (0, 0.0)


# --- Hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "hello world",
        "<script>alert(1)</script>",
        "\ufeff\u202e" * 100,
        "memory.used [MiB]\n",
        "memory.used [MiB]\nlots MiB\n",
        "Load weight end. nothing else",
        "vLLM " + "9" * 5000,
        "model weights take 99999999999999999999GiB",
        "PyTorch CUDA memory summary, device ID 0\n| Allocated memory | x | y |",
        "llama_" + "CUDA0 model buffer size = " * 3000,
    ],
)
def test_garbage_is_a_clear_error(text):
    with pytest.raises(EvidenceError) as error:
        evidence.parse(text)
    assert str(error.value)


@pytest.mark.parametrize("fmt", ["vllm", "sglang", "llamacpp", "torch", "nvidia_smi"])
def test_each_parser_refuses_text_of_another_kind(fmt):
    with pytest.raises(EvidenceError):
        evidence.parse("Nothing about memory here.\n" * 10, fmt)


def test_too_large_and_nul_are_refused():
    with pytest.raises(EvidenceError, match="64 KiB"):
        evidence.parse("x" * (evidence.MAX_TEXT_BYTES + 1))
    with pytest.raises(EvidenceError, match="NUL"):
        evidence.parse("Model loading took 1.0 GiB\x00")
    with pytest.raises(EvidenceError):
        evidence.parse(VLLM_V0_LOG, "yaml")


def test_a_more_than_a_pib_figure_is_refused():
    with pytest.raises(EvidenceError, match="more memory"):
        evidence.parse("Model loading took 2000000.0 GiB and 1.0 seconds", "vllm")


def test_colour_codes_and_windows_line_ends_are_read_through():
    text = VLLM_V0_LOG.replace("INFO", "\x1b[32mINFO\x1b[0m").replace("\n", "\r\n")
    assert evidence.parse(text).lines == evidence.parse(VLLM_V0_LOG).lines
