"""The GPUs section: display helpers by hand (layout words, chart geometry)."""

from __future__ import annotations

import json

import pytest

from calculator.calculations import calculation_run
from calculator.catalog import GPUS_FILE
from calculator.engine import EstimateError
from calculator.gpu_display import (
    column_chart,
    dollars,
    duration,
    fit_chart,
    layout_label,
    rate,
)
from calculator.models import Gpu

GIB = 2**30


def layout(num_gpus, tp=1, pp=1, zero=0):
    return {
        "num_gpus": num_gpus,
        "tensor_parallel": tp,
        "pipeline_parallel": pp,
        "data_parallel": num_gpus // (tp * pp),
        "zero_stage": zero,
    }


@pytest.mark.parametrize(
    ("configuration", "words"),
    [
        (None, "—"),
        (layout(1), "1 GPU"),
        (layout(2, tp=2), "TP 2"),
        (layout(24, tp=8, pp=3), "TP 8 × PP 3"),
        (layout(8, tp=2, zero=3), "TP 2 × ZeRO-3 DP 4"),
        (layout(4, zero=3), "ZeRO-3 DP 4"),
    ],
)
def test_layout_in_words(configuration, words):
    assert layout_label(configuration) == words


def test_numbers_for_people():
    assert rate(143.6099, "tokens/s") == "143.6 tokens/s"
    assert rate(28871.97, "tokens/s") == "28,872 tokens/s"
    assert rate(None, "tokens/s") == "—"
    assert dollars(2.99) == "$2.99"
    assert dollars(0.004) == "$0.0040"
    assert dollars(None) == "—"
    assert duration(1800) == "30 min"
    assert duration(32_470.9) == "9.0 h"  # 32,470.9 / 3,600
    assert duration(3 * 86_400) == "3.0 days"


def fit_row(gpu, memory, required, fewest, configuration):
    return {
        "gpu": gpu,
        "name": gpu.upper(),
        "memory_bytes": memory,
        "usable_bytes": memory,
        "required_bytes": required,
        "fits_on_one": required <= memory,
        "headroom_bytes": memory - required,
        "headroom_percent": round(100 * (memory - required) / memory, 2),
        "fewest_gpus": fewest,
        "configuration": configuration,
        "per_gpu_bytes": required,
    }


def test_fit_chart_geometry_by_hand():
    required = 17_613_184_512  # Llama-3.1-8B inference at the defaults, 16.40 GiB
    rows = [
        fit_row("h100", 80 * GIB, required, 1, layout(1)),
        fit_row("t4", 16 * GIB, required, 2, layout(2, tp=2)),
    ]
    chart = fit_chart(rows, "GiB")
    # bars from x=170 to x=550 (640 - 90) for 0..80 GiB: nice step 20 (80 / 5 = 16 -> 20)
    assert (chart.left, chart.right) == (170, 550)
    assert chart.ticks == [
        (170.0, "0"),
        (265.0, "20"),
        (360.0, "40"),
        (455.0, "60"),
        (550.0, "80"),
    ]
    h100, t4 = chart.bars
    assert h100.width == 380.0  # 80 of 80 GiB
    assert t4.width == 76.0  # 380 x 16 / 80
    assert (h100.y, t4.y) == (8, 30)  # rows of 22 units below an 8-unit margin
    assert chart.required_x == round(170 + 380 * (required / GIB) / 80, 2) == 247.92
    assert h100.fits and h100.label == "fits"
    assert not t4.fits and t4.label == "needs 2 (TP 2)"
    assert chart.height == 8 + 2 * 22 + 28
    assert "1 of 2 GPUs" in chart.description


def test_column_chart_geometry_by_hand():
    chart = column_chart([(1, 125), (2, 266), (4, 498), (8, 831)], title="Largest batch size")
    # 300 units wide: four 75-unit slots, columns 60% of a slot (45) centred (15 in)
    assert [column.x for column in chart.columns] == [15.0, 90.0, 165.0, 240.0]
    assert {column.width for column in chart.columns} == {45.0}
    # heights in proportion to the largest (831) over 118 units (from y=18 to y=136)
    assert chart.bottom == 136
    assert [column.height for column in chart.columns] == [
        round(118 * 125 / 831, 2),
        round(118 * 266 / 831, 2),
        round(118 * 498 / 831, 2),
        118.0,
    ]
    assert chart.columns[3].y == 18.0
    assert [column.label for column in chart.columns] == ["1 GPU", "2 GPUs", "4 GPUs", "8 GPUs"]
    assert chart.description.startswith("Largest batch size: 125 on 1 GPU, 266 on 2 GPUs")


def test_nothing_to_draw():
    assert column_chart([], title="x") is None
    assert fit_chart([], "GiB") is None


# --- the web layer resolves GPU slugs -----------------------------------------------------------

LLAMA_CATALOG = {"catalog": "meta-llama/Llama-3.1-8B"}


@pytest.mark.django_db
def test_calculation_resolves_a_catalog_gpu_and_fits_across_the_catalog():
    calculation = calculation_run(user=None, payload={"model": LLAMA_CATALOG, "gpu": "h100-sxm"})
    result = calculation.result
    assert result["inputs"]["gpu"] == "h100-sxm"  # as given, like the model
    catalog_size = len(json.loads(GPUS_FILE.read_text()))
    assert catalog_size >= 20
    assert len(result["fit"]) == catalog_size == Gpu.objects.count()
    # the catalog's H100 SXM: 3.35 TB/s; Llama-3.1-8B bf16 weights 16,060,522,496 B plus
    # 268,435,456 B of KV cache read per step, at 70% of the bandwidth
    decode = result["throughput"]["decode"]
    assert decode["tokens_per_s"] == pytest.approx(3.35e12 * 0.7 / 16_328_957_952)
    assert result["cost"]["price_per_gpu_hour"] == float(
        Gpu.objects.get(slug="h100-sxm").price_per_hour_usd
    )


@pytest.mark.django_db
def test_calculation_names_an_unknown_gpu():
    with pytest.raises(EstimateError) as caught:
        calculation_run(user=None, payload={"model": LLAMA_CATALOG, "gpu": "h1000"})
    assert caught.value.field == "gpu"
