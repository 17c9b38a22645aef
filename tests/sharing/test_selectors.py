"""The access table of docs/design.md, rule by rule, through the one helper every page uses."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from calculator.domain import selectors
from calculator.domain.errors import NotFound
from calculator.models import ProfileSource, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory


def _person(name, alice, bob, charlie):
    return {"alice": alice, "bob": bob, "charlie": charlie, "anonymous": AnonymousUser()}[name]


# (who, visibility) -> (can_read via permalink, can_write); from the table in docs/design.md.
# Alice owns the items and her team; Bob is a plain member of it; Charlie is outside.
TABLE = {
    ("alice", "private"): (True, True),
    ("alice", "team"): (True, True),
    ("alice", "link"): (True, True),
    ("bob", "private"): (False, False),
    ("bob", "team"): (True, False),
    ("bob", "link"): (True, False),
    ("charlie", "private"): (False, False),
    ("charlie", "team"): (False, False),
    ("charlie", "link"): (True, False),
    ("anonymous", "private"): (False, False),
    ("anonymous", "team"): (False, False),
    ("anonymous", "link"): (True, False),
}


@pytest.mark.parametrize(("who", "visibility"), list(TABLE))
def test_it_applies_the_table_to_estimates(who, visibility, alice, bob, charlie, estimates):
    user = _person(who, alice, bob, charlie)
    access = selectors.access_for(user, estimates[visibility], via_link=True)
    assert (access.can_read, access.can_write) == TABLE[(who, visibility)]


@pytest.mark.parametrize(("who", "visibility"), list(TABLE))
def test_it_applies_the_table_to_profiles(who, visibility, alice, bob, charlie, profiles):
    user = _person(who, alice, bob, charlie)
    access = selectors.access_for(user, profiles[visibility], via_link=True)
    assert (access.can_read, access.can_write) == TABLE[(who, visibility)]


@pytest.mark.parametrize("who", ["alice", "bob", "charlie", "anonymous"])
def test_it_lets_everyone_read_and_nobody_write_the_catalog(who, alice, bob, charlie):
    catalog = ModelProfileFactory(owner=None, source=ProfileSource.CATALOG, slug="x/tiny")
    access = selectors.access_for(_person(who, alice, bob, charlie), catalog, via_link=False)
    assert (access.can_read, access.can_write) == (True, False)


def test_it_gives_team_owners_write_access_to_members_team_items(alice, bob, team):
    bobs = EstimateFactory(owner=bob, visibility=Visibility.TEAM, team=team)
    assert selectors.access_for(alice, bobs, via_link=True).can_write


def test_it_does_not_let_an_outsider_read_a_link_item_except_by_its_link(charlie, estimates):
    assert not selectors.access_for(charlie, estimates["link"], via_link=False).can_read


def test_it_lists_own_and_team_items_only(alice, bob, charlie, estimates):
    titles = {
        who: set(selectors.estimate_list(user=u).values_list("title", flat=True))
        for who, u in (("alice", alice), ("bob", bob), ("charlie", charlie))
    }
    assert titles["alice"] == {"Alice private", "Alice team", "Alice link"}
    # A link item is never listed for anyone but its owner, not even for a teammate.
    assert titles["bob"] == {"Alice team", "Bob private"}
    assert titles["charlie"] == set()
    assert not selectors.estimate_list(user=AnonymousUser()).exists()


def test_it_lists_profiles_with_the_catalog(alice, charlie, profiles):
    catalog = ModelProfileFactory(owner=None, source=ProfileSource.CATALOG, slug="x/tiny")
    listed = set(selectors.profile_list(user=charlie))
    assert catalog in listed
    assert not listed & set(profiles.values())
    mine = set(selectors.profile_list(user=alice, include_catalog=False))
    assert mine == {profiles["private"], profiles["team"], profiles["link"]}


@pytest.mark.parametrize("write", [False, True])
def test_it_raises_404_for_what_cannot_be_read_or_written(bob, estimates, write):
    with pytest.raises(NotFound):
        selectors.estimate_get_for_user(
            user=bob, public_id=estimates["private"].public_id, write=write
        )
    with pytest.raises(NotFound):
        selectors.estimate_get_for_user(user=bob, public_id=estimates["team"].public_id, write=True)
    estimate, access = selectors.estimate_get_for_user(
        user=bob, public_id=estimates["team"].public_id
    )
    assert estimate == estimates["team"] and not access.can_write


def test_it_raises_404_for_unknown_public_ids(alice):
    with pytest.raises(NotFound):
        selectors.estimate_get_for_user(user=alice, public_id="no-such-id")
    with pytest.raises(NotFound):
        selectors.profile_get_for_user(user=alice, public_id="no-such-id")


def test_it_shows_a_team_its_team_and_link_items_only_to_members(alice, bob, charlie, team):
    shared = EstimateFactory(owner=bob, visibility=Visibility.TEAM, team=team)
    filed = EstimateFactory(owner=bob, visibility=Visibility.LINK, team=team)
    EstimateFactory(owner=bob, visibility=Visibility.PRIVATE, team=team)
    estimates, profiles = selectors.team_shared_items(user=alice, team=team)
    assert set(estimates) == {shared, filed}
    assert not profiles.exists()
    estimates, _ = selectors.team_shared_items(user=charlie, team=team)
    assert not estimates.exists()


def test_it_finds_a_team_only_for_its_members(alice, bob, charlie, team):
    assert selectors.team_get_for_user(user=alice, slug=team.slug) == (team, "owner")
    assert selectors.team_get_for_user(user=bob, slug=team.slug) == (team, "member")
    for outsider in (charlie, AnonymousUser()):
        with pytest.raises(NotFound):
            selectors.team_get_for_user(user=outsider, slug=team.slug)
