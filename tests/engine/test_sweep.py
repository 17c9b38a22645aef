"""Sweeps: one field varied, each point equal to its own calculate()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.engine import EstimateError, calculate, sweep, sweep_breakdowns

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
LLAMA = {"hf_config": json.loads((CONFIGS / "meta-llama--Llama-3.1-8B.json").read_text())}


@pytest.mark.parametrize("field", ["sequence_length", "batch_size"])
def test_each_point_equals_its_own_calculation(field):
    payload = {"model": LLAMA, "mode": "training", "finetuning": "lora"}
    values = [1, 7, 512, 4096]
    totals = sweep(payload, field, values)
    assert totals == [calculate({**payload, field: value})["total_bytes"] for value in values]


def test_kv_cache_grows_linearly_along_the_sequence():
    # 131,072 B per token for Llama-3.1-8B at 16-bit: consecutive points 1,000 tokens apart
    points = sweep_breakdowns({"model": LLAMA}, "sequence_length", [1_000, 2_000, 3_000])
    assert [point["sequence_length"] for point in points] == [1_000, 2_000, 3_000]
    kv = [point["breakdown"]["kv_cache"] for point in points]
    assert kv == [1_000 * 131_072, 2_000 * 131_072, 3_000 * 131_072]
    assert all(point["total_bytes"] == sum(point["breakdown"].values()) for point in points)


def test_it_validates_each_value():
    with pytest.raises(EstimateError) as caught:
        sweep({"model": LLAMA}, "sequence_length", [1, 0])
    assert caught.value.field == "sequence_length"


def test_it_sweeps_only_batch_and_sequence():
    with pytest.raises(EstimateError) as caught:
        sweep({"model": LLAMA}, "num_gpus", [1, 2])
    assert caught.value.field == "field"
