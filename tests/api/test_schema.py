"""The OpenAPI schema: served, valid, offline Swagger UI; and the API checked against it by
schemathesis (property-based: generated requests, no 5xx, every response as documented)."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from calculator.models import Visibility
from tests.api.conftest import token_for
from tests.factories import TINY_ARCHITECTURE, MembershipFactory, TeamFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NO_THROTTLES = override_settings(
    REST_FRAMEWORK={
        **django_settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": None, "user": None},
    }
)


def test_the_schema_is_served_as_openapi_3(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert "/api/v1/calculate" in paths
    assert set(paths["/api/v1/estimates/"]) == {"get", "post"}
    assert set(paths["/api/v1/estimates/{id}/"]) == {"get", "patch", "delete"}
    request = schema["components"]["schemas"]["CalculateRequest"]
    assert request["required"] == ["model"]
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    references = set(re.findall(r"#/components/schemas/(\w+)", response.content.decode()))
    assert references <= set(schema["components"]["schemas"])  # every $ref resolves


def test_swagger_ui_is_served_without_a_cdn_or_inline_script(db):
    client = APIClient()
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "https://" not in html and "http://" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all("src=" in attributes for attributes in scripts)
    start = client.get("/api/docs/?script")
    assert start.status_code == 200
    assert start["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in start.content.decode()


@contextmanager
def direct_wsgi_calls():
    """Unthrottled, and inside the test's transaction: schemathesis calls the WSGI app itself,
    and Django would close the database connection after each request unless, as its own test
    client does, that signal is disconnected."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with NO_THROTTLES:
            yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_world(alice, bob, catalog):
    """Something behind every kind of endpoint: a team, a profile and a saved estimate."""
    team = TeamFactory(name="Schema team", slug="schema-team")
    MembershipFactory(team=team, user=alice, role="owner")
    MembershipFactory(team=team, user=bob)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(alice)}")
    profile = client.post(
        "/api/v1/profiles/",
        {"name": "Tiny", "architecture": TINY_ARCHITECTURE, "visibility": Visibility.LINK},
        format="json",
    ).json()
    estimate = client.post(
        "/api/v1/estimates/",
        {"model": {"profile": profile["id"]}, "visibility": "team", "team": team.pk},
        format="json",
    ).json()
    return {"token": token_for(alice), "team": team, "profile": profile, "estimate": estimate}


# Loaded once at collection (no database needed); schemathesis's from_fixture does not run on
# pytest 9 (it sets Node._nodeid).
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


def test_real_responses_of_every_read_endpoint_match_the_schema(api_world):
    headers = {"Authorization": f"Token {api_world['token']}"}
    estimate = api_world["estimate"]
    reads = [
        ("/api/v1/profiles/", {}, {}),
        ("/api/v1/profiles/{id}/", {"id": api_world["profile"]["id"]}, {}),
        ("/api/v1/estimates/", {}, {}),
        ("/api/v1/estimates/{id}/", {"id": estimate["id"]}, {}),
        ("/api/v1/estimates/by-public-id/{public_id}/", {"public_id": estimate["public_id"]}, {}),
        ("/api/v1/catalog/models/", {}, {"page_size": 100}),
        ("/api/v1/catalog/models/{slug}/", {"slug": "deepseek-ai/DeepSeek-V3"}, {}),
        ("/api/v1/gpus/", {}, {"page_size": 100}),
        ("/api/v1/teams/", {}, {}),
        ("/api/v1/teams/{slug}/", {"slug": "schema-team"}, {}),
    ]
    for path, path_parameters, query in reads:
        case = schema[path]["GET"].Case(path_parameters=path_parameters, query=query)
        with direct_wsgi_calls():
            response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == 200, path


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_no_5xx_and_only_documented_responses(case, api_world):
    headers = {"Authorization": f"Token {api_world['token']}"}
    with direct_wsgi_calls():
        case.call_and_validate(headers=headers, checks=CHECKS)
