"""POST /api/v1/calculate keeps its answer per JSON body (calculator/domain/caching.py), except
for saved profiles and Hub models, whose readers differ; errors are never kept."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest

from calculator.domain import calculations
from calculator.models import Gpu
from tests.factories import ModelProfileFactory

LLAMA_SLUG = "meta-llama/Llama-3.1-8B"
BODY = {"model": {"catalog": LLAMA_SLUG}, "batch_size": 4, "sequence_length": 8192}


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """Every test here reads the built-in catalog."""


@pytest.fixture
def engine_runs():
    with mock.patch.object(
        calculations, "calculation_run", wraps=calculations.calculation_run
    ) as run:
        yield run


def calculate(client, body):
    return client.post("/api/v1/calculate", body, content_type="application/json")


def test_the_same_body_is_calculated_once(client, engine_runs):
    first = calculate(client, BODY)
    # the same body with its keys in another order is the same calculation
    again = calculate(client, dict(reversed(list(BODY.items()))))
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert engine_runs.call_count == 1
    # Llama 3.1 8B bfloat16: 32 layers x 2 (K, V) x 8 kv heads x 128 x 2 bytes = 131,072 bytes
    # a token; 4 x 8,192 tokens = 4,294,967,296 bytes
    assert again.json()["breakdown"]["kv_cache"] == 4 * 8192 * 131_072
    other = calculate(client, {**BODY, "batch_size": 2})
    assert other.json()["breakdown"]["kv_cache"] == 2 * 8192 * 131_072
    assert engine_runs.call_count == 2


def test_a_catalog_change_is_answered_at_once(client):
    body = {**BODY, "gpu": "h100-sxm"}
    h100 = Gpu.objects.get(slug="h100-sxm")
    before = calculate(client, body).json()["cost"]["price_per_gpu_hour"]
    assert before == float(h100.price_per_hour_usd)
    h100.price_per_hour_usd = Decimal("9.99")
    h100.save()
    assert calculate(client, body).json()["cost"]["price_per_gpu_hour"] == 9.99


def test_a_saved_profile_is_never_kept(client, alice, bob, engine_runs):
    profile = ModelProfileFactory(owner=alice, name="Alice's tiny model")
    body = {"model": {"profile": profile.pk}}
    client.force_login(alice)
    for _ in range(2):
        assert calculate(client, body).status_code == 200
    assert engine_runs.call_count == 2
    # Bob may not see Alice's private profile: refused, not served what she was answered
    client.force_login(bob)
    refused = calculate(client, body)
    assert refused.status_code == 400
    assert "No profile with this id that you can see." in str(refused.json())
    client.logout()
    assert calculate(client, body).status_code == 400


def test_errors_are_not_kept(client, engine_runs):
    for _ in range(2):
        response = calculate(client, {**BODY, "batch_size": 0})
        assert response.status_code == 400
        assert "batch_size" in response.json()
    assert engine_runs.call_count == 2
