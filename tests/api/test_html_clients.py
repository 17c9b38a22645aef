"""A browser (or anything sending `Accept: text/html`) reaching the API gets JSON or a clean 406,
never a 500 and never a page that the Content-Security-Policy blocks: the service serves no
browsable API (Swagger UI at /api/docs/ is the way to browse it)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

ENDPOINTS = (
    "/api/v1/catalog/models/",
    "/api/v1/catalog/models/meta-llama/Llama-3.1-8B/",
    "/api/v1/gpus/",
    "/api/v1/estimates/",
    "/api/v1/profiles/",
    "/api/v1/teams/",
)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize("signed_in", [False, True])
def test_a_browser_gets_json(alice, url, signed_in):
    client = Client()
    if signed_in:
        client.force_login(alice)
    response = client.get(url, HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code in (200, 401)
    assert response["Content-Type"] == "application/json"
    json.loads(response.content)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_html_alone_is_not_acceptable_and_says_so_in_json(alice, url):
    client = Client()
    client.force_login(alice)
    response = client.get(url, HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert "detail" in json.loads(response.content)
