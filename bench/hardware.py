"""Speed of the GPU answers: prints medians for what one calculator page request computes.

Target (issue 6): a fit across the 26 catalog GPUs plus capacity on the chosen GPU (and the
capacity chart over 1, 2, 4 and 8 GPUs) under 50 ms median.
Run: `.venv/bin/python bench/hardware.py`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def median_seconds(run, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def page_request(payload: dict, gpus: list[GpuSpec], gpu: GpuSpec) -> None:
    """What the calculator page computes for the GPUs section."""
    sizer = Sizer(payload)
    fit(payload, gpus, sizer=sizer)
    capacity(payload, gpu, 1, sizer=sizer)
    capacity_by_gpu_count(payload, gpu, (1, 2, 4, 8), sizer=sizer)
    rates = throughput(payload, gpu, 1, sizer=sizer)
    cost(rates, gpu, 1, training_tokens=10**9)


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
        print(
            f"fit x {len(gpus)} GPUs + capacity + chart + throughput: {name:30s} "
            f"median {seconds * 1e3:7.2f} ms  (target < 50 ms)"
        )


if __name__ == "__main__":
    main()
