"""Compare 2-4 estimates: access like permalinks, differences flagged, the grouped bar chart."""

from __future__ import annotations

import pytest
from django.urls import reverse

from calculator.compare import GIB, ComparedEstimate, grouped_bar_chart, nice_step
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
