"""The history table's rows and filter selects, built in Python: the same page as before."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from calculator.models import Estimate, Visibility
from tests.factories import EstimateFactory, ModelProfileFactory


def test_each_row_shows_the_estimate_ready_to_read(visitor_client, alice, team):
    estimate = EstimateFactory(
        owner=alice,
        title="",
        model_name="Tiny Llama",
        visibility=Visibility.TEAM,
        team=team,
        total_bytes=3 * 1024**3 // 2,
    )
    Estimate.objects.filter(pk=estimate.pk).update(created=datetime(2026, 3, 4, 5, 6, tzinfo=UTC))
    html = visitor_client("alice").get(reverse("history")).content.decode()
    row = html[html.index(f'value="{estimate.public_id}"') :].split("</tr>")[0]
    # An untitled estimate is called by its model and mode (Estimate.__str__).
    assert 'aria-label="Select Tiny Llama (inference)"' in row
    assert f'<a href="/e/{estimate.public_id}/">(untitled)</a>' in row
    # 3/2 GiB = 1,610,612,736 bytes.
    assert '<td class="num" title="1610612736 bytes">1.50 GiB</td>' in row
    assert "<td>alice</td>" in row
    assert f"<td>Team · {escape(team.name)}</td>" in row  # "Alice&#x27;s team"
    assert '<time datetime="2026-03-04T05:06:00+00:00">2026-03-04 05:06</time>' in row


def test_the_profile_select_marks_the_chosen_one_and_escapes_names(visitor_client, alice):
    chosen = ModelProfileFactory(owner=alice, name="<b>Mine</b> & co")
    html = (
        visitor_client("alice")
        .get(reverse("history"), {"profile": chosen.public_id})
        .content.decode()
    )
    select = html[html.index('<select name="profile" id="id_profile">') :].split("</select>")[0]
    assert '<option value="">Any profile</option>' in select
    assert (
        f'<option value="{chosen.public_id}" selected>&lt;b&gt;Mine&lt;/b&gt; &amp; co</option>'
    ) in select
    assert "<b>" not in select


def test_a_filter_that_is_not_understood_says_so_beside_it(visitor_client):
    html = visitor_client("alice").get(reverse("history"), {"created_after": "yesterday"})
    html = html.content.decode()
    field = html[html.index('<label for="id_created_after">From:</label>') :].split("</div>")[0]
    assert (
        '<ul class="errorlist" id="id_created_after_error"><li>Enter a valid date.</li></ul>'
        in (field)
    )
    assert 'aria-invalid="true"' in field


def test_the_filter_choices_are_read_in_plain_queries(visitor_client, team):
    # Django reads a ModelChoiceField's choices through .iterator(), a server-side cursor on
    # PostgreSQL (DECLARE, FETCH, CLOSE); the history filters read theirs in one query each.
    with CaptureQueriesContext(connection) as queries:
        html = visitor_client("alice").get(reverse("history")).content.decode()
    assert [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DECLARE")] == []
    select = html[html.index('<select name="team" id="id_team">') :].split("</select>")[0]
    assert f'<option value="{team.slug}">{escape(team.name)}</option>' in select


# What templates/calculator/estimates/history.html rendered with template nodes before
# (commit eade001), one row at a time.
TEMPLATE_ROW = """{% for row in rows %}
              <tr>
                <td><input type="checkbox" name="ids" value="{{ row.public_id }}" aria-label="Select {{ row.label }}"></td>
                <td><a href="{{ row.url }}">{{ row.title }}</a></td>
                <td>{{ row.model_name }}</td>
                <td>{{ row.mode }}</td>
                <td>{{ row.method }}</td>
                <td class="num" title="{{ row.total_bytes }} bytes">{{ row.total }}</td>
                <td>{{ row.owner }}</td>
                <td>{{ row.shared }}</td>
                <td><time datetime="{{ row.created_iso }}">{{ row.created }}</time></td>
              </tr>
            {% endfor %}"""  # noqa: E501


def test_the_rows_written_in_python_are_the_templates_markup(alice, team):
    import re

    from django.template import Context, Template

    from calculator.presenters.history import history_rows
    from calculator.selectors import estimate_list

    estimates = [
        EstimateFactory(owner=alice, title="<script>\"x\" & 'y'</script>", model_name="A&B"),
        EstimateFactory(owner=alice, title="", visibility=Visibility.TEAM, team=team),
    ]
    rows = history_rows(estimate_list(user=alice), [estimate.pk for estimate in estimates])
    assert len(rows) == 2
    before = Template(TEMPLATE_ROW).render(Context({"rows": rows}))
    assert rows.html == re.sub(r">\s+<", "><", before.strip())
    assert "&lt;script&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/script&gt;" in rows.html
