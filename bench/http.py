"""HTTP speed of the service, measured side by side against the framework floor (issue 9).

One run, about three minutes on a 2-core machine (plus three or four when the static files
must be collected again):

1. re-creates its own PostgreSQL database (`llmtools_bench_http` on 127.0.0.1:5432, user
   postgres; never the one DATABASE_URL names), migrates it (the catalogs come with the
   migrations), fills it with one user holding 100,000 saved estimates (real engine results of
   six configurations, copied by PostgreSQL in batches) and one link-shared estimate for the
   permalink, and runs `collectstatic` (whitenoise's compressed manifest, as in production)
   unless the collected files are newer than every source file;
2. starts gunicorn (`llmtools.wsgi`, DEBUG off, API throttles off) on a free port of 127.0.0.1
   and drives it with a fixed number of concurrent keep-alive clients: /healthz (the floor),
   POST /api/v1/calculate, the calculator's htmx fragment, the permalink page and the history
   page, in rounds that take the endpoints in turn, after a warm-up;
3. with Django's test client in this process, counts the SQL queries per request (on the
   first and the last history page, on two permalinks, on the fragment computed and kept) and
   times the CPU of each request, as measured and with nothing kept between requests;
4. prints requests/s, p50 and p99 and each endpoint's ratio to the floor against its budget,
   the fragment's size, and whether static files are served compressed with far-future cache
   headers, and writes that into docs/performance.md between its markers.

Run it with `make bench` (or `.venv/bin/python bench/http.py --help` for the knobs). It sends
traffic only to 127.0.0.1 and stops gunicorn when it exits, on errors and Ctrl-C too.
"""

# ruff: noqa: E402 (sys.path is set before the imports that look for `http`)
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path, and this file's name would hide
# the standard library's `http` package: look in the project root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE = "llmtools_bench_http"
HOST = "127.0.0.1"
DOC = ROOT / "docs" / "performance.md"
DOC_START = "<!-- bench/http.py writes from here -->"
DOC_END = "<!-- bench/http.py writes up to here -->"

NUM_ESTIMATES = 100_000
INSERT_BATCH = 20_000
CATALOG_SLUG = "meta-llama/Llama-3.1-8B"
# The configurations whose real results fill the history (catalog slug, extra inputs).
FILL_CONFIGURATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("meta-llama/Llama-3.1-8B", {}),
    ("meta-llama/Llama-3.1-8B", {"mode": "training", "finetuning": "lora"}),
    ("Qwen/Qwen3-30B-A3B", {"batch_size": 8, "sequence_length": 32768}),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", {"weight_dtype": "int4"}),
    ("google/gemma-2-9b-it", {"mode": "training", "mixed_precision": True}),
    ("deepseek-ai/DeepSeek-V2-Lite", {"method": "standard"}),
)
# What the calculator form would send for the fragment, on top of every field's default.
FRAGMENT_CHANGES = {"catalog": CATALOG_SLUG, "batch_size": "4", "sequence_length": "8192"}
CALCULATE_BODY = {"model": {"catalog": CATALOG_SLUG}, "batch_size": 4, "sequence_length": 8192}
FRAGMENT_BUDGET_BYTES = 15_000
SLICE_WARMUP = 0.5  # seconds of warm-up before each slice after the first round
CPU_SAMPLES = 50  # in-process requests per endpoint for the CPU medians
FAR_FUTURE_CACHE = "max-age=315360000, public, immutable"
# Budgets (issue 9): requests/s of each endpoint as a share of the floor's in the same run.
BUDGETS = {"calculate": 0.8, "fragment": 0.6, "permalink": 0.5, "history": 0.5}

# The service's settings for this run, in-process and in gunicorn: production-like, DEBUG off.
SERVICE_ENV = {
    "DATABASE_URL": f"{PG_SERVER}/{BENCH_DATABASE}",
    "DEBUG": "0",
    "SECRET_KEY": "bench-only-secret-key-never-used-outside-this-benchmark",
    "ALLOWED_HOSTS": f"{HOST},testserver",
    "SECURE_SSL_REDIRECT": "0",
    "STATIC_MANIFEST": "1",
    "API_THROTTLE_ANON": "",
    "API_THROTTLE_USER": "",
    "CONN_MAX_AGE": "600",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "llmtools.settings",
}
os.environ.update(SERVICE_ENV)

import django

django.setup()

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.finders import get_finders
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from calculator import services
from calculator.auth import kept_users_clear
from calculator.calculations import Calculation, calculation_run, catalog_cache_clear
from calculator.models import Estimate, Visibility


