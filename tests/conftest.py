"""Shared fixtures: Alice (owner), Bob (her teammate) and Charlie (an outsider)."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from calculator.domain import caching
from calculator.models import Role
from tests.chromium import CHROMIUM
from tests.factories import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Production hashes passwords slowly on purpose; tests only need them to round-trip."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def charlie(db):
    return UserFactory(username="charlie")


@pytest.fixture
def team(alice, bob):
    """Alice owns the team, Bob is a member; Charlie is not in it."""
    team = TeamFactory(name="Alice's team", slug="alices-team")
    MembershipFactory(team=team, user=alice, role=Role.OWNER)
    MembershipFactory(team=team, user=bob, role=Role.MEMBER)
    return team


@pytest.fixture
def catalog(db):
    """The built-in catalogs. The data migration loads them, but transactional tests (the
    browser tests' live server) flush the tables, so load them again: it is an upsert."""
    from calculator.domain.catalog import catalog_gpus_load, catalog_models_load

    catalog_models_load()
    catalog_gpus_load()


@pytest.fixture(autouse=True)
def _caches_cleared():
    """Each test reads the catalogs afresh (a rolled-back transaction sends no signal), renders
    its pages anew and starts with empty throttle counters (the default cache; Redis with
    REDIS_URL, shared by every test)."""
    caching.clear_all()
    caches["default"].clear()
    yield
    caching.clear_all()
    caches["default"].clear()


@pytest.fixture
def browser():
    """Headless chromium through Playwright; the test skips where chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()
