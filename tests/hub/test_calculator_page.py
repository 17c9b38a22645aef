"""The calculator page with a Hugging Face id (`?hub=org/name`), against the stand-in Hub."""

from __future__ import annotations

import pytest

from tests.hub.standin import TINY_LLAMA, model_repo, tiny_llama_tensors
from tests.web.test_calculator import HTMX, breakdown_bytes

pytestmark = pytest.mark.django_db


def test_it_shows_the_answer_for_an_id(client, hub):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    response = client.get("/?hub=acme/tiny")
    assert response.status_code == 200
    content = response.content.decode()
    assert 'name="model" value="hub"' in content and "checked" in content
    # bfloat16: 106,816 parameters x 2 bytes
    assert breakdown_bytes(content)["weights"] == 213_632
    assert "106,816" in content
    assert "equals the checkpoint&#x27;s safetensors headers" in content


def test_its_link_names_the_model(client, hub):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    response = client.get("/?model=hub&hub=acme/tiny&revision=&batch_size=2", headers=HTMX)
    assert response["HX-Push-Url"] == (
        "/?hub=acme/tiny&mode=inference&method=detailed&batch_size=2&sequence_length=2048"
    )
    response = client.get("/?model=hub&hub=acme/tiny&revision=main", headers=HTMX)
    assert "&revision=main&" in response["HX-Push-Url"]


def test_a_missing_repo_is_shown_beside_the_field(client, hub):
    response = client.get("/?hub=acme/nope")
    assert response.status_code == 200
    content = response.content.decode()
    assert "No model acme/nope on the Hub" in content
    assert 'id="row-weights"' not in content


def test_a_gated_repo_says_what_to_do(client, hub):
    hub.repos["meta/gated"] = model_repo(
        TINY_LLAMA, tiny_llama_tensors(), gated=True, tokens={"hf_granted"}
    )
    content = client.get("/?hub=meta/gated").content.decode()
    assert "meta/gated is gated: accept its terms" in content


def test_an_empty_id_asks_for_one(client, hub):
    content = client.get("/?model=hub&hub=").content.decode()
    assert "Type a Hugging Face model id" in content


def test_it_is_hidden_and_refused_when_turned_off(client, hub, settings):
    settings.HUB_IMPORT = False
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    content = client.get("/").content.decode()
    assert 'value="hub"' not in content
    assert 'id="id_hub"' not in content
    content = client.get("/?hub=acme/tiny").content.decode()
    assert "Import from the Hugging Face Hub is turned off on this server." in content
    assert hub.requests == []
