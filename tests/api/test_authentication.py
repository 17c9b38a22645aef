"""Tokens (django-rest-knox, stored hashed) and sessions (CSRF enforced)."""

from __future__ import annotations

import hashlib

import pytest
from rest_framework.test import APIClient

from calculator.models import ApiToken
from tests.api.conftest import token_for
from tests.factories import PASSWORD

PROFILES = "/api/v1/profiles/"


def test_a_token_authenticates_its_user(client_for, alice):
    response = client_for(alice).get("/api/v1/teams/")
    assert response.status_code == 200


def test_no_credentials_is_a_401_that_asks_for_a_token(db):
    response = APIClient().get(PROFILES)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_revoked_token_is_a_401_everywhere(revoked_client):
    # Even on endpoints open to anonymous callers: bad credentials are never ignored.
    for method, url in [
        ("get", PROFILES),
        ("get", "/api/v1/gpus/"),
        ("post", "/api/v1/calculate"),
    ]:
        response = getattr(revoked_client, method)(url, {}, format="json")
        assert response.status_code == 401, url
        assert response.json() == {"detail": "Invalid token."}


@pytest.mark.parametrize(
    "header",
    ["Token", "Token llmt_00000000000000000000", "Token a b", "Token é"],
)
def test_malformed_or_unknown_tokens_are_a_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(PROFILES).status_code == 401


def test_only_the_tokens_digest_is_stored(alice):
    key = token_for(alice, name="ci")
    token = ApiToken.objects.get(user=alice, name="ci")
    assert key.startswith("llmt_")
    # knox: SHA-512 of the token, 128 hex digits; the token itself is nowhere in the row
    assert token.digest == hashlib.sha512(key.encode()).hexdigest()
    assert key not in (token.digest, token.token_key)
    assert token.token_key == key[:15]
    assert token.expiry is None


def test_using_a_token_records_when_it_was_last_used(client_for, alice):
    client = client_for(alice)
    token = ApiToken.objects.get(user=alice)
    assert token.last_used is None
    client.get("/api/v1/teams/")
    token.refresh_from_db()
    assert token.last_used is not None


def test_a_session_authenticates_and_needs_a_csrf_token_to_write(alice):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="alice", password=PASSWORD)
    assert client.get(PROFILES).status_code == 200
    response = client.post(PROFILES, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
