"""Speed of the GPU answers: prints medians for what one calculator page request computes.

Target (issue 6): calculate() with a GPU, which fits across the 26 catalog GPUs and finds the
capacity on the chosen GPU (and for the chart on 1, 2, 4 and 8 of them), under 50 ms median.
Run: `.venv/bin/python bench/hardware.py`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import median_seconds  # noqa: E402
from calculator.engine import calculate  # noqa: E402
from calculator.engine.hardware import (  # noqa: E402
    GpuSpec,
    Sizer,
    capacity,
    capacity_by_gpu_count,
    cost,
    fit,
    throughput,
)

GPU_FIELDS = (
    "slug",
    "name",
    "memory_bytes",
    "memory_bandwidth_bytes_per_s",
    "bf16_dense_tflops",
    "price_per_hour_usd",
)


def catalog_gpus() -> list[GpuSpec]:
    entries = json.loads((ROOT / "calculator" / "data" / "gpus.json").read_text())
    return [GpuSpec(**{name: entry[name] for name in GPU_FIELDS}) for entry in entries]


def catalog_config(slug: str) -> dict:
    entries = json.loads((ROOT / "calculator" / "data" / "models.json").read_text())
    return next(entry["config"] for entry in entries if entry["slug"] == slug)


def page_request(payload: dict, gpus: list[GpuSpec], gpu: GpuSpec) -> None:
    """What a calculator page request computes: the estimate with the GPUs section (fit across
    the catalog, capacity on the chosen GPU and on 1, 2, 4 and 8 of them, throughput, cost)."""
    request = {**payload, "gpu": dataclasses.asdict(gpu), "training_tokens": 10**9}
    calculate(request, fit_gpus=gpus)


def parts(payload: dict, gpus: list[GpuSpec], gpu: GpuSpec) -> dict[str, float]:
    """Medians of each part on its own (a fresh Sizer each time: nothing cached between)."""
    runs = {
        "fit": lambda: fit(payload, gpus, sizer=Sizer(payload)),
        "capacity": lambda: capacity(payload, gpu, 1, sizer=Sizer(payload)),
        "chart": lambda: capacity_by_gpu_count(payload, gpu, sizer=Sizer(payload)),
        "throughput": lambda: cost(throughput(payload, gpu, 1, sizer=Sizer(payload)), gpu, 1),
    }
    return {name: median_seconds(run, 10) for name, run in runs.items()}


def main() -> None:
    gpus = catalog_gpus()
    h100 = next(gpu for gpu in gpus if gpu.slug == "h100-sxm")
    cases = {
        "Llama-3.1-8B inference": {
            "model": {"hf_config": catalog_config("meta-llama/Llama-3.1-8B")}
        },
        "Llama-3.1-70B inference, 32k": {
            "model": {"hf_config": catalog_config("meta-llama/Llama-3.1-70B-Instruct")},
            "sequence_length": 32768,
        },
        "Llama-3.1-405B inference": {
            "model": {"hf_config": catalog_config("meta-llama/Llama-3.1-405B-Instruct")},
        },
        "DeepSeek-V3 inference": {
            "model": {"hf_config": catalog_config("deepseek-ai/DeepSeek-V3")},
        },
        "Llama-3.1-70B full training": {
            "model": {"hf_config": catalog_config("meta-llama/Llama-3.1-70B-Instruct")},
            "mode": "training",
            "mixed_precision": True,
        },
        "Qwen3-8B LoRA training": {
            "model": {"hf_config": catalog_config("Qwen/Qwen3-8B")},
            "mode": "training",
            "finetuning": "lora",
        },
    }
    for name, payload in cases.items():
        page_request(payload, gpus, h100)  # warm the architecture cache, as a running server has
        seconds = median_seconds(lambda payload=payload: page_request(payload, gpus, h100), 20)
        split = ", ".join(
            f"{part} {value * 1e3:.1f}" for part, value in parts(payload, gpus, h100).items()
        )
        print(
            f"calculate() with the GPUs section: {name:30s} median {seconds * 1e3:7.2f} ms "
            f"(target < 50 ms; {split} ms)"
        )


if __name__ == "__main__":
    main()
