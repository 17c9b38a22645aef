"""Compare 2-4 estimates: access like permalinks, differences flagged, the grouped bar chart."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calculator.presenters.compare import GIB, ComparedEstimate, grouped_bar_chart, nice_step
from tests.factories import EstimateFactory


def _url(*estimates) -> str:
    return reverse("compare") + "?ids=" + ",".join(e.public_id for e in estimates)


# who -> status when comparing Alice's team and link estimates (Bob reads both, Charlie only
# the link one, so the page is a 404 for him: nothing of the team item leaks).
COMPARE = {"alice": 200, "bob": 200, "charlie": 404, "anonymous": 404}


@pytest.mark.parametrize("who", list(COMPARE))
def test_it_compares_only_what_the_visitor_may_read(who, visitor_client, estimates):
    response = visitor_client(who).get(_url(estimates["team"], estimates["link"]))
    assert response.status_code == COMPARE[who]


def test_link_items_compare_for_anyone(visitor_client, alice):
    first = EstimateFactory(owner=alice, visibility="link")
    second = EstimateFactory(owner=alice, visibility="link")
    assert visitor_client("anonymous").get(_url(first, second)).status_code == 200


@pytest.mark.parametrize("count", [1, 5])
def test_it_wants_two_to_four(count, visitor_client, alice):
    chosen = EstimateFactory.create_batch(count, owner=alice)
    response = visitor_client("alice").get(_url(*chosen))
    assert response.status_code == 400
    assert "Choose 2 to 4 estimates" in response.text


def test_it_highlights_what_differs(visitor_client, alice):
    first = EstimateFactory(owner=alice, title="Short")
    second = EstimateFactory(owner=alice, title="Long")
    second.inputs = {**second.inputs, "sequence_length": 8192}
    second.result = {
        **second.result,
        "breakdown": {**second.result["breakdown"], "kv_cache": 800},
        "total_bytes": 1834,  # 1,234 - 200 + 800
    }
    second.save()
    response = visitor_client("alice").get(_url(first, second))
    rows = {row.label: row for row in response.context["input_rows"]}
    assert rows["sequence_length"].differs and rows["sequence_length"].values == ("2048", "8192")
    assert not rows["batch_size"].differs
    breakdown = {row.key: row for row, _ in response.context["breakdown"]}
    assert breakdown["kv_cache"].differs and not breakdown["weights"].differs
    assert breakdown["total"].values == (1234, 1834)
    assert response.text.count('class="differs"') == 3  # sequence length, KV cache, total


def test_the_history_form_redirects_to_a_clean_address(visitor_client, alice):
    first, second = EstimateFactory.create_batch(2, owner=alice)
    response = visitor_client("alice").get(
        reverse("compare"),
        {"ids": [first.public_id, second.public_id], "csrfmiddlewaretoken": "x", "query": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == _url(first, second)


def _compared(label, **breakdown) -> ComparedEstimate:
    full = {
        "weights": 0,
        "kv_cache": 0,
        "activations": 0,
        "gradients": 0,
        "optimizer_states": 0,
        "runtime_overhead": 0,
        **breakdown,
    }
    return ComparedEstimate(label, "m", {}, {"breakdown": full, "total_bytes": sum(full.values())})


def test_nice_steps_are_1_2_or_5_times_a_power_of_ten():
    # 16 GiB over at most 5 ticks needs steps of 3.2 or more: 5. 0.7 / 5 = 0.14: 0.2.
    assert nice_step(16) == 5
    assert nice_step(0.7) == pytest.approx(0.2)
    assert nice_step(100) == 20


def test_the_grouped_bar_chart_scales_bars_to_the_largest():
    chart = grouped_bar_chart(
        [_compared("A", weights=16 * GIB), _compared("B", weights=8 * GIB, kv_cache=4 * GIB)],
        width=720,
        height=300,
    )
    # Plot from y=12 to y=260 (height 300 minus 40 for labels): 248 px for 0..20 GiB, since
    # the largest bar (the 16 GiB totals) rounds up to 4 steps of 5 GiB.
    assert [tick.label for tick in chart.ticks] == ["0 GiB", "5 GiB", "10 GiB", "15 GiB", "20 GiB"]
    bars = {(bar.series, i // 2): bar for i, bar in enumerate(chart.bars)}
    weights_a, weights_b = bars[(0, 0)], bars[(1, 0)]
    assert weights_a.height == pytest.approx(248 * 16 / 20)
    assert weights_b.height == pytest.approx(248 * 8 / 20)
    assert weights_a.y + weights_a.height == pytest.approx(260)
    # Seven groups (six parts and the total) over 720 - 8 - 64 = 648 px; two bars share 80 %.
    assert weights_a.width == pytest.approx(648 / 7 * 0.8 / 2, abs=0.01)
    totals = [bar for bar in chart.bars if "Total" in bar.title]
    assert [bar.height for bar in totals] == pytest.approx([248 * 16 / 20, 248 * 12 / 20])


def test_the_chart_axis_falls_back_to_smaller_units_for_small_estimates():
    # 3 MiB is under a GiB: the axis counts MiB, in steps of 1 (3 / 5 = 0.6 rounds up to 1).
    chart = grouped_bar_chart([_compared("A", weights=3 * 1024**2), _compared("B")])
    assert [tick.label for tick in chart.ticks] == ["0 MiB", "1 MiB", "2 MiB", "3 MiB"]


def _saved(alice, **inputs):
    estimate = EstimateFactory(owner=alice)
    normalised = {"mode": "inference", "batch_size": 1, "sequence_length": 2048, **inputs}
    estimate.result = {**estimate.result, "inputs": normalised}
    estimate.save()
    return estimate


def test_a_default_is_not_flagged_against_the_same_value(visitor_client, alice):
    # one left kv_cache_dtype out, the other gave bfloat16: the engine read both as bfloat16
    first = _saved(alice, kv_cache_dtype="bfloat16", gpu=None)
    second = _saved(alice, kv_cache_dtype="bfloat16", gpu=None)
    first.inputs = {**first.inputs, "kv_cache_dtype": None}
    first.save()
    rows = {
        r.label: r for r in visitor_client("alice").get(_url(first, second)).context["input_rows"]
    }
    assert rows["kv_cache_dtype"].values == ("bfloat16", "bfloat16")
    assert not rows["kv_cache_dtype"].differs
    assert "gpu" not in rows  # neither chose a GPU: no "gpu: default" row


def test_training_inputs_are_shown_only_beside_a_training_estimate(visitor_client, alice):
    inference = _saved(alice, optimizer="adamw")
    training = _saved(alice, mode="training", optimizer="adamw")
    other_inference = _saved(alice, optimizer="adamw")
    client = visitor_client("alice")
    rows = {r.label: r for r in client.get(_url(inference, training)).context["input_rows"]}
    assert rows["optimizer"].values == ("—", "adamw")
    rows = {r.label: r for r in client.get(_url(inference, other_inference)).context["input_rows"]}
    assert "optimizer" not in rows


def test_compare_shows_the_gpu_answer(visitor_client, alice):
    with_gpu = _saved(alice, gpu={"slug": "h100-sxm", "name": "NVIDIA H100 SXM 80GB"})
    with_gpu.result = {
        **with_gpu.result,
        "answer": {
            "name": "NVIDIA H100 SXM 80GB",
            "gpu_count": 2,
            "fits": True,
            "spare_bytes": 2 * GIB,
        },
        "throughput": {"decode": {"tokens_per_s": 1234.5}},
        "cost": {"per_hour": 5.98, "per_million_tokens": 1.35},
    }
    with_gpu.save()
    without = _saved(alice)
    response = visitor_client("alice").get(_url(with_gpu, without))
    rows = {r.label: r for r in response.context["answer_rows"]}
    assert rows["GPU"].values == ("NVIDIA H100 SXM 80GB", "—")
    assert rows["GPUs"].values == ("2", "—")
    assert rows["Spare per GPU"].values == ("2.00 GiB", "—")
    assert rows["Decode"].values == ("1,234.5 tokens/s", "—")
    assert rows["Per hour"].values == ("$5.98", "—")
    inputs = {r.label: r for r in response.context["input_rows"]}
    assert inputs["gpu"].values == ("NVIDIA H100 SXM 80GB", "none")
    assert 'id="compare-answer"' in response.text


def test_the_chart_labels_alternate_lines_so_they_do_not_overlap():
    chart = grouped_bar_chart([_compared("A", weights=GIB), _compared("B", weights=2 * GIB)])
    # seven groups of about 93 px for labels of up to 16 characters: every other one lower
    assert [group.dy for group in chart.groups] == [0, 14, 0, 14, 0, 14, 0]


def test_compare_shows_serving_plans_side_by_side(visitor_client, alice):
    plan = {
        "engine": "vllm",
        "memory": {"starts": True, "kv_cache_tokens": 437_456, "max_concurrency": 53.4},
        "performance": {"output_tokens_per_s": 1504.3},
        "cost": {"per_million_output_tokens": 0.552},
    }
    serving = _saved(alice, mode="serving")
    serving.result = {
        **serving.result,
        "serving": plan,
        "answer": {"name": "H100", "gpu_count": 1, "fits": True},
    }
    serving.save()
    other = _saved(alice)
    rows = {
        r.label: r for r in visitor_client("alice").get(_url(serving, other)).context["answer_rows"]
    }
    assert rows["KV cache tokens"].values == ("437,456", "—")
    assert rows["Concurrency at max length"].values == ("53.40", "—")
    assert rows["Output tokens/s"].values == ("1,504", "—")
    assert rows["Per million output tokens"].values == ("$0.55", "—")


def test_compare_shows_llamacpp_offload_and_host_ram(visitor_client, alice):
    plan = {
        "engine": "llama.cpp",
        "memory": {
            "starts": True,
            "kv_cache_tokens": 8192,
            "max_concurrency": 1,
            "llamacpp": {"offloaded": "20/33", "host_bytes": 2_912_907_902},
        },
        "performance": {"output_tokens_per_s": 29.6},
        "cost": None,
    }
    served = _saved(alice, mode="serving")
    served.result = {**served.result, "serving": plan}
    served.save()
    other = _saved(alice)
    rows = {
        r.label: r for r in visitor_client("alice").get(_url(served, other)).context["answer_rows"]
    }
    assert rows["Layers offloaded (llama.cpp)"].values == ("20/33", "—")
    assert rows["Host RAM (llama.cpp)"].values == ("2,912,907,902 B", "—")


def test_compare_shows_each_estimates_latest_measured_run(visitor_client, alice):
    from calculator.models import MeasuredRun, RunSource

    measured = EstimateFactory(owner=alice)
    # the factory's estimate: 1,000 bytes of weights, 1,234 in all
    MeasuredRun.objects.create(
        estimate=measured, owner=alice, source_format=RunSource.MANUAL, total_bytes=2**30
    )
    MeasuredRun.objects.create(
        estimate=measured, owner=alice, source_format=RunSource.MANUAL, total_bytes=2 * 2**30
    )
    plain = EstimateFactory(owner=alice)
    response = visitor_client("alice").get(_url(measured, plain))
    rows = {r.label: r for r in response.context["measured_rows"]}
    (total,) = [row for label, row in rows.items() if "otal" in label]
    # the latest run: 2 GiB; 1,234 - 2,147,483,648 bytes is -100.0 % of it
    assert total.values == ("2.00 GiB (-100.0 %)", "—")
    assert 'id="compare-measured"' in response.text
    without = visitor_client("alice").get(_url(plain, EstimateFactory(owner=alice)))
    assert without.context["measured_rows"] == []
