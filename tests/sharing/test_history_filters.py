"""The history page's filter form: the same fields and answers as before, for fewer reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calculator.models import Estimate, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory


def _titles(response) -> list[str]:
    return [row.title for row in response.context["rows"]]


def _tables_read(queries, table: str) -> int:
    return sum(1 for q in queries.captured_queries if f'FROM "{table}"' in q["sql"])


def test_the_form_shows_the_same_fields_in_the_same_order(visitor_client):
    html = visitor_client("alice").get(reverse("history")).content.decode()
    labels = [
        ("q", "Search"),
        ("whose", "Whose"),
        ("mode", "Mode"),
        ("method", "Method"),
        ("profile", "Profile"),
        ("team", "Team"),
        ("created_after", "From"),
        ("created_before", "To"),
        ("sort", "Sort"),
    ]
    positions = [html.index(f'<label for="id_{name}">{label}:</label>') for name, label in labels]
    assert positions == sorted(positions)
    assert '<input type="date" name="created_before" id="id_created_before">' in html
    assert '<input type="date" name="created_after" id="id_created_after">' in html
    assert (
        '<select name="whose" id="id_whose"><option value="" selected>Mine and my teams&#x27;'
        "</option>"
    ) in html
    # The sort has no empty choice: newest first is shown for an empty value.
    assert '<select name="sort" id="id_sort"><option value="newest">Newest first</option>' in html


@pytest.mark.parametrize("typed", ["2026-03-05", "03/05/2026"])
def test_the_dates_are_shown_as_the_date_picker_reads_them(visitor_client, typed):
    """A date input takes and shows ISO dates only: a date the address gives in another
    accepted format comes back as ISO, not as an empty picker."""
    html = visitor_client("alice").get(reverse("history"), {"created_after": typed}).text
    assert '<input type="date" name="created_after" value="2026-03-05"' in html


def test_a_first_visit_reads_the_team_ids_once(visitor_client, team):
    with CaptureQueriesContext(connection) as queries:
        html = visitor_client("bob").get(reverse("history")).content.decode()
    # For the list (selectors._listed_q) and the profile and team choices: one read.
    assert _tables_read(queries, "calculator_membership") == 1
    assert _tables_read(queries, "calculator_modelprofile") == 1
    assert _tables_read(queries, "calculator_team") == 1
    assert '<option value="alices-team">Alice&#x27;s team</option>' in html


def test_someone_in_no_team_gets_the_team_select_without_a_query(visitor_client, charlie):
    with CaptureQueriesContext(connection) as queries:
        html = visitor_client("charlie").get(reverse("history")).content.decode()
    assert _tables_read(queries, "calculator_team") == 0
    assert (
        '<select name="team" id="id_team"><option value="" selected>Any team</option></select>'
        in (html)
    )


def test_an_export_reads_only_the_choices_it_filters_by(visitor_client, alice, team):
    EstimateFactory(owner=alice, title="Shared", visibility=Visibility.TEAM, team=team)
    EstimateFactory(owner=alice, title="Mine")
    client = visitor_client("alice")
    url = reverse("history-export", args=["json"])
    with CaptureQueriesContext(connection) as queries:
        rows = json.loads(b"".join(client.get(url).streaming_content))
    assert {row["title"] for row in rows} == {"Shared", "Mine"}
    assert _tables_read(queries, "calculator_modelprofile") == 0
    assert _tables_read(queries, "calculator_team") == 0
    with CaptureQueriesContext(connection) as queries:
        rows = json.loads(b"".join(client.get(url, {"team": team.slug}).streaming_content))
    assert [row["title"] for row in rows] == ["Shared"]
    assert _tables_read(queries, "calculator_team") == 1


def test_a_profile_the_user_may_not_list_is_ignored(visitor_client, alice, team):
    private = ModelProfileFactory(owner=alice, name="Alice private profile")
    shared = ModelProfileFactory(
        owner=alice, name="Alice team profile", visibility=Visibility.TEAM, team=team
    )
    EstimateFactory(
        owner=alice, title="On the shared profile", profile=shared, visibility="team", team=team
    )
    EstimateFactory(owner=alice, title="Shared, other profile", visibility="team", team=team)
    EstimateFactory(owner=alice, title="On the private one", profile=private)
    client = visitor_client("bob")
    # Bob sees the two team estimates; Alice's private profile is no choice of his, so that
    # filter is ignored and said to be.
    response = client.get(reverse("history"), {"profile": private.public_id})
    assert set(_titles(response)) == {"On the shared profile", "Shared, other profile"}
    assert "some filters were not understood and are ignored" in response.text
    assert f'<option value="{private.public_id}"' not in response.text
    response = client.get(reverse("history"), {"profile": shared.public_id})
    assert _titles(response) == ["On the shared profile"]
    assert "not understood" not in response.text


def test_the_dates_take_in_whole_days(visitor_client, alice):
    for title, moment in (
        ("first thing", datetime(2026, 3, 4, 0, 0, tzinfo=UTC)),
        ("last thing", datetime(2026, 3, 4, 23, 59, 59, tzinfo=UTC)),
        ("next day", datetime(2026, 3, 5, 0, 0, tzinfo=UTC)),
    ):
        estimate = EstimateFactory(owner=alice, title=title)
        Estimate.objects.filter(pk=estimate.pk).update(created=moment)
    client = visitor_client("alice")
    url = reverse("history")
    # TIME_ZONE is UTC (llmtools/settings.py): "To 2026-03-04" runs to the end of that day.
    assert _titles(client.get(url, {"created_before": "2026-03-04"})) == [
        "last thing",
        "first thing",
    ]
    assert _titles(client.get(url, {"created_after": "2026-03-05"})) == ["next day"]
    assert _titles(
        client.get(url, {"created_after": "2026-03-04", "created_before": "2026-03-04"})
    ) == ["last thing", "first thing"]


def test_each_bad_value_is_ignored_alone(visitor_client, alice):
    EstimateFactory(owner=alice, title="Trained", mode="training")
    EstimateFactory(owner=alice, title="Served", mode="inference")
    response = visitor_client("alice").get(
        reverse("history"), {"mode": "training", "sort": "sideways", "whose": "theirs"}
    )
    assert _titles(response) == ["Trained"]
    assert "some filters were not understood and are ignored" in response.text
