"""Stored input is never executed: names, notes, team names and pasted config.json values that
carry HTML and script payloads come back escaped in every page, htmx fragment, chart (SVG
text), export and the admin; CSV cells that a spreadsheet would run as formulas are quoted."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from calculator.models import ProfileSource, Role, Visibility
from tests.factories import (
    TINY_ARCHITECTURE,
    EstimateFactory,
    MembershipFactory,
    ModelProfileFactory,
    TeamFactory,
    UserFactory,
)

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAKOUT = '"><img src=x onerror=alert(2)>'
SVG = "<svg onload=alert(3)>"
PAYLOAD = f"{SCRIPT}{ATTRIBUTE_BREAKOUT}{SVG}"
# What must never appear raw in HTML: any of these would run
RAW_MARKERS = ("<script>alert", "<img src=x", "<svg onload", "onerror=alert(2)>")
FORMULA = '=HYPERLINK("http://evil.example","click")'


def assert_inert(html: str, where: str) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, (where, marker)


@pytest.fixture
def stored(db):
    """Alice, a staff member, saved payloads everywhere; Bob is in her team."""
    alice = UserFactory(username="alice", is_staff=True, is_superuser=True)
    bob = UserFactory(username="bob")
    team = TeamFactory(name=f"Team {PAYLOAD}", slug="payload-team")
    MembershipFactory(team=team, user=alice, role=Role.OWNER)
    MembershipFactory(team=team, user=bob)
    hf_config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "_name_or_path": PAYLOAD,
        "architectures": [PAYLOAD],
    }
    pasted = ModelProfileFactory(
        owner=alice,
        name=f"Pasted {PAYLOAD}",
        description=f"Notes {PAYLOAD}",
        visibility=Visibility.TEAM,
        team=team,
        source=ProfileSource.CONFIG,
        architecture=None,
        hf_config=hf_config,
        config_json_text=json.dumps(hf_config),
    )
    manual = ModelProfileFactory(owner=alice, name=f"Manual {PAYLOAD}", visibility=Visibility.LINK)
    estimates = [
        EstimateFactory(
            owner=alice,
            title=f"{prefix}{PAYLOAD}",
            notes=f"Notes {PAYLOAD}",
            model_name=f"Model {PAYLOAD}",
            visibility=Visibility.TEAM,
            team=team,
            profile=profile,
        )
        for prefix, profile in ((FORMULA, pasted), ("+1+1", manual), ("@SUM(A1)", None))
    ]
    return {
        "alice": alice,
        "bob": bob,
        "team": team,
        "profiles": [pasted, manual],
        "estimates": estimates,
    }


def pages(stored) -> list[str]:
    profile, manual = stored["profiles"]
    first, second, _ = stored["estimates"]
    return [
        "/",
        f"/?model=profile&profile={profile.pk}",
        f"/?model=profile&profile={manual.pk}",
        "/profiles/",
        f"/profiles/{profile.public_id}/",
        f"/profiles/{profile.public_id}/edit/",
        f"/profiles/{manual.public_id}/",
        f"/e/{first.public_id}/",
        f"/e/{first.public_id}/edit/",
        "/history/",
        f"/compare/?ids={first.public_id},{second.public_id}",
        "/teams/",
        f"/teams/{stored['team'].slug}/",
    ]


def test_every_page_shows_the_payloads_escaped(stored):
    for user in (stored["alice"], stored["bob"]):
        client = Client()
        client.force_login(user)
        for url in pages(stored):
            if user == stored["bob"] and url.endswith("/edit/"):
                continue  # Alice's to edit; Bob reads
            response = client.get(url)
            assert response.status_code == 200, url
            html = response.content.decode()
            assert_inert(html, url)
            # The payloads are there, as text: the page did render them.
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_htmx_fragments_show_the_payloads_escaped(stored):
    client = Client()
    client.force_login(stored["alice"])
    profile = stored["profiles"][0]
    for url in ("/history/", f"/?model=profile&profile={profile.pk}", "/profiles/"):
        response = client.get(url, headers={"HX-Request": "true"})
        assert response.status_code == 200, url
        assert_inert(response.content.decode(), url)


def test_the_compare_chart_writes_titles_as_svg_text(stored):
    client = Client()
    client.force_login(stored["alice"])
    first, second, _ = stored["estimates"]
    html = client.get(f"/compare/?ids={first.public_id},{second.public_id}").content.decode()
    assert "<svg" in html  # the chart is there
    assert_inert(html, "compare chart")
    assert "&lt;svg onload=alert(3)&gt;" in html


def test_payloads_in_a_query_string_are_not_reflected_raw(stored):
    client = Client()
    hf_config = json.dumps({"model_type": PAYLOAD, "hidden_size": PAYLOAD})
    for query in (
        {"model": "hf_config", "hf_config": hf_config},
        {"model": "catalog", "catalog": PAYLOAD},
        {"batch_size": PAYLOAD, "weight_dtype": PAYLOAD},
        {PAYLOAD: PAYLOAD},
    ):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get("/", query, headers=headers)
            assert response.status_code == 200
            assert_inert(response.content.decode(), str(query))


def test_the_csv_export_quotes_formulas_and_keeps_text_as_text(stored):
    client = Client()
    client.force_login(stored["alice"])
    response = client.get("/history/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    titles = sorted(row["title"] for row in rows)
    assert titles == sorted(["'" + FORMULA + PAYLOAD, "'+1+1" + PAYLOAD, "'@SUM(A1)" + PAYLOAD])
    for row in rows:
        for column, value in row.items():
            assert value[:1] not in ("=", "+", "-", "@"), (column, value)
    assert {row["team"] for row in rows} == {stored["team"].name}  # text, not a formula: as is


def test_the_json_export_is_json_not_html(stored):
    client = Client()
    client.force_login(stored["alice"])
    response = client.get("/history/export.json")
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    rows = json.loads(b"".join(response.streaming_content))
    assert {row["title"] for row in rows} >= {FORMULA + PAYLOAD}


def test_the_api_answers_json_with_the_payloads_as_data(stored):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(stored["alice"])
    response = client.get("/api/v1/estimates/")
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    titles = {estimate["title"] for estimate in response.json()["results"]}
    assert FORMULA + PAYLOAD in titles


def test_the_admin_shows_the_payloads_escaped(stored):
    client = Client()
    client.force_login(stored["alice"])
    profile = stored["profiles"][0]
    estimate = stored["estimates"][0]
    team = stored["team"]
    for url in (
        "/admin/calculator/modelprofile/",
        f"/admin/calculator/modelprofile/{profile.pk}/change/",
        "/admin/calculator/estimate/",
        f"/admin/calculator/estimate/{estimate.pk}/change/",
        "/admin/calculator/team/",
        f"/admin/calculator/team/{team.pk}/change/",
        "/admin/calculator/membership/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_inert(response.content.decode(), url)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode(), url


def test_a_pasted_config_json_keeps_its_text_verbatim_and_inert(stored):
    client = Client()
    client.force_login(stored["alice"])
    config = {**json.loads(stored["profiles"][0].config_json_text), "model_type": "llama"}
    response = client.post(
        "/profiles/import/",
        {"name": f"Imported {PAYLOAD}", "config_json": json.dumps(config), "visibility": "private"},
    )
    assert response.status_code in (200, 302)
    page = client.get(response["Location"]) if response.status_code == 302 else response
    assert_inert(page.content.decode(), "imported profile")


def test_architecture_values_do_not_reach_the_page_raw(stored):
    client = Client()
    client.force_login(stored["alice"])
    architecture = {**TINY_ARCHITECTURE, "model_type": PAYLOAD, "family": PAYLOAD}
    response = client.get(
        "/", {"model": "architecture", **{k: str(v) for k, v in architecture.items()}}
    )
    assert response.status_code == 200
    assert_inert(response.content.decode(), "architecture fields")
