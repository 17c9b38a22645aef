"""Engine speed: prints medians for one calculate() and a 256-point sweep.

Targets (issue 2): one calculate() of Llama-3.1-8B from its config.json under 100 us median;
a 256-point sequence-length sweep under 20 ms. Run: `.venv/bin/python bench/engine.py`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calculator.engine import calculate, sweep  # noqa: E402

CONFIG = ROOT / "tests" / "engine" / "fixtures" / "configs" / "meta-llama--Llama-3.1-8B.json"


def median_seconds(run, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    config = json.loads(CONFIG.read_text())
    cases = {
        "inference": {"model": {"hf_config": config}},
        "training, LoRA": {
            "model": {"hf_config": config},
            "mode": "training",
            "finetuning": "lora",
        },
        "training, 8 GPUs, TP 2, ZeRO-3": {
            "model": {"hf_config": config},
            "mode": "training",
            "mixed_precision": True,
            "num_gpus": 8,
            "tensor_parallel": 2,
            "zero_stage": 3,
        },
    }
    for name, payload in cases.items():
        calculate(payload)  # warm the architecture cache, as a running server has
        seconds = median_seconds(lambda payload=payload: calculate(payload), 2000)
        print(f"calculate() {name:32s} median {seconds * 1e6:8.1f} us  (target < 100 us)")
    lengths = [16 * (i + 1) for i in range(256)]
    payload = cases["inference"]
    seconds = median_seconds(lambda: sweep(payload, "sequence_length", lengths), 50)
    print(
        f"sweep() 256 sequence lengths           median {seconds * 1e3:8.2f} ms  (target < 20 ms)"
    )
    fresh = [dict(config, _bench=i) for i in range(200)]
    from calculator.engine.architecture import architecture_from_hf_config

    seconds = median_seconds(lambda: architecture_from_hf_config(fresh[0]), 500)
    print(f"architecture_from_hf_config() uncached median {seconds * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
