"""Saving from the calculator, the permalink for the four visitors, edit, delete, immutability."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from calculator.domain import services
from calculator.models import Estimate, Visibility
from tests.factories import EstimateFactory
from tests.sharing.conftest import (
    READ_BY_ADDRESS,
    TINY,
    TINY_KV_CACHE_BYTES,
    TINY_PARAMETERS,
    TINY_WEIGHT_BYTES,
)


def _calculator_fields(**changes):
    """The calculator's query-string fields for the tiny model typed in by hand."""
    fields = {
        "model": "architecture",
        **{name: str(value) for name, value in TINY.items()},
        "mode": "inference",
        "method": "detailed",
        "batch_size": "1",
        "sequence_length": "2048",
        "runtime_overhead_bytes": "0",
    }
    fields.update(changes)
    return fields


def _save(client, **changes):
    data = {**_calculator_fields(), "save-title": "Tiny run", "save-visibility": "private"}
    data.update(changes)
    return client.post(reverse("estimate-save"), data)


def test_it_saves_a_recomputed_estimate_and_goes_to_its_permalink(visitor_client, alice):
    # A posted result is not a field of the form: the server computes its own.
    response = _save(visitor_client("alice"), total_bytes="1", kv_cache="1")
    estimate = Estimate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/e/{estimate.public_id}/"
    assert (estimate.owner, estimate.title, estimate.visibility) == (alice, "Tiny run", "private")
    assert estimate.result["breakdown"]["weights"] == TINY_WEIGHT_BYTES
    assert estimate.result["breakdown"]["kv_cache"] == TINY_KV_CACHE_BYTES
    assert estimate.result["parameters"]["total"] == TINY_PARAMETERS
    assert estimate.total_bytes == sum(estimate.result["breakdown"].values())


def test_it_shares_a_saved_estimate_with_a_team(visitor_client, team):
    _save(visitor_client("alice"), **{"save-visibility": "team", "save-team": team.slug})
    estimate = Estimate.objects.get()
    assert (estimate.visibility, estimate.team) == ("team", team)
    assert visitor_client("bob").get(estimate.get_absolute_url()).status_code == 200


def test_bad_inputs_go_back_to_the_calculator_with_the_inputs_and_the_errors(visitor_client):
    client = visitor_client("alice")
    response = _save(client, batch_size="0")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("calculator")
    query = parse_qs(location.query)
    assert query["batch_size"] == ["0"] and query["hidden_size"] == ["64"]
    assert "save-title" not in query and "csrfmiddlewaretoken" not in query
    errors = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Batch size" in error for error in errors)
    assert not Estimate.objects.exists()


def test_a_failed_save_keeps_the_typed_title_and_notes(visitor_client, team):
    client = visitor_client("alice")
    typed = {
        "save-title": "Long context <run>",
        "save-notes": "Line one\nline two: & more",
        "save-visibility": "team",
        "save-team": team.slug,
    }
    response = _save(client, batch_size="0", **typed)
    assert response.status_code == 302 and not Estimate.objects.exists()
    # Fixed in the calculator: its save box (a live update's or a page's) holds what was typed.
    for headers in ({}, {"HX-Request": "true"}):
        page = client.get(reverse("calculator"), _calculator_fields(batch_size="2"), **headers)
        form = page.context["save_form"]
        assert form.initial == {
            "title": "Long context <run>",
            "notes": "Line one\nline two: & more",
            "visibility": "team",
            "team": team.slug,
        }
        assert 'value="Long context &lt;run&gt;"' in page.text
        assert "Line one\nline two: &amp; more</textarea>" in page.text
        assert f'<option value="{team.slug}" selected>' in page.text
        assert '<details class="card save-estimate" open>' in page.text
    # A save that works forgets the draft.
    response = _save(client, **typed)
    assert Estimate.objects.get().title == "Long context <run>"
    page = client.get(reverse("calculator"), _calculator_fields())
    assert page.context["save_form"].initial == {}
    assert 'value="Long context' not in page.text


