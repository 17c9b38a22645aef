"""/api/v1/profiles/: the access rules of docs/design.md for every method, and create/update."""

from __future__ import annotations

import json

import pytest

from calculator.domain.selectors import catalog_get
from calculator.models import ModelProfile, ProfileSource, Visibility
from tests.factories import ModelProfileFactory

LIST = "/api/v1/profiles/"


def detail(profile) -> str:
    return f"/api/v1/profiles/{profile.pk}/"


# who -> the status for Alice's private, team and link profiles (docs/design.md, "Access rules");
# Bob is her teammate, Charlie an outsider. A link item is readable only by its permalink.
READ = {
    "alice": (200, 200, 200),
    "bob": (404, 200, 404),
    "charlie": (404, 404, 404),
    "anonymous": (401, 401, 401),
    "revoked": (401, 401, 401),
}
# Bob may read the team profile but not change it: 403 (its existence is no secret to him).
WRITE_PATCH = {
    "alice": (200, 200, 200),
    "bob": (404, 403, 404),
    "charlie": (404, 404, 404),
    "anonymous": (401, 401, 401),
    "revoked": (401, 401, 401),
}
WRITE_DELETE = {who: tuple(204 if s == 200 else s for s in row) for who, row in WRITE_PATCH.items()}
KINDS = ("private", "team", "link")


@pytest.mark.parametrize("who", READ)
def test_retrieve_follows_the_access_rules(as_person, alices_profiles, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, READ[who], strict=True):
        response = client.get(detail(alices_profiles[kind]))
        assert response.status_code == expected, (who, kind)
        if expected == 200:
            assert response.json()["name"] == alices_profiles[kind].name


@pytest.mark.parametrize("who", WRITE_PATCH)
def test_update_follows_the_access_rules(as_person, alices_profiles, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, WRITE_PATCH[who], strict=True):
        response = client.patch(detail(alices_profiles[kind]), {"name": "Renamed"}, format="json")
        assert response.status_code == expected, (who, kind)
        alices_profiles[kind].refresh_from_db()
        assert (alices_profiles[kind].name == "Renamed") is (expected == 200)


@pytest.mark.parametrize("who", WRITE_DELETE)
def test_delete_follows_the_access_rules(as_person, alices_profiles, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, WRITE_DELETE[who], strict=True):
        response = client.delete(detail(alices_profiles[kind]))
        assert response.status_code == expected, (who, kind)
        exists = ModelProfile.objects.filter(pk=alices_profiles[kind].pk).exists()
        assert exists is (expected != 204)


def test_a_team_owner_may_change_a_members_team_profile(client_for, alice, bob, team):
    profile = ModelProfileFactory(owner=bob, visibility=Visibility.TEAM, team=team)
    response = client_for(alice).patch(detail(profile), {"description": "ok"}, format="json")
    assert response.status_code == 200


