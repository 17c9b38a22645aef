"""REDIS_URL turns on the shared cache: Django's RedisCache for the throttles and the kept results,
and cached_db sessions; without it, per-process memory and database sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.cache import caches

PRINT_SETTINGS = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'caches': {k: v['BACKEND'] for k, v in s.CACHES.items()}, "
    "'sessions': s.SESSION_ENGINE}))"
)


def _settings_with(redis_url: str) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "llmtools.settings", "REDIS_URL": redis_url}
    run = subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_redis_url_selects_redis_and_cached_db_sessions():
    chosen = _settings_with("redis://127.0.0.1:6379/15")
    redis = "django.core.cache.backends.redis.RedisCache"
    assert chosen == {
        "caches": {"default": redis, "results": redis},
        "sessions": "django.contrib.sessions.backends.cached_db",
    }


def test_without_redis_url_each_process_keeps_its_own():
    chosen = _settings_with("")
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    assert chosen == {
        "caches": {"default": locmem, "results": locmem},
        "sessions": "django.contrib.sessions.backends.db",
    }


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (.ci/run sets it)")
def test_two_processes_share_the_throttle_counts():
    # what another gunicorn worker sees: a separate client of the same Redis
    from django.core.cache.backends.redis import RedisCache

    other_worker = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": "llmtools"})
    caches["default"].set("throttle_anon_198.51.100.7", [1.0, 2.0])
    assert other_worker.get("throttle_anon_198.51.100.7") == [1.0, 2.0]
