"""Team pages for the four visitors; members, roles, leaving and deleting."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from calculator.models import Membership, Role, Team, TeamInvitation, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory, UserFactory

# who -> status of the team page: members see it, everyone else gets a 404 (or the login page).
TEAM_PAGE = {"alice": 200, "bob": 200, "charlie": 404, "anonymous": 302}


@pytest.mark.parametrize("who", list(TEAM_PAGE))
def test_the_team_page_is_for_members(who, visitor_client, team):
    response = visitor_client(who).get(team.get_absolute_url())
    assert response.status_code == TEAM_PAGE[who]
    if who == "anonymous":
        assert response["Location"].startswith(reverse("login"))


def test_the_team_page_lists_members_and_what_is_shared(visitor_client, alice, bob, team):
    EstimateFactory(owner=alice, title="For the team", visibility=Visibility.TEAM, team=team)
    EstimateFactory(owner=alice, title="Filed link", visibility=Visibility.LINK, team=team)
    EstimateFactory(owner=alice, title="Kept private", team=team)
    ModelProfileFactory(owner=bob, name="Bob's shared model", visibility="team", team=team)
    response = visitor_client("bob").get(team.get_absolute_url())
    assert "For the team" in response.text and "Filed link" in response.text
    assert "Kept private" not in response.text
    assert "Bob&#x27;s shared model" in response.text
    assert "alice" in response.text and "bob (you)" in response.text
    # Bob is a member, not an owner: no member management on his page.
    assert "Add member" not in response.text


def test_the_list_shows_my_teams_only(visitor_client, team):
    other = Team.objects.create(name="Charlie's own", slug="charlies-own")
    response = visitor_client("bob").get(reverse("team-list"))
    assert "Alice&#x27;s team" in response.text and other.name not in response.text
    response = visitor_client("charlie").get(reverse("team-list"))
    assert "Alice&#x27;s team" not in response.text


def test_it_creates_a_team_owned_by_its_creator(visitor_client, charlie):
    response = visitor_client("charlie").post(reverse("team-list"), {"name": "Training"})
    team = Team.objects.get(name="Training")
    assert response["Location"] == team.get_absolute_url()
    assert Membership.objects.get(team=team).user == charlie
    assert Membership.objects.get(team=team).role == Role.OWNER


def test_an_owner_invites_by_email_and_the_invitee_joins_on_accepting(
    visitor_client, charlie, team
):
    url = reverse("team-member-add", args=[team.slug])
    response = visitor_client("alice").post(
        url, {"username_or_email": "charlie@example.org", "role": "member"}
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(team=team, user=charlie).exists()
    invitation = TeamInvitation.objects.get(team=team, invitee=charlie)
    # Not yet: the team's page is not Charlie's until he accepts.
    client = visitor_client("charlie")
    assert client.get(team.get_absolute_url()).status_code == 404
    client.post(reverse("team-invitation-accept", args=[invitation.pk]))
    assert Membership.objects.get(team=team, user=charlie).role == Role.MEMBER
    assert client.get(team.get_absolute_url()).status_code == 200


def test_inviting_an_unknown_user_answers_as_for_a_known_one(visitor_client, charlie, team):
    url = reverse("team-member-add", args=[team.slug])
    client = visitor_client("alice")
    answers = []
    for address in ("nobody", "charlie", "nobody@example.org", "charlie@example.org"):
        response = client.post(url, {"username_or_email": address, "role": "member"}, follow=True)
        page = response.content.decode().replace(address, "ADDRESS")
        page = re.sub(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": ")[^"]*"', "", page)
        page = re.sub(r"<time [^>]*>[^<]*</time>|invitations/\d+/", "", page)
        answers.append((response.redirect_chain, page))
        TeamInvitation.objects.filter(team=team).delete()
    assert "If that user exists, they have been invited" in answers[0][1]
    assert all(answer == answers[0] for answer in answers)


@pytest.mark.parametrize("who", ["bob", "charlie"])
def test_non_owners_cannot_manage_the_team(who, visitor_client, alice, team):
    client = visitor_client(who)
    alices = Membership.objects.get(team=team, user=alice)
    responses = [
        client.post(
            reverse("team-member-add", args=[team.slug]),
            {"username_or_email": "charlie", "role": "owner"},
        ),
        client.post(
            reverse("team-member-role", args=[team.slug, alices.pk]),
            {f"{alices.pk}-role": "member"},
        ),
        client.post(reverse("team-member-remove", args=[team.slug, alices.pk])),
        client.post(reverse("team-delete", args=[team.slug])),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404, 404]
    assert Team.objects.filter(pk=team.pk).exists()
    assert set(team.members.values_list("username", flat=True)) == {"alice", "bob"}


def test_an_owner_changes_a_role_and_removes_a_member(visitor_client, bob, team):
    bobs = Membership.objects.get(team=team, user=bob)
    client = visitor_client("alice")
    client.post(
        reverse("team-member-role", args=[team.slug, bobs.pk]), {f"{bobs.pk}-role": "owner"}
    )
    assert Membership.objects.get(pk=bobs.pk).role == Role.OWNER
    client.post(reverse("team-member-remove", args=[team.slug, bobs.pk]))
    assert not Membership.objects.filter(pk=bobs.pk).exists()


def test_the_last_owner_cannot_step_down_or_leave(visitor_client, alice, team):
    alices = Membership.objects.get(team=team, user=alice)
    client = visitor_client("alice")
    response = client.post(
        reverse("team-member-role", args=[team.slug, alices.pk]), {f"{alices.pk}-role": "member"}
    )
    assert any("at least one owner" in str(m) for m in get_messages(response.wsgi_request))
    client.post(reverse("team-leave", args=[team.slug]))
    assert Membership.objects.get(pk=alices.pk).role == Role.OWNER


def test_a_member_leaves(visitor_client, bob, team):
    response = visitor_client("bob").post(reverse("team-leave", args=[team.slug]))
    assert response["Location"] == reverse("team-list")
    assert not Membership.objects.filter(team=team, user=bob).exists()
    assert visitor_client("bob").get(team.get_absolute_url()).status_code == 404


def test_deleting_a_team_keeps_its_items_private_to_their_owners(visitor_client, alice, team):
    estimate = EstimateFactory(owner=alice, visibility=Visibility.TEAM, team=team)
    response = visitor_client("alice").post(reverse("team-delete", args=[team.slug]))
    assert response["Location"] == reverse("team-list")
    assert not Team.objects.filter(pk=team.pk).exists()
    estimate.refresh_from_db()
    assert (estimate.visibility, estimate.team) == ("private", None)
    assert visitor_client("bob").get(estimate.get_absolute_url()).status_code == 404


def test_the_list_shows_each_teams_real_member_count(visitor_client, alice, charlie, team):
    # Alice's team: Alice and Bob; a second team of Alice's with Charlie too.
    crew = Team.objects.create(name="Serving crew", slug="serving-crew")
    for user in (alice, charlie):
        Membership.objects.create(team=crew, user=user)
    Membership.objects.create(team=Team.objects.create(name="Solo", slug="solo"), user=alice)
    response = visitor_client("alice").get(reverse("team-list"))
    counts = {team.name: team.num_members for team, _ in response.context["teams"]}
    assert counts == {"Alice's team": 2, "Serving crew": 2, "Solo": 1}
    Membership.objects.create(team=crew, user=UserFactory(username="dave"))
    response = visitor_client("alice").get(reverse("team-list"))
    assert '<td class="num">3</td>' in response.text


def test_a_second_team_of_the_same_name_is_refused_beside_the_field(visitor_client, charlie):
    client = visitor_client("charlie")
    client.post(reverse("team-list"), {"name": "Training"})
    response = client.post(reverse("team-list"), {"name": "training"})
    assert response.status_code == 400
    assert Team.objects.filter(name__iexact="training").count() == 1
    assert response.context["form"].errors["name"] == [
        "You already created a team named “training”: choose another name."
    ]
    assert "already created a team named" in response.text
    # someone else may still call their team that
    response = visitor_client("bob").post(reverse("team-list"), {"name": "Training"})
    assert response.status_code == 302
