"""Other people's things stay theirs: Bob (Alice's teammate, a plain member), Charlie (an outsider)
and anonymous visitors try every page, fragment, export and endpoint on Alice's profiles,
estimates and team, by id, by public id and through list filters, and find nothing beyond
what docs/design.md's access table grants (team items readable by Bob, link items through their
permalink only). Each denial is checked against the owner's 200 on the same address, so a
broken address cannot pass for a refusal."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client
from rest_framework.test import APIClient

from calculator.models import Estimate, Membership, ModelProfile, Role, Visibility
from tests.factories import (
    TINY_ARCHITECTURE,
    EstimateFactory,
    MembershipFactory,
    ModelProfileFactory,
    TeamFactory,
    UserFactory,
)

VISIBILITIES = (Visibility.PRIVATE, Visibility.TEAM, Visibility.LINK)
DENIED = (404,)  # never 403: a refusal must not confirm that the thing exists
ANONYMOUS_DENIED = (302, 401, 404)  # a login redirect or 401 before anything is looked up


@dataclass
class World:
    alice: object
    bob: object
    charlie: object
    team: object
    profiles: dict[str, ModelProfile]
    estimates: dict[str, Estimate]


@pytest.fixture
def world(db) -> World:
    alice = UserFactory(username="alice")
    bob = UserFactory(username="bob")
    charlie = UserFactory(username="charlie")
    team = TeamFactory(name="Alice's team", slug="alices-team")
    MembershipFactory(team=team, user=alice, role=Role.OWNER)
    MembershipFactory(team=team, user=bob, role=Role.MEMBER)
    # Charlie has a team of his own, so that "a team" filters have something to point at.
    MembershipFactory(team=TeamFactory(slug="charlies-team"), user=charlie, role=Role.OWNER)
    profiles, estimates = {}, {}
    for visibility in VISIBILITIES:
        shared_team = team if visibility == Visibility.TEAM else None
        profiles[visibility] = ModelProfileFactory(
            owner=alice, name=f"alice-{visibility}-profile", visibility=visibility, team=shared_team
        )
        estimates[visibility] = EstimateFactory(
            owner=alice,
            title=f"alice-{visibility}-estimate",
            visibility=visibility,
            team=shared_team,
            profile=profiles[visibility],
        )
    return World(alice, bob, charlie, team, profiles, estimates)


def browser(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def readers(world: World, visibility: str) -> dict[str, bool]:
    """Who may open a thing of this visibility by its address (docs/design.md's access table)."""
    return {
        "bob": visibility in (Visibility.TEAM, Visibility.LINK),
        "charlie": visibility == Visibility.LINK,
        "anonymous": visibility == Visibility.LINK,
    }


def people(world: World) -> dict[str, object]:
    return {"bob": world.bob, "charlie": world.charlie, "anonymous": None}


def assert_denied(response, who: str) -> None:
    allowed = ANONYMOUS_DENIED if who == "anonymous" else DENIED
    assert response.status_code in allowed, (who, response.status_code)


# --- Reading by public id -------------------------------------------------------------------


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_estimate_permalinks_open_only_for_those_the_table_allows(world, visibility):
    estimate = world.estimates[visibility]
    url = f"/e/{estimate.public_id}/"
    assert browser(world.alice).get(url).status_code == 200
    for who, user in people(world).items():
        response = browser(user).get(url)
        if readers(world, visibility)[who]:
            assert response.status_code == 200, who
            assert estimate.title in response.content.decode()
        else:
            assert response.status_code == 404, who
            assert estimate.title not in response.content.decode()


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_profile_pages_open_only_for_those_the_table_allows(world, visibility):
    profile = world.profiles[visibility]
    url = f"/profiles/{profile.public_id}/"
    assert browser(world.alice).get(url).status_code == 200
    for who, user in people(world).items():
        response = browser(user).get(url)
        if readers(world, visibility)[who]:
            assert response.status_code == 200, who
        else:
            assert response.status_code in (302, 404), who
            assert profile.name not in response.content.decode()


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_the_api_by_public_id_follows_the_same_table(world, visibility):
    estimate = world.estimates[visibility]
    url = f"/api/v1/estimates/by-public-id/{estimate.public_id}/"
    assert api(world.alice).get(url).status_code == 200
    for who, user in people(world).items():
        response = api(user).get(url)
        if readers(world, visibility)[who]:
            assert response.status_code == 200, who
        else:
            assert response.status_code == 404, who


# --- Reading by id (the API) ------------------------------------------------------------------


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_api_reads_by_id_show_team_items_to_bob_and_nothing_else(world, visibility):
    for kind, items in (("profiles", world.profiles), ("estimates", world.estimates)):
        url = f"/api/v1/{kind}/{items[visibility].pk}/"
        assert api(world.alice).get(url).status_code == 200
        # By id is for listing members: a link item is read through its permalink only.
        bob_reads = visibility == Visibility.TEAM
        assert api(world.bob).get(url).status_code == (200 if bob_reads else 404), (kind, "bob")
        assert api(world.charlie).get(url).status_code == 404, (kind, "charlie")
        assert api(None).get(url).status_code == 401, (kind, "anonymous")


# --- Writing: edit, delete, share ---------------------------------------------------------


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_nobody_but_alice_edits_or_deletes_her_estimates_in_the_pages(world, visibility):
    estimate = world.estimates[visibility]
    edit, delete = f"/e/{estimate.public_id}/edit/", f"/e/{estimate.public_id}/delete/"
    assert browser(world.alice).get(edit).status_code == 200
    for who, user in people(world).items():
        client = browser(user)
        assert_denied(client.get(edit), who)
        response = client.post(
            edit,
            {"title": "pwned", "notes": "", "visibility": Visibility.LINK, "team": ""},
        )
        assert_denied(response, who)
        assert_denied(client.post(delete), who)
    estimate.refresh_from_db()
    assert (estimate.title, estimate.visibility) == (f"alice-{visibility}-estimate", visibility)


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_nobody_but_alice_edits_or_deletes_her_profiles_in_the_pages(world, visibility):
    profile = world.profiles[visibility]
    edit = f"/profiles/{profile.public_id}/edit/"
    delete = f"/profiles/{profile.public_id}/delete/"
    assert browser(world.alice).get(edit).status_code == 200
    for who, user in people(world).items():
        client = browser(user)
        assert_denied(client.get(edit), who)
        assert_denied(client.post(edit, {"name": "pwned", "visibility": Visibility.LINK}), who)
        assert_denied(client.post(delete), who)
    profile.refresh_from_db()
    assert (profile.name, profile.visibility) == (f"alice-{visibility}-profile", visibility)


@pytest.mark.parametrize("visibility", VISIBILITIES)
def test_nobody_but_alice_edits_shares_or_deletes_through_the_api(world, visibility):
    for kind, items in (("profiles", world.profiles), ("estimates", world.estimates)):
        url = f"/api/v1/{kind}/{items[visibility].pk}/"
        for who, user in people(world).items():
            client = api(user)
            expected = (401,) if user is None else (403, 404)
            for change in ({"visibility": Visibility.LINK}, {"name": "pwned", "title": "pwned"}):
                assert client.patch(url, change, format="json").status_code in expected, who
            assert client.delete(url).status_code in expected, (kind, who)
    for visibility_, profile in world.profiles.items():
        profile.refresh_from_db()
        assert (profile.name, profile.visibility) == (f"alice-{visibility_}-profile", visibility_)
    for visibility_, estimate in world.estimates.items():
        estimate.refresh_from_db()
        assert (estimate.title, estimate.visibility) == (
            f"alice-{visibility_}-estimate",
            visibility_,
        )


def test_nobody_shares_their_own_things_into_a_team_they_are_not_in(world):
    mine = EstimateFactory(owner=world.charlie, title="charlie's")
    response = browser(world.charlie).post(
        f"/e/{mine.public_id}/edit/",
        {"title": "charlie's", "notes": "", "visibility": Visibility.TEAM, "team": world.team.pk},
    )
    assert response.status_code in (200, 400)  # the form again, with an error on the team
    api_response = api(world.charlie).post(
        "/api/v1/estimates/",
        {
            "model": {"architecture": {**TINY_ARCHITECTURE}},
            "visibility": Visibility.TEAM,
            "team": world.team.pk,
        },
        format="json",
    )
    assert api_response.status_code == 400
    mine.refresh_from_db()
    assert mine.team is None and mine.visibility == Visibility.PRIVATE
    assert not Estimate.objects.filter(owner=world.charlie, team=world.team).exists()


def test_bulk_delete_removes_only_the_senders_own(world):
    ids = [estimate.public_id for estimate in world.estimates.values()]
    for user in (world.bob, world.charlie):
        browser(user).post("/history/delete/", {"ids": ids, "confirm": "yes"})
    assert Estimate.objects.filter(owner=world.alice).count() == 3
    anonymous = browser(None).post("/history/delete/", {"ids": ids, "confirm": "yes"})
    assert anonymous.status_code == 302
    assert Estimate.objects.filter(owner=world.alice).count() == 3


def test_duplicating_copies_only_what_one_may_read(world):
    private = world.profiles[Visibility.PRIVATE]
    before = ModelProfile.objects.count()
    response = browser(world.charlie).post(f"/profiles/{private.public_id}/duplicate/")
    assert response.status_code == 404
    assert ModelProfile.objects.count() == before


# --- Lists, filters, exports, compare -------------------------------------------------------


def _listed(response, world: World) -> set[str]:
    """Alice's names and titles that the response shows (exports stream their rows)."""
    if response.streaming:
        text = b"".join(response.streaming_content).decode()
    else:
        text = response.content.decode()
    names = [p.name for p in world.profiles.values()] + [e.title for e in world.estimates.values()]
    return {name for name in names if name in text}


def test_lists_show_bob_the_team_items_and_charlie_nothing(world):
    team_items = {"alice-team-profile", "alice-team-estimate"}
    team_id = world.team.pk
    private_profile = world.profiles[Visibility.PRIVATE].pk
    pages = [
        "/history/",
        f"/history/?team={team_id}",
        f"/history/?profile={private_profile}",
        "/history/export.csv",
        f"/history/export.csv?team={team_id}",
        "/history/export.json",
        "/profiles/",
        f"/profiles/?team={team_id}",
    ]
    for url in pages:
        assert _listed(browser(world.bob).get(url), world) <= team_items, url
        assert _listed(browser(world.charlie).get(url), world) == set(), url
        assert _listed(browser(None).get(url), world) == set(), url
    # The pages do list things: Bob sees the team's, the owner her own.
    assert _listed(browser(world.bob).get("/history/export.csv"), world) == {"alice-team-estimate"}
    assert "alice-team-profile" in _listed(browser(world.bob).get("/profiles/"), world)
    assert _listed(browser(world.alice).get("/history/"), world) >= {"alice-private-estimate"}


def test_api_lists_and_filters_show_bob_the_team_items_and_charlie_nothing(world):
    team_items = {"alice-team-profile", "alice-team-estimate"}
    team_id = world.team.pk
    urls = [
        "/api/v1/profiles/",
        f"/api/v1/profiles/?team={team_id}",
        "/api/v1/estimates/",
        f"/api/v1/estimates/?team={team_id}",
        f"/api/v1/estimates/?profile={world.profiles[Visibility.PRIVATE].pk}",
        f"/api/v1/estimates/?profile={world.profiles[Visibility.LINK].pk}",
    ]
    for url in urls:
        assert _listed(api(world.bob).get(url), world) <= team_items, url
        assert _listed(api(world.charlie).get(url), world) == set(), url
        assert api(None).get(url).status_code == 401
    assert _listed(api(world.alice).get("/api/v1/estimates/"), world) >= {"alice-private-estimate"}


def test_compare_refuses_an_estimate_one_may_not_read(world):
    mine = EstimateFactory(owner=world.charlie, title="charlie's")
    private = world.estimates[Visibility.PRIVATE]
    url = f"/compare/?ids={mine.public_id},{private.public_id}"
    response = browser(world.charlie).get(url)
    assert response.status_code == 404
    assert private.title not in response.content.decode()


def test_the_calculator_and_api_do_not_resolve_other_peoples_profiles(world):
    private = world.profiles[Visibility.PRIVATE]
    for user in (world.charlie, None):
        page = browser(user).get("/", {"model": "profile", "profile": private.pk})
        assert page.status_code == 200
        assert private.name not in page.content.decode()
        response = api(user).post(
            "/api/v1/calculate", {"model": {"profile": private.pk}}, format="json"
        )
        assert response.status_code == 400
        assert "model" in str(response.json())


# --- Teams ------------------------------------------------------------------------------------


def test_teams_are_private_to_members_and_run_by_owners(world):
    slug = world.team.slug
    bob_membership = Membership.objects.get(team=world.team, user=world.bob)
    alice_membership = Membership.objects.get(team=world.team, user=world.alice)
    assert browser(world.bob).get(f"/teams/{slug}/").status_code == 200
    assert browser(world.charlie).get(f"/teams/{slug}/").status_code == 404
    assert api(world.charlie).get(f"/api/v1/teams/{slug}/").status_code == 404
    for user in (world.bob, world.charlie):
        client = browser(user)
        for url, data in (
            (f"/teams/{slug}/members/", {"username": user.username}),
            (f"/teams/{slug}/members/{alice_membership.pk}/role/", {"role": Role.MEMBER}),
            (f"/teams/{slug}/members/{alice_membership.pk}/remove/", {}),
            (f"/teams/{slug}/delete/", {}),
        ):
            assert client.post(url, data).status_code in (403, 404), (user.username, url)
    # Charlie could not add himself; Bob could not promote himself or remove Alice.
    assert not Membership.objects.filter(team=world.team, user=world.charlie).exists()
    bob_membership.refresh_from_db()
    assert bob_membership.role == Role.MEMBER
    assert Membership.objects.filter(team=world.team, user=world.alice, role=Role.OWNER).exists()
