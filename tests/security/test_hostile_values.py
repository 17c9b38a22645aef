"""The security probe's reproductions (issue #19): each hostile value answered with a 4xx (or a
page that says what is wrong), never a 500. Run on SQLite and on PostgreSQL, where jsonb, text
and timestamps refuse what SQLite stores."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from calculator.models import ModelProfile
from tests.factories import TINY_ARCHITECTURE, EstimateFactory, ModelProfileFactory

# A config.json the engine accepts, and ways to spoil it with a number JSON has no room for.
CONFIG = {"model_type": "llama", **TINY_ARCHITECTURE, "num_hidden_layers": 2}
NOT_FINITE = ["NaN", "Infinity", "-Infinity", "1e999"]


def _config_text(number: str) -> str:
    return json.dumps(CONFIG)[:-1] + f', "rope_theta": {number}}}'


@pytest.fixture
def api(alice) -> APIClient:
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def browser_client(client, alice) -> Client:
    client.force_login(alice)
    return client


# --- config.json with a number that is not finite -----------------------------------------------


@pytest.mark.parametrize("number", NOT_FINITE)
def test_it_refuses_a_pasted_config_json_that_is_not_finite(browser_client, number):
    response = browser_client.post(
        "/profiles/import/",
        {"name": "n", "config_json": _config_text(number), "visibility": "private"},
    )
    assert response.status_code == 200
    assert b"finite number" in response.content
    assert not ModelProfile.objects.filter(name="n").exists()


@pytest.mark.parametrize("number", NOT_FINITE)
def test_it_refuses_an_uploaded_config_json_that_is_not_finite(browser_client, number):
    upload = SimpleUploadedFile("config.json", _config_text(number).encode())
    response = browser_client.post(
        "/profiles/import/", {"name": "n", "config_file": upload, "visibility": "private"}
    )
    assert response.status_code == 200
    assert b"finite number" in response.content


@pytest.mark.parametrize("number", NOT_FINITE)
def test_it_refuses_a_config_json_that_is_not_finite_over_the_api(api, alice, number):
    body = {"name": "n", "config_json": _config_text(number)}
    assert api.post("/api/v1/profiles/", body, format="json").status_code == 400
    profile = ModelProfileFactory(owner=alice)
    response = api.patch(f"/api/v1/profiles/{profile.pk}/", body, format="json")
    assert response.status_code == 400
    assert "config_json" in response.json()


@pytest.mark.parametrize("number", NOT_FINITE)
def test_it_refuses_a_calculator_config_json_that_is_not_finite(db, client, number):
    response = client.get("/", {"model": "hf_config", "hf_config": _config_text(number)})
    assert response.status_code == 200
    assert b"finite number" in response.content


# --- a lone surrogate in a JSON body ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "\\ud800"}',
        '{"\\udfff": 1}',
        '{"model": {"architecture": {"\\ud83d": 1}}}',
        '{"name": "x", "config_json": "{\\"model_type\\": \\"\\ud800\\"}"}',
    ],
)
@pytest.mark.parametrize("method", ["post", "patch"])
def test_it_refuses_a_lone_surrogate_in_any_api_write(api, alice, body, method):
    estimate = EstimateFactory(owner=alice)
    profile = ModelProfileFactory(owner=alice)
    urls = (
        ["/api/v1/calculate", "/api/v1/estimates/", "/api/v1/profiles/"]
        if method == "post"
        else [f"/api/v1/estimates/{estimate.pk}/", f"/api/v1/profiles/{profile.pk}/"]
    )
    for url in urls:
        response = getattr(api, method)(url, body, content_type="application/json")
        assert response.status_code == 400, (url, response.content)
        response.json()  # encodable, and JSON


# --- dates and offsets out of range -------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"created_before": "9999-12-31"},
        {"created_after": "9999-12-31"},
        {"created_before": "0001-01-01"},
        {"created_after": "0001-01-01", "created_before": "9999-12-31"},
    ],
)
@pytest.mark.parametrize("path", ["/history/", "/history/export.csv", "/history/export.json"])
def test_history_and_its_exports_take_any_date(browser_client, alice, query, path):
    EstimateFactory(owner=alice)
    response = browser_client.get(path, query)
    assert response.status_code in (200, 400)
    for fmt in ("csv", "json"):
        assert browser_client.get("/history/", {**query, "format": fmt}).status_code in (200, 400)


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00+16:00",
        "2026-01-01T00:00:00-23:59",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59",
    ],
)
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_the_estimates_api_takes_any_offset(api, alice, name, value):
    EstimateFactory(owner=alice)
    response = api.get("/api/v1/estimates/", {name: value})
    assert response.status_code in (200, 400), response.content
    response.json()


# --- NUL in a raw query value -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/compare/?ids=a%00b,c",
        "/catalog/options/?catalog_search=a%00b",
        "/?catalog_search=a%00b",
        "/history/?q=a%00b",
        "/profiles/?q=a%00b",
        "/api/v1/estimates/?ordering=a%00b",
        "/api/v1/profiles/?search=a%00b",
        "/api/v1/catalog/models/?family=a%00b",
    ],
)
def test_a_nul_in_a_query_value_is_no_server_error(browser_client, url):
    assert browser_client.get(url).status_code < 500


# --- a username longer than any column ----------------------------------------------------------


@pytest.mark.parametrize("length", [151, 255, 256, 10_000])
def test_a_very_long_username_is_a_failed_login(db, length):
    response = Client().post(
        "/accounts/login/", {"username": "a" * length, "password": "wrong"}, REMOTE_ADDR="1.2.3.4"
    )
    assert response.status_code == 200
    assert b"errorlist" in response.content


# --- unknown API paths --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/x%0Ay", "/api/v1/%0A", "/api/v1/a/%0D%0Ab/"])
def test_unknown_api_paths_with_a_newline_answer_json(db, path):
    response = APIClient().get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
