"""A database that accepts connections and never answers (black-holed, or hung) costs a
request a few seconds and a clean 503, not a worker held until the client gives up (issue
19): PostgreSQL connections have libpq's connect_timeout, DB_CONNECT_TIMEOUT seconds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def _database_options(**env: str) -> dict:
    """settings.DATABASES["default"]["OPTIONS"] as a fresh process reads them from `env`."""
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmtools.settings", "DEBUG": "1"}
    environment.pop("DB_CONNECT_TIMEOUT", None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_postgresql_connections_have_a_connect_timeout():
    url = "postgres://llmtools@db.internal:5432/llmtools"
    assert _database_options(DATABASE_URL=url)["connect_timeout"] == 5
    assert _database_options(DATABASE_URL=url, DB_CONNECT_TIMEOUT="2")["connect_timeout"] == 2


@pytest.fixture
def black_hole():
    """A local address that completes TCP connections (the kernel's backlog) and never says a
    word: what a firewalled or hung database looks like to libpq."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()  # a client still waiting (the bug) now sees the connection reset


@pytest.mark.django_db
@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="connect_timeout is libpq's: this runs on PostgreSQL (DATABASE_URL)",
)
def test_a_black_holed_database_is_a_503_within_seconds(black_hole):
    timeout = connection.settings_dict["OPTIONS"]["connect_timeout"]
    shared = connection.settings_dict  # what another thread's connection is made from
    saved = {"HOST": shared["HOST"], "PORT": shared["PORT"]}
    answers: list = []

    def request() -> None:
        started = time.monotonic()
        client = Client(raise_request_exception=False)
        answers.append((client.get("/e/no-such-estimate/"), time.monotonic() - started))

    shared.update(HOST="127.0.0.1", PORT=str(black_hole))
    try:
        worker = threading.Thread(target=request, daemon=True)
        worker.start()
        worker.join(timeout + 10)
    finally:
        shared.update(saved)
    assert answers, "the request was still waiting on the database"
    response, elapsed = answers[0]
    assert response.status_code == 503
    assert "Back in a moment" in response.content.decode()
    assert elapsed < timeout + 3
