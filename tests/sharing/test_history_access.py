"""The history lists exactly what the access table allows, whatever the order, page and filter.

The page reads its ids as a union of the access rule's parts (the user's own, each of their
teams' team items: calculator/history_queries.py's ListedIds), each part ordered and limited, then
merged. Here the expected list is worked out in Python from the rows as they are in the
database (own, or a team item of one of the user's teams), never through the code under test,
and compared with every page the history shows, in order: for the owner, teammates in one or
two teams, an outsider with a team of their own, and anonymous visitors; with and without the
capped count; and again after queryset `.update()`s, which send no signals.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from calculator.models import Estimate, Membership, Role, Visibility
from tests.factories import EstimateFactory, MembershipFactory, TeamFactory, UserFactory

PAGE_SIZE = 25


@pytest.fixture
def world(alice, bob, charlie, team):
    """Alice owns `team` (Bob a member); Bob and Dave are in `team2`; Charlie alone in his own.
    Each person saves 30 estimates: private, private but filed under a team, team items, link
    items (some filed under a team); several share a saved time and a size, so that the
    orders' last key (the id) decides between them."""
    dave = UserFactory(username="dave")
    team2 = TeamFactory(name="Second team", slug="second-team")
    MembershipFactory(team=team2, user=bob, role=Role.OWNER)
    MembershipFactory(team=team2, user=dave, role=Role.MEMBER)
    team3 = TeamFactory(name="Charlie's team", slug="charlies-team")
    MembershipFactory(team=team3, user=charlie, role=Role.OWNER)
    teams_of = {"alice": [team], "bob": [team, team2], "charlie": [team3], "dave": [team2]}
    now = timezone.now()
    number = 0
    for person in (alice, bob, charlie, dave):
        teams = teams_of[person.username]
        for index in range(30):
            kind = index % 5
            filed = teams[index % len(teams)]
            visibility, team_of_item = [
                (Visibility.PRIVATE, None),
                (Visibility.PRIVATE, filed),
                (Visibility.TEAM, filed),
                (Visibility.LINK, None),
                (Visibility.LINK, filed),
            ][kind]
            estimate = EstimateFactory(
                owner=person,
                title=f"{person.username} {index:02d}",
                visibility=visibility,
                team=team_of_item,
                mode="training" if index % 3 == 0 else "inference",
                total_bytes=1000 * (index % 4),
            )
            # three estimates at each saved time, people's rows interleaved in time
            Estimate.objects.filter(pk=estimate.pk).update(
                created=now - timedelta(minutes=number // 3)
            )
            number += 1
    return {
        "alice": alice,
        "bob": bob,
        "charlie": charlie,
        "dave": dave,
        "team": team,
        "team2": team2,
        "team3": team3,
    }


SORT_KEYS = {
    "newest": lambda row: (-row["created"].timestamp(), -row["pk"]),
    "oldest": lambda row: (row["created"].timestamp(), row["pk"]),
    "largest": lambda row: (-row["total_bytes"], -row["created"].timestamp(), -row["pk"]),
    "title": lambda row: (row["title"], -row["created"].timestamp(), -row["pk"]),
}


def _allowed(user, *, sort: str = "newest", keep=lambda row: True) -> list[str]:
    """The access table for the history, from the rows as stored: own, or a team item of one
    of the user's teams; in the order `sort` names."""
    team_ids = set(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    rows = Estimate.objects.values(
        "pk",
        "public_id",
        "owner_id",
        "visibility",
        "team_id",
        "created",
        "total_bytes",
        "title",
        "mode",
    )
    listed = [
        row
        for row in rows
        if (
            row["owner_id"] == user.pk
            or (row["visibility"] == Visibility.TEAM and row["team_id"] in team_ids)
        )
        and keep(row)
    ]
    return [row["public_id"] for row in sorted(listed, key=SORT_KEYS[sort])]


def _listed(client, query: dict) -> tuple[list[list[str]], list[int]]:
    """Every page of the history for `query`, in order: the public ids of each page's rows,
    and the count each page gave."""
    pages, counts = [], []
    number = 1
    while True:
        response = client.get(reverse("history"), {**query, "page": number})
        assert response.status_code == 200
        page = response.context["page"]
        assert page.number == number  # a page past the last would come back as the last
        pages.append([row.public_id for row in response.context["rows"]])
        counts.append(page.paginator.count)
        if not page.has_next():
            return pages, counts
        number += 1


def _assert_history_is_the_access_table(client, user, query: dict, expected: list[str]):
    pages, counts = _listed(client, query)
    shown = [public_id for page in pages for public_id in page]
    assert shown == expected  # nothing more, nothing less, in order, each once
    assert all(len(page) == PAGE_SIZE for page in pages[:-1])
    if len(expected) > PAGE_SIZE:
        assert pages[1] == expected[PAGE_SIZE : 2 * PAGE_SIZE]  # page 2 as such
    limit = client.count_limit
    for count in counts:
        assert count == (len(expected) if len(expected) <= limit else limit + 1)


@pytest.fixture(params=[1000, 10], ids=["exact-count", "capped-count"])
def signed_in(request, client, monkeypatch):
    """A client for one person; the history's count limit left as it is, or at 10 (past which
    the pages are open-ended)."""
    monkeypatch.setattr("calculator.views.estimates.HISTORY_COUNT_LIMIT", request.param)

    def login(user):
        client.logout()
        client.force_login(user)
        client.count_limit = request.param
        return client

    return login


@pytest.mark.parametrize("sort", ["newest", "oldest", "largest", "title"])
@pytest.mark.parametrize("who", ["alice", "bob", "charlie", "dave"])
def test_every_page_lists_exactly_what_the_access_table_allows(world, signed_in, who, sort):
    user = world[who]
    query = {} if sort == "newest" else {"sort": sort}
    expected = _allowed(user, sort=sort)
    assert len(expected) > PAGE_SIZE  # there is a page 2
    _assert_history_is_the_access_table(signed_in(user), user, query, expected)


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        ({"whose": "mine"}, lambda user: lambda row: row["owner_id"] == user.pk),
        ({"whose": "shared"}, lambda user: lambda row: row["owner_id"] != user.pk),
        ({"mode": "training"}, lambda user: lambda row: row["mode"] == "training"),
        ({"q": "alice"}, lambda user: lambda row: "alice" in row["title"]),
        (
            {"team": "second-team", "sort": "oldest"},
            lambda user: (
                lambda row: row["team_id"] == user.memberships.get(team__slug="second-team").team_id
            ),
        ),
    ],
    ids=["mine", "shared", "mode", "search", "team"],
)
def test_the_filters_narrow_every_part_of_the_list(world, signed_in, query, keep):
    user = world["bob"]  # his own, and the team items of his two teams
    sort = query.get("sort", "newest")
    expected = _allowed(user, sort=sort, keep=keep(user))
    assert expected
    _assert_history_is_the_access_table(signed_in(user), user, query, expected)


