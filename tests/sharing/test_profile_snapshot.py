"""A shared estimate tells its viewers about its source profile only if they may read that
profile (issue 19): everyone else sees the snapshot saved with it (`model_name`), with no link
to the profile, no word of its current name, and a null profile id in the API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from calculator.domain import services
from calculator.domain.calculations import calculation_run
from calculator.models import Visibility
from tests.sharing.conftest import TINY


def _estimate_of_a_renamed_profile(alice, team, *, profile_visibility, estimate_visibility):
    profile = services.profile_create(
        user=alice,
        name="Secret codename",
        architecture=dict(TINY),
        visibility=profile_visibility,
        team=team if profile_visibility == Visibility.TEAM else None,
    )
    calculation = calculation_run(user=alice, payload={"model": {"profile": profile.pk}})
    estimate = services.estimate_save(
        user=alice,
        calculation=calculation,
        title="Shared plan",
        visibility=estimate_visibility,
        team=team if estimate_visibility == Visibility.TEAM else None,
    )
    services.profile_update(
        user=alice,
        profile=profile,
        name="Project Nightingale",
        architecture={**TINY, "num_layers": 4},
    )
    return profile, estimate


def _api(user):
    api = APIClient()
    if user is not None:
        api.force_authenticate(user)
    return api


# (who, the estimate's visibility): who reads the estimate but not Alice's private profile
OUTSIDE_THE_PROFILE = [("charlie", Visibility.LINK), ("anonymous", Visibility.LINK)]
OUTSIDE_THE_PROFILE += [("bob", Visibility.LINK), ("bob", Visibility.TEAM)]


@pytest.mark.parametrize(("who", "visibility"), OUTSIDE_THE_PROFILE)
def test_a_viewer_who_cannot_read_the_profile_sees_only_the_snapshot(
    who, visibility, visitor_client, alice, bob, charlie, team
):
    profile, estimate = _estimate_of_a_renamed_profile(
        alice, team, profile_visibility=Visibility.PRIVATE, estimate_visibility=visibility
    )
    page = visitor_client(who).get(estimate.get_absolute_url())
    assert page.status_code == 200
    assert estimate.model_name in page.text
    assert "Project Nightingale" not in page.text
    assert profile.public_id not in page.text and "has been edited since" not in page.text
    user = {"bob": bob, "charlie": charlie, "anonymous": None}[who]
    body = _api(user).get(f"/api/v1/estimates/by-public-id/{estimate.public_id}/").json()
    assert body["profile"] is None
    assert body["inputs"]["model"] == {"profile": None}
    assert body["result"]["inputs"]["model"] == {"profile": None}
    assert body["model_name"] == estimate.model_name
    assert str(profile.pk) not in str(body["inputs"]["model"])
    if who == "bob" and visibility == Visibility.TEAM:  # listed for him
        listed = _api(bob).get("/api/v1/estimates/").json()["results"]
        assert [(e["title"], e["profile"]) for e in listed] == [("Shared plan", None)]
        assert _api(bob).get(f"/api/v1/estimates/{estimate.pk}/").json()["profile"] is None


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_those_who_read_the_profile_still_see_it(who, visitor_client, alice, bob, team):
    profile, estimate = _estimate_of_a_renamed_profile(
        alice, team, profile_visibility=Visibility.TEAM, estimate_visibility=Visibility.TEAM
    )
    page = visitor_client(who).get(estimate.get_absolute_url())
    assert "has been edited since" in page.text and "Project Nightingale" in page.text
    assert profile.get_absolute_url() in page.text
    body = _api({"alice": alice, "bob": bob}[who]).get(f"/api/v1/estimates/{estimate.pk}/").json()
    assert body["profile"] == profile.pk
    assert body["inputs"]["model"] == {"profile": profile.pk}
    listed = _api({"alice": alice, "bob": bob}[who]).get("/api/v1/estimates/").json()["results"]
    assert [e["profile"] for e in listed] == [profile.pk]


def test_the_owner_still_hears_of_a_deleted_profile_and_others_do_not(visitor_client, alice, team):
    profile, estimate = _estimate_of_a_renamed_profile(
        alice, team, profile_visibility=Visibility.PRIVATE, estimate_visibility=Visibility.LINK
    )
    services.profile_delete(user=alice, profile=profile)
    assert "has since been deleted" in visitor_client("alice").get(estimate.get_absolute_url()).text
    assert (
        "has since been deleted"
        not in visitor_client("charlie").get(estimate.get_absolute_url()).text
    )


def test_the_list_reads_the_profiles_in_one_query(alice, team, django_assert_max_num_queries):
    for _ in range(3):
        _estimate_of_a_renamed_profile(
            alice, team, profile_visibility=Visibility.PRIVATE, estimate_visibility=Visibility.TEAM
        )
    api = APIClient()
    from tests.factories import UserFactory

    bob = UserFactory(username="bob")
    api.force_authenticate(bob)
    api.get("/api/v1/estimates/")  # warm: sessions, throttles
    with django_assert_max_num_queries(8):
        listed = api.get("/api/v1/estimates/").json()["results"]
    assert [e["profile"] for e in listed] == [None, None, None]
