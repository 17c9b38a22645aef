"""The API's throttles hold: a forged X-Forwarded-For is no fresh identity, concurrent requests
cannot each read the same count, and guessing tokens is throttled like guessing passwords."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.test import APIClient, APIRequestFactory

from calculator.api.throttling import AnonThrottle
from calculator.api.tokens import api_token_create

GPUS = "/api/v1/gpus/"


@contextmanager
def anonymous_rate(rate: str):
    rates = api_settings.DEFAULT_THROTTLE_RATES
    saved = dict(rates)
    rates.update(anon=rate)
    try:
        yield
    finally:
        rates.clear()
        rates.update(saved)


def test_it_ignores_a_forged_forwarded_for_without_trusted_proxies(db, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    with anonymous_rate("2/min"):
        statuses = [
            APIClient().get(GPUS, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(3)
        ]
    assert statuses == [200, 200, 429]


def test_behind_a_trusted_proxy_it_counts_the_address_the_proxy_saw(db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "192.168.0.1"}
    with anonymous_rate("2/min"):
        # The client forges a new first entry each time; the proxy appends what it saw.
        statuses = [
            APIClient()
            .get(GPUS, HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 203.0.113.5", **proxy)
            .status_code
            for n in range(3)
        ]
        other = APIClient().get(GPUS, HTTP_X_FORWARDED_FOR="203.0.113.6", **proxy)
    assert statuses == [200, 200, 429]
    assert other.status_code == 200


class SlowCache:
    """The default cache with a network's latency on every call, as Redis has between workers."""

    def __getattr__(self, name):
        method = getattr(cache, name)

        def slow(*args, **kwargs):
            time.sleep(0.005)
            return method(*args, **kwargs)

        return slow


def test_concurrent_requests_cannot_each_read_the_same_count(db, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    request = APIRequestFactory().get(GPUS, REMOTE_ADDR="198.51.100.7")
    request.user = None
    allowed = []
    start = threading.Barrier(16)

    def client() -> None:
        throttle = AnonThrottle()
        throttle.cache = SlowCache()
        start.wait()
        for _ in range(2):
            allowed.append(throttle.allow_request(request, None))

    with anonymous_rate("10/min"):
        threads = [threading.Thread(target=client) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # 16 clients x 2 requests = 32 asked, 10 a minute allowed.
    assert (allowed.count(True), allowed.count(False)) == (10, 22)


def _with_token(key: str, address: str) -> int:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/teams/").status_code


@pytest.fixture
def token(alice) -> str:
    return api_token_create(user=alice, name="dashboard")[1]


def test_invalid_tokens_lock_the_address_out_like_failed_logins(token, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 3
    guesses = [_with_token(f"llmt_{n:064x}", "198.51.100.9") for n in range(4)]
    assert guesses == [401, 401, 401, 429]
    # Locked out: even a good token from that address waits for the cool-off ...
    assert _with_token(token, "198.51.100.9") == 429
    # ... while other addresses are untouched.
    assert _with_token(token, "198.51.100.10") == 200
    assert _with_token("llmt_nonsense", "198.51.100.10") == 401


def test_the_token_lockout_names_its_cool_off(token, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 1
    _with_token("llmt_nonsense", "198.51.100.11")
    client = APIClient(REMOTE_ADDR="198.51.100.11")
    client.credentials(HTTP_AUTHORIZATION="Token llmt_nonsense")
    response = client.get("/api/v1/teams/")
    assert response.status_code == 429
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    detail = f"Too many invalid tokens: locked out for {minutes:.0f} minutes."
    assert response.json()["detail"].startswith(detail)
    assert int(response["Retry-After"]) == minutes * 60