def test_anonymous_visitors_are_sent_to_log_in(world, client):
    for query in ({}, {"page": 2}, {"sort": "oldest", "page": 2}):
        response = client.get(reverse("history"), query)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("sort", ["newest", "oldest"])
def test_it_holds_after_queryset_updates(world, signed_in, sort):
    """Visibility, team and membership changed with queryset `.update()` (no signals, nothing
    the page could have kept): every page follows on the next request."""
    alice, bob, charlie, dave = (world[name] for name in ("alice", "bob", "charlie", "dave"))
    query = {} if sort == "newest" else {"sort": sort}
    for user in (alice, bob, charlie, dave):  # every page seen once before the changes
        _assert_history_is_the_access_table(signed_in(user), user, query, _allowed(user, sort=sort))
    # Alice's team items private again; her private ones filed under the team shared with it;
    # Dave's link items shared with the second team; Charlie's team items moved to Alice's team
    # (which he is not in: teammates there see them, he still does as their owner).
    Estimate.objects.filter(owner=alice, visibility=Visibility.TEAM).update(
        visibility=Visibility.PRIVATE
    )
    Estimate.objects.filter(
        owner=alice, visibility=Visibility.PRIVATE, team__isnull=False, title__endswith="1"
    ).update(visibility=Visibility.TEAM)
    Estimate.objects.filter(owner=dave, visibility=Visibility.LINK).update(
        visibility=Visibility.TEAM, team=world["team2"]
    )
    Estimate.objects.filter(owner=charlie, visibility=Visibility.TEAM).update(team=world["team"])
    # Dave leaves the second team
    Membership.objects.filter(user=dave).update(user=UserFactory(username="erin"))
    for user in (alice, bob, charlie, dave):
        expected = _allowed(user, sort=sort)
        _assert_history_is_the_access_table(signed_in(user), user, query, expected)
    # the last of Bob's own made a team item of a team he is not in: still his, listed once
    mine = Estimate.objects.filter(owner=bob).order_by("-created", "-id")[:1]
    Estimate.objects.filter(pk__in=mine).update(visibility=Visibility.TEAM, team=world["team3"])
    for user in (bob, charlie):
        expected = _allowed(user, sort=sort)
        _assert_history_is_the_access_table(signed_in(user), user, query, expected)