def test_a_failed_save_of_the_sharing_keeps_the_title_too(visitor_client):
    client = visitor_client("charlie")
    _save(client, **{"save-visibility": "team", "save-title": "Mine", "save-notes": "n" * 30_000})
    page = client.get(reverse("calculator"), _calculator_fields())
    initial = page.context["save_form"].initial
    assert initial["title"] == "Mine" and initial["notes"] == "n" * 20_000


def test_it_will_not_share_with_a_team_without_one(visitor_client, team):
    response = _save(visitor_client("charlie"), **{"save-visibility": "team"})
    assert response.status_code == 302
    errors = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Choose the team" in error for error in errors)
    # Charlie is not in Alice's team: that team is not even a choice for him.
    response = _save(
        visitor_client("charlie"), **{"save-visibility": "team", "save-team": team.slug}
    )
    assert not Estimate.objects.exists()


def test_saving_needs_an_account(visitor_client):
    response = _save(visitor_client("anonymous"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Estimate.objects.exists()


def test_the_calculator_offers_the_save_form_to_members_only(visitor_client):
    page = visitor_client("alice").get(reverse("calculator"), _calculator_fields())
    assert 'action="/estimates/save/"' in page.text
    assert 'name="save-title"' in page.text
    assert '<input type="hidden" name="hidden_size" value="64">' in page.text
    anonymous = visitor_client("anonymous").get(reverse("calculator"), _calculator_fields())
    assert 'action="/estimates/save/"' not in anonymous.text
    assert "Log in to save" in anonymous.text


@pytest.mark.parametrize(("who", "visibility"), list(READ_BY_ADDRESS))
def test_the_permalink_follows_the_table(who, visibility, visitor_client, estimates):
    estimate = estimates[visibility]
    response = visitor_client(who).get(estimate.get_absolute_url())
    assert response.status_code == READ_BY_ADDRESS[(who, visibility)]
    if response.status_code == 200:
        assert estimate.title in response.text
        assert "Saved by alice" in response.text
        # Only writers see the edit and delete buttons.
        assert ("Edit title, notes, sharing" in response.text) == (who == "alice")


def test_the_permalink_shows_the_stored_result_not_a_new_one(visitor_client, alice):
    # The factory's stored numbers are not what the engine would say for this model: the page
    # must show them as stored, 1,000 + 200 + 30 + 0 + 0 + 4 = 1,234 bytes.
    estimate = EstimateFactory(owner=alice, notes="Checked on the A100 box")
    response = visitor_client("alice").get(estimate.get_absolute_url())
    assert "1,234 bytes" in response.text
    assert "Checked on the A100 box" in response.text
    assert 'id="row-weights"' in response.text and "1,000" in response.text
    assert "engine test" in response.text
    assert 'action="/estimates/save/"' not in response.text


def _listed_inputs(response) -> list[str]:
    section = response.text.split('id="inputs-title"', 1)[1].split("</section>", 1)[0]
    return re.findall(r"<dt>([^<]+)</dt>", section)


TRAINING_INPUTS = {"optimizer", "finetuning", "lora_rank", "mixed_precision", "zero_stage"}


def test_an_inference_permalink_lists_no_training_inputs(visitor_client):
    client = visitor_client("alice")
    _save(client, batch_size="2")
    inference = Estimate.objects.get()
    # the saved inputs hold every default, training's too ...
    assert set(inference.inputs) >= TRAINING_INPUTS
    listed = _listed_inputs(client.get(inference.get_absolute_url()))
    # ... but the permalink of an inference estimate lists what inference reads
    assert {"batch_size", "sequence_length", "weight_dtype"} <= set(listed)
    assert not TRAINING_INPUTS & set(listed)
    assert not {"gradient_checkpointing", "trainable_percent", "lora_target_modules"} & set(listed)


def test_a_training_permalink_lists_its_training_inputs(visitor_client):
    client = visitor_client("alice")
    _save(client, mode="training", optimizer="sgd")
    training = Estimate.objects.get()
    assert training.mode == "training"
    listed = _listed_inputs(client.get(training.get_absolute_url()))
    assert set(listed) >= TRAINING_INPUTS


def test_open_in_calculator_gives_back_the_same_numbers(visitor_client):
    client = visitor_client("alice")
    _save(client, sequence_length="4096", batch_size="2")
    estimate = Estimate.objects.get()
    page = client.get(estimate.get_absolute_url())
    url = page.context["calculator_url"]
    query = parse_qs(urlsplit(url).query)
    assert query["model"] == ["architecture"]
    assert (query["sequence_length"], query["batch_size"]) == (["4096"], ["2"])
    calculator = client.get(url)
    assert calculator.context["results"]["result"]["total_bytes"] == estimate.total_bytes


def _save_with_profile(user):
    from calculator.domain.calculations import calculation_run

    profile = services.profile_create(user=user, name="Tiny", architecture=dict(TINY))
    calculation = calculation_run(
        user=user, payload={"model": {"profile": profile.pk}, "runtime_overhead_bytes": 0}
    )
    return profile, services.estimate_save(user=user, calculation=calculation, title="Kept")


def test_an_edited_profile_leaves_the_permalink_as_saved(visitor_client, alice):
    profile, estimate = _save_with_profile(alice)
    client = visitor_client("alice")
    assert (
        f"profile={profile.pk}" in client.get(estimate.get_absolute_url()).context["calculator_url"]
    )
    services.profile_update(user=alice, profile=profile, architecture={**TINY, "num_layers": 4})
    response = client.get(estimate.get_absolute_url())
    assert "has been edited since" in response.text
    assert f"{estimate.total_bytes:,} bytes" in response.text
    # The link back to the calculator now carries the snapshot, not the changed profile.
    query = parse_qs(urlsplit(response.context["calculator_url"]).query)
    assert (query["model"], query["num_layers"]) == (["architecture"], ["2"])


def test_a_deleted_profile_leaves_the_permalink_as_saved(visitor_client, alice):
    profile, estimate = _save_with_profile(alice)
    saved_total = estimate.total_bytes
    services.profile_delete(user=alice, profile=profile)
    response = visitor_client("alice").get(estimate.get_absolute_url())
    assert response.status_code == 200
    assert "has since been deleted" in response.text
    assert f"{saved_total:,} bytes" in response.text


# who -> (edit page, delete) status on Alice's team estimate; Bob is a plain member.
WRITES = {"alice": (200, 302), "bob": (404, 404), "charlie": (404, 404)}


@pytest.mark.parametrize("who", list(WRITES))
def test_only_writers_edit_or_delete_an_estimate(who, visitor_client, estimates):
    estimate = estimates["team"]
    client = visitor_client(who)
    edit = client.get(reverse("estimate-edit", args=[estimate.public_id]))
    delete = client.post(reverse("estimate-delete", args=[estimate.public_id]))
    assert (edit.status_code, delete.status_code) == WRITES[who]
    assert Estimate.objects.filter(pk=estimate.pk).exists() == (who != "alice")


def test_anonymous_edits_go_to_login(visitor_client, estimates):
    response = visitor_client("anonymous").post(
        reverse("estimate-delete", args=[estimates["link"].public_id])
    )
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_a_team_owner_may_edit_a_members_team_estimate(visitor_client, bob, team):
    estimate = EstimateFactory(owner=bob, visibility=Visibility.TEAM, team=team, title="Bob's")
    response = visitor_client("alice").post(
        reverse("estimate-edit", args=[estimate.public_id]),
        {"title": "Reviewed", "notes": "ok", "visibility": "team", "team": team.slug},
    )
    assert response.status_code == 302
    estimate.refresh_from_db()
    assert (estimate.title, estimate.notes, estimate.owner) == ("Reviewed", "ok", bob)


def test_editing_changes_only_title_notes_and_sharing(visitor_client, estimates):
    estimate = estimates["private"]
    before = (estimate.result, estimate.inputs, estimate.total_bytes)
    response = visitor_client("alice").post(
        reverse("estimate-edit", args=[estimate.public_id]),
        {"title": "New", "notes": "", "visibility": "link", "total_bytes": "1"},
    )
    assert response.status_code == 302
    estimate.refresh_from_db()
    assert (estimate.title, estimate.visibility) == ("New", "link")
    assert (estimate.result, estimate.inputs, estimate.total_bytes) == before