@dataclass(frozen=True)
class Endpoint:
    name: str  # the budget's key; "floor" for /healthz
    label: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class Measurement:
    endpoint: Endpoint
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    client_cpu_seconds: float
    round_rates: tuple[float, ...] = ()  # requests/s in each round

    @classmethod
    def combined(cls, rounds: list[Measurement]) -> Measurement:
        return cls(
            rounds[0].endpoint,
            sum(m.requests for m in rounds),
            sum(m.errors for m in rounds),
            sum(m.seconds for m in rounds),
            [latency for m in rounds for latency in m.latencies],
            sum(m.client_cpu_seconds for m in rounds),
            tuple(m.requests_per_second for m in rounds),
        )

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return 1e3 * ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


# --- Database ---------------------------------------------------------------------------------


def database_recreate() -> None:
    connection.close()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def fill_calculations() -> list[Calculation]:
    return [
        calculation_run(user=None, payload={"model": {"catalog": slug}, **changes})
        for slug, changes in FILL_CONFIGURATIONS
    ]


def fill(user: Any, count: int) -> None:
    """`count` estimates of `user`, stored as `services.estimate_save` stores them: one per
    configuration through the ORM, the rest copies of those rows made by PostgreSQL itself in
    batches (a minute faster than sending 100,000 rows of JSON from Python)."""
    calculations = fill_calculations()
    now = timezone.now()
    templates = Estimate.objects.bulk_create(
        Estimate(
            public_id=f"bench{i:07d}",
            owner=user,
            visibility=Visibility.PRIVATE,
            profile=calculation.resolved.profile,
            model_name=calculation.resolved.name,
            title=f"Run {i}",
            notes="Checked against the cluster.",
            mode=calculation.result["inputs"]["mode"],
            method=calculation.result["inputs"]["method"],
            inputs=calculation.result["inputs"],
            architecture=calculation.resolved.engine_model,
            result=calculation.result,
            total_bytes=calculation.result["total_bytes"],
            num_gpus=calculation.result["num_gpus"],
            engine_version=calculation.result["engine_version"],
        )
        for i, calculation in enumerate(calculations)
    )
    copied = [
        f.column
        for f in Estimate._meta.concrete_fields
        if f.column not in ("id", "public_id", "title", "notes", "created", "updated")
    ]
    columns = ", ".join(connection.ops.quote_name(column) for column in copied)
    from_template = ", ".join(f"t.{connection.ops.quote_name(column)}" for column in copied)
    # Row i: template i mod 6, saved 5 minutes after row i - 1, the newest 5 minutes ago.
    insert = f"""
        INSERT INTO calculator_estimate (public_id, title, notes, created, updated, {columns})
        SELECT 'bench' || lpad(g::text, 7, '0'), 'Run ' || g,
               CASE WHEN g %% 7 = 0 THEN 'Checked against the cluster.' ELSE '' END,
               %(now)s - (%(count)s::integer - g) * interval '5 minutes', %(now)s, {from_template}
        FROM generate_series(%(first)s::integer, %(last)s::integer) AS g
        JOIN calculator_estimate AS t
          ON t.id = (%(template_ids)s::bigint[])[g %% %(templates)s::integer + 1]
    """
    with connection.cursor() as cursor:
        for first in range(len(templates), count, INSERT_BATCH):
            cursor.execute(
                insert,
                {
                    "now": now,
                    "count": count,
                    "first": first,
                    "last": min(first + INSERT_BATCH, count) - 1,
                    "template_ids": [template.pk for template in templates],
                    "templates": len(templates),
                },
            )
        cursor.execute(
            "UPDATE calculator_estimate SET created = %s - (%s::bigint - id) * interval '5 minutes'"
            " WHERE id = ANY(%s)",
            [now, count + templates[0].pk, [template.pk for template in templates]],
        )
        cursor.execute("VACUUM ANALYZE calculator_estimate")


def static_files_stale() -> bool:
    """Whether collectstatic has to run: no manifest yet, no brotli variants (collected before
    the brotli package was installed), or a source file newer than the manifest."""
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if not manifest.exists():
        return True
    if not any(Path(settings.STATIC_ROOT).rglob("*.css.br")):
        return True
    collected = manifest.stat().st_mtime
    return any(
        os.stat(storage.path(path)).st_mtime > collected
        for finder in get_finders()
        for path, storage in finder.list([])
    )


