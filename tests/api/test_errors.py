"""Every error is JSON with the right status: bad bodies, huge bodies, throttling."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

CALCULATE = "/api/v1/calculate"
ARCHITECTURE = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
}


def rates(anon: str | None, user: str | None) -> override_settings:
    return override_settings(
        REST_FRAMEWORK={
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": anon, "user": user},
        }
    )


def test_malformed_json_is_a_400(db):
    response = APIClient().post(CALCULATE, "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["non_field_errors"]
    assert body["non_field_errors"][0].startswith("JSON parse error")


@pytest.mark.parametrize("body", ["[1, 2]", "42", '"text"', "null"])
def test_a_body_that_is_not_an_object_is_a_400(db, body):
    response = APIClient().post(CALCULATE, body, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]


def test_a_body_over_1_mb_is_a_413(db):
    # 1 MB is DATA_UPLOAD_MAX_MEMORY_SIZE (1,048,576 bytes); send 1,100,000 bytes of JSON
    padding = "x" * 1_100_000
    body = '{"model": {"hf_config": {"padding": "' + padding + '"}}}'
    response = APIClient().post(CALCULATE, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"detail": "The request body is larger than 1,048,576 bytes."}


def test_a_huge_body_is_a_413_on_authenticated_endpoints_too(client_for, alice):
    response = client_for(alice).post(
        "/api/v1/profiles/",
        '{"name": "' + "x" * 1_100_000 + '"}',
        content_type="application/json",
    )
    assert response.status_code == 413


def test_a_form_body_is_a_415_even_for_a_session(alice):
    # Only JSON is parsed; the session's CSRF check must not turn a form post into a 500.
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    client.cookies["csrftoken"] = "a" * 32
    response = client.post(
        "/api/v1/profiles/", "name=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert "detail" in response.json()


def test_other_media_types_are_a_415(db):
    response = APIClient().post(CALCULATE, "model=x", content_type="text/plain")
    assert response.status_code == 415
    assert "detail" in response.json()


def test_anonymous_callers_are_throttled_with_retry_after(db):
    with rates(anon="2/min", user=None):
        client = APIClient()
        payload = {"model": {"architecture": ARCHITECTURE}}
        for _ in range(2):
            assert client.post(CALCULATE, payload, format="json").status_code == 200
        response = client.post(CALCULATE, payload, format="json")
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["detail"].startswith("Request was throttled.")


def test_users_are_throttled_by_their_own_rate(client_for, alice):
    with rates(anon="1/min", user="3/min"):
        client = client_for(alice)
        statuses = [client.get("/api/v1/teams/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_an_empty_rate_turns_the_throttle_off(db):
    with rates(anon=None, user=None):
        client = APIClient()
        statuses = {client.get("/api/v1/gpus/").status_code for _ in range(5)}
    assert statuses == {200}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("60/min", "60/min"), (" 5/s ", "5/s"), ("", None), ("1000/hour", "1000/hour")],
)
def test_throttle_rates_come_from_the_environment(monkeypatch, value, expected):
    from llmtools.settings import envrate

    monkeypatch.setenv("API_THROTTLE_ANON", value)
    assert envrate("API_THROTTLE_ANON", "60/min") == expected


@pytest.mark.parametrize("value", ["sixty", "60", "60/fortnight", "0/min", "-1/min"])
def test_a_malformed_throttle_rate_stops_the_service_at_start(monkeypatch, value):
    from django.core.exceptions import ImproperlyConfigured

    from llmtools.settings import envrate

    monkeypatch.setenv("API_THROTTLE_USER", value)
    with pytest.raises(ImproperlyConfigured):
        envrate("API_THROTTLE_USER", "1000/min")


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/profiles/abc/", "/api/v1/profiles", "/api/v1/"]
)
def test_unknown_api_paths_are_a_json_404(db, path):
    response = APIClient().get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_unknown_api_paths_are_a_json_404_for_writes_with_a_session_too(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.delete("/api/v1/profiles/abc/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


LLAMA_LIKE_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
}


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/calculate", {"model": {"catalog": "a\u0000b"}}, "model.catalog"),
        (
            "/api/v1/profiles/",
            {"name": "n", "hf_config": {**LLAMA_LIKE_CONFIG, "note": "a\u0000b"}},
            "hf_config.note",
        ),
        (
            "/api/v1/estimates/",
            {"model": {"hf_config": {**LLAMA_LIKE_CONFIG, "a\u0000": 1}}},
            "model.hf_config",
        ),
        ("/api/v1/estimates/", {"model": {"catalog": "x"}, "title": "a\u0000b"}, "title"),
    ],
)
def test_nul_characters_are_a_400_before_the_database_sees_them(
    client_for, alice, url, body, field
):
    # PostgreSQL stores NUL in neither text nor jsonb: it would otherwise be a 500 there.
    response = client_for(alice).post(url, body, format="json")
    assert response.status_code == 400
    assert response.json() == {field: ["Null characters are not allowed."]}


def test_a_nul_escaped_inside_a_config_json_text_is_a_400(client_for, alice):
    # The text itself is clean; the JSON it holds decodes to a string with a NUL.
    body = {"name": "n", "config_json": '{"model_type": "llama", "note": "a\\u0000b"}'}
    response = client_for(alice).post("/api/v1/profiles/", body, format="json")
    assert response.status_code == 400
    assert response.json() == {"config_json": ["config.json must not contain NUL characters."]}


@pytest.mark.parametrize(
    "path", ["/api/v1/catalog/models/a%00b/", "/api/v1/estimates/by-public-id/a%00b/"]
)
def test_nul_characters_in_paths_are_a_404(db, path):
    response = APIClient().get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
