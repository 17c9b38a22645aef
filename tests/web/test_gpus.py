"""The GPUs section: display helpers by hand (layout words, chart geometry)."""

from __future__ import annotations

import json
import re

import pytest

from calculator.domain.calculations import calculation_run
from calculator.domain.catalog import GPUS_FILE
from calculator.engine import EstimateError, hardware
from calculator.models import Estimate, Gpu
from calculator.presenters.gpu_display import (
    column_chart,
    dollars,
    duration,
    fit_chart,
    layout_label,
    rate,
)

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
    # bars from x=170 to x=520 (720 - 200) for 0..80 GiB: nice step 20 (80 / 5 = 16 -> 20)
    assert (chart.left, chart.right) == (170, 520)
    assert chart.ticks == [
        (170.0, "0"),
        (257.5, "20"),
        (345.0, "40"),
        (432.5, "60"),
        (520.0, "80"),
    ]
    h100, t4 = chart.bars
    assert h100.width == 350.0  # 80 of 80 GiB
    assert t4.width == 70.0  # 350 x 16 / 80
    assert (h100.y, t4.y) == (8, 30)  # rows of 22 units below an 8-unit margin
    assert chart.required_x == round(170 + 350 * (required / GIB) / 80, 2) == 241.77
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


def test_a_requirement_beyond_every_gpu_sits_at_the_edge():
    required = 1_339_000_000_000  # Llama-3.1-70B full training, about 1,247 GiB
    rows = [fit_row("h100", 80 * GIB, required, 24, layout(24, tp=8, zero=3))]
    chart = fit_chart(rows, "GiB")
    assert chart.ticks[-1] == (520.0, "80")  # the scale stays the GPU's
    assert chart.required_x == 520
    assert chart.required_title.endswith("(beyond this scale →)")
    assert chart.bars[0].label == "needs 24 (TP 8 × ZeRO-3 DP 3)"


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


# --- the calculator page and the API show the same figures --------------------------------------

PAGE_QUERY = "/?catalog=meta-llama/Llama-3.1-8B&batch_size=8&gpu=h100-sxm&gpu_count=2"
API_PAYLOAD = {"model": LLAMA_CATALOG, "batch_size": 8, "gpu": "h100-sxm", "gpu_count": 2}


def element_text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert match, element_id
    return match.group(1).strip()


