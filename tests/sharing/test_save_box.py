"""The calculator's save box, written in Python (calculator/templatetags/sharing.py): the same
HTML as Django's form templates write for the same form, and the user's teams read once."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from calculator.forms.estimates import SAVE_DRAFT_SESSION_KEY, SAVE_PREFIX, EstimateDetailsForm
from calculator.models import Team
from calculator.templatetags.sharing import save_form_fields
from tests.factories import MembershipFactory, TeamFactory


def _same_markup(html: str) -> str:
    """HTML with the white space between tags (Django's templates' line breaks) taken out."""
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", html)).strip()


def _by_django(form: EstimateDetailsForm) -> str:
    return "".join(f'<div class="field">{field.as_field_group()}</div>' for field in form)


@pytest.fixture
def teams(alice, team):
    other = TeamFactory(name='Zeta <b>&"', slug="zeta")
    MembershipFactory(team=other, user=alice)
    return [(team.slug, team.name) for team in Team.objects.filter(memberships__user=alice)]


DRAFTS = [
    None,
    {"title": 'A "quoted" <title>', "notes": "\nfirst line\n<b>x</b>", "visibility": "team"},
    {"title": "", "notes": "", "visibility": "link", "team": "zeta"},
    {"title": "x", "notes": "y", "visibility": "bogus", "team": "no-such-team"},
    {"visibility": "", "team": ""},
]


@pytest.mark.parametrize("draft", DRAFTS)
def test_it_writes_what_django_s_templates_write(alice, teams, draft):
    form = EstimateDetailsForm(prefix=SAVE_PREFIX, user=alice, initial=draft)
    ours = save_form_fields(form, teams)
    assert _same_markup(ours) == _same_markup(_by_django(form))
    without_ids = EstimateDetailsForm(prefix=SAVE_PREFIX, user=alice, initial=draft, auto_id=False)
    assert _same_markup(save_form_fields(without_ids, teams)) == _same_markup(
        _by_django(without_ids)
    )
    # the names, ids and labels the save view and the browser tests use
    for name in ("title", "notes", "visibility", "team"):
        assert f'name="save-{name}"' in ours
    for label in ('for="id_save-title">Title:', 'for="id_save-notes">Notes:', "Visibility:"):
        assert label in ours


def test_a_bound_form_shows_its_errors_as_django_writes_them(alice, teams):
    form = EstimateDetailsForm(
        {"save-visibility": "team", "save-team": ""}, prefix=SAVE_PREFIX, user=alice
    )
    assert not form.is_valid()
    ours = save_form_fields(form, teams)
    assert "Choose the team to share with." in ours and 'aria-invalid="true"' in ours
    assert _same_markup(ours) == _same_markup(_by_django(form))


def _fragment(client, **query):
    return client.get(reverse("calculator"), query, headers={"HX-Request": "true"})


def test_the_fragment_reads_the_user_s_teams_once(client, alice, teams, catalog):
    client.force_login(alice)
    for query in ({"batch_size": "3"}, {"batch_size": "3"}):  # computed, then kept
        with CaptureQueriesContext(connection) as queries:
            response = _fragment(client, **query)
        assert response.status_code == 200
        assert 'name="save-team"' in response.text
        team_reads = [
            query["sql"]
            for query in queries.captured_queries
            if '"calculator_team"' in query["sql"] or '"calculator_membership"' in query["sql"]
        ]
        assert len(team_reads) == 1, team_reads
    assert response.text.count("<option") == 3  # "No team" and Alice's two


def test_the_save_box_follows_a_draft_and_the_teams_on_every_request(client, alice, team):
    client.force_login(alice)
    session = client.session
    session[SAVE_DRAFT_SESSION_KEY] = {
        "fields": {"title": "Draft <t>", "notes": "", "visibility": "team", "team": team.slug},
        "at": time.time(),
    }
    session.save()
    text = _fragment(client, model="catalog").text
    assert 'value="Draft &lt;t&gt;"' in text and '<details class="card save-estimate" open>' in text
    assert f'<option value="{team.slug}" selected>' in text
    team.memberships.filter(user=alice).delete()  # she leaves: gone from the next box
    text = _fragment(client, model="catalog").text
    assert f'value="{team.slug}"' not in text


def test_the_hidden_inputs_are_the_templates_markup():
    # what templates/calculator/estimates/save_form.html wrote with two template loops before
    from django.http import QueryDict
    from django.template import Context, Template

    from calculator.templatetags.sharing import hidden_inputs

    query = QueryDict(
        "catalog=meta-llama/Llama-3.1-8B&lora_target_modules=q_proj&lora_target_modules=v_proj"
        "&title=%22%3E%3Cscript%3E%26%27&empty="
    )
    before = Template(
        "{% for name, values in query.lists %}{% for value in values %}"
        '<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}{% endfor %}'
    ).render(Context({"query": query}))
    assert hidden_inputs(query) == before
    assert 'value="&quot;&gt;&lt;script&gt;&amp;&#x27;"' in hidden_inputs(query)
    assert hidden_inputs(query).count('name="lora_target_modules"') == 2
