"""The published GPU measurements (validation/published/): the data's provenance, and the
engine's aggregate accuracy on them against issue 15's targets, computed from the data files."""

from __future__ import annotations

import dataclasses
import re

import pytest

from validation import published

DATA = published.load_data()


def test_it_has_at_least_forty_measurements_with_unique_ids():
    ids = [case["id"] for case in DATA["cases"]]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("key", sorted(DATA["sources"]))
def test_every_source_is_cited_precisely(key):
    source = DATA["sources"][key]
    assert source["measures"] in published.MEASURES
    assert source["unit"] in published.UNITS
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert source["commit"] in source["url"] and source["path"] in source["url"]
    assert source["how"]


@pytest.mark.parametrize("case", DATA["cases"], ids=lambda case: case["id"])
def test_every_case_states_its_setup_and_a_payload(case):
    assert case["source"] in DATA["sources"]
    assert case["setup"] and case["row"] and case["gpu"]
    # the figure as the source prints it, in the source's unit
    value, unit = case["reported"].split()
    assert unit == DATA["sources"][case["source"]]["unit"]
    assert float(value) > 0
    assert (published.CONFIGS_DIR / f"{case['payload']['model']['config']}.json").is_file()


def test_measured_bytes_follow_the_sources_units():
    # litgpt prints max_memory_allocated() / 1e9; the transformers guide divides by 1024**3
    by_id = {measurement.id: measurement for measurement in published.measurements()}
    assert by_id["litgpt-generate-llama-2-7b-hf-bf16"].measured_bytes == 13_520_000_000
    octocoder = by_id["transformers-octocoder-bf16"].measured_bytes
    assert octocoder == round(29.0260648727417 * 1024**3)


def test_what_cannot_be_expressed_is_listed_with_a_reason():
    for entry in DATA["not_expressible"]:
        assert entry["source"] in DATA["sources"]
        assert entry["row"] and entry["reported"] and entry["reason"]


# Expressible cases the engine misses by more than ±25 %: kept in the set and counted in the
# median and the share, not hidden; the "none beyond ±25 %" target is not met for them
# (docs/accuracy.md, "torchtune and PEFT"). A new miss, or one of these fixed, fails the test.
KNOWN_MISSES = {
    "torchtune-readme-lora-llama-2-7b-2gpu": (
        "torchtune 2024-04 lora_finetune_distributed on 2 GPUs, about 7 GB low: FSDP1's gathered "
        "layers, the frozen units' reshard, rank 0's per-unit init and the all-gather stream's "
        "blocks are modelled or sized and do not reach it; the table's single-device LoRA row "
        "is 1.61 GB above the tutorial's figure for the same config, so the runs differ from the "
        "linked configs in a way the table does not say"
    ),
    "torchtune-readme-full-llama-2-7b-4gpu": (
        "torchtune 2024-04 full_finetune_distributed on 4 GPUs, about 7 GB low, as the LoRA row: "
        "the same FSDP1 mechanisms and init, foreach AdamW's temporary, do not account for it"
    ),
    "peft-fsdp-qlora-llama-2-70b-offload": (
        "PEFT FSDP+QLoRA with fsdp_offload_params, about 6 GB low: CPUOffload's GPU copy of "
        "each unit's shard (the pre-unshard stream's block) is modelled; the rest of what the "
        "system monitor shows (the run without offload also reads -10.9 %) is not found"
    ),
}


def test_the_published_set_meets_the_median_and_share_targets_over_every_case():
    # every case counts, the known misses included
    summary = published.summarise(published.compare_all(DATA))
    assert summary.median_abs_error <= published.TARGET_MEDIAN
    assert summary.share_within_10_percent >= published.TARGET_SHARE_WITHIN_10
    # the worst-case target fails for the known misses only, and names the worst of them
    failures = published.target_failures(summary)
    assert failures == [f"{summary.worst.measurement.id} at {summary.worst.error:+.1%}"]
    assert summary.worst.measurement.id in KNOWN_MISSES


