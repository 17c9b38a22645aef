"""Writes: saving and sharing estimates and profiles, teams and their members."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from calculator.domain import services
from calculator.domain.calculations import calculation_run
from calculator.domain.errors import Forbidden
from calculator.models import Estimate, Membership, ModelProfile, Role, Team, Visibility
from tests.factories import MembershipFactory, ModelProfileFactory, TeamFactory
from tests.sharing.conftest import TINY, TINY_KV_CACHE_BYTES, TINY_PARAMETERS, TINY_WEIGHT_BYTES


def _calculation(user, model=None):
    payload = {"model": model or {"architecture": dict(TINY)}, "runtime_overhead_bytes": 0}
    return calculation_run(user=user, payload=payload)


def test_it_saves_the_recomputed_result_with_its_snapshot(alice):
    estimate = services.estimate_save(user=alice, calculation=_calculation(alice), title="Tiny")
    estimate.refresh_from_db()
    assert estimate.result["parameters"]["total"] == TINY_PARAMETERS
    assert estimate.result["breakdown"]["weights"] == TINY_WEIGHT_BYTES
    assert estimate.result["breakdown"]["kv_cache"] == TINY_KV_CACHE_BYTES
    assert estimate.total_bytes == sum(estimate.result["breakdown"].values())
    assert estimate.architecture == {"architecture": TINY}
    assert estimate.inputs["sequence_length"] == 2048  # the default, filled in
    assert (estimate.mode, estimate.method) == ("inference", "detailed")
    assert len(estimate.public_id) >= 16


def test_it_refuses_to_share_with_a_team_the_user_is_not_in(charlie, team):
    with pytest.raises(ValidationError) as error:
        services.estimate_save(
            user=charlie, calculation=_calculation(charlie), visibility=Visibility.TEAM, team=team
        )
    assert "team" in error.value.message_dict


def test_it_needs_a_team_for_team_visibility(alice):
    with pytest.raises(ValidationError) as error:
        services.estimate_save(
            user=alice, calculation=_calculation(alice), visibility=Visibility.TEAM
        )
    assert "team" in error.value.message_dict


def test_it_changes_only_title_notes_and_sharing(alice, team):
    estimate = services.estimate_save(user=alice, calculation=_calculation(alice))
    services.estimate_update(
        user=alice, estimate=estimate, title="New", visibility=Visibility.TEAM, team=team
    )
    estimate.refresh_from_db()
    assert (estimate.title, estimate.visibility, estimate.team) == ("New", "team", team)
    with pytest.raises(ValidationError):
        services.estimate_update(user=alice, estimate=estimate, total_bytes=1)


def test_it_lets_only_writers_update_or_delete(alice, bob, estimates):
    with pytest.raises(Forbidden):
        services.estimate_update(user=bob, estimate=estimates["team"], title="Bob's now")
    with pytest.raises(Forbidden):
        services.estimate_delete(user=bob, estimate=estimates["team"])
    services.estimate_delete(user=alice, estimate=estimates["team"])
    assert not Estimate.objects.filter(pk=estimates["team"].pk).exists()


def test_it_bulk_deletes_only_the_users_own(alice, bob, estimates):
    ids = [estimate.pk for estimate in estimates.values()]
    assert services.estimate_bulk_delete(user=bob, ids=ids) == 1
    assert set(Estimate.objects.values_list("title", flat=True)) == {
        "Alice private",
        "Alice team",
        "Alice link",
    }


def test_editing_or_deleting_a_profile_leaves_saved_estimates_as_they_were(alice):
    profile = services.profile_create(user=alice, name="Tiny", architecture=dict(TINY))
    estimate = services.estimate_save(
        user=alice, calculation=_calculation(alice, {"profile": profile.pk})
    )
    saved = (estimate.result, estimate.architecture, estimate.total_bytes)
    # Twice as many layers: the profile's count changes, the estimate's does not.
    services.profile_update(user=alice, profile=profile, architecture={**TINY, "num_layers": 4})
    assert ModelProfile.objects.get(pk=profile.pk).num_parameters == TINY_PARAMETERS + 2 * 36_992
    estimate.refresh_from_db()
    assert (estimate.result, estimate.architecture, estimate.total_bytes) == saved
    services.profile_delete(user=alice, profile=profile)
    estimate.refresh_from_db()
    assert estimate.profile is None
    assert (estimate.result, estimate.architecture, estimate.total_bytes) == saved


def test_it_duplicates_a_catalog_profile_as_a_private_copy(alice):
    catalog = ModelProfileFactory(owner=None, source="catalog", slug="x/tiny", name="Tiny")
    copy = services.profile_duplicate(user=alice, profile=catalog)
    assert (copy.owner, copy.visibility, copy.source) == (alice, "private", "manual")
    assert copy.name == "Tiny (copy)"
    assert copy.num_parameters == TINY_PARAMETERS


def test_it_parses_config_json_or_says_why_not():
    assert services.parse_config_json('{"model_type": "llama"}') == {"model_type": "llama"}
    for text in ("{", "[1, 2]", '"llama"'):
        with pytest.raises(ValidationError) as error:
            services.parse_config_json(text)
        assert "config_json" in error.value.message_dict
    too_big = '{"x": "' + "a" * services.MAX_CONFIG_JSON_BYTES + '"}'
    with pytest.raises(ValidationError, match="larger than 1 MB"):
        services.parse_config_json(too_big)


# --- Teams ------------------------------------------------------------------------------------


def test_it_makes_the_creator_the_owner(alice):
    team = services.team_create(user=alice, name="Inference crew")
    assert team.slug == "inference-crew"
    assert Membership.objects.get(team=team, user=alice).role == Role.OWNER


def test_one_creators_teams_have_distinct_names(alice, bob):
    services.team_create(user=alice, name="Inference crew")
    with pytest.raises(ValidationError) as raised:
        services.team_create(user=alice, name="  inference CREW ")
    assert "already created a team named" in raised.value.message_dict["name"][0]
    # another creator may use the name; the address gets a suffix
    assert services.team_create(user=bob, name="Inference crew").slug == "inference-crew-2"


def test_the_database_refuses_a_creators_second_team_of_a_name(alice):
    Team.objects.create(name="Serving", slug="serving", created_by=alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(name="SERVING", slug="serving-2", created_by=alice)
    # teams made before creators were kept do not clash with each other
    Team.objects.create(name="Legacy", slug="legacy")
    Team.objects.create(name="Legacy", slug="legacy-2")


def test_it_adds_members_by_username_or_email_once_they_accept(alice, charlie, dave, team):
    charlies = services.team_invite(actor=alice, team=team, username_or_email="CHARLIE")
    daves = services.team_invite(actor=alice, team=team, username_or_email="dave@example.org")
    # invited is not in: nothing is shared until they accept
    assert set(team.members.values_list("username", flat=True)) == {"alice", "bob"}
    services.invitation_accept(user=charlie, invitation_id=charlies.pk)
    services.invitation_accept(user=dave, invitation_id=daves.pk)
    assert set(team.members.values_list("username", flat=True)) == {
        "alice",
        "bob",
        "charlie",
        "dave",
    }
    # a member, or nobody: the same answer, and no one to accept it
    for address in ("bob", "nobody"):
        invitation = services.team_invite(actor=alice, team=team, username_or_email=address)
        assert invitation.invitee is None


def test_it_lets_only_owners_manage_members(bob, charlie, team):
    with pytest.raises(Forbidden):
        services.team_invite(actor=bob, team=team, username_or_email="charlie")
    alices = Membership.objects.get(team=team, user__username="alice")
    with pytest.raises(Forbidden):
        services.team_member_remove(actor=bob, membership=alices)


def test_it_keeps_at_least_one_owner(alice, bob, team):
    alices = Membership.objects.get(team=team, user=alice)
    with pytest.raises(ValidationError, match="at least one owner"):
        services.team_member_set_role(actor=alice, membership=alices, role=Role.MEMBER)
    with pytest.raises(ValidationError):
        services.team_member_remove(actor=alice, membership=alices)
    bobs = Membership.objects.get(team=team, user=bob)
    services.team_member_set_role(actor=alice, membership=bobs, role=Role.OWNER)
    services.team_member_remove(actor=alice, membership=alices)  # now Alice may leave
    assert list(team.members.all()) == [bob]


def test_deleting_a_team_makes_its_items_private_to_their_owners(alice, bob, team, estimates):
    services.team_delete(actor=alice, team=team)
    estimates["team"].refresh_from_db()
    assert (estimates["team"].visibility, estimates["team"].team) == ("private", None)
    assert estimates["team"].owner == alice


def test_a_member_of_another_team_cannot_share_into_it(bob):
    other = TeamFactory()
    MembershipFactory(team=other, user=bob)
    stranger_team = TeamFactory()
    with pytest.raises(ValidationError):
        services.estimate_save(
            user=bob,
            calculation=_calculation(bob),
            visibility=Visibility.TEAM,
            team=stranger_team,
        )
