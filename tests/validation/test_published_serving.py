"""vLLM start-up logs (validation/published/serving.json): the data's provenance, and the serving
plan's accuracy on each kind of line, computed from the data files."""

from __future__ import annotations

import re

import pytest

from calculator.engine import calculate
from validation.published import serving

DATA = serving.load_data()
GiB = 2**30


def test_it_has_at_least_twelve_lines_from_two_sources_with_unique_ids():
    ids = [case["id"] for case in DATA["cases"]]
    assert len(ids) >= 12 and len(set(ids)) == len(ids)
    assert len({case["source"] for case in DATA["cases"]}) >= 2


@pytest.mark.parametrize("key", sorted(DATA["sources"]))
def test_every_source_is_cited(key):
    source = DATA["sources"][key]
    assert source["url"].startswith("https://github.com/") and source["how"]
    assert source["commit"] == "" or re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert source["commit"] in source["url"]


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda case: case["id"])
def test_every_line_states_its_setup_and_quantity(case):
    assert case["source"] in DATA["sources"]
    assert case["setup"] and case["row"] and case["gpu"]
    assert case["quantity"] in serving.QUANTITIES
    value, unit = case["reported"].split()
    units = {"kv_cache_tokens": "tokens", "num_blocks": "blocks"}
    assert unit == units.get(case["quantity"], "GiB")
    # the printed figure appears in the printed line
    assert value in case["row"].replace(",", "")


def test_printed_gib_are_binary():
    # vLLM divides by 2**30 (GiB_bytes): 14.99 GiB is 16,095,496,437 bytes, rounded
    by_id = {line.id: line for line in serving.lines()}
    line = by_id["vllm019-llama-3.1-8b-instruct-bfloat16-tp1-8192-weights"]
    assert line.measured == round(1499 * GiB / 100)


def test_the_payload_takes_the_logs_gpu_memory_and_non_torch_bytes():
    payload = serving.engine_payload(DATA["cases"][0]["payload"])
    # 79.19 GiB (the worker's total_memory) and 0.25 GiB (non-torch forward increase)
    assert payload["gpu"]["memory_bytes"] == round(7919 * GiB / 100)
    assert payload["non_torch_bytes"] == round(25 * GiB / 100)


def test_weights_lines_are_within_one_percent():
    # vLLM's 'Model loading took' / 'model weights take': parameters x dtype bytes a GPU
    for comparison in serving.compare_all(DATA):
        if comparison.line.quantity == "weights_bytes":
            assert abs(comparison.error) < 0.01, comparison.line.id


KV_LINES = ("kv_cache_bytes", "kv_cache_tokens", "num_blocks")


def test_h100_kv_cache_lines_are_within_ten_percent():
    # what is left for the KV cache, and the tokens it holds: weights, the profile's peak and
    # the printed non-torch memory taken from gpu_memory_utilization x total memory (the two
    # sources that name their vLLM version: 0.19.0 and 0.6.5)
    for comparison in serving.compare_all(DATA):
        line = comparison.line
        if line.quantity in KV_LINES and line.payload.get("gpu_slug", "h100-sxm") == "h100-sxm":
            assert abs(comparison.error) < 0.10, line.id


def test_each_case_names_the_vllm_version_its_log_ran():
    # llm-d-planner's logs are vLLM 0.19.0 (the V1 engine); PR #10511's sanity check is vLLM
    # 0.6.5 and issue 10517's log prints V0's single "Memory profiling results" line;
    # dennislee22/vLLM-benchmarking's logs print "Initializing a V1 LLM engine (v0.10.1.1)"
    versions = {
        "llm-d-planner-v0.19.0": "v1",
        "vllm-pr-10511": "v0",
        "vllm-issue-10517": "v0",
        "dennislee22-vllm-benchmarking-v0.10.1.1": "v1",
        "vllm-issue-13882": "v0",
    }
    for case in DATA["cases"]:
        assert case["payload"]["vllm_version"] == versions[case["source"]], case["id"]


def test_v1_sixteen_bit_activation_peaks_are_within_six_percent():
    # vLLM 0.19's "torch peak memory increase": the dummy sampler's peak (Llama 3.1 8B 1.89 GiB
    # at -tp 1 and -tp 2, Gemma 2 2B 3.62 GiB); the float32 run is the forward's, not held to it
    for comparison in serving.compare_all(DATA):
        line = comparison.line
        if (
            line.quantity == "activation_peak_bytes"
            and line.payload["vllm_version"] == "v1"
            and line.payload.get("weight_dtype") != "float32"
        ):
            assert abs(comparison.error) < 0.06, line.id


def test_the_rtx_3090_lines_follow_the_logs_own_accounting():
    # vLLM issue 10517 (RTX 3090, 20k and 29k tokens in one prefill): the log's own accounting,
    # 23.58 x 0.90 - peak_torch_memory - non_torch 0.35 GiB, is what it prints as kv_cache_size;
    # the peak less the 14.9888 GiB of weights is the V0 forward's MLP peak (2.07 and 2.99 GiB)
    by_id = {comparison.line.id: comparison for comparison in serving.compare_all(DATA)}
    for tokens, peak in (("20k", 17.06), ("29k", 17.98)):
        kv = by_id[f"vllm-issue10517-llama-3.1-8b-instruct-rtx3090-{tokens}-kv-cache"]
        plan = calculate(serving.engine_payload(kv.line.payload))["serving"]["memory"]
        printed_activation = (peak - 14.9888) * GiB
        assert abs(plan["activation_peak_bytes"] / printed_activation - 1) < 0.01, tokens
        # what is left: the activation term and the weights' rounding (14.9888 printed)
        weights_excess = plan["weights_bytes"] - 14.9888 * GiB
        activation_excess = plan["activation_peak_bytes"] - printed_activation
        kv_miss = kv.planned - kv.line.measured
        assert abs(kv_miss + activation_excess + weights_excess) < 0.02 * GiB
        assert abs(kv.error) < 0.02, tokens


def test_v0_activation_peaks_are_within_five_percent():
    # PR #10511 (vLLM 0.6.5): the sorting sampler on rank 0 prints 1.26 GiB at -tp 1 and -tp 2;
    # issue 13882 (0.7.3, Qwen2.5-7B, 256 x 152,064 logits) prints 1.42 GiB
    for comparison in serving.compare_all(DATA):
        line = comparison.line
        if line.quantity == "activation_peak_bytes" and line.payload["vllm_version"] == "v0":
            assert abs(comparison.error) < 0.05, line.id


def test_what_cannot_be_expressed_is_listed_with_a_reason():
    assert DATA["not_expressible"]
    for entry in DATA["not_expressible"]:
        assert entry["source"].startswith("https://github.com/")
        assert entry["row"] and entry["reported"] and entry["reason"]