def prepare(num_estimates: int) -> tuple[str, str]:
    """The database and static files; returns the permalink's path and the history user's
    session cookie."""
    started = time.perf_counter()
    database_recreate()
    call_command("migrate", verbosity=0)
    print(f"Database created and migrated ({time.perf_counter() - started:.0f} s)", flush=True)
    if static_files_stale():
        started = time.perf_counter()
        print("Collecting static files (whitenoise compresses each one)...", flush=True)
        call_command("collectstatic", interactive=False, verbosity=0)
        print(f"Static files collected ({time.perf_counter() - started:.0f} s)", flush=True)
    started = time.perf_counter()
    owner = get_user_model().objects.create_user("bench", password="bench-only-password")
    fill(owner, num_estimates)
    link_estimate = services.estimate_save(
        user=owner,
        calculation=calculation_run(
            user=owner, payload={"model": {"catalog": CATALOG_SLUG}, "batch_size": 4}
        ),
        title="Llama 3.1 8B, batch of 4",
        notes="Shared with the whole company.",
        visibility=Visibility.LINK,
    )
    client = Client()
    client.force_login(owner)  # a real session row, as after the login form
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    total = Estimate.objects.filter(owner=owner).count()
    seconds = time.perf_counter() - started
    print(f"Filled: {total:,} estimates of one user ({seconds:.0f} s)", flush=True)
    return link_estimate.get_absolute_url(), session


# --- Query counts (Django's test client, in this process) ------------------------------------


def query_count(client: Client, method: str, path: str, **extra: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path, **extra)
    if response.status_code != 200:
        raise SystemExit(f"{method.upper()} {path} answered {response.status_code}")
    return len(queries)


def forget_kept() -> None:
    """Empty what the service keeps between requests in this process: the catalogs, the
    rendered results and pages, the verified users (docs/performance.md), so that the next
    request computes everything."""
    catalog_cache_clear()
    caches["pages"].clear()
    caches["whole_pages"].clear()
    kept_users_clear()


def first_visit(client: Client, path: str) -> int:
    """Queries of a page rendered afresh: nothing kept from an earlier request."""
    forget_kept()
    return query_count(client, "get", path)


