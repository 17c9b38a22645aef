"""/api/v1/estimates/: the access rules for every method, calculate-and-save, filters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from calculator.models import Estimate, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory

LIST = "/api/v1/estimates/"
KINDS = ("private", "team", "link")
SEED_7B = {
    "num_parameters": 7_000_000_000,
    "hidden_size": 4096,
    "num_layers": 32,
    "num_attention_heads": 32,
}


def detail(estimate) -> str:
    return f"/api/v1/estimates/{estimate.pk}/"


def by_public_id(estimate) -> str:
    return f"/api/v1/estimates/by-public-id/{estimate.public_id}/"


# who -> status for Alice's private, team and link estimates (docs/design.md, "Access rules")
READ_BY_ID = {
    "alice": (200, 200, 200),
    "bob": (404, 200, 404),
    "charlie": (404, 404, 404),
    "anonymous": (401, 401, 401),
    "revoked": (401, 401, 401),
}
# A permalink opens a link item for anyone, a team item for its members, a private one for no one
READ_BY_PUBLIC_ID = {
    "alice": (200, 200, 200),
    "bob": (404, 200, 200),
    "charlie": (404, 404, 200),
    "anonymous": (404, 404, 200),
    "revoked": (401, 401, 401),
}
PATCH = {
    "alice": (200, 200, 200),
    "bob": (404, 403, 404),
    "charlie": (404, 404, 404),
    "anonymous": (401, 401, 401),
    "revoked": (401, 401, 401),
}
DELETE = {who: tuple(204 if s == 200 else s for s in row) for who, row in PATCH.items()}


@pytest.mark.parametrize("who", READ_BY_ID)
def test_retrieve_by_id_follows_the_access_rules(as_person, alices_estimates, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, READ_BY_ID[who], strict=True):
        response = client.get(detail(alices_estimates[kind]))
        assert response.status_code == expected, (who, kind)


@pytest.mark.parametrize("who", READ_BY_PUBLIC_ID)
def test_retrieve_by_public_id_follows_the_access_rules(as_person, alices_estimates, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, READ_BY_PUBLIC_ID[who], strict=True):
        response = client.get(by_public_id(alices_estimates[kind]))
        assert response.status_code == expected, (who, kind)
        if expected == 200:
            assert response.json()["public_id"] == alices_estimates[kind].public_id


@pytest.mark.parametrize("who", PATCH)
def test_update_follows_the_access_rules(as_person, alices_estimates, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, PATCH[who], strict=True):
        response = client.patch(detail(alices_estimates[kind]), {"title": "New"}, format="json")
        assert response.status_code == expected, (who, kind)
        alices_estimates[kind].refresh_from_db()
        assert (alices_estimates[kind].title == "New") is (expected == 200)


@pytest.mark.parametrize("who", DELETE)
def test_delete_follows_the_access_rules(as_person, alices_estimates, who):
    client = as_person(who)
    for kind, expected in zip(KINDS, DELETE[who], strict=True):
        response = client.delete(detail(alices_estimates[kind]))
        assert response.status_code == expected, (who, kind)
        exists = Estimate.objects.filter(pk=alices_estimates[kind].pk).exists()
        assert exists is (expected != 204)


@pytest.mark.parametrize(
    ("who", "titles"),
    [
        ("alice", {"Private estimate", "Team estimate", "Link estimate"}),
        ("bob", {"Team estimate"}),
        ("charlie", set()),
    ],
)
def test_the_list_shows_own_and_team_estimates_never_link_ones(
    as_person, alices_estimates, who, titles
):
    response = as_person(who).get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert {e["title"] for e in body["results"]} == titles
    assert body["count"] == len(titles)


@pytest.mark.parametrize("who", ["anonymous", "revoked"])
def test_the_list_and_create_need_credentials(as_person, who):
    client = as_person(who)
    assert client.get(LIST).status_code == 401
    payload = {"model": {"architecture": SEED_7B}}
    assert client.post(LIST, payload, format="json").status_code == 401


def test_create_calculates_and_saves_in_one_call(client_for, alice, team):
    payload = {
        "model": {"architecture": SEED_7B},
        "method": "standard",
        "weight_dtype": "float16",
        "title": "7B on one GPU",
        "notes": "seed example",
        "visibility": "team",
        "team": team.pk,
    }
    response = client_for(alice).post(LIST, payload, format="json")
    assert response.status_code == 201
    body = response.json()
    # shared/reference/seed-formulas.md, first worked example: 18,898,947,072 bytes
    assert body["total_bytes"] == 18_898_947_072
    assert body["result"]["total_bytes"] == 18_898_947_072
    assert (body["title"], body["notes"], body["visibility"]) == (
        "7B on one GPU",
        "seed example",
        "team",
    )
    assert body["team"] == team.pk
    assert body["owner"] == "alice"
    assert (body["mode"], body["method"]) == ("inference", "standard")
    assert body["inputs"]["model"] == {"architecture": SEED_7B}
    assert "title" not in body["inputs"]
    assert body["architecture"] == {"architecture": SEED_7B}
    assert body["permalink"] == f"/e/{body['public_id']}/"
    estimate = Estimate.objects.get(pk=body["id"])
    assert estimate.owner == alice and estimate.total_bytes == 18_898_947_072


def test_create_from_a_profile_links_it(client_for, alice, tiny_architecture):
    profile = ModelProfileFactory(owner=alice, architecture=tiny_architecture)
    body = client_for(alice).post(LIST, {"model": {"profile": profile.pk}}, format="json").json()
    assert body["profile"] == profile.pk
    assert body["model_name"] == profile.name


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"model": {"architecture": SEED_7B}, "batch_size": 0}, "batch_size"),
        ({"model": {"architecture": SEED_7B}, "visibility": "everyone"}, "visibility"),
        ({"model": {"architecture": SEED_7B}, "visibility": "team"}, "team"),
        ({"model": {"architecture": SEED_7B}, "title": "x" * 201}, "title"),
        ({"title": "no model"}, "model"),
    ],
)
def test_create_rejects_bad_input_per_field(client_for, alice, payload, field):
    response = client_for(alice).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Estimate.objects.exists()


def test_create_shares_only_with_my_own_teams(client_for, charlie, team):
    payload = {"model": {"architecture": SEED_7B}, "visibility": "team", "team": team.pk}
    response = client_for(charlie).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["team"]


def test_update_changes_only_title_notes_and_sharing(client_for, alice, team):
    estimate = EstimateFactory(owner=alice, total_bytes=1234)
    client = client_for(alice)
    response = client.patch(
        detail(estimate),
        {"title": "T", "notes": "N", "visibility": "team", "team": team.pk},
        format="json",
    )
    assert response.status_code == 200
    estimate.refresh_from_db()
    assert (estimate.title, estimate.notes, estimate.visibility, estimate.team) == (
        "T",
        "N",
        Visibility.TEAM,
        team,
    )
    for field, value in [("total_bytes", 1), ("inputs", {}), ("mode", "training")]:
        response = client.patch(detail(estimate), {field: value}, format="json")
        assert response.status_code == 400
        assert list(response.json()) == [field]
    estimate.refresh_from_db()
    assert (estimate.total_bytes, estimate.mode) == (1234, "inference")


def test_the_list_filters_orders_and_counts(client_for, alice, team):
    profile = ModelProfileFactory(owner=alice)
    old = EstimateFactory(owner=alice, title="old", mode="training", total_bytes=30)
    Estimate.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=10))
    EstimateFactory(owner=alice, title="mid", method="standard", total_bytes=10, profile=profile)
    EstimateFactory(owner=alice, title="new", total_bytes=20, visibility=Visibility.TEAM, team=team)
    client = client_for(alice)

    def titles(**params) -> list[str]:
        response = client.get(LIST, params)
        assert response.status_code == 200, response.json()
        return [e["title"] for e in response.json()["results"]]

    assert titles() == ["new", "mid", "old"]  # newest first
    assert titles(mode="training") == ["old"]
    assert titles(method="standard") == ["mid"]
    assert titles(profile=profile.pk) == ["mid"]
    assert titles(team=team.pk) == ["new"]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert titles(created_after=since) == ["new", "mid"]
    assert titles(created_before=since) == ["old"]
    assert titles(ordering="total_bytes") == ["mid", "new", "old"]
    assert titles(ordering="-total_bytes") == ["old", "new", "mid"]
    page = client.get(LIST, {"page_size": 2}).json()
    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert page["next"] is not None and page["previous"] is None
    assert client.get(LIST, {"page": 99}).status_code == 404
    assert client.get(LIST, {"mode": "streaming"}).status_code == 400
    assert client.get(LIST, {"created_after": "yesterday"}).status_code == 400


@pytest.mark.django_db
def test_a_serving_plan_can_be_saved_and_read_back(client_for, alice, catalog):
    # the mode's check constraint knew two modes: saving a serving plan was an IntegrityError
    client = client_for(alice)
    payload = {
        "model": {"catalog": "meta-llama/Llama-3.1-8B"},
        "mode": "serving",
        "gpu": "h100-sxm",
        "sequence_length": 8192,
        "title": "vLLM on one H100",
    }
    response = client.post("/api/v1/estimates/", payload, format="json")
    assert response.status_code == 201, response.json()
    saved = client.get(f"/api/v1/estimates/{response.json()['id']}/").json()
    assert saved["mode"] == "serving"
    assert saved["result"]["serving"]["memory"]["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2


@pytest.mark.django_db
def test_a_speculative_serving_plan_is_saved_with_its_fields(client_for, alice, catalog):
    client = client_for(alice)
    payload = {
        "model": {"catalog": "meta-llama/Llama-3.1-8B"},
        "mode": "serving",
        "gpu": "h100-sxm",
        "sequence_length": 8192,
        "speculative_method": "ngram",
        "num_speculative_tokens": 2,
        "acceptance_rate": 0.5,
        "title": "vLLM with n-gram lookup",
    }
    response = client.post("/api/v1/estimates/", payload, format="json")
    assert response.status_code == 201, response.json()
    saved = client.get(f"/api/v1/estimates/{response.json()['id']}/").json()
    step = saved["result"]["serving"]["performance"]["speculative"]
    # (1 - 0.5^3) / (1 - 0.5) = 1.75 tokens a verification step
    assert step["tokens_per_step"] == pytest.approx(1.75)
    assert saved["result"]["inputs"]["speculative_method"] == "ngram"
