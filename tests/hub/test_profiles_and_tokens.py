"""Profiles from a Hugging Face id (page and API), and each user's own Hub token: kept
encrypted, used for gated and private repos, never in a response, permalink or export.
Alice has access to acme/private; Bob, her teammate, and Charlie have not."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from calculator.models import HubToken, ModelProfile, ProfileSource
from tests.hub.standin import (
    TINY_LLAMA,
    TINY_LLAMA_PARAMETERS,
    model_repo,
    tiny_llama_tensors,
)
from tests.web.test_calculator import HTMX

pytestmark = pytest.mark.django_db

ALICE_TOKEN = "hf_aliceSecret123"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def private_repo(hub):
    repo = model_repo(TINY_LLAMA, tiny_llama_tensors(), private=True, tokens={ALICE_TOKEN})
    hub.repos["acme/private"] = repo
    return repo


@pytest.fixture
def alice_has_a_token(client, alice):
    client.force_login(alice)
    response = client.post("/accounts/hub-token/", {"token": ALICE_TOKEN})
    assert response.status_code == 302
    client.logout()


def test_it_creates_a_profile_from_an_id_through_the_api(hub, alice):
    repo = hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    response = api(alice).post(
        "/api/v1/profiles/", {"name": "Tiny", "hub": "acme/tiny"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["source"] == "hub"
    assert body["hub_repo_id"] == "acme/tiny"
    assert body["hub_revision"] == repo.sha
    assert body["num_parameters"] == TINY_LLAMA_PARAMETERS
    assert body["hub_facts"]["safetensors"]["parameters"] == TINY_LLAMA_PARAMETERS
    assert body["hf_config"] == TINY_LLAMA
    profile = ModelProfile.objects.get(pk=body["id"])
    assert profile.config_json_text == repo.files["config.json"].decode()  # verbatim


def test_the_api_names_the_hub_field_on_a_failed_import(hub, alice):
    response = api(alice).post(
        "/api/v1/profiles/", {"name": "Nope", "hub": "acme/nope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["hub"][0].startswith("No model acme/nope on the Hub")


def test_the_api_takes_one_model_source(hub, alice):
    response = api(alice).post(
        "/api/v1/profiles/",
        {"name": "Both", "hub": "acme/tiny", "hf_config": TINY_LLAMA},
        format="json",
    )
    assert response.status_code == 400


def test_it_imports_a_profile_on_the_page(client, hub, alice):
    hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    client.force_login(alice)
    assert 'name="hub"' in client.get("/profiles/import/").content.decode()
    response = client.post(
        "/profiles/import/", {"name": "", "hub": "acme/tiny", "visibility": "private"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    profile = ModelProfile.objects.get(owner=alice)
    assert profile.source == ProfileSource.HUB
    assert profile.name == "acme/tiny"
    assert profile.num_parameters == TINY_LLAMA_PARAMETERS


def test_the_page_shows_a_failed_import_beside_the_field(client, hub, alice):
    client.force_login(alice)
    response = client.post("/profiles/import/", {"hub": "acme/nope", "visibility": "private"})
    assert response.status_code == 200
    assert "No model acme/nope on the Hub" in response.content.decode()
    assert not ModelProfile.objects.filter(owner=alice).exists()


def test_the_token_is_kept_encrypted_and_never_shown(client, alice, alice_has_a_token):
    stored = HubToken.objects.get(user=alice)
    assert ALICE_TOKEN not in stored.encrypted
    client.force_login(alice)
    content = client.get("/accounts/hub-token/").content.decode()
    assert "You have a token saved" in content
    assert ALICE_TOKEN not in content


def test_a_users_token_reads_her_private_repo_and_nobody_elses(
    client, private_repo, alice, bob, charlie, alice_has_a_token
):
    response = api(alice).post(
        "/api/v1/calculate", {"model": {"hub": "acme/private"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["parameters"]["total"] == TINY_LLAMA_PARAMETERS
    assert ALICE_TOKEN not in response.content.decode()
    for user in (bob, charlie, None):
        client = api(user) if user else APIClient()
        response = client.post(
            "/api/v1/calculate", {"model": {"hub": "acme/private"}}, format="json"
        )
        assert response.status_code == 400
        assert "If it is private" in response.json()["model.hub"][0]


def test_the_page_keeps_no_private_answer_for_others(
    client, private_repo, alice, bob, alice_has_a_token
):
    client.force_login(alice)
    response = client.get("/?hub=acme/private", headers=HTMX)
    assert 'id="row-weights"' in response.content.decode()
    assert ALICE_TOKEN not in response.content.decode() + response["HX-Push-Url"]
    client.force_login(bob)
    response = client.get("/?hub=acme/private", headers=HTMX)
    content = response.content.decode()
    assert 'id="row-weights"' not in content
    assert "No model acme/private on the Hub" in content


def test_the_token_is_in_no_saved_estimate_permalink_or_export(
    client, private_repo, alice, alice_has_a_token
):
    response = api(alice).post(
        "/api/v1/estimates/",
        {"model": {"hub": "acme/private"}, "title": "private", "visibility": "link"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert ALICE_TOKEN not in response.content.decode()
    public_id = response.json()["public_id"]
    client.force_login(alice)
    pages = [
        f"/e/{public_id}/",
        "/history/",
        "/history/export.json",
        "/history/export.csv",
        f"/api/v1/estimates/by-public-id/{public_id}/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert ALICE_TOKEN.encode() not in body, url
        assert b"acme/private" in body, url


def test_a_removed_token_reads_nothing_more(client, private_repo, alice, alice_has_a_token):
    client.force_login(alice)
    assert client.post("/accounts/hub-token/delete/").status_code == 302
    assert not HubToken.objects.filter(user=alice).exists()
    response = api(alice).post(
        "/api/v1/calculate", {"model": {"hub": "acme/private"}}, format="json"
    )
    assert response.status_code == 400


def test_the_token_page_needs_an_account(client):
    response = client.get("/accounts/hub-token/")
    assert response.status_code == 302
    assert "/login" in response["Location"] or "login" in response["Location"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_the_token_never_reaches_the_logs(client, hub, alice, alice_has_a_token):
    collect = _Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)  # everything any library logs, huggingface_hub's too
    try:
        hub.repos["alice/private"] = model_repo(
            TINY_LLAMA, tiny_llama_tensors(), private=True, tokens={ALICE_TOKEN}
        )
        hub.repos["acme/gated"] = model_repo(TINY_LLAMA, gated=True)  # her token has no access
        for repo in ("alice/private", "acme/gated", "acme/missing"):
            api(alice).post("/api/v1/calculate", {"model": {"hub": repo}}, format="json")
        client.force_login(alice)
        client.post("/profiles/import/", {"hub": "alice/private", "visibility": "private"})
    finally:
        root.removeHandler(collect)
        root.setLevel(level)
    assert collect.lines  # something was logged: the check looked at real output
    assert not [line for line in collect.lines if ALICE_TOKEN in line]


def test_the_profile_page_names_the_repo_and_commit_it_came_from(client, hub, alice):
    repo = hub.repos["acme/tiny"] = model_repo(TINY_LLAMA, tiny_llama_tensors())
    client.force_login(alice)
    client.post("/profiles/import/", {"hub": "acme/tiny", "visibility": "private"})
    profile = ModelProfile.objects.get(owner=alice)
    page = client.get(profile.get_absolute_url()).content.decode()
    assert f"acme/tiny at <code>{repo.sha[:12]}…</code>" in page
    assert f"{TINY_LLAMA_PARAMETERS:,} parameters in the safetensors headers" in page
