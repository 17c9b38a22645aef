"""Results as pictures: geometry and formatting worked out by hand."""

from __future__ import annotations

from calculator.presenters import charts

GIB = 1024**3


def test_it_labels_binary_and_decimal_units_honestly():
    assert charts.in_unit(GIB, "GiB") == "1.00 GiB"
    assert charts.in_unit(10**9, "GB") == "1.00 GB"
    # 10**9 / 1024**3 = 0.9313...
    assert charts.in_unit(10**9, "GiB") == "0.93 GiB"
    # 1024**3 / 10**9 = 1.0737...
    assert charts.in_unit(GIB, "GB") == "1.07 GB"


def test_it_shortens_parameter_counts():
    assert charts.parameter_count(8_030_261_248) == "8.03B"
    assert charts.parameter_count(124_439_808) == "124.4M"
    assert charts.parameter_count(6_815_744) == "6.8M"
    assert charts.parameter_count(999_999) == "999,999"


def test_it_stacks_the_non_zero_parts_left_to_right():
    breakdown = {
        "weights": 300,
        "kv_cache": 100,
        "activations": 0,
        "gradients": 0,
        "optimizer_states": 0,
        "runtime_overhead": 0,
    }
    segments = charts.stacked_bar(breakdown, "GiB")
    # 300 of 400 bytes = 75 %, then 100 of 400 = 25 % starting where the first ends
    assert [(s.key, s.x, s.width) for s in segments] == [
        ("weights", 0.0, 75.0),
        ("kv_cache", 75.0, 25.0),
    ]
    assert segments[1].title == "KV cache: 0.00 GiB (25.0 %)"


def test_it_draws_nothing_for_an_empty_breakdown():
    assert charts.stacked_bar({"weights": 0}, "GiB") == []


def test_it_lists_every_part_in_the_table_with_its_share():
    rows = charts.breakdown_rows({"weights": 3 * GIB, "kv_cache": GIB}, "GiB")
    assert [row.key for row in rows] == [
        "weights",
        "kv_cache",
        "activations",
        "gradients",
        "optimizer_states",
        "runtime_overhead",
    ]
    assert (rows[0].bytes_display, rows[0].unit_display, rows[0].percent_display) == (
        "3,221,225,472",
        "3.00 GiB",
        "75.0 %",
    )
    assert rows[2].bytes_display == "0"


def test_it_picks_round_steps():
    # about 5 ticks: 20.9 / 5 = 4.18 -> 5; 4096 / 5 = 819.2 -> 1000; 2 / 5 = 0.4 -> 0.5
    assert charts.nice_step(20.9) == 5
    assert charts.nice_step(4096) == 1000
    assert charts.nice_step(2) == 0.5
    assert charts.nice_step(0) == 1.0


def test_it_spaces_sequence_lengths_up_to_twice_the_chosen_one():
    points = charts.sequence_length_points(2048, 100_000_000, 24)
    # 4096 x i / 24 for i = 1..24: 170.67 -> 171 first, 2048 (i = 12) and 4096 last
    assert len(points) == 24
    assert points[0] == 171
    assert 2048 in points
    assert points[-1] == 4096


def test_it_keeps_sequence_lengths_within_the_limit():
    points = charts.sequence_length_points(80, 100, 24)
    assert points[-1] == 100
    assert 80 in points
    assert points == sorted(set(points))


def test_it_places_the_line_chart_points():
    chart = charts.line_chart(
        [(1000, GIB), (2000, 2 * GIB)], current_x=2000, unit="GiB", x_label="tokens"
    )
    # plot area 64..624 wide and 12..220 high; x axis 0..2000 (steps of 500), y axis 0..2 GiB
    # (steps of 0.5): (1000, 1) -> (64 + 560 / 2, 220 - 208 / 2) = (344, 116); (2000, 2) ->
    # (624, 12)
    assert chart.polyline == "344.0,116.0 624.0,12.0"
    assert (chart.marker_x, chart.marker_y) == (624.0, 12.0)
    assert [tick.label for tick in chart.x_ticks] == ["0", "500", "1,000", "1,500", "2,000"]
    assert [tick.label for tick in chart.y_ticks] == ["0.0", "0.5", "1.0", "1.5", "2.0"]
    assert [tick.position for tick in chart.y_ticks] == [220.0, 168.0, 116.0, 64.0, 12.0]
    assert chart.marker_title == "2,000 tokens: 2.00 GiB"


def test_it_needs_two_points_for_a_line():
    assert charts.line_chart([(1, 1)], current_x=1, unit="GB", x_label="tokens") is None
