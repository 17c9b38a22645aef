"""The calculator's htmx results are kept per query string, except for saved profiles, and the
save box is never part of what is kept."""

from __future__ import annotations

from unittest import mock

import pytest

from calculator import calculations
from calculator.models import ModelProfile, ProfileSource
from tests.factories import ModelProfileFactory

HTMX = {"HX-Request": "true"}
LLAMA_SLUG = "meta-llama/Llama-3.1-8B"
QUERY = {"model": "catalog", "catalog": LLAMA_SLUG, "batch_size": "4", "sequence_length": "8192"}


@pytest.fixture(autouse=True)
def _catalog(catalog):
    """Every test here reads the built-in catalog."""


@pytest.fixture
def engine_runs():
    """Counts calculation_run calls (two a calculation of the calculator page: the chosen
    method and the other one beside it, both in calculations.calculator_page_run)."""
    with mock.patch.object(
        calculations, "calculation_run", wraps=calculations.calculation_run
    ) as run:
        yield run


def _results(response) -> str:
    """The results up to the engine's version: the save box after it is the visitor's."""
    html = response.content.decode()
    return html[html.index('<section id="results"') : html.index('<p class="muted">Engine')]


def test_the_same_query_is_calculated_once(client, engine_runs):
    first = client.get("/", QUERY, headers=HTMX)
    assert engine_runs.call_count == 2
    # The same fields in another order are the same query.
    second = client.get("/", dict(reversed(QUERY.items())), headers=HTMX)
    assert engine_runs.call_count == 2
    assert _results(second) == _results(first)
    assert second["HX-Push-Url"] == first["HX-Push-Url"]
    client.get("/", {**QUERY, "batch_size": "5"}, headers=HTMX)
    assert engine_runs.call_count == 4


def test_the_save_box_belongs_to_each_visitor(client, alice, engine_runs):
    anonymous = client.get("/", QUERY, headers=HTMX).content.decode()
    assert "Log in to save" in anonymous
    assert "Save this estimate" not in anonymous
    client.force_login(alice)
    as_alice = client.get("/", QUERY, headers=HTMX).content.decode()
    assert engine_runs.call_count == 2  # the results were kept, the save box was not
    assert "Save this estimate" in as_alice
    assert 'name="csrfmiddlewaretoken"' in as_alice
    assert "Log in to save" not in as_alice


def test_a_saved_profile_is_never_kept(client, alice, bob, engine_runs):
    profile = ModelProfileFactory(owner=alice, name="Alice's tiny model")
    query = {"model": "profile", "profile": str(profile.pk)}
    client.force_login(alice)
    for _ in range(2):
        response = client.get("/", query, headers=HTMX)
        assert "Alice&#x27;s tiny model" in response.content.decode()
    assert engine_runs.call_count == 4
    # Bob may not see Alice's private profile: an error, not the results she was shown.
    client.force_login(bob)
    response = client.get("/", query, headers=HTMX).content.decode()
    assert "Alice&#x27;s tiny model" not in response
    assert "No profile with this id that you can see." in response


def test_a_catalog_change_is_shown_at_once(client):
    assert "Llama 3.1 8B" in _results(client.get("/", QUERY, headers=HTMX))
    llama = ModelProfile.objects.get(source=ProfileSource.CATALOG, slug=LLAMA_SLUG)
    llama.name = "Llama 3.1 8B (renamed)"
    llama.save()
    assert "Llama 3.1 8B (renamed)" in _results(client.get("/", QUERY, headers=HTMX))


def test_a_users_profile_edit_keeps_the_results(client, alice, engine_runs):
    """A saved profile is no catalog: saving or deleting one must not forget the kept results
    of catalog queries (it did, so every profile edit in the bench's mix had them computed
    again)."""
    client.get("/", QUERY, headers=HTMX)
    assert engine_runs.call_count == 2
    profile = ModelProfileFactory(owner=alice, name="Alice's tiny model")
    profile.description = "edited"
    profile.save()
    client.get("/", QUERY, headers=HTMX)
    profile.delete()
    client.get("/", QUERY, headers=HTMX)
    assert engine_runs.call_count == 2


def test_errors_are_not_kept(client, engine_runs):
    for _ in range(2):
        response = client.get("/", {**QUERY, "batch_size": "0"}, headers=HTMX)
        assert 'role="alert"' in response.content.decode()
        assert response["HX-Push-Url"] == "false"
    assert engine_runs.call_count == 0