def test_exactly_the_known_misses_are_beyond_twenty_five_percent():
    beyond = {
        comparison.measurement.id
        for comparison in published.compare_all(DATA)
        if abs(comparison.error) > published.TARGET_WORST
    }
    assert beyond == set(KNOWN_MISSES)
    assert all(KNOWN_MISSES.values())
    # kept as cases with their payloads, not moved to not_expressible
    assert set(KNOWN_MISSES) <= {case["id"] for case in DATA["cases"]}


def test_the_target_check_fails_when_the_estimates_are_off():
    comparisons = published.compare_all(DATA)
    # every estimate 30 % high: the median, the share and the worst case all miss
    inflated = [
        dataclasses.replace(
            comparison,
            estimate={**comparison.estimate, "total_bytes": comparison.estimated_bytes * 13 // 10},
        )
        for comparison in comparisons
    ]
    assert len(published.target_failures(published.summarise(inflated))) == 3


def test_sixteen_bit_inference_is_exact_within_one_percent():
    # weights dominate: the bf16 litgpt rows and octocoder bf16 (issue 15: "exact for 16-bit")
    for comparison in published.compare_all(DATA):
        if comparison.measurement.payload.get("weight_dtype") == "bfloat16" and (
            comparison.measurement.payload["mode"] == "inference"
        ):
            assert abs(comparison.error) < 0.01, comparison.measurement.id


def test_litgpt_4bit_inference_is_within_one_percent():
    # issue 15: litgpt generate with bnb.nf4 / nf4-dq read 2-18 % low until the float16
    # dequantise-then-cast of bitsandbytes <= 0.42 and the quantised LM head were modelled
    cases = [
        comparison
        for comparison in published.compare_all(DATA)
        if comparison.measurement.id.startswith("litgpt-generate")
        and comparison.measurement.payload["weight_dtype"] in ("nf4", "nf4_no_dq")
    ]
    assert len(cases) == 13
    for comparison in cases:
        assert abs(comparison.error) < 0.01, comparison.measurement.id


def test_litgpt_training_rows_are_within_ten_percent():
    # issue 15: the config-hub QLoRA rows read -16.9 %, -15.2 % and -8.8 % until litgpt's loop
    # keeping the previous micro-batch's graph (and bitsandbytes 0.41-0.42 its 4-bit inputs) was
    # modelled; the LoRA rows read up to -7.4 % before litgpt's fused qkv and LoRA dropout
    cases = [
        comparison
        for comparison in published.compare_all(DATA)
        if comparison.measurement.id.startswith(("litgpt-lora", "litgpt-hub"))
    ]
    assert len(cases) == 23
    for comparison in cases:
        assert abs(comparison.error) < 0.10, comparison.measurement.id


def test_the_config_hub_rows_say_how_litgpt_holds_its_tensors():
    # litgpt/finetune/lora.py at the rows' commits: fused qkv, lora_dropout 0.05, `logits` kept
    # until the next forward returns; the resource tables' peak is the first iteration, which
    # follows no graph (lit-gpt 8641822 passes the longest sample at iter_num == 0 only)
    for case in DATA["cases"]:
        payload = case["payload"]
        if case["id"].startswith("litgpt-hub"):
            assert payload["fused_qkv_attention"] and payload["lora_dropout"]
            assert payload["previous_graph_alive"]
        elif case["id"].startswith("litgpt-lora"):
            assert payload["fused_qkv_attention"] and payload["lora_dropout"]
            assert not payload.get("previous_graph_alive", False)


def test_optimums_quantised_prefill_rows_are_within_five_percent():
    # issue 15: quantised inference read low until the kernels' working memory was modelled
    # (AutoGPTQ 0.5.0 exllama temp_dq, exllamav2 scratch, cuda-old's dequantisation; the
    # exllamav2 rows read -9.6 % .. +2.2 % before); every row of optimum's prefill tables
    cases = [
        comparison
        for comparison in published.compare_all(DATA)
        if comparison.measurement.id.startswith("optimum-prefill")
    ]
    assert len(cases) == 25
    kernels = {case.measurement.payload.get("gptq_kernel") for case in cases}
    assert kernels == {None, "exllama", "exllamav2", "cuda_old"}
    for comparison in cases:
        assert abs(comparison.error) < 0.05, comparison.measurement.id
