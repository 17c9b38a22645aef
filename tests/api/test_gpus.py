"""The API's GPU answers: /api/v1/calculate with `gpu`, the GPU catalog, saved estimates."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from calculator.domain.catalog import GPUS_FILE
from calculator.models import Estimate, Gpu

CALCULATE = "/api/v1/calculate"
GPUS = "/api/v1/gpus/"
ESTIMATES = "/api/v1/estimates/"
LLAMA = {"catalog": "meta-llama/Llama-3.1-8B"}
CATALOG_GPUS = json.loads(GPUS_FILE.read_text())
ANSWERS = {"fit", "capacity", "throughput", "cost"}


def post(client, url, payload):
    return client.post(url, payload, format="json")


@pytest.mark.django_db
def test_the_gpu_catalog_is_listed(client_for):
    response = client_for(None).get(GPUS)
    assert response.status_code == 200
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    assert {row["slug"] for row in rows} == {entry["slug"] for entry in CATALOG_GPUS}
    assert len(rows) >= 20


@pytest.mark.django_db
def test_calculate_with_a_catalog_gpu(client_for):
    response = post(
        client_for(None), CALCULATE, {"model": LLAMA, "gpu": "h100-sxm", "batch_size": 8}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= ANSWERS
    assert body["inputs"]["gpu"] == "h100-sxm"
    assert body["inputs"]["gpu_count"] == 1
    assert body["inputs"]["decode_efficiency"] == 0.7
    # one fit row per catalog GPU, each with the fewest GPUs of that type
    assert {row["gpu"] for row in body["fit"]} == {entry["slug"] for entry in CATALOG_GPUS}
    h100 = next(row for row in body["fit"] if row["gpu"] == "h100-sxm")
    assert h100["fits_on_one"] and h100["fewest_gpus"] == 1
    # Llama-3.1-8B in bf16 on 3.35 TB/s at 70%: 16,060,522,496 B of weights and
    # 8 x 268,435,456 B of KV cache read per step, 8 sequences per step
    decode = body["throughput"]["decode"]
    assert decode["bytes_per_step"] == 16_060_522_496 + 8 * 268_435_456
    assert decode["tokens_per_s"] == pytest.approx(8 * 3.35e12 * 0.7 / 18_208_006_144)
    price = float(Gpu.objects.get(slug="h100-sxm").price_per_hour_usd)
    assert body["cost"]["per_hour"] == pytest.approx(price)
    assert body["cost"]["per_million_tokens"] == pytest.approx(
        price * (1e6 / decode["tokens_per_s"]) / 3600
    )


@pytest.mark.django_db
def test_calculate_with_gpu_figures_and_overrides(client_for):
    gpu = {
        "name": "Lab card",
        "memory_bytes": 48 * 2**30,
        "memory_bandwidth_bytes_per_s": 1_000_000_000_000,
        "bf16_dense_tflops": 200,
    }
    payload = {
        "model": LLAMA,
        "mode": "training",
        "finetuning": "lora",
        "gpu": gpu,
        "gpu_count": 4,
        "price_per_hour": 1.5,
        "training_efficiency": 0.5,
        "training_tokens": 100_000_000,
        "epochs": 3,
    }
    body = post(client_for(None), CALCULATE, payload).json()
    assert body["fit"][0]["name"] == "Lab card"  # not a catalog GPU: first among the rows
    training = body["throughput"]["training"]
    # 6 x 8,030,261,248 + 12 x 32 layers x 4,096 x 2,048 tokens (PaLM appendix B)
    assert training["flops_per_token"] == 6 * 8_030_261_248 + 12 * 32 * 4096 * 2048
    assert training["tokens_per_s"] == pytest.approx(4 * 200e12 * 0.5 / training["flops_per_token"])
    run = body["cost"]["training_run"]
    seconds = 3 * 100_000_000 / training["tokens_per_s"]
    assert run["seconds"] == pytest.approx(seconds)
    assert run["cost"] == pytest.approx(4 * 1.5 * seconds / 3600)


@pytest.mark.django_db
def test_without_a_gpu_the_response_is_the_memory_estimate(client_for):
    body = post(client_for(None), CALCULATE, {"model": LLAMA}).json()
    assert not ANSWERS & set(body)
    assert "gpu" not in body["inputs"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"gpu": "no-such-gpu"}, "gpu"),
        ({"gpu": {"memory_bytes": 1}}, "gpu.memory_bandwidth_bytes_per_s"),
        ({"gpu": "h100-sxm", "gpu_count": 0}, "gpu_count"),
        ({"gpu": "h100-sxm", "memory_utilization": 1.5}, "memory_utilization"),
        ({"gpu": "h100-sxm", "decode_efficiency": "fast"}, "decode_efficiency"),
        ({"gpu": "h100-sxm", "price_per_hour": -1}, "price_per_hour"),
        ({"gpu": "h100-sxm", "training_tokens": 0.5}, "training_tokens"),
    ],
)
def test_bad_gpu_fields_are_a_400_naming_the_field(client_for, fields, field):
    response = post(client_for(None), CALCULATE, {"model": LLAMA, **fields})
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_a_saved_estimate_keeps_its_gpu_answers(client_for, alice):
    payload = {"model": LLAMA, "gpu": "l4", "title": "8B on L4"}
    response = post(client_for(alice), ESTIMATES, payload)
    assert response.status_code == 201
    body = response.json()
    estimate = Estimate.objects.get(public_id=body["public_id"])
    assert set(estimate.result) >= ANSWERS
    assert estimate.result["inputs"]["gpu"] == "l4"
    # L4: 24 GB; Llama-3.1-8B at the defaults needs 17,613,184,512 bytes, so one fits
    l4 = next(row for row in estimate.result["fit"] if row["gpu"] == "l4")
    assert l4["fits_on_one"]
    assert body["result"]["capacity"] == estimate.result["capacity"]


def test_the_schema_documents_the_gpu_fields_and_answers(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schemas = response.json()["components"]["schemas"]
    request_fields = set(schemas["CalculateRequest"]["properties"])
    assert {
        "gpu",
        "gpu_count",
        "price_per_hour",
        "memory_utilization",
        "decode_efficiency",
        "prefill_efficiency",
        "training_efficiency",
        "training_tokens",
        "epochs",
    } <= request_fields
    response_schema = schemas["CalculateResponse"]
    assert set(response_schema["properties"]) >= ANSWERS
    assert not ANSWERS & set(response_schema["required"])  # only with a `gpu`
