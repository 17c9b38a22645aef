"""The access table holds on the very next request after any change of who may see what, however
the change is written: through the services, or straight through the ORM with a queryset
`.update()` or `.delete()` (which send no signals), as a script or `manage.py shell` would.
Every page is visited first, so that anything kept from the earlier answer would show."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from calculator.api.tokens import api_token_create
from calculator.models import Estimate, Membership, ModelProfile, Visibility
from tests.security.test_object_access import VISIBILITIES, api, browser, people, readers

VISITORS = ("alice", "bob", "charlie", "anonymous")


def _estimate_pages(estimate: Estimate) -> list[tuple[str, str]]:
    return [
        ("page", f"/e/{estimate.public_id}/"),
        ("page", f"/e/{estimate.public_id}/?unit=GB"),
        ("api", f"/api/v1/estimates/by-public-id/{estimate.public_id}/"),
    ]


def _statuses(world, estimate: Estimate) -> dict[tuple[str, str], int]:
    clients = {"alice": world.alice, **people(world)}
    answers = {}
    for who, user in clients.items():
        for kind, url in _estimate_pages(estimate):
            client = browser(user) if kind == "page" else api(user)
            answers[(who, url)] = client.get(url).status_code
    return answers


def _expected(world, estimate: Estimate, visibility: str) -> dict[tuple[str, str], int]:
    allowed = {"alice": True, **readers(world, visibility)}
    expected = {}
    for who in VISITORS:
        for kind, url in _estimate_pages(estimate):
            if allowed[who]:
                expected[(who, url)] = 200
            elif kind == "api" and who == "anonymous":
                expected[(who, url)] = 404  # by public id is open to anonymous callers
            else:
                expected[(who, url)] = 404
    return expected


@pytest.mark.parametrize("before", VISIBILITIES)
@pytest.mark.parametrize("after", VISIBILITIES)
def test_a_visibility_changed_by_queryset_update_holds_at_once(world, before, after):
    estimate = world.estimates[before]
    assert _statuses(world, estimate) == _expected(world, estimate, before)
    team = world.team if after == Visibility.TEAM else None
    Estimate.objects.filter(pk=estimate.pk).update(visibility=after, team=team)
    assert _statuses(world, estimate) == _expected(world, estimate, after)


def test_a_membership_deleted_by_queryset_ends_the_teammate_s_access_at_once(world):
    estimate = world.estimates[Visibility.TEAM]
    profile = world.profiles[Visibility.TEAM]
    bob = browser(world.bob)
    urls = [f"/e/{estimate.public_id}/", f"/profiles/{profile.public_id}/", "/history/"]
    assert [bob.get(url).status_code for url in urls] == [200, 200, 200]
    assert estimate.title in bob.get("/history/").text
    Membership.objects.filter(user=world.bob).delete()
    assert [bob.get(url).status_code for url in urls[:2]] == [404, 404]
    assert estimate.title not in bob.get("/history/").text


def test_a_profile_made_private_by_queryset_update_leaves_the_teammate_s_pages(world):
    profile = world.profiles[Visibility.TEAM]
    bob = browser(world.bob)
    assert bob.get(f"/profiles/{profile.public_id}/").status_code == 200
    assert profile.name in bob.get("/profiles/").text
    ModelProfile.objects.filter(pk=profile.pk).update(visibility=Visibility.PRIVATE, team=None)
    assert bob.get(f"/profiles/{profile.public_id}/").status_code == 404
    assert profile.name not in bob.get("/profiles/").text


def test_a_team_renamed_by_queryset_update_shows_on_the_next_request(world):
    estimate = world.estimates[Visibility.TEAM]
    bob = browser(world.bob)
    assert "Alice&#x27;s team" in bob.get(f"/e/{estimate.public_id}/").text
    type(world.team).objects.filter(pk=world.team.pk).update(name="Inference squad")
    assert "Inference squad" in bob.get(f"/e/{estimate.public_id}/").text


# --- after a deactivation -----------------------------------------------------------------------

SIGNED_IN_PAGES = ("/history/", "/profiles/new/", "/teams/", "/accounts/tokens/")


def test_a_user_deactivated_by_queryset_update_is_signed_out_on_the_next_request(world):
    alice = browser(world.alice)
    private = world.estimates[Visibility.PRIVATE]
    for url in (*SIGNED_IN_PAGES, f"/e/{private.public_id}/"):
        assert alice.get(url).status_code == 200, url
    get_user_model().objects.filter(pk=world.alice.pk).update(is_active=False)
    for url in SIGNED_IN_PAGES:
        response = alice.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    # her private estimate is now what an anonymous visitor gets: nothing
    assert alice.get(f"/e/{private.public_id}/").status_code == 404
    assert "Log in" in alice.get("/").text


def test_a_deactivated_user_s_session_and_token_are_refused_by_the_api(world):
    _, key = api_token_create(user=world.alice, name="dashboard")
    by_token = APIClient()
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    by_session = APIClient()
    by_session.force_login(world.alice)
    assert by_token.get("/api/v1/estimates/").status_code == 200
    assert by_session.get("/api/v1/estimates/").status_code == 200
    get_user_model().objects.filter(pk=world.alice.pk).update(is_active=False)
    assert by_token.get("/api/v1/estimates/").status_code == 401
    assert by_session.get("/api/v1/estimates/").status_code in (401, 403)


def test_a_password_changed_by_queryset_update_signs_other_sessions_out(world):
    alice = browser(world.alice)
    assert alice.get("/history/").status_code == 200
    user = get_user_model().objects.get(pk=world.alice.pk)
    user.set_password("a completely new passphrase 9")
    get_user_model().objects.filter(pk=user.pk).update(password=user.password)
    assert alice.get("/history/").status_code == 302
