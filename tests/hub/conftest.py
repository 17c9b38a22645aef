"""The stand-in Hub (tests/hub/standin.py), started once and emptied for every test; the
service is pointed at it through HF_ENDPOINT."""

from __future__ import annotations

import pytest

from tests.hub.standin import StandInHub


@pytest.fixture(scope="session")
def _standin_hub():
    hub = StandInHub()
    yield hub
    hub.close()


@pytest.fixture
def hub(_standin_hub, settings):
    settings.HF_ENDPOINT = _standin_hub.url
    settings.HF_TOKEN = ""
    settings.HUB_IMPORT = True
    settings.HUB_TIMEOUT_SECONDS = 5
    _standin_hub.repos.clear()
    _standin_hub.requests.clear()
    yield _standin_hub
    _standin_hub.repos.clear()
