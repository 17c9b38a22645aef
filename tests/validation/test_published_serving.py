"""vLLM start-up logs (validation/published/serving.json): the data's provenance, and the serving
plan's accuracy on each kind of line, computed from the data files."""

from __future__ import annotations

import re

import pytest

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
    assert unit == ("tokens" if case["quantity"] == "kv_cache_tokens" else "GiB")
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


def test_kv_cache_lines_are_within_ten_percent():
    # what is left for the KV cache, and the tokens it holds: weights, the profile's peak and
    # the printed non-torch memory taken from gpu_memory_utilization x total memory
    for comparison in serving.compare_all(DATA):
        if comparison.line.quantity in ("kv_cache_bytes", "kv_cache_tokens"):
            assert abs(comparison.error) < 0.10, comparison.line.id


def test_what_cannot_be_expressed_is_listed_with_a_reason():
    assert DATA["not_expressible"]
    for entry in DATA["not_expressible"]:
        assert entry["source"].startswith("https://github.com/")
        assert entry["row"] and entry["reported"] and entry["reason"]
