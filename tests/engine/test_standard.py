"""The standard method reproduces the original calculator's worked examples to the byte.

Every expected number is the table in /work/shared/reference/seed-formulas.md ("Worked
examples"), with the arithmetic of its formulas written next to it.
"""

from __future__ import annotations

import pytest

from calculator.engine import EstimateError, calculate

# seed-formulas.md worked examples: 7 B params, hidden 4096, 32 layers, 32 heads
MODEL = {
    "architecture": {
        "num_parameters": 7_000_000_000,
        "hidden_size": 4096,
        "num_layers": 32,
        "num_attention_heads": 32,
    }
}

# batch 1 * seq 2048 * hidden 4096 * (34 + 5 * 2048 * 32 / 4096) * 4 = 8,388,608 * 114 * 4
ACTIVATIONS = 3_825_205_248
assert ACTIVATIONS == 2048 * 4096 * (34 + 5 * 2048 * 32 // 4096) * 4


def run(**fields):
    return calculate({"model": MODEL, "method": "standard", **fields})


def test_it_reproduces_inference_float16():
    result = run(mode="inference", weight_dtype="float16")
    assert result["breakdown"] == {
        "weights": 14_000_000_000,  # 7e9 * 2
        "kv_cache": 1_073_741_824,  # 2 * 1 * 2048 * 32 * 4096 * 2
        "activations": ACTIVATIONS,
        "gradients": 0,
        "optimizer_states": 0,
        "runtime_overhead": 0,
    }
    assert result["total_bytes"] == 18_898_947_072


def test_it_reproduces_training_float16_adamw_full():
    result = run(mode="training", weight_dtype="float16", optimizer="adamw", trainable_percent=100)
    assert result["breakdown"] == {
        "weights": 14_000_000_000,
        "kv_cache": 1_073_741_824,
        "activations": ACTIVATIONS,
        "gradients": 28_000_000_000,  # 4 * 7e9
        "optimizer_states": 56_000_000_000,  # 8 * 7e9
        "runtime_overhead": 0,
    }
    assert result["total_bytes"] == 102_898_947_072
    assert result["parameters"]["trainable"] == 7_000_000_000


def test_it_reproduces_inference_int4():
    result = run(mode="inference", weight_dtype="int4")
    assert result["breakdown"] == {
        "weights": 3_500_000_000,  # 7e9 * 0.5
        "kv_cache": 268_435_456,  # 2 * 1 * 2048 * 32 * 4096 * 0.5
        "activations": ACTIVATIONS,
        "gradients": 0,
        "optimizer_states": 0,
        "runtime_overhead": 0,
    }
    assert result["total_bytes"] == 7_593_640_704


def test_it_reproduces_training_int4_adamw_one_percent():
    result = run(mode="training", weight_dtype="int4", optimizer="adamw", trainable_percent=1)
    assert result["breakdown"] == {
        "weights": 3_500_000_000,
        "kv_cache": 268_435_456,
        "activations": ACTIVATIONS,
        "gradients": 280_000_000,  # 4 * 7e9 * 1 / 100
        "optimizer_states": 560_000_000,  # 8 * 7e9 * 1 / 100
        "runtime_overhead": 0,
    }
    assert result["total_bytes"] == 8_433_640_704
    assert result["parameters"]["trainable"] == 70_000_000


def test_its_totals_in_gib_match_the_original_display():
    # seed-formulas.md: "Shown in GiB: 17.60, 95.83, 7.07, 7.85"
    totals = [
        run(mode="inference", weight_dtype="float16")["total_bytes"],
        run(mode="training", weight_dtype="float16")["total_bytes"],
        run(mode="inference", weight_dtype="int4")["total_bytes"],
        run(mode="training", weight_dtype="int4", trainable_percent=1)["total_bytes"],
    ]
    assert [round(total / 1024**3, 2) for total in totals] == [17.60, 95.83, 7.07, 7.85]


@pytest.mark.parametrize(
    ("optimizer", "bytes_per_param"), [("adamw_8bit", 2), ("sgd", 4), ("sgd_momentum", 4)]
)
def test_it_uses_the_original_optimizer_table(optimizer, bytes_per_param):
    # the original app: "Quantized AdamW" 2 B, SGD 4 B per parameter
    result = run(mode="training", weight_dtype="float16", optimizer=optimizer)
    assert result["breakdown"]["optimizer_states"] == bytes_per_param * 7_000_000_000


def test_it_notes_the_single_sgd_of_the_original():
    result = run(mode="training", weight_dtype="float16", optimizer="sgd_momentum")
    assert any("one SGD option" in note for note in result["notes"])


def test_it_uses_trainable_percent_for_lora_and_says_so():
    result = run(mode="training", weight_dtype="float16", finetuning="lora", trainable_percent=1)
    assert result["breakdown"]["gradients"] == 280_000_000  # 4 * 7e9 * 1 / 100
    assert any("no LORA" in note for note in result["notes"])


def test_it_rounds_each_line_to_the_nearest_byte():
    # 3.8 B params (a preset of the original) in int4: 3.8e9 * 0.5 = 1.9e9 exactly; 1,234,567
    # params in int4 = 617,283.5 -> nearest (ties to even) 617,284
    tiny = {
        "num_parameters": 1_234_567,
        "hidden_size": 64,
        "num_layers": 2,
        "num_attention_heads": 2,
    }
    payload = {
        "model": {"architecture": tiny},
        "method": "standard",
        "weight_dtype": "int4",
        "sequence_length": 1,
    }
    result = calculate(payload)
    assert result["breakdown"]["weights"] == 617_284
    # 1 * 1 * 64 * (34 + 5 * 1 * 2 / 64) * 4 = 64 * 34 * 4 + 5 * 2 * 4 = 8,704 + 40
    assert result["breakdown"]["activations"] == 8_744


def test_it_adds_runtime_overhead_only_when_set():
    assert run()["breakdown"]["runtime_overhead"] == 0
    result = run(weight_dtype="float16", runtime_overhead_bytes=1_000)
    assert result["breakdown"]["runtime_overhead"] == 1_000
    assert result["total_bytes"] == 18_898_947_072 + 1_000


def test_it_rejects_formats_the_original_did_not_have():
    with pytest.raises(EstimateError) as error:
        run(weight_dtype="nf4")
    assert error.value.field == "weight_dtype"
    assert "standard method knows only" in error.value.message


def test_it_rejects_more_than_one_gpu():
    with pytest.raises(EstimateError) as error:
        run(num_gpus=2)
    assert error.value.field == "num_gpus"
