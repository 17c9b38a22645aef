"""PostgreSQL stores a NUL character in neither text nor jsonb: the pages refuse one with a
message instead of failing at the database (found by the API's schemathesis run)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from calculator.domain import services
from calculator.models import Estimate, ModelProfile

pytestmark = pytest.mark.django_db

GPT2_LIKE = {
    "model_type": "gpt2",
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "vocab_size": 1000,
    "n_positions": 128,
    "_name_or_path": "tiny\u0000gpt2",
}


def test_a_config_json_holding_a_nul_is_refused():
    with pytest.raises(ValidationError) as raised:
        services.parse_config_json(json.dumps(GPT2_LIKE))
    assert "NUL" in str(raised.value)


def test_importing_it_shows_a_form_error_and_saves_nothing(visitor_client):
    client = visitor_client("alice")
    response = client.post(
        reverse("profile-import"), {"name": "Tiny", "config_json": json.dumps(GPT2_LIKE)}
    )
    assert response.status_code == 200
    assert b"NUL characters" in response.content
    assert not ModelProfile.objects.filter(name="Tiny").exists()


def test_saving_an_estimate_of_such_a_config_is_refused(visitor_client):
    client = visitor_client("alice")
    data = {
        "model": "hf_config",
        "hf_config": json.dumps(GPT2_LIKE),
        "mode": "inference",
        "save-title": "Tiny",
        "save-visibility": "private",
    }
    response = client.post(reverse("estimate-save"), data)
    assert response.status_code in (200, 302)
    assert not Estimate.objects.exists()


@pytest.mark.parametrize("path", ["/e/abc%00def/", "/profiles/abc%00def/"])
def test_a_nul_in_a_public_id_is_a_404(client, path):
    assert client.get(path).status_code == 404


def test_the_same_config_without_the_nul_saves(visitor_client):
    # The control for the test above: only the NUL stops the save.
    client = visitor_client("alice")
    clean = {**GPT2_LIKE, "_name_or_path": "tiny-gpt2"}
    data = {
        "model": "hf_config",
        "hf_config": json.dumps(clean),
        "mode": "inference",
        "save-title": "Tiny",
        "save-visibility": "private",
    }
    client.post(reverse("estimate-save"), data)
    assert Estimate.objects.count() == 1
