"""Only an item's owner decides who sees it. Bob shares an estimate and a profile with Alice's
team; Alice, its owner, may edit their content but not move them to her other team or make
them public: not through the API, not through the edit pages, not through the services."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from calculator.domain import services
from calculator.domain.errors import Forbidden
from calculator.models import Role, Visibility
from tests.factories import EstimateFactory, MembershipFactory, ModelProfileFactory, TeamFactory


@pytest.fixture
def other_team(alice):
    """A second team of Alice's, which Bob is not in."""
    other = TeamFactory(name="Alice's other team", slug="alices-other-team")
    MembershipFactory(team=other, user=alice, role=Role.OWNER)
    return other


@pytest.fixture
def bobs_estimate(bob, team):
    return EstimateFactory(owner=bob, title="Bob's", visibility=Visibility.TEAM, team=team)


@pytest.fixture
def bobs_profile(bob, team):
    return ModelProfileFactory(owner=bob, name="Bob's", visibility=Visibility.TEAM, team=team)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(
    "change", [{"visibility": "link"}, {"visibility": "private"}, {"team": "other"}]
)
@pytest.mark.parametrize("kind", ["estimates", "profiles"])
def test_it_refuses_a_team_owner_changing_the_audience_over_the_api(
    alice, team, other_team, bobs_estimate, bobs_profile, kind, change
):
    item = bobs_estimate if kind == "estimates" else bobs_profile
    body = {"team": other_team.pk} if change == {"team": "other"} else change
    response = _api(alice).patch(f"/api/v1/{kind}/{item.pk}/", body, format="json")
    assert response.status_code == 403, response.content
    item.refresh_from_db()
    assert (item.visibility, item.team_id) == (Visibility.TEAM, team.pk)


@pytest.mark.parametrize("kind", ["estimates", "profiles"])
def test_it_lets_a_team_owner_edit_the_content_over_the_api(
    alice, team, bobs_estimate, bobs_profile, kind
):
    item = bobs_estimate if kind == "estimates" else bobs_profile
    field = "title" if kind == "estimates" else "name"
    # Sending the audience unchanged is no change of it.
    body = {field: "Renamed by Alice", "visibility": "team", "team": team.pk}
    response = _api(alice).patch(f"/api/v1/{kind}/{item.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert getattr(item, field) == "Renamed by Alice"
    assert (item.visibility, item.team_id) == (Visibility.TEAM, team.pk)


def test_it_lets_the_owner_change_the_audience(bob, team, bobs_estimate):
    response = _api(bob).patch(
        f"/api/v1/estimates/{bobs_estimate.pk}/", {"visibility": "link"}, format="json"
    )
    assert response.status_code == 200
    bobs_estimate.refresh_from_db()
    assert bobs_estimate.visibility == Visibility.LINK


def test_it_refuses_the_services_too(alice, other_team, bobs_estimate, bobs_profile):
    with pytest.raises(Forbidden):
        services.estimate_update(user=alice, estimate=bobs_estimate, team=other_team)
    with pytest.raises(Forbidden):
        services.profile_update(user=alice, profile=bobs_profile, visibility=Visibility.LINK)


def test_it_shows_a_team_owner_no_sharing_fields_on_the_estimate_edit_page(
    client, alice, team, other_team, bobs_estimate
):
    client.force_login(alice)
    url = f"/e/{bobs_estimate.public_id}/edit/"
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="visibility"' not in page.content
    assert b"its owner, can change who sees" in page.content
    # A hand-made POST with the sharing fields changes the title and nothing else.
    response = client.post(
        url, {"title": "Renamed", "notes": "", "visibility": "link", "team": other_team.slug}
    )
    assert response.status_code == 302
    bobs_estimate.refresh_from_db()
    assert bobs_estimate.title == "Renamed"
    assert (bobs_estimate.visibility, bobs_estimate.team_id) == (Visibility.TEAM, team.pk)


def test_it_shows_a_team_owner_no_sharing_fields_on_the_profile_edit_page(
    client, alice, team, other_team, bobs_profile
):
    client.force_login(alice)
    url = f"/profiles/{bobs_profile.public_id}/edit/"
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="visibility"' not in page.content
    data = dict(bobs_profile.architecture, default_dtype="bfloat16", gated_mlp="on")
    data.update(name="Renamed", description="", visibility="link", team=other_team.slug)
    response = client.post(url, data)
    assert response.status_code == 302, response.content
    bobs_profile.refresh_from_db()
    assert bobs_profile.name == "Renamed"
    assert (bobs_profile.visibility, bobs_profile.team_id) == (Visibility.TEAM, team.pk)


def test_it_keeps_the_sharing_fields_for_the_owner(client, bob, bobs_estimate, bobs_profile):
    client.force_login(bob)
    assert b'name="visibility"' in client.get(f"/e/{bobs_estimate.public_id}/edit/").content
    assert b'name="visibility"' in client.get(f"/profiles/{bobs_profile.public_id}/edit/").content
