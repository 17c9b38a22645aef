"""Security headers and Django's deploy checks: a CSP of our own origin with no inline script,
frame denial, a referrer policy, secure HttpOnly cookies when DEBUG is off."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/accounts/login/", "/accounts/signup/", "/profiles/", "/admin/login/"]


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_policy_of_our_own_origin_without_inline_script(path, catalog):
    response = Client().get(path)
    assert response.status_code == 200
    policy = csp_directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/api/docs/"])
def test_pages_load_scripts_and_styles_from_our_origin_only(path, catalog):
    html = Client().get(path).content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts, "every page loads htmx or Swagger UI"
    for attributes, body in scripts:
        # JSON data blocks are not run; every script that runs comes from a file of ours.
        if 'type="application/json"' in attributes:
            continue
        assert re.search(r'src="/[^/]', attributes), attributes  # a path on our own origin
        assert not body.strip()
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)  # no onclick= and the like
    assert "https://" not in html and "//cdn" not in html


@pytest.mark.django_db
def test_htmx_is_told_not_to_inject_its_indicator_style(catalog):
    # htmx adds a <style> element for indicators unless includeIndicatorStyles is false; the CSP
    # would block it (and log an error in the console).
    html = Client().get("/").content.decode()
    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', html)
    assert config and json.loads(config.group(1))["includeIndicatorStyles"] is False


@pytest.mark.django_db
def test_htmx_keeps_no_history_snapshots(catalog):
    # a snapshot restored the results on Back but not the fields: Back reloads the address
    html = Client().get("/").content.decode()
    config = json.loads(re.search(r'<meta name="htmx-config" content=\'([^\']*)\'>', html)[1])
    assert config["historyCacheSize"] == 0 and config["refreshOnHistoryMiss"] is True


def test_session_and_csrf_cookies_are_secure_and_the_session_cookie_is_httponly(settings):
    # The suite runs with DEBUG off, as production does.
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SESSION_COOKIE_HTTPONLY is True


@pytest.mark.django_db
def test_a_login_sets_a_secure_httponly_session_cookie(alice):
    from tests.factories import PASSWORD

    response = Client().post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.0.0.7"
    )
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_deploy_checks_report_nothing_with_production_settings():
    # The suite's DJANGO_ALLOW_ASYNC_UNSAFE (for Playwright) is not a production setting.
    env = {
        **{
            name: value for name, value in os.environ.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"
        },
        "DEBUG": "0",
        "SECRET_KEY": "deploy-check-only-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ",
        "ALLOWED_HOSTS": "llmtools.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "STATIC_MANIFEST": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
