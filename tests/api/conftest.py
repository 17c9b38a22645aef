"""API fixtures: a token per person (Alice owns, Bob is her teammate, Charlie an outsider), a
revoked token, and Alice's items in every visibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from calculator.models import ApiToken, Visibility
from tests.factories import TINY_ARCHITECTURE, EstimateFactory, ModelProfileFactory


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counters live in the cache: start every test with none."""
    cache.clear()
    yield
    cache.clear()


def token_for(user, name: str = "dashboard") -> str:
    _, key = ApiToken.objects.create(user=user, expiry=None, prefix="llmt_", name=name)
    return key


@pytest.fixture
def client_for() -> Callable[..., APIClient]:
    """An API client sending `Authorization: Token <key>` for the user (anonymous for None)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return make


@pytest.fixture
def revoked_client(charlie) -> APIClient:
    """A client whose token existed but was revoked (its row deleted)."""
    key = token_for(charlie, name="revoked")
    ApiToken.objects.filter(user=charlie, name="revoked").delete()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def alices_profiles(alice, team) -> dict[str, object]:
    """Alice's profiles: private, shared with her team, and anyone-with-the-link."""
    return {
        "private": ModelProfileFactory(owner=alice, name="Private profile"),
        "team": ModelProfileFactory(
            owner=alice, name="Team profile", visibility=Visibility.TEAM, team=team
        ),
        "link": ModelProfileFactory(owner=alice, name="Link profile", visibility=Visibility.LINK),
    }


@pytest.fixture
def alices_estimates(alice, team) -> dict[str, object]:
    return {
        "private": EstimateFactory(owner=alice, title="Private estimate"),
        "team": EstimateFactory(
            owner=alice, title="Team estimate", visibility=Visibility.TEAM, team=team
        ),
        "link": EstimateFactory(owner=alice, title="Link estimate", visibility=Visibility.LINK),
    }


@pytest.fixture
def tiny_architecture() -> dict[str, int]:
    return dict(TINY_ARCHITECTURE)


@pytest.fixture
def as_person(client_for, alice, bob, charlie, revoked_client) -> Callable[[str], APIClient]:
    """A client for "alice", "bob", "charlie", "anonymous" or "revoked" (a revoked token)."""
    people = {"alice": alice, "bob": bob, "charlie": charlie, "anonymous": None}

    def make(who: str) -> APIClient:
        return revoked_client if who == "revoked" else client_for(people[who])

    return make