def query_counts(fragment: str, permalink: str) -> dict[str, str]:
    anonymous, owner = Client(), Client()
    owner.force_login(get_user_model().objects.get(username="bench"))
    other_permalink = Estimate.objects.order_by("id").first().get_absolute_url()
    last_page = -(-Estimate.objects.count() // 25)
    calculate = {"data": CALCULATE_BODY, "content_type": "application/json"}
    forget_kept()
    computed = query_count(anonymous, "get", "/?" + fragment, HTTP_HX_REQUEST="true")
    counts = {
        "floor": f"{query_count(anonymous, 'get', '/healthz')}",
        "calculate": f"{query_count(anonymous, 'post', '/api/v1/calculate', **calculate)}",
        "fragment": (
            f"{query_count(anonymous, 'get', '/?' + fragment, HTTP_HX_REQUEST='true')} (kept);"
            f" {computed} (computed: catalogs read, nothing kept)"
        ),
        "permalink": (
            f"{first_visit(anonymous, permalink)} (link reader, first visit);"
            f" {query_count(anonymous, 'get', permalink)} (link reader, kept);"
            f" {first_visit(owner, permalink)} and"
            f" {first_visit(owner, other_permalink)} (owner, two estimates, first visits)"
        ),
        "history": (
            f"{first_visit(owner, '/history/')} (page 1, first visit);"
            f" {query_count(owner, 'get', '/history/')} (page 1, kept);"
            f" {first_visit(owner, f'/history/?page={last_page}')}"
            f" (page {last_page:,}, first visit)"
        ),
    }
    connection.close()
    return counts


def cpu_medians(endpoints: list[Endpoint], session: str, *, forget: bool) -> dict[str, float]:
    """Median CPU seconds of this process per request through Django's test client (no HTTP,
    no gunicorn; the database's own CPU is not in it): what each endpoint costs in Python,
    which the other load on a shared machine moves far less than requests per second. With
    `forget`, nothing kept from an earlier request is used (a first visit's cost)."""
    anonymous, owner = Client(), Client()
    owner.cookies[settings.SESSION_COOKIE_NAME] = session
    medians = {}
    for endpoint in endpoints:
        client = owner if "Cookie" in endpoint.headers else anonymous
        headers = {
            name: value
            for name, value in endpoint.headers.items()
            if name not in ("Cookie", "Content-Type")
        }
        content_type = endpoint.headers.get("Content-Type", "application/octet-stream")
        samples = []
        for number in range(CPU_SAMPLES + 3):  # three to warm up
            if forget:
                forget_kept()
            started = time.process_time()
            response = client.generic(
                endpoint.method,
                endpoint.path,
                endpoint.body or b"",
                content_type=content_type,
                headers=headers,
            )
            if number >= 3:
                samples.append(time.process_time() - started)
            if response.status_code != 200:
                raise SystemExit(f"{endpoint.label} answered {response.status_code} in-process")
        medians[endpoint.name] = statistics.median(samples)
    connection.close()
    return medians


# --- The calculator form, as htmx sends it ----------------------------------------------------


class FormFields(HTMLParser):
    """The name/value pairs a browser submits for one form (inputs, selects, textareas)."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.pairs: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.pairs.append((name, a.get("value", "on")))
            elif kind not in ("submit", "button", "file", "image", "reset"):
                self.pairs.append((name, a.get("value", "")))
        elif tag == "select" and name:
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self.pairs.append((self._select, value))
                self._select_chosen = True
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            if not self._select_chosen and self._select_first is not None:
                self.pairs.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.pairs.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None


def fragment_query(page_html: str) -> str:
    """Every field of the calculator form with its value, as htmx's hx-get sends it."""
    parser = FormFields("calculator-form")
    parser.feed(page_html)
    if not parser.pairs:
        raise SystemExit("The calculator page has no form with id calculator-form.")
    pairs = [(name, FRAGMENT_CHANGES.get(name, value)) for name, value in parser.pairs]
    return urlencode(pairs)


# --- gunicorn ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(workers: int, threads: int) -> Iterator[int]:
    """gunicorn serving the service on a free port of 127.0.0.1; stopped on the way out."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "llmtools.wsgi",
        f"--bind={HOST}:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--worker-class=gthread",
        "--keep-alive=30",
        "--log-level=warning",
        "--error-logfile=-",
    ]
    env = {**os.environ, **SERVICE_ENV, "ALLOWED_HOSTS": HOST}
    # Its own process group, so that stopping it stops its workers and nothing else.
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise SystemExit(f"gunicorn exited with {server.returncode} before serving.")
            try:
                status, _, _ = request_once(port, Endpoint("floor", "", "GET", "/healthz"))
            except OSError:
                status = 0
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer /healthz within 60 s.")
            time.sleep(0.2)
        yield port
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def request_once(
    port: int, endpoint: Endpoint, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(
            endpoint.method, endpoint.path, endpoint.body, {**endpoint.headers, **(headers or {})}
        )
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


# --- Load -------------------------------------------------------------------------------------


def measure(port: int, endpoint: Endpoint, *, clients: int, warmup: float, duration: float):
    """`clients` threads, each with one keep-alive connection, send requests back to back;
    only those started after the warm-up and before the end count."""
    start = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    timing = {"measure_from": 0.0, "measure_until": 0.0}

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        mine: list[float] = []
        failed = 0
        start.wait()
        while True:
            begun = time.perf_counter()
            if begun >= timing["measure_until"]:
                break
            try:
                conn.request(endpoint.method, endpoint.path, endpoint.body, endpoint.headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            if begun >= timing["measure_from"]:
                mine.append(time.perf_counter() - begun)
                failed += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    timing["measure_from"] = now + warmup
    timing["measure_until"] = now + warmup + duration
    start.wait()
    time.sleep(warmup)
    cpu_before = time.process_time()
    for thread in threads:
        thread.join()
    client_cpu = time.process_time() - cpu_before
    return Measurement(endpoint, len(latencies), errors[0], duration, latencies, client_cpu)


def measure_rounds(
    port: int,
    endpoints: list[Endpoint],
    *,
    clients: int,
    warmup: float,
    duration: float,
    rounds: int,
) -> list[Measurement]:
    """Each endpoint in turn for duration / rounds, `rounds` times over: a change in the
    machine's load during the run then falls on every endpoint alike, and each round gives
    every endpoint a ratio to the floor measured seconds apart."""
    slices: dict[str, list[Measurement]] = {endpoint.name: [] for endpoint in endpoints}
    for number in range(rounds):
        for endpoint in endpoints:
            slices[endpoint.name].append(
                measure(
                    port,
                    endpoint,
                    clients=clients,
                    warmup=warmup if number == 0 else min(warmup, SLICE_WARMUP),
                    duration=duration / rounds,
                )
            )
        rates = "  ".join(
            f"{name} {ms[-1].requests_per_second:,.0f}" for name, ms in slices.items()
        )
        print(f"round {number + 1}/{rounds} (req/s): {rates}", flush=True)
    return [Measurement.combined(slices[endpoint.name]) for endpoint in endpoints]


# --- Static files -----------------------------------------------------------------------------


def static_check(port: int, page_html: str) -> dict[str, str]:
    """The stylesheet named by the page, fetched as a browser would (gzip or brotli)."""
    match = re.search(r'<link rel="stylesheet" href="([^"]+\.css)"', page_html)
    if match is None:
        raise SystemExit("No stylesheet link on the calculator page.")
    url = match.group(1)
    css = Endpoint("static", "", "GET", url)
    _, plain_headers, plain = request_once(port, css)
    found: dict[str, str] = {"url": url, "bytes": f"{len(plain):,}"}
    for encoding in ("gzip", "br"):
        status, headers, body = request_once(port, css, {"Accept-Encoding": encoding})
        served = headers.get("content-encoding", "identity")
        found[encoding] = f"{served}, {len(body):,} bytes" if status == 200 else f"HTTP {status}"
        found[f"{encoding}_ok"] = str(status == 200 and served == encoding)
    found["cache_control"] = plain_headers.get("cache-control", "(none)")
    found["cache_ok"] = str(found["cache_control"] == FAR_FUTURE_CACHE)
    found["hashed_name"] = str(bool(re.search(r"\.[0-9a-f]{12}\.css$", url)))
    return found


# --- Report -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        kib = int(next(line for line in info if line.startswith("MemTotal")).split()[1])
    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
    gunicorn_version = (
        subprocess.run(
            [str(Path(sys.executable).with_name("gunicorn")), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.split()[-1]
        .strip("()")
    )
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": f"{kib / 2**20:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": postgres.split()[0],
        "django": django.get_version(),
        "gunicorn": gunicorn_version,
    }


def table(
    measurements: list[Measurement], cpu: dict[str, float], cpu_cold: dict[str, float]
) -> list[str]:
    floor = measurements[0]
    floor_cpu = cpu[floor.endpoint.name]
    lines = [
        "| endpoint | requests/s | p50 ms | p99 ms | × floor | × floor by round | budget"
        " | CPU ms | CPU × floor | CPU ms, nothing kept | errors |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for m in measurements:
        ratio = m.requests_per_second / floor.requests_per_second
        by_round = [
            rate / base for rate, base in zip(m.round_rates, floor.round_rates, strict=True)
        ]
        budget = BUDGETS.get(m.endpoint.name)
        verdict = ""
        if budget is not None:
            verdict = f"≥ {budget:.1f}× {'met' if ratio >= budget else 'MISSED'}"
        cpu_ms = 1e3 * cpu[m.endpoint.name]
        lines.append(
            f"| {m.endpoint.label} | {m.requests_per_second:,.0f} | {m.latency_ms(0.5):.1f}"
            f" | {m.latency_ms(0.99):.1f} | {ratio:.2f}"
            f" | {min(by_round):.2f}–{max(by_round):.2f} | {verdict}"
            f" | {cpu_ms:.2f} | {floor_cpu / cpu[m.endpoint.name]:.2f}"
            f" | {1e3 * cpu_cold[m.endpoint.name]:.2f} | {m.errors} |"
        )
    return lines


def report(
    measurements: list[Measurement],
    *,
    args: argparse.Namespace,
    fragment_bytes: int,
    queries: dict[str, str],
    cpu: dict[str, float],
    cpu_cold: dict[str, float],
    static: dict[str, str],
    about: dict[str, str],
) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    fragment_ok = "met" if fragment_bytes < FRAGMENT_BUDGET_BYTES else "MISSED"
    client_share = max(m.client_cpu_seconds / m.seconds for m in measurements)
    lines = [
        f"Measured {when} by `make bench` (bench/http.py).",
        "",
        f"- Machine: {about['cpu']}, {about['memory']} memory, {about['os']}.",
        f"- Software: Python {about['python']}, PostgreSQL {about['postgres']} on 127.0.0.1,"
        f" Django {about['django']}, gunicorn {about['gunicorn']}.",
        f"- Server: gunicorn gthread, {args.workers} workers × {args.threads} threads, DEBUG off,"
        " persistent database connections, API throttles off.",
        f"- Load: {args.clients} concurrent keep-alive clients (threads of the bench, on the same"
        f" cores). Each endpoint runs {args.duration:g} s in all, in {args.rounds} rounds taking"
        f" the endpoints in turn ({args.warmup:g} s warm-up first, {SLICE_WARMUP:g} s before each"
        f" later slice). The clients used at most {client_share:.0%} of one core.",
        "- CPU ms: median CPU time of one request in-process through Django's test client"
        f" ({CPU_SAMPLES} requests; Python only, not PostgreSQL's own CPU). Nothing kept: the"
        " same with the catalogs, the rendered results and pages and the verified users forgotten"
        " before each request.",
        f"- Data: one user with {args.estimates:,} saved estimates (+1 shared by link).",
        "",
        *table(measurements, cpu, cpu_cold),
        "",
        f"- htmx fragment: {fragment_bytes:,} bytes (budget < {FRAGMENT_BUDGET_BYTES:,}:"
        f" {fragment_ok}).",
        f"- Static files (`{static['url']}`, {static['bytes']} bytes):"
        f" gzip → {static['gzip']}{'' if static['gzip_ok'] == 'True' else ' (NOT COMPRESSED)'};"
        f" br → {static['br']}{'' if static['br_ok'] == 'True' else ' (NOT COMPRESSED)'};"
        f" Cache-Control `{static['cache_control']}`"
        f" ({'far-future, immutable' if static['cache_ok'] == 'True' else 'NOT far-future'});"
        f" hashed name: {'yes' if static['hashed_name'] == 'True' else 'NO'}.",
        "- SQL queries per request (Django test client, same database):",
        *(f"  - {m.endpoint.label}: {queries[m.endpoint.name]}" for m in measurements),
    ]
    return lines


def write_doc(lines: list[str]) -> None:
    block = "\n".join([DOC_START, *lines, DOC_END])
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{DOC_START}\n{DOC_END}\n"
    if DOC_START not in text or DOC_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOC_START}\n{DOC_END}\n"
    before, rest = text.split(DOC_START, 1)
    _, after = rest.split(DOC_END, 1)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(before + block + after)


# --- Main -------------------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds measured each")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of first warm-up")
    parser.add_argument("--rounds", type=int, default=5, help="slices of the duration")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=cores, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per process")
    parser.add_argument("--estimates", type=int, default=NUM_ESTIMATES, help="history size")
    parser.add_argument("--no-write", action="store_true", help="leave docs/performance.md")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    # SIGTERM unwinds like Ctrl-C, so that gunicorn is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    permalink, session = prepare(args.estimates)
    cookie = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
    htmx = {"HX-Request": "true"}
    history_label = f"GET /history/ ({args.estimates:,} estimates)"
    with gunicorn(args.workers, args.threads) as port:
        status, _, page = request_once(port, Endpoint("page", "", "GET", "/"))
        if status != 200:
            raise SystemExit(f"GET / answered {status}")
        page_html = page.decode()
        query = fragment_query(page_html)
        endpoints = [
            Endpoint("floor", "/healthz (floor)", "GET", "/healthz"),
            Endpoint(
                "calculate",
                "POST /api/v1/calculate",
                "POST",
                "/api/v1/calculate",
                {"Content-Type": "application/json"},
                json.dumps(CALCULATE_BODY).encode(),
            ),
            Endpoint("fragment", "GET / htmx fragment", "GET", f"/?{query}", htmx),
            Endpoint("permalink", "GET /e/<id>/ permalink", "GET", permalink),
            Endpoint("history", history_label, "GET", "/history/", cookie),
        ]
        for endpoint in endpoints:
            status, _, body = request_once(port, endpoint)
            if status != 200:
                raise SystemExit(f"{endpoint.label} answered {status}: {body[:300]!r}")
        _, _, fragment = request_once(port, endpoints[2])
        static = static_check(port, page_html)
        measurements = measure_rounds(
            port,
            endpoints,
            clients=args.clients,
            warmup=args.warmup,
            duration=args.duration,
            rounds=args.rounds,
        )
    queries = query_counts(query, permalink)
    cpu = cpu_medians(endpoints, session, forget=False)
    cpu_cold = cpu_medians(endpoints, session, forget=True)
    lines = report(
        measurements,
        args=args,
        fragment_bytes=len(fragment),
        queries=queries,
        cpu=cpu,
        cpu_cold=cpu_cold,
        static=static,
        about=machine(),
    )
    print("\n" + "\n".join(lines))
    if not args.no_write:
        write_doc(lines)
        print(f"\nWritten to {DOC.relative_to(ROOT)}.")


if __name__ == "__main__":
    main()