def test_errors_do_not_tell_a_private_profile_from_a_missing_one(client_for, charlie, alice):
    private = ModelProfileFactory(owner=alice)
    client = client_for(charlie)
    hidden = client.get(detail(private))
    missing = client.get("/api/v1/profiles/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


@pytest.mark.parametrize(
    ("who", "names"),
    [
        ("alice", {"Private profile", "Team profile", "Link profile"}),
        ("bob", {"Team profile"}),
        ("charlie", set()),
    ],
)
def test_the_list_shows_own_team_and_catalog_profiles(as_person, alices_profiles, who, names):
    response = as_person(who).get(LIST, {"source": "manual", "page_size": 500})
    assert response.status_code == 200
    assert {p["name"] for p in response.json()["results"]} == names
    catalog = as_person(who).get(LIST, {"source": "catalog"}).json()
    assert catalog["count"] == ModelProfile.objects.filter(source=ProfileSource.CATALOG).count()
    assert catalog["count"] > 0


@pytest.mark.parametrize("who", ["anonymous", "revoked"])
def test_the_list_needs_credentials(as_person, who):
    assert as_person(who).get(LIST).status_code == 401


def test_the_list_filters_by_team_family_and_name(client_for, alice, alices_profiles, team):
    client = client_for(alice)
    by_team = client.get(LIST, {"team": team.pk}).json()
    assert [p["name"] for p in by_team["results"]] == ["Team profile"]
    by_name = client.get(LIST, {"search": "LINK", "source": "manual"}).json()
    assert [p["name"] for p in by_name["results"]] == ["Link profile"]
    by_family = client.get(LIST, {"family": "qwen3_moe"}).json()
    assert {p["family"] for p in by_family["results"]} == {"qwen3_moe"}
    assert client.get(LIST, {"source": "bogus"}).status_code == 400
    assert client.get(LIST, {"team": "1.5"}).status_code == 400


def test_catalog_profiles_are_readable_and_read_only(client_for, alice):
    llama = catalog_get(slug="meta-llama/Llama-3.1-8B")
    client = client_for(alice)
    assert client.get(detail(llama)).status_code == 200
    assert client.patch(detail(llama), {"name": "Mine"}, format="json").status_code == 403
    assert client.delete(detail(llama)).status_code == 403
    assert ModelProfile.objects.filter(pk=llama.pk, name=llama.name).exists()


def test_create_from_architecture_fields(client_for, alice, tiny_architecture):
    response = client_for(alice).post(
        LIST, {"name": "Tiny", "architecture": tiny_architecture}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner"] == "alice"
    assert body["source"] == "manual"
    assert body["visibility"] == "private"
    assert body["architecture"] == tiny_architecture
    # llama-like count by hand: embeddings 1000x64 + LM head 64x1000 (untied) + per layer
    # q 64x64 + k,v 64x32 each (2 KV heads x 16 head dim) + o 64x64 + gate/up/down 3x64x128
    # + 2 RMSNorms x 64, for 2 layers, + a final norm of 64
    per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert body["num_parameters"] == 2 * 1000 * 64 + 2 * per_layer + 64


def test_create_from_a_config_json_keeps_the_file_verbatim(client_for, alice):
    config = catalog_get(slug="meta-llama/Llama-3.1-8B").hf_config
    text = json.dumps(config, indent=4, sort_keys=True)
    response = client_for(alice).post(
        LIST, {"name": "My Llama", "config_json": text}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert body["source"] == "config"
    assert body["family"] == "llama"
    assert body["num_parameters"] == 8_030_261_248  # Llama-3.1-8B model card
    assert ModelProfile.objects.get(pk=body["id"]).config_json_text == text


def test_create_from_an_hf_config_object(client_for, alice):
    config = catalog_get(slug="meta-llama/Llama-3.1-8B").hf_config
    response = client_for(alice).post(LIST, {"name": "L", "hf_config": config}, format="json")
    assert response.status_code == 201
    assert response.json()["hf_config"] == config


def test_create_shares_only_with_my_own_teams(client_for, alice, charlie, team, tiny_architecture):
    payload = {
        "name": "Shared",
        "architecture": tiny_architecture,
        "visibility": "team",
        "team": team.pk,
    }
    assert client_for(alice).post(LIST, payload, format="json").status_code == 201
    response = client_for(charlie).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["team"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"architecture": {"hidden_size": 64}}, "name"),
        ({"name": "No model"}, "non_field_errors"),
        ({"name": "Two", "hf_config": {}, "config_json": "{}"}, "non_field_errors"),
        ({"name": "Bad JSON", "config_json": "{nope"}, "config_json"),
        ({"name": "Not an object", "config_json": "[1]"}, "config_json"),
        ({"name": "Shape", "architecture": {"hidden_size": 64}}, "architecture"),
        ({"name": "Team", "architecture": {}, "visibility": "team"}, "team"),
        ({"name": "x" * 201, "hf_config": {}}, "name"),
    ],
)
def test_create_rejects_bad_input_per_field(client_for, alice, payload, field):
    response = client_for(alice).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_update_replaces_the_architecture_and_recounts(client_for, alice, tiny_architecture):
    profile = ModelProfileFactory(owner=alice)
    wider = {**tiny_architecture, "intermediate_size": 256}
    response = client_for(alice).patch(detail(profile), {"architecture": wider}, format="json")
    assert response.status_code == 200
    # as in the create test, with gate/up/down of 64 x 256
    per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 256 + 2 * 64
    assert response.json()["num_parameters"] == 2 * 1000 * 64 + 2 * per_layer + 64
    assert response.json()["architecture"] == wider
