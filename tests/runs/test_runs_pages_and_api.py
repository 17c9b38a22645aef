"""Attaching a measured run on the page and through the API, and the permalink's per-line
comparison. The estimate's figures are set here (16 GiB of weights, 4 GiB of KV cache, 1 GiB of
activations, 0.5 GiB of overhead) and the run is tests/runs/test_parsers.py's vLLM 0.8.4 log
(weights 16,651,910,329 bytes, KV 4,681,514,353, activations 1,245,540,516, non-torch
300,647,711, total 22,879,612,909), so each error below is a subtraction done by hand."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from calculator.domain import evidence
from calculator.models import MeasuredRun
from tests.factories import EstimateFactory
from tests.runs.test_parsers import LLAMACPP_LOG, VLLM_V0_LOG

GIB = 2**30
BREAKDOWN = {
    "weights": 16 * GIB,
    "kv_cache": 4 * GIB,
    "activations": GIB,
    "gradients": 0,
    "optimizer_states": 0,
    "runtime_overhead": GIB // 2,
}
TOTAL = 16 * GIB + 4 * GIB + GIB + GIB // 2  # 23,085,449,216


@pytest.fixture
def estimate(alice):
    return EstimateFactory(
        owner=alice,
        title="Qwen on the L4",
        result={"breakdown": BREAKDOWN, "total_bytes": TOTAL},
        total_bytes=TOTAL,
    )


@pytest.fixture
def page(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


def _new(estimate):
    return f"/e/{estimate.public_id}/runs/new/"


def _runs(estimate):
    return f"/api/v1/estimates/{estimate.public_id}/runs/"


def test_a_pasted_vllm_log_shows_each_line_s_signed_error_on_the_permalink(page, estimate):
    response = page.post(_new(estimate), {"source_format": "auto", "text": VLLM_V0_LOG})
    assert response.status_code == 302
    assert response.url == f"/e/{estimate.public_id}/#runs"
    run = MeasuredRun.objects.get(estimate=estimate)
    assert run.source_format == "vllm" and run.framework_version == "vLLM 0.8.4"
    assert run.raw_text == VLLM_V0_LOG
    html = page.get(f"/e/{estimate.public_id}/").content.decode()
    rows = {
        # 16 GiB - 16,651,910,329 = +527,958,855 = +0.49 GiB, 3.17 % of the measured weights
        "weights": ("16.00 GiB", "15.51 GiB", "+0.49 GiB", "+3.2 %"),
        # 4 GiB - 4,681,514,353 = -386,547,057 = -0.36 GiB, -8.26 %
        "kv_cache": ("4.00 GiB", "4.36 GiB", "−0.36 GiB", "−8.3 %"),
        # 1 GiB - 1,245,540,516 = -171,798,692 = -0.16 GiB, -13.79 %
        "activations": ("1.00 GiB", "1.16 GiB", "−0.16 GiB", "−13.8 %"),
        # 0.5 GiB - 300,647,711 = +236,223,201 = +0.22 GiB, 78.57 %
        "non_torch": ("0.50 GiB", "0.28 GiB", "+0.22 GiB", "+78.6 %"),
        # 23,085,449,216 - 22,879,612,909 = +205,836,307 = +0.19 GiB, 0.90 %
        "total": ("21.50 GiB", "21.31 GiB", "+0.19 GiB", "+0.9 %"),
    }
    for line, cells in rows.items():
        row = html.split(f'id="run-{run.pk}-{line}"', 1)[1].split("</tr>", 1)[0]
        assert [cell.split("</td>")[0] for cell in row.split('<td class="num">')[1:]] == list(
            cells
        ), line


def test_an_uploaded_llamacpp_log_is_read_like_a_pasted_one(page, estimate):
    upload = SimpleUploadedFile("load.log", LLAMACPP_LOG.encode(), content_type="text/plain")
    response = page.post(_new(estimate), {"source_format": "llamacpp", "upload": upload})
    assert response.status_code == 302
    run = MeasuredRun.objects.get(estimate=estimate)
    assert run.gpu_name == "NVIDIA GeForce RTX 4090"
    assert run.weights_bytes == 4_617_393_930 and run.non_torch_bytes is None


def test_typed_figures_in_gib(page, estimate):
    response = page.post(
        _new(estimate),
        {"source_format": "manual", "weights": "15.5", "total": "21.25", "gpu_name": "NVIDIA L4"},
    )
    assert response.status_code == 302
    run = MeasuredRun.objects.get(estimate=estimate)
    assert (run.weights_bytes, run.total_bytes) == (16_642_998_272, 22_817_013_760)  # x 2^30
    assert run.kv_cache_bytes is None and run.gpu_name == "NVIDIA L4" and run.raw_text == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source_format": "auto", "text": "just some words"}, "Not a log this service reads"),
        ({"source_format": "sglang", "text": VLLM_V0_LOG}, "No memory figures found"),
        ({"source_format": "auto", "text": ""}, "Paste or upload the log"),
        ({"source_format": "auto", "text": "x" * 70_000}, "larger than 64 KiB"),
        ({"source_format": "auto", "text": "a\x00b"}, "Null characters are not allowed"),
        ({"source_format": "manual"}, "Type at least one measured figure"),
        ({"source_format": "manual", "text": VLLM_V0_LOG, "weights": "1"}, "without a log"),
        ({"source_format": "vllm", "text": VLLM_V0_LOG, "weights": "1"}, "leave them empty"),
        ({"source_format": "manual", "weights": "-1"}, "greater than or equal to 0"),
        ({"source_format": "manual", "weights": "1e400"}, "Ensure that there are no more"),
        ({"source_format": "yaml", "text": VLLM_V0_LOG}, "Select a valid choice"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_saved(page, estimate, data, message):
    response = page.post(_new(estimate), data)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    assert not MeasuredRun.objects.exists()


def test_an_upload_that_is_too_large_or_not_text_is_refused(page, estimate):
    big = SimpleUploadedFile("big.log", b"x" * (evidence.MAX_TEXT_BYTES + 1))
    assert page.post(_new(estimate), {"source_format": "auto", "upload": big}).status_code == 400
    binary = SimpleUploadedFile("core.bin", b"\xff\xfe\x00\x81" * 100)
    response = page.post(_new(estimate), {"source_format": "auto", "upload": binary})
    assert response.status_code == 400 and "UTF-8" in response.content.decode()
    both = SimpleUploadedFile("a.log", VLLM_V0_LOG.encode())
    response = page.post(
        _new(estimate), {"source_format": "auto", "upload": both, "text": VLLM_V0_LOG}
    )
    assert response.status_code == 400 and "not both" in response.content.decode()
    assert not MeasuredRun.objects.exists()


def test_the_run_page_shows_the_kept_text_escaped(page, estimate):
    text = VLLM_V0_LOG + "<script>alert(1)</script>\n"
    page.post(_new(estimate), {"source_format": "vllm", "text": text})
    run = MeasuredRun.objects.get()
    html = page.get(f"/e/{estimate.public_id}/runs/{run.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "gpu_blocks" in html and "5102" in html


def test_the_api_attaches_lists_reads_and_deletes(api, estimate):
    response = api.post(_runs(estimate), {"format": "auto", "text": VLLM_V0_LOG}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["measured"] == {
        "weights": 16_651_910_329,
        "kv_cache": 4_681_514_353,
        "activations": 1_245_540_516,
        "non_torch": 300_647_711,
        "total": 22_879_612_909,
    }
    weights = body["comparison"][0]
    assert weights == {
        "line": "weights",
        "label": "Weights",
        "estimate_bytes": 16 * GIB,
        "measured_bytes": 16_651_910_329,
        "error_bytes": 527_958_855,
        "error_percent": 3.2,
    }
    assert body["comparison"][4]["error_bytes"] == 205_836_307
    assert body["raw_text"] == VLLM_V0_LOG and body["owner"] == "alice"
    listed = api.get(_runs(estimate)).json()
    assert listed["count"] == 1 and "raw_text" not in listed["results"][0]
    assert listed["results"][0]["comparison"] == body["comparison"]
    detail = api.get(f"{_runs(estimate)}{body['id']}/")
    assert detail.status_code == 200 and detail.json()["raw_text"] == VLLM_V0_LOG
    assert api.delete(f"{_runs(estimate)}{body['id']}/").status_code == 204
    assert api.get(f"{_runs(estimate)}{body['id']}/").status_code == 404


def test_the_api_takes_typed_figures_in_bytes(api, estimate):
    response = api.post(
        _runs(estimate),
        {
            "format": "manual",
            "weights_bytes": 16 * GIB,
            "total_bytes": TOTAL,
            "cuda_version": "12.4",
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["comparison"][0]["error_bytes"] == 0
    assert response.json()["comparison"][1]["measured_bytes"] is None
    assert response.json()["cuda_version"] == "12.4"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "no memory here"}, "text"),
        ({"format": "torch", "text": VLLM_V0_LOG}, "text"),
        ({"text": "x" * 70_000}, "text"),
        ({"text": 12}, "text"),
        ({"format": "manual"}, "format"),
        ({"format": "manual", "text": VLLM_V0_LOG, "weights_bytes": 1}, "text"),
        ({"text": VLLM_V0_LOG, "weights_bytes": 1}, "format"),
        ({"format": "manual", "total_bytes": -1}, "total_bytes"),
        ({"format": "manual", "weights_bytes": 2**60}, "weights_bytes"),
        ({"format": "manual", "weights_bytes": "many"}, "weights_bytes"),
        ({"format": "xml", "text": VLLM_V0_LOG}, "format"),
        ({"text": VLLM_V0_LOG, "colour": "red"}, "colour"),
        ({"text": VLLM_V0_LOG, "note": "n" * 3000}, "note"),
        ({"text": "a\x00b"}, "text"),
    ],
)
def test_bad_api_input_is_a_400_naming_the_field(api, estimate, body, field):
    response = api.post(_runs(estimate), body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not MeasuredRun.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(api, estimate):
    assert api.post(_runs(estimate), [VLLM_V0_LOG], format="json").status_code == 400
    assert api.post(_runs(estimate), "text", format="json").status_code == 400


def test_an_estimate_keeps_a_bounded_number_of_runs(api, estimate, monkeypatch):
    monkeypatch.setattr("calculator.domain.services.MAX_RUNS_PER_ESTIMATE", 2)
    for _ in range(2):
        assert api.post(_runs(estimate), {"text": VLLM_V0_LOG}, format="json").status_code == 201
    response = api.post(_runs(estimate), {"text": VLLM_V0_LOG}, format="json")
    assert response.status_code == 400 and "at most 2" in str(response.json())


def test_deleting_the_estimate_deletes_its_runs(page, estimate):
    page.post(_new(estimate), {"source_format": "auto", "text": VLLM_V0_LOG})
    assert MeasuredRun.objects.count() == 1
    page.post(f"/e/{estimate.public_id}/delete/")
    assert MeasuredRun.objects.count() == 0


def test_the_schema_documents_the_runs_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    paths = schema.json()["paths"] if schema.status_code == 200 else {}
    if not paths:  # served as YAML
        text = schema.content.decode()
        assert "/api/v1/estimates/{public_id}/runs/" in text
        assert "estimate_runs_create" in text and "MeasuredRunCreate" in text
        return
    runs = paths["/api/v1/estimates/{public_id}/runs/"]
    assert {"get", "post"} <= set(runs)
    assert set(paths["/api/v1/estimates/{public_id}/runs/{run_id}/"]) >= {"get", "delete"}
