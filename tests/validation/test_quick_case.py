"""One quick case of the accuracy harness, when torch is installed (the `validate` extra).

Each case runs in a fresh process, as `make validate` runs it. The exact sizes must equal the
engine's to the byte, and the tensors must hold what hand arithmetic says for this small Llama.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from validation.cases import CASES_BY_NAME  # noqa: E402
from validation.report import exact_checks  # noqa: E402
from validation.run import compare, measure_in_subprocess  # noqa: E402

# validation/cases.py "llama": hidden 512, 4 layers, 8 heads of 64, 2 KV heads, MLP 1536,
# vocab 32,000, untied. By hand: embeddings and LM head 2 * 32,000 * 512 = 32,768,000; per layer
# q and o 2 * 512 * 512 = 524,288, k and v 2 * 512 * 128 = 131,072, gate/up/down
# 3 * 512 * 1,536 = 2,359,296, two norms 1,024: 3,015,680; 4 layers 12,062,720; final norm 512.
LLAMA_PARAMETERS = 32_768_000 + 4 * 3_015_680 + 512  # 44,831,232


@pytest.mark.slow
def test_quick_inference_case_is_exact():
    case = CASES_BY_NAME["llama-quick-infer"]
    comparison = compare(case, measure_in_subprocess(case))

    measured = comparison.measured
    assert measured["parameters"] == LLAMA_PARAMETERS
    assert measured["weight_bytes"] == 4 * LLAMA_PARAMETERS  # float32
    # K and V, 4 layers, 2 KV heads of 64, 64 tokens of 1 sequence, float32
    assert measured["kv_cache_bytes"] == 2 * 4 * 2 * 64 * 64 * 1 * 4
    # the run holds at least the weights and the cache at its peak
    assert measured["peak_bytes"] >= measured["weight_bytes"] + measured["kv_cache_bytes"]
    checks = exact_checks(comparison)
    assert set(checks) == {"parameters", "weights", "kv_cache"}
    for name, (measured_value, engine_value) in checks.items():
        assert engine_value == measured_value, name


@pytest.mark.slow
def test_quick_training_case_is_exact():
    case = CASES_BY_NAME["llama-quick-train"]
    comparison = compare(case, measure_in_subprocess(case))

    measured = comparison.measured
    assert measured["trainable_parameters"] == LLAMA_PARAMETERS
    # float32 gradients (4 B) and AdamW's exp_avg and exp_avg_sq (2 * 4 B) per parameter
    assert measured["gradient_bytes"] == 4 * LLAMA_PARAMETERS
    assert measured["optimizer_state_bytes"] == 8 * LLAMA_PARAMETERS
    # weights and both AdamW states are alive through the whole second step
    assert measured["peak_bytes"] >= 12 * LLAMA_PARAMETERS
    checks = exact_checks(comparison)
    assert set(checks) == {
        "parameters",
        "trainable",
        "weights",
        "gradients",
        "optimizer_states",
    }
    for name, (measured_value, engine_value) in checks.items():
        assert engine_value == measured_value, name