@pytest.fixture
def api_body(client):
    response = client.post("/api/v1/calculate", API_PAYLOAD, content_type="application/json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("htmx", [False, True])
def test_the_page_shows_the_apis_figures(client, api_body, htmx):
    headers = {"HX-Request": "true"} if htmx else {}
    # a live update fits the catalog's GPUs while the fit is open (the form's `fit`)
    response = client.get(PAGE_QUERY + ("&fit=1" if htmx else ""), headers=headers)
    assert response.status_code == 200
    html = response.content.decode()
    capacity, throughput, cost = api_body["capacity"], api_body["throughput"], api_body["cost"]
    assert element_text(html, "max-batch-size") == f"{capacity['max_batch_size']:,}"
    assert element_text(html, "max-sequence-length") == f"{capacity['max_sequence_length']:,}"
    assert element_text(html, "kv-cache-tokens") == f"{capacity['kv_cache']['tokens']:,}"
    decode = throughput["decode"]
    assert decode["tokens_per_s"] > 1000  # 8 sequences on 2 x 3.35 TB/s
    assert element_text(html, "decode-total") == f"{decode['tokens_per_s']:,.0f} tokens/s"
    assert element_text(html, "decode-per-sequence") == (
        f"{decode['tokens_per_s_per_sequence']:,.1f} tokens/s"
    )
    assert element_text(html, "cost-per-hour") == f"${cost['per_hour']:,.2f}"
    assert element_text(html, "cost-per-million") == f"${cost['per_million_tokens']:,.2f}"
    # every catalog GPU has its fit row, with the same fewest count as the API's
    for row in api_body["fit"]:
        assert f'id="fit-{row["gpu"]}"' in html
    t4 = next(row for row in api_body["fit"] if row["gpu"] == "t4")
    t4_row = re.search(r'id="fit-t4">(.*?)</tr>', html).group(1)
    assert f'<td class="num">{t4["fewest_gpus"]}</td>' in t4_row


@pytest.fixture
def fitted(monkeypatch) -> list[int]:
    """How many GPUs each `hardware.fit` call of a request fitted, in order."""
    counts: list[int] = []
    real_fit = hardware.fit

    def counting_fit(payload, gpus, **options):
        gpus = list(gpus)
        counts.append(len(gpus))
        return real_fit(payload, gpus, **options)

    monkeypatch.setattr(hardware, "fit", counting_fit)
    return counts


@pytest.mark.django_db
def test_a_live_update_folds_the_fit_unless_it_is_open(client, fitted):
    # T4 16 GB cannot hold Llama-3.1-8B in bfloat16 (16,060,522,496 bytes of weights alone):
    # the headline names the fewest T4s, which the folded update still computes
    query = "/?catalog=meta-llama/Llama-3.1-8B&batch_size=8&gpu=t4"
    htmx = {"HX-Request": "true"}
    folded = client.get(query, headers=htmx).content.decode()
    assert fitted == [1]  # the asked GPU only
    assert 'id="fit-folded"' in folded and "data-folded" in folded
    assert 'id="fit-t4"' not in folded and 'id="fit-h100-sxm"' not in folded
    assert re.search(r'<details class="fit-all" id="fit-all"(?! open)', folded)
    opened = client.get(query + "&fit=1", headers=htmx).content.decode()
    assert fitted[-1] == Gpu.objects.count()
    assert 'id="fit-t4"' in opened and 'id="fit-h100-sxm"' in opened
    assert '<details class="fit-all" id="fit-all" open>' in opened
    page = client.get(query).content.decode()  # the whole page: folded, with its rows
    assert fitted[-1] == Gpu.objects.count()
    assert 'id="fit-t4"' in page and '<details class="fit-all" id="fit-all">' in page
    headline = element_text(folded, "gpu-headline")
    assert headline.startswith("needs 2 × NVIDIA T4")
    assert headline == element_text(opened, "gpu-headline") == element_text(page, "gpu-headline")


@pytest.mark.django_db
def test_a_serving_plans_update_fits_the_catalog(client, fitted):
    # its cheapest deployments span the catalog's GPUs, folded or not
    response = client.get(
        "/?catalog=meta-llama/Llama-3.1-8B&mode=serving&serving_engine=vllm",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert fitted == [Gpu.objects.count()]


@pytest.mark.django_db
def test_the_page_without_a_gpu_has_no_gpu_section(client):
    # the page opens with a GPU chosen (issue 14); the user can choose none
    html = client.get("/?catalog=meta-llama/Llama-3.1-8B&gpu=&price_per_hour=-5").content.decode()
    # a price without a GPU is not used, so it cannot block the estimate
    assert 'id="total-memory"' in html
    assert 'id="gpus"' not in html


@pytest.mark.django_db
def test_a_bad_efficiency_is_shown_on_its_field(client):
    html = client.get(PAGE_QUERY + "&decode_efficiency=2").content.decode()
    assert 'id="gpus"' not in html
    assert 'href="#id_decode_efficiency"' in html


@pytest.mark.django_db
def test_the_link_keeps_the_gpu_fields(client):
    response = client.get(PAGE_QUERY + "&price_per_hour=2.5", headers={"HX-Request": "true"})
    pushed = response.headers["HX-Push-Url"]
    assert "gpu=" not in pushed  # the page's default GPU goes without saying
    assert "num_gpus=2" in pushed  # one GPU count: an old gpu_count link opens on 2 GPUs
    assert "gpu_count" not in pushed
    assert "price_per_hour=2.5" in pushed
    other = client.get(PAGE_QUERY.replace("h100-sxm", "a100-80gb"), headers={"HX-Request": "true"})
    assert "gpu=a100-80gb" in other.headers["HX-Push-Url"]
    none = client.get(PAGE_QUERY.replace("gpu=h100-sxm", "gpu="), headers={"HX-Request": "true"})
    assert "&gpu=&" in none.headers["HX-Push-Url"] + "&"


# --- the permalink shows the saved figures ------------------------------------------------------


@pytest.mark.django_db
def test_the_permalink_shows_the_saved_gpu_figures(client, alice):
    client.force_login(alice)
    response = client.post(
        "/api/v1/estimates/",
        {**API_PAYLOAD, "price_per_hour": 3.5, "title": "8B on two H100s"},
        content_type="application/json",
    )
    assert response.status_code == 201
    saved = Estimate.objects.get(public_id=response.json()["public_id"])
    html = client.get(saved.get_absolute_url()).content.decode()
    capacity, cost = saved.result["capacity"], saved.result["cost"]
    assert element_text(html, "max-batch-size") == f"{capacity['max_batch_size']:,}"
    assert element_text(html, "kv-cache-tokens") == f"{capacity['kv_cache']['tokens']:,}"
    assert element_text(html, "cost-per-hour") == "$7.00"  # 2 GPUs x $3.50
    assert cost["per_hour"] == 7.0
    decode = saved.result["throughput"]["decode"]
    assert element_text(html, "decode-total") == f"{decode['tokens_per_s']:,.0f} tokens/s"
    # "Open in calculator" carries the GPU fields, and the page computes the same figures
    link = re.search(r'href="(/\?[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "gpu=h100-sxm" in link and "price_per_hour=3.5" in link
    assert "num_gpus=2" in link and "gpu_count" not in link  # the page's one GPU count
    page = client.get(link).content.decode()
    for element_id in ("max-batch-size", "kv-cache-tokens", "cost-per-hour", "decode-total"):
        assert element_text(page, element_id) == element_text(html, element_id)


@pytest.mark.django_db
def test_the_page_opens_with_a_gpu_and_says_how_many_it_takes(client, catalog):
    api = client.post(
        "/api/v1/calculate",
        {"model": LLAMA_CATALOG, "gpu": "h100-sxm"},
        content_type="application/json",
    ).json()
    html = client.get("/").content.decode()
    assert '<option value="h100-sxm" selected>' in html
    # the whole 80 GiB less the estimate is spare (one definition of usable memory)
    spare = (80 * 2**30 - api["total_bytes"]) / 2**30
    assert (
        element_text(html, "gpu-headline")
        == f"fits 1 × NVIDIA H100 SXM 80GB, {spare:,.2f} GiB spare"
    )
    # a model too large for one: the headline names the count and the layout
    big = client.get("/?catalog=meta-llama/Llama-3.1-70B-Instruct").content.decode()
    assert element_text(big, "gpu-headline").startswith("needs 2 × NVIDIA H100 SXM 80GB (TP 2): ")
    assert "short on 1 × NVIDIA H100 SXM 80GB" in element_text(big, "gpu-headline")


@pytest.mark.django_db
def test_a_context_beyond_the_model_s_is_warned_about_on_the_page(client, catalog):
    # Llama 3.1 8B's config.json: max_position_embeddings 131,072
    html = client.get("/?catalog=meta-llama/Llama-3.1-8B&sequence_length=200000").content.decode()
    assert 'id="result-warnings"' in html
    assert "200,000 tokens is beyond the 131,072 positions" in html
    assert 'id="result-warnings"' not in client.get("/").content.decode()


@pytest.mark.django_db
def test_open_in_calculator_keeps_a_saved_serving_plan(client, alice):
    # The link was written from the memory and GPU fields only: a saved SGLang plan opened as
    # vLLM with its defaults (engine and max_num_seqs were dropped).
    client.force_login(alice)
    payload = {
        **API_PAYLOAD,
        "mode": "serving",
        "engine": "sglang",
        "max_num_seqs": 64,
        "title": "SGLang plan",
    }
    response = client.post("/api/v1/estimates/", payload, content_type="application/json")
    assert response.status_code == 201, response.content
    saved = Estimate.objects.get(public_id=response.json()["public_id"])
    html = client.get(saved.get_absolute_url()).content.decode()
    link = re.search(r'href="(/\?[^"]*)"', html).group(1).replace("&amp;", "&")
    assert "engine=sglang" in link and "max_num_seqs=64" in link
    page = client.get(link)
    assert page.context["form"].cleaned_data["engine"] == "sglang"
    assert page.context["form"].cleaned_data["max_num_seqs"] == 64


# --- the fit chart and table are written in Python: the same markup as the template's ---------

# What templates/calculator/_gpus.html rendered with template nodes before (commit eade001).
TEMPLATE_FIT_CHART = """{% with chart=gpus.fit_chart %}
  <svg class="chart fit-chart" viewBox="0 0 {{ chart.width }} {{ chart.height }}" role="img" aria-labelledby="fit-chart-desc">
    <desc id="fit-chart-desc">{{ chart.description }}</desc>
    {% for x, label in chart.ticks %}
      <line class="grid" x1="{{ x }}" x2="{{ x }}" y1="4" y2="{{ chart.height|add:'-20' }}"/>
      <text x="{{ x }}" y="{{ chart.height|add:'-6' }}" text-anchor="middle">{{ label }}</text>
    {% endfor %}
    {% for bar in chart.bars %}
      <g class="fit-bar {% if bar.fits %}fits{% else %}short{% endif %}" data-gpu="{{ bar.gpu }}">
        <text x="{{ chart.left|add:'-6' }}" y="{{ bar.y|add:'11' }}" text-anchor="end" dominant-baseline="middle">{{ bar.name|truncatechars:28 }}</text>
        <rect x="{{ chart.left }}" y="{{ bar.y }}" width="{{ bar.width }}" height="{{ chart.bar_height }}"><title>{{ bar.title }}</title></rect>
        <text x="{{ chart.right|add:'6' }}" y="{{ bar.y|add:'11' }}" text-anchor="start" dominant-baseline="middle">{{ bar.label }}</text>
      </g>
    {% endfor %}
    <line class="required" x1="{{ chart.required_x }}" x2="{{ chart.required_x }}" y1="2" y2="{{ chart.height|add:'-20' }}"><title>{{ chart.required_title }}</title></line>
  </svg>
  {% endwith %}"""  # noqa: E501
TEMPLATE_FIT_ROWS = """{% for row in gpus.fit_rows %}
        <tr id="fit-{{ row.gpu }}"><th scope="row">{{ row.name }}</th><td class="num">{{ row.memory }}</td><td>{% if row.fits_on_one %}fits{% else %}no{% endif %}</td><td class="num">{{ row.headroom }}{% if row.headroom_percent is not None %} ({{ row.headroom_percent }} %){% endif %}</td><td class="num">{{ row.fewest_gpus|default:"—" }}</td><td>{{ row.layout }}</td><td class="num">{{ row.per_gpu }}</td></tr>
      {% endfor %}"""  # noqa: E501


def _compact(html: str) -> str:
    """Without the whitespace between tags, and with the bar texts' placement that the
    stylesheet gives them now (`.chart .fit-bar text`)."""
    html = re.sub(r">\s+<", "><", html.strip())
    for placement in (' text-anchor="end"', ' text-anchor="start"'):
        html = html.replace(placement + ' dominant-baseline="middle"', "")
    return html


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"model": LLAMA_CATALOG, "batch_size": 8, "gpu": "h100-sxm"},
        # Mixtral in full training: short bars, "needs N (layout)" labels
        {
            "model": {"catalog": "mistralai/Mixtral-8x7B-Instruct-v0.1"},
            "mode": "training",
            "gpu": "t4",
        },
    ],
)
def test_the_fit_chart_and_rows_are_the_templates_markup(payload):
    from django.template import Context, Template

    from calculator.presenters.gpu_display import gpu_section

    gpus = gpu_section(calculation_run(user=None, payload=payload).result, "GiB")
    context = Context({"gpus": gpus})
    assert str(gpus["fit_chart_svg"]) == _compact(Template(TEMPLATE_FIT_CHART).render(context))
    assert str(gpus["fit_rows_html"]) == _compact(Template(TEMPLATE_FIT_ROWS).render(context))
    if payload.get("mode") == "training":
        assert 'class="fit-bar short"' in str(gpus["fit_chart_svg"])
        assert "needs " in str(gpus["fit_chart_svg"])
