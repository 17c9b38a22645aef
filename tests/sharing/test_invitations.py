"""Team invitations (issue 19): adding someone to a team needs their consent. An owner invites
by username or email and is answered the same whoever it names; the invitee accepts or
declines on their own page; a pending invitation shares nothing, on the pages or the API."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from calculator.domain import services
from calculator.models import Membership, Role, TeamInvitation, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory


def _invite(client, team, address: str, role: str = "member"):
    return client.post(
        reverse("team-member-add", args=[team.slug]), {"username_or_email": address, "role": role}
    )


def test_a_pending_invitation_shares_nothing(visitor_client, alice, charlie, team):
    estimate = EstimateFactory(
        owner=alice, title="Team plan", visibility=Visibility.TEAM, team=team
    )
    profile = ModelProfileFactory(
        owner=alice, name="Team model", visibility=Visibility.TEAM, team=team
    )
    assert _invite(visitor_client("alice"), team, "charlie").status_code == 302
    client = visitor_client("charlie")
    assert client.get(team.get_absolute_url()).status_code == 404
    assert client.get(estimate.get_absolute_url()).status_code == 404
    assert client.get(profile.get_absolute_url()).status_code == 404
    assert "Team plan" not in client.get(reverse("history")).text
    assert "Team model" not in client.get(reverse("profile-list")).text
    assert "Alice&#x27;s team" not in client.get(reverse("team-list")).text.split("My teams")[1]


def test_the_api_shows_no_invitee(alice, charlie, team):
    services.team_invite(actor=alice, team=team, username_or_email="charlie@example.org")
    api = APIClient()
    api.force_authenticate(alice)
    members = {m["username"] for m in api.get(f"/api/v1/teams/{team.slug}/").json()["members"]}
    assert members == {"alice", "bob"}
    listed = api.get("/api/v1/teams/").json()
    assert "charlie" not in str(listed)
    api.force_authenticate(charlie)
    assert api.get("/api/v1/teams/").json()["count"] == 0
    assert api.get(f"/api/v1/teams/{team.slug}/").status_code == 404


def test_the_invitee_accepts_from_their_own_page(visitor_client, alice, charlie, team):
    _invite(visitor_client("alice"), team, "CHARLIE", role="owner")
    client = visitor_client("charlie")
    assert "1 pending team invitation" in client.get(reverse("team-list")).text
    page = client.get(reverse("team-invitations")).text
    assert "Alice&#x27;s team" in page and "alice" in page and "Owner" in page
    invitation = TeamInvitation.objects.get(invitee=charlie)
    response = client.post(reverse("team-invitation-accept", args=[invitation.pk]))
    assert response["Location"] == team.get_absolute_url()
    assert Membership.objects.get(team=team, user=charlie).role == Role.OWNER
    assert not TeamInvitation.objects.exists()


def test_the_invitee_declines(visitor_client, charlie, team):
    _invite(visitor_client("alice"), team, "charlie")
    invitation = TeamInvitation.objects.get(invitee=charlie)
    client = visitor_client("charlie")
    response = client.post(reverse("team-invitation-decline", args=[invitation.pk]))
    assert response["Location"] == reverse("team-invitations")
    assert not TeamInvitation.objects.exists()
    assert not Membership.objects.filter(team=team, user=charlie).exists()


@pytest.mark.parametrize("who", ["alice", "bob", "anonymous"])
def test_only_the_invitee_answers_an_invitation(who, visitor_client, charlie, team):
    _invite(visitor_client("alice"), team, "charlie")
    invitation = TeamInvitation.objects.get(invitee=charlie)
    client = visitor_client(who)
    for name in ("team-invitation-accept", "team-invitation-decline"):
        response = client.post(reverse(name, args=[invitation.pk]))
        assert response.status_code == (302 if who == "anonymous" else 404)
    if who != "anonymous":
        assert "No invitations." in client.get(reverse("team-invitations")).text
    assert TeamInvitation.objects.filter(pk=invitation.pk).exists()
    assert not Membership.objects.filter(team=team, user=charlie).exists()


def test_an_owner_cancels_a_pending_invitation(visitor_client, charlie, team):
    client = visitor_client("alice")
    _invite(client, team, "charlie@example.org")
    _invite(client, team, "nobody@example.org")
    page = client.get(team.get_absolute_url()).text
    # listed by what was typed, known or not: never by whom it names
    assert "charlie@example.org" in page and "nobody@example.org" in page
    assert ">charlie<" not in page
    invitation = TeamInvitation.objects.get(invitee=charlie)
    cancel = reverse("team-invitation-cancel", args=[team.slug, invitation.pk])
    # a member cannot
    assert visitor_client("bob").post(cancel).status_code == 404
    assert TeamInvitation.objects.filter(pk=invitation.pk).exists()
    assert visitor_client("alice").post(cancel).status_code == 302
    assert not TeamInvitation.objects.filter(pk=invitation.pk).exists()
    assert "No invitations." in visitor_client("charlie").get(reverse("team-invitations")).text


def test_a_members_page_has_no_invitations(visitor_client, team):
    _invite(visitor_client("alice"), team, "charlie")
    page = visitor_client("bob").get(team.get_absolute_url()).text
    assert "Pending invitations" not in page and "charlie" not in page


def test_inviting_again_keeps_one_invitation(alice, charlie, team):
    services.team_invite(actor=alice, team=team, username_or_email="charlie")
    services.team_invite(actor=alice, team=team, username_or_email="Charlie", role=Role.OWNER)
    invitation = TeamInvitation.objects.get()
    assert invitation.role == Role.OWNER


def test_an_invitation_lapses_with_its_senders_ownership(alice, bob, charlie, team):
    bobs = Membership.objects.get(team=team, user=bob)
    services.team_member_set_role(actor=alice, membership=bobs, role=Role.OWNER)
    invitation = services.team_invite(actor=bob, team=team, username_or_email="charlie")
    services.team_member_set_role(actor=alice, membership=bobs, role=Role.MEMBER)
    assert services.invitation_accept(user=charlie, invitation_id=invitation.pk) is None
    assert not Membership.objects.filter(team=team, user=charlie).exists()


def test_no_team_takes_the_invitations_address(alice):
    assert services.team_create(user=alice, name="Invitations").slug == "invitations-2"
