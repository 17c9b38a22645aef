"""Guessing passwords: after 5 failures for one account from one address, that account is refused
from that address for 15 minutes with a page that says so (django-axes); after 100 failures from
one address, whatever the accounts, the address is refused. A success resets the account's count.
Failures elsewhere, or for other (or made-up) accounts, never lock a real user out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

from tests.factories import PASSWORD

LOGIN = "/accounts/login/"


def login(username: str, password: str, address: str = "10.0.0.1"):
    return Client().post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def _limits(settings):
    # The production defaults (llmtools/settings.py); the environment can change them.
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME


def test_four_failures_still_allow_the_right_password(alice):
    for _ in range(4):
        assert login("alice", "wrong").status_code == 200  # the form again, with its error
    assert login("alice", PASSWORD).status_code == 302


def test_the_fifth_failure_locks_the_account_with_a_clear_message(alice):
    for _ in range(4):
        login("alice", "wrong")
    response = login("alice", "wrong")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "After 5 failed attempts" in page
    assert "for 15 minutes" in page
    # Now even the right password is refused.
    assert login("alice", PASSWORD).status_code == 429


def test_guesses_from_other_addresses_do_not_lock_the_owner_out(alice):
    for number in range(5):
        login("alice", "wrong", address=f"10.0.1.{number}")
    assert login("alice", PASSWORD, address="10.0.2.1").status_code == 302


def test_a_locked_pair_leaves_other_accounts_at_that_address_alone(alice, bob):
    for _ in range(5):
        login("alice", "wrong", address="10.0.3.1")
    assert login("alice", PASSWORD, address="10.0.3.1").status_code == 429
    assert login("bob", PASSWORD, address="10.0.3.1").status_code == 302
    assert login("alice", PASSWORD, address="10.0.3.2").status_code == 302


def test_failures_for_an_unknown_user_do_not_lock_real_users_out(alice):
    # six failures for a name nobody has, from an office's one address
    for _ in range(6):
        login("no-such-user", "wrong", address="10.0.3.3")
    assert login("alice", PASSWORD, address="10.0.3.3").status_code == 302


def test_an_address_guessing_many_accounts_is_locked_at_its_own_limit(alice, settings):
    assert settings.AXES_ADDRESS_FAILURE_LIMIT == 100
    for number in range(99):
        login(f"someone{number}", "wrong", address="10.0.3.4")
    assert login("alice", PASSWORD, address="10.0.3.4").status_code == 302  # 99: not yet
    for number in range(100):
        login(f"someone{number}", "wrong", address="10.0.3.5")
    response = login("alice", PASSWORD, address="10.0.3.5")
    assert response.status_code == 429
    assert "from this address" in response.text
    assert login("alice", PASSWORD, address="10.0.3.6").status_code == 302


def test_the_lockout_ends_after_the_cool_off(alice):
    for _ in range(5):
        login("alice", "wrong")
    assert login("alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert login("alice", PASSWORD).status_code == 302


def test_a_success_resets_the_count(alice):
    for _ in range(4):
        login("alice", "wrong")
    assert login("alice", PASSWORD).status_code == 302
    for _ in range(4):
        login("alice", "wrong")
    assert login("alice", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too(alice):
    for _ in range(5):
        Client().post(
            "/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.0.4.4"
        )
    assert login("alice", PASSWORD, address="10.0.4.4").status_code == 429


def test_api_tokens_come_only_from_a_logged_in_session(alice):
    # No endpoint trades a password for a token: a token is made on the account page, after the
    # login form, which django-axes guards. A locked-out account cannot get there.
    anonymous = Client().post("/accounts/tokens/", {"name": "guess"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith(LOGIN)
    for path in ("/api/v1/login", "/api/v1/auth/login/", "/api/v1/tokens/"):
        response = Client().post(
            path, {"username": "alice", "password": PASSWORD}, content_type="application/json"
        )
        assert response.status_code in (401, 404), path
    for _ in range(5):
        login("alice", "wrong")
    assert login("alice", PASSWORD).status_code == 429


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(alice, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for number in range(5):
        # The client forges a different first entry each time; the proxy appends the real one.
        Client().post(
            LOGIN,
            {"username": "alice", "password": "wrong"},
            REMOTE_ADDR="192.168.0.1",
            HTTP_X_FORWARDED_FOR=f"10.9.9.{number}, 203.0.113.5",
        )
    locked = Client().post(
        LOGIN,
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="192.168.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.5",
    )
    assert locked.status_code == 429
    # Another visitor behind the same proxy is not locked out.
    other = Client().post(
        LOGIN,
        {"username": "alice", "password": PASSWORD},
        REMOTE_ADDR="192.168.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.6",
    )
    assert other.status_code == 302


def test_api_tokens_are_too_long_to_guess(alice):
    # Invalid tokens are refused (401) before any throttle counts them, so a token's strength
    # is its length: 64 hex digits are 256 random bits.
    from calculator.api.tokens import api_token_create

    _, key = api_token_create(user=alice, name="dashboard")
    assert key.startswith("llmt_")
    secret = key.removeprefix("llmt_")
    assert len(secret) >= 64
    int(secret, 16)  # hexadecimal: 4 bits a character
