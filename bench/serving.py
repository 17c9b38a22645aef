"""What bench/http.py and bench/load.py share: the service's environment and gunicorn.

Only the standard library at import time: both scripts import this before Django is set up.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # every request of the benches goes here, and nowhere else


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def service_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of the service under a bench: production settings (DEBUG off) on plain
    HTTP to 127.0.0.1, API throttles off (a bench would measure their 429s), quiet logs."""
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.pop("REDIS_URL", None)  # a bench says itself whether the service has Redis
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "llmtools.settings",
            "DATABASE_URL": database_url,
            "DEBUG": "0",
            "SECRET_KEY": "bench-only-" + secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "0",
            "API_THROTTLE_ANON": "",
            "API_THROTTLE_USER": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


def server_tracebacks(log: str) -> list[str]:
    """Each traceback in the server's log, from its logged message to the exception line."""
    blocks: list[str] = []
    lines = log.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = index + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            blocks.append("\n".join(lines[max(0, index - 1) : end + 1]))
    return blocks


@contextmanager
def gunicorn(
    env: dict[str, str],
    *,
    workers: int,
    threads: int,
    app: str = "llmtools.wsgi",
    port: int | None = None,
    found_tracebacks: list[str] | None = None,
) -> Iterator[tuple[int, int]]:
    """gunicorn serving `app` on 127.0.0.1: yields (port, the master's pid) once it accepts
    connections, and stops it on the way out (errors and Ctrl-C too). gthread workers keep
    connections alive and overlap the database round trips; `--preload` imports the app once,
    before the workers fork. The tracebacks its log held are printed at the end (the first
    three), and appended to `found_tracebacks` when given."""
    port = port or free_port()
    command: Sequence[str] = [
        sys.executable, "-m", "gunicorn", app,
        f"--bind={HOST}:{port}", f"--workers={workers}", f"--threads={threads}",
        "--worker-class=gthread", "--keep-alive=30", "--timeout=60", "--backlog=256",
        "--preload", "--log-level=warning",
    ]  # fmt: skip
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    # Its own process group, so that stopping it stops its workers and nothing else.
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection((HOST, port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    sys.exit(f"gunicorn did not start:\n{log.read().decode(errors='replace')}")
                time.sleep(0.2)
        yield port, server.pid
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.seek(0)
        tracebacks = server_tracebacks(log.read().decode(errors="replace"))
        log.close()
        if found_tracebacks is not None:
            found_tracebacks.extend(tracebacks)
        for traceback in tracebacks[:3]:
            print(f"gunicorn's log held a traceback:\n{traceback}")
        if len(tracebacks) > 3:
            print(f"... and {len(tracebacks) - 3} more")


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); 0 for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
