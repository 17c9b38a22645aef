"""The account page's API tokens: created with a name and shown once, listed, revoked."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from calculator.api.tokens import MAX_TOKENS_PER_USER, api_token_create
from calculator.models import ApiToken

URL = "/accounts/tokens/"
REVOKE = "/accounts/tokens/revoke/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def shown_key(response) -> str:
    match = re.search(r'id="new-token-key" type="text" value="(llmt_[0-9a-f]{64})"', response.text)
    assert match, "the new key is shown"
    return match.group(1)


def api_status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/teams/").status_code


def test_the_page_needs_a_login(db):
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert Client().post(REVOKE, {"digest": "x"}).status_code == 302


def test_creating_a_token_shows_its_key_once_and_stores_only_a_hash(alice):
    client = logged_in(alice)
    response = client.post(URL, {"name": "Grafana dashboard"}, follow=True)
    # redirected after the POST, so a reload cannot post again
    assert response.redirect_chain == [(URL, 303)]
    assert "no-store" in response["Cache-Control"]
    key = shown_key(response)
    token = ApiToken.objects.get(user=alice)
    assert token.name == "Grafana dashboard"
    assert token.digest == hashlib.sha512(key.encode()).hexdigest()  # knox: SHA-512 digest
    assert api_status(key) == 200
    again = client.get(URL)
    assert key not in again.text
    assert "Grafana dashboard" in again.text
    assert token.token_key in again.text  # the first characters identify it


def test_revoking_a_token_makes_it_a_401(alice):
    client = logged_in(alice)
    key = shown_key(client.post(URL, {"name": "CI"}, follow=True))
    token = ApiToken.objects.get(user=alice)
    response = client.post(REVOKE, {"digest": token.digest}, follow=True)
    assert response.redirect_chain == [(URL, 302)]
    assert "Token “CI” revoked" in response.text
    assert not ApiToken.objects.filter(user=alice).exists()
    assert api_status(key) == 401


def test_no_one_else_sees_or_revokes_my_tokens(alice, charlie):
    token, key = api_token_create(user=alice, name="Alice's script")
    charlies = logged_in(charlie)
    assert "Alice&#x27;s script" not in charlies.get(URL).text
    assert charlies.post(REVOKE, {"digest": token.digest}).status_code == 404
    assert api_status(key) == 200


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_token_needs_a_short_name(alice, name):
    response = logged_in(alice).post(URL, {"name": name})
    assert response.status_code == 200
    assert 'id="new-token-key"' not in response.text
    assert 'class="errorlist' in response.text
    assert not ApiToken.objects.exists()


def test_tokens_per_user_are_limited(alice):
    for n in range(MAX_TOKENS_PER_USER):
        api_token_create(user=alice, name=f"t{n}")
    response = logged_in(alice).post(URL, {"name": "one more"})
    assert f"You have {MAX_TOKENS_PER_USER} tokens: revoke one first." in response.text
    assert ApiToken.objects.filter(user=alice).count() == MAX_TOKENS_PER_USER


def test_reloading_after_creating_a_token_creates_no_second_one(alice):
    client = logged_in(alice)
    created = client.post(URL, {"name": "Grafana dashboard"})
    assert created.status_code == 303 and created["Location"] == URL
    first = client.get(URL)
    shown_key(first)
    reloaded = client.get(URL)  # what the browser's reload does after a redirect
    assert 'id="new-token-key"' not in reloaded.text
    assert ApiToken.objects.filter(user=alice).count() == 1
