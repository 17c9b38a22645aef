"""/api/v1/catalog/models/, /api/v1/gpus/ (read-only, public) and /api/v1/teams/ (members)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calculator.models import Gpu, Role
from tests.factories import MembershipFactory, TeamFactory

DATA = Path(__file__).resolve().parents[2] / "calculator" / "data"
CATALOG_SLUGS = {entry["slug"] for entry in json.loads((DATA / "models.json").read_text())}
GPU_SLUGS = {entry["slug"] for entry in json.loads((DATA / "gpus.json").read_text())}


@pytest.mark.parametrize("who", ["alice", "anonymous"])
def test_the_catalog_lists_every_model_of_the_data_file(as_person, who):
    response = as_person(who).get("/api/v1/catalog/models/", {"page_size": 500})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(CATALOG_SLUGS)
    assert {m["slug"] for m in body["results"]} == CATALOG_SLUGS


def test_a_catalog_model_by_its_repo_id(as_person):
    response = as_person("anonymous").get("/api/v1/catalog/models/meta-llama/Llama-3.1-8B/")
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "meta-llama/Llama-3.1-8B"
    assert body["num_parameters"] == 8_030_261_248  # model card, memory-model.md
    assert body["hf_config"]["num_key_value_heads"] == 8
    assert as_person("anonymous").get("/api/v1/catalog/models/no/such/").status_code == 404


def test_the_catalog_filters_by_family_and_name(as_person):
    client = as_person("anonymous")
    mixtral = client.get("/api/v1/catalog/models/", {"family": "mixtral"}).json()
    assert {m["slug"] for m in mixtral["results"]} == {
        s for s in CATALOG_SLUGS if s.startswith("mistralai/Mixtral")
    }
    by_name = client.get("/api/v1/catalog/models/", {"search": "gpt-oss"}).json()
    assert {m["slug"] for m in by_name["results"]} == {"openai/gpt-oss-20b", "openai/gpt-oss-120b"}


@pytest.mark.parametrize("who", ["alice", "anonymous"])
def test_gpus_are_listed_and_retrieved_by_slug(as_person, who):
    client = as_person(who)
    body = client.get("/api/v1/gpus/", {"page_size": 500}).json()
    assert {g["slug"] for g in body["results"]} == GPU_SLUGS
    gpu = Gpu.objects.order_by("slug").first()
    one = client.get(f"/api/v1/gpus/{gpu.slug}/").json()
    assert one["memory_bytes"] == gpu.memory_bytes
    assert isinstance(one["memory_bytes"], int)
    assert client.get("/api/v1/gpus/no-such-gpu/").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/v1/gpus/"),
        ("delete", "/api/v1/catalog/models/meta-llama/Llama-3.1-8B/"),
        ("patch", "/api/v1/catalog/models/meta-llama/Llama-3.1-8B/"),
        ("post", "/api/v1/catalog/models/"),
        ("post", "/api/v1/teams/"),
    ],
)
def test_catalogs_and_teams_are_read_only(client_for, alice, method, url):
    response = getattr(client_for(alice), method)(url, {}, format="json")
    assert response.status_code == 405


@pytest.mark.parametrize("who", ["revoked"])
def test_public_reads_still_refuse_a_revoked_token(as_person, who):
    assert as_person(who).get("/api/v1/catalog/models/").status_code == 401


def test_teams_lists_my_teams_with_their_members(client_for, alice, bob, team):
    other = TeamFactory(name="Bob's side project", slug="bobs-side")
    MembershipFactory(team=other, user=bob, role=Role.OWNER)
    alices = client_for(alice).get("/api/v1/teams/").json()
    assert alices["count"] == 1
    (only,) = alices["results"]
    assert (only["slug"], only["my_role"]) == ("alices-team", "owner")
    assert sorted((m["username"], m["role"]) for m in only["members"]) == [
        ("alice", "owner"),
        ("bob", "member"),
    ]
    bobs = client_for(bob).get("/api/v1/teams/").json()
    assert {(t["slug"], t["my_role"]) for t in bobs["results"]} == {
        ("alices-team", "member"),
        ("bobs-side", "owner"),
    }


@pytest.mark.parametrize(
    ("who", "status"),
    [("alice", 200), ("bob", 200), ("charlie", 404), ("anonymous", 401), ("revoked", 401)],
)
def test_a_team_is_visible_to_its_members_only(as_person, team, who, status):
    response = as_person(who).get(f"/api/v1/teams/{team.slug}/")
    assert response.status_code == status
    if status == 200:
        assert {m["username"] for m in response.json()["members"]} == {"alice", "bob"}


@pytest.mark.parametrize(("who", "count"), [("charlie", 0)])
def test_outsiders_list_no_teams(as_person, team, who, count):
    assert as_person(who).get("/api/v1/teams/").json()["count"] == count
