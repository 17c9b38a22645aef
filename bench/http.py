"""HTTP speed of the service as its users load it, against the framework's floor (`/healthz`)
measured in the same run under the same gunicorn (docs/performance.md says what each figure
means). One run, about four minutes on a 2-core machine (plus three or four when the static
files must be collected again):

1. re-creates its own PostgreSQL database (`llmtools_bench_http` on 127.0.0.1:5432, user
   postgres; never the one DATABASE_URL names), migrates it, and fills it with bench/bulkload.py:
   40 users in 8 teams, 1,000,000 saved estimates with real engine results, the user under test
   owning 100,000 of them; `collectstatic` runs unless the collected files are newer than every
   source file;
2. starts gunicorn (gthread, DEBUG off, API throttles off) serving the service through
   bench/probe.py, which meters each request in the worker (its CPU, its PostgreSQL backend's
   CPU, its SQL statements), and signs 32 users in through the login form;
3. drives 64 virtual users (32 signed in, 32 anonymous; threads of this process, each with one
   keep-alive connection, sending back to back) through a fixed weighted mix: 10 s of warm-up,
   10 s of the floor alone (every user on /healthz), 60 s of the mix, 10 s of the floor alone;
4. counts, with Django's test client in this process, the SQL queries of each page (first and
   last history page, large and small histories, the permalink for its owner, a teammate and a
   link reader, the fragment computed and kept, the writes);
5. prints requests/s, p50 and p99, errors, CPU and queries per request for each endpoint, its
   cost against the floor's and the budget, and writes that into docs/performance.md between
   its markers. Any error (a 5xx, an unexpected 4xx or redirect, a signed-in user answered as
   anonymous, a write that did not save, a traceback in gunicorn's log) makes it exit 1.

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
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from bench.serving import HOST, gunicorn, percentile, service_env

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
BENCH_DATABASE = "llmtools_bench_http"
DOC = ROOT / "docs" / "performance.md"
DOC_START = "<!-- bench/http.py writes from here -->"
DOC_END = "<!-- bench/http.py writes up to here -->"
PASSWORD = "bench-only-password"

# Budgets: each endpoint's server time per request under the mix, as a share of the floor's
# (floor's time / endpoint's time: the share of the floor's requests/s it would reach alone).
BUDGETS = {"calculate": 0.8, "fragment": 0.6, "permalink": 0.4, "history": 0.25}
FRAGMENT_BUDGET_BYTES = 15_000
FAR_FUTURE_CACHE = "max-age=315360000, public, immutable"

# The mix: what a virtual user asks for next, by weight (per cent of its requests). Signed-in
# users write 10 % of the time; the rest of their requests, and all of the anonymous users',
# read. /healthz stands in the anonymous mix for the load balancer's probes: it is the floor,
# measured among the same requests.
SIGNED_IN_MIX = {
    "calculate": 15.0,
    "fragment/repeated": 12.5,
    "fragment/new": 12.5,
    "permalink/own": 10.0,
    "permalink/teammate": 5.0,
    "permalink/link": 5.0,
    "history/page-1": 15.0,
    "history/later-page": 7.5,
    "history/filtered": 7.5,
    "save": 6.0,
    "profile-edit": 4.0,
}
ANONYMOUS_MIX = {
    "floor": 10.0,  # enough requests (about 1 in 20 of the mix) for a steady mean
    "calculate": 30.0,
    "fragment/repeated": 17.5,
    "fragment/new": 17.5,
    "permalink/link": 25.0,
}
# What the calculator's users pick: the fragment and the calculate API take a model and a batch
# from these (24 repeated queries); a "new" fragment also types a sequence length never asked.
MODELS = (
    "meta-llama/Llama-3.1-8B",
    "Qwen/Qwen3-8B",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "google/gemma-2-9b-it",
)
BATCHES = (1, 2, 4, 8, 16, 32)
HISTORY_FILTERS = (
    "mode=training",
    "method=standard",
    "whose=shared",
    "team={team}",
    "q=Mixtral",
    "sort=largest",
)
HISTORY_LATER_PAGES = range(2, 41)
SAMPLED_IDS = 300  # permalinks each signed-in user knows (own, teammates'), and link ones x 4
CLIENT_TIMEOUT_S = 30


# --- Set-up: environment, database, static files ---------------------------------------------


def arguments() -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of the mix (60)")
    parser.add_argument("--warmup", type=float, default=10, help="mix seconds not counted (10)")
    parser.add_argument("--floor", type=float, default=10, help="seconds of each floor slice")
    parser.add_argument(
        "--alone", type=float, default=5, help="seconds of each budgeted endpoint alone (5)"
    )
    parser.add_argument("--signed-in", type=int, default=32, help="signed-in users (32)")
    parser.add_argument("--anonymous", type=int, default=32, help="anonymous users (32)")
    parser.add_argument(
        "--main-sessions", type=int, default=4, help="signed-in users that are the user under test"
    )
    parser.add_argument("--workers", type=int, default=cores, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per process")
    parser.add_argument("--estimates", type=int, default=1_000_000, help="estimates in all")
    parser.add_argument("--main-share", type=int, default=100_000, help="the user under test's")
    parser.add_argument("--redis", metavar="URL", help="serve with REDIS_URL=URL (it is flushed)")
    parser.add_argument("--reuse-data", action="store_true", help="keep a loaded database")
    parser.add_argument(
        "--think", type=float, default=0, help="mean seconds between a user's requests (0)"
    )
    parser.add_argument("--seed", type=int, default=1, help="of the virtual users' choices")
    parser.add_argument("--no-write", action="store_true", help="leave docs/performance.md")
    args = parser.parse_args()
    if args.main_sessions > args.signed_in or args.signed_in - args.main_sessions > 39:
        parser.error("--signed-in minus --main-sessions must be 0 to 39 (40 users are loaded)")
    return args


ARGS = arguments()
SERVICE_ENV = service_env(
    f"{PG_SERVER}/{BENCH_DATABASE}",
    # the test client's host too: the query counts run in this process, on the same settings
    ALLOWED_HOSTS=f"{HOST},testserver",
    STATIC_MANIFEST="1",
    CONN_MAX_AGE="600",
    **({"REDIS_URL": ARGS.redis} if ARGS.redis else {}),
)
os.environ.clear()
os.environ.update(SERVICE_ENV)

import django

django.setup()

import psycopg
from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from bench import bulkload
from calculator.domain.caching import clear_all
from calculator.models import Estimate, Membership


def forget_kept() -> None:
    """Empty what the service keeps between requests in this process (the catalogs and the
    rendered results: calculator/domain/caching.py), so that the next request computes
    everything."""
    clear_all()


def database_recreate() -> None:
    connection.close()
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def database_exists() -> bool:
    with psycopg.connect(f"{PG_SERVER}/postgres") as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DATABASE])
        return found.fetchone() is not None


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


def prepare() -> bulkload.Layout:
    started = time.perf_counter()
    layout = None
    if ARGS.reuse_data and database_exists():
        call_command("migrate", verbosity=0)
        layout = bulkload.layout_read(PASSWORD)
        if layout is not None and layout.estimates != ARGS.estimates:
            layout = None
        if layout is not None:
            print(f"Reusing {BENCH_DATABASE}: {layout.estimates:,} bench estimates", flush=True)
    if layout is None:
        database_recreate()
        call_command("migrate", verbosity=0)
        print(f"Database created and migrated ({time.perf_counter() - started:.0f} s)", flush=True)
        print("Loading (bench/bulkload.py):", flush=True)
        layout = bulkload.load(
            password=PASSWORD, total=ARGS.estimates, main_share=ARGS.main_share, progress=print
        )
    if static_files_stale():
        started = time.perf_counter()
        print("Collecting static files (whitenoise compresses each one)...", flush=True)
        call_command("collectstatic", interactive=False, verbosity=0)
        print(f"Static files collected ({time.perf_counter() - started:.0f} s)", flush=True)
    if ARGS.redis:
        for alias in settings.CACHES:  # nothing from an earlier run or other code
            caches[alias].clear()
    return layout


@dataclass
class Known:
    """Public ids a user can open: their own, their teammates' team items, link items."""

    own: list[str] = field(default_factory=list)
    teammate: list[str] = field(default_factory=list)


def sampled_ids(layout: bulkload.Layout) -> tuple[dict[str, Known], list[str]]:
    """Random permalinks for each user, and link items for everyone, read once (a fixed seed)."""
    known: dict[str, Known] = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.5)")
        cursor.execute(
            "SELECT public_id FROM calculator_estimate WHERE visibility = 'link'"
            " ORDER BY random() LIMIT %s",
            [SAMPLED_IDS * 4],
        )
        link = [row[0] for row in cursor.fetchall()]
        for username in layout.usernames:
            cursor.execute(
                "SELECT e.public_id FROM calculator_estimate e"
                " JOIN auth_user u ON u.id = e.owner_id"
                " WHERE u.username = %s ORDER BY random() LIMIT %s",
                [username, SAMPLED_IDS],
            )
            own = [row[0] for row in cursor.fetchall()]
            teams = list(
                Membership.objects.filter(user__username=username).values_list("team_id", flat=True)
            )
            cursor.execute(
                "SELECT e.public_id FROM calculator_estimate e"
                " JOIN auth_user u ON u.id = e.owner_id"
                " WHERE e.visibility = 'team' AND e.team_id = ANY(%s) AND u.username <> %s"
                " ORDER BY random() LIMIT %s",
                [teams, username, SAMPLED_IDS],
            )
            known[username] = Known(own, [row[0] for row in cursor.fetchall()])
    return known, link


# --- HTTP: one keep-alive connection per virtual user ------------------------------------------


class KeepAlive:
    """One persistent HTTP/1.1 connection; after a failure the next request opens a new one."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        """(status, Location header, body); status 0 and the error's text when no answer."""
        try:
            self.connection.request(method, path, body, headers)
            response = self.connection.getresponse()
            content = response.read()
            return response.status, response.getheader("Location") or "", content
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()
            return 0, repr(error), b""

    def close(self) -> None:
        self.connection.close()


def cookies_of(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.msg.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def sign_in(port: int, username: str) -> dict[str, str]:
    """The cookies of a session signed in as a person does: the login form's GET (its CSRF
    token), then its POST (django-axes, then ModelBackend checks the password)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
    try:
        conn.request("GET", "/accounts/login/")
        response = conn.getresponse()
        page = response.read().decode()
        cookies = cookies_of(response)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if response.status != 200 or token is None:
            raise SystemExit(f"GET /accounts/login/ answered {response.status} without a form")
        body = urlencode(
            {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1)}
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookies['csrftoken']}",
        }
        conn.request("POST", "/accounts/login/", body, headers)
        response = conn.getresponse()
        response.read()
        cookies.update(cookies_of(response))
        if response.status != 302 or settings.SESSION_COOKIE_NAME not in cookies:
            raise SystemExit(f"Signing in as {username} answered {response.status}")
        return cookies
    finally:
        conn.close()


class FormFields(HTMLParser):
    """The name/value pairs a browser submits for one form (inputs, selects, textareas): the
    first form whose attribute `key` has `value`."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__()
        self.key, self.value = key, value
        self.inside = self.done = False
        self.pairs: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form" and not self.done:
            self.inside = a.get(self.key) == self.value
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
        if tag == "form" and self.inside:
            self.inside, self.done = False, True
        elif tag == "select" and self._select:
            if not self._select_chosen and self._select_first is not None:
                self.pairs.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.pairs.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None


def form_fields(page: str, key: str, value: str) -> list[tuple[str, str]]:
    parser = FormFields(key, value)
    parser.feed(page)
    if not parser.pairs:
        raise SystemExit(f"No form with {key}={value!r} on the page.")
    return parser.pairs


# --- The virtual users ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    tag: str  # "endpoint/variant@who"; who is anon, user, or main (the user under test)
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    expect: str  # "200"; "200 signed-in" (the save box); "saved" (-> /e/<id>/); "to <path>"


@dataclass(frozen=True, slots=True)
class Sample:
    tag: str
    seconds: float
    status: int
    error: str  # empty when the answer was the expected one


SAVE_BOX = b'name="save-title"'  # the fragment's save form: only a signed-in visitor gets it
PERMALINK = re.compile(r"/e/([^/]+)/")


def judged(request: Request, status: int, location: str, body: bytes) -> str:
    """Why this answer is an error, or "" when it is the expected one."""
    if status == 0:
        return f"no answer ({location})"
    if request.expect == "saved":
        if status == 302 and PERMALINK.fullmatch(location):
            return ""
        return f"not saved: {status} to {location or '-'}"
    if request.expect.startswith("to "):
        if status == 302 and location == request.expect[3:]:
            return ""
        return f"not saved: {status} to {location or '-'}"
    if status == 302 and "/accounts/login" in location:
        return "answered as signed out (sent to the login page)"
    if status != 200:
        return f"HTTP {status}" + (f" to {location}" if location else "")
    if request.expect == "200 signed-in" and SAVE_BOX not in body:
        return "answered as signed out (no save box)"
    return ""


class Calculator:
    """The calculator's form as htmx sends it (every field), and the API's bodies."""

    def __init__(self, page: str) -> None:
        varied = ("catalog", "batch_size", "sequence_length", "model")
        pairs = [
            pair for pair in form_fields(page, "id", "calculator-form") if pair[0] not in varied
        ]
        self.fixed = urlencode(pairs)
        self.repeated = [self.query(model, batch, 8192) for model in MODELS for batch in BATCHES]
        self.api_bodies = [
            json.dumps(
                {"model": {"catalog": model}, "batch_size": batch, "sequence_length": 8192}
            ).encode()
            for model in MODELS
            for batch in BATCHES
        ]

    def query(self, model: str, batch: int, sequence_length: int) -> str:
        varied = {
            "model": "catalog",
            "catalog": model,
            "batch_size": batch,
            "sequence_length": sequence_length,
        }
        return f"{self.fixed}&{urlencode(varied)}"


@dataclass
class Account:
    """A signed-in virtual user's session and what it knows."""

    username: str
    main: bool  # the user under test
    cookies: dict[str, str]
    known: Known
    team: str  # slug of the team their team items go to
    profile_path: str  # their own profile's edit form
    profile_fields: list[tuple[str, str]]


class VirtualUser:
    def __init__(
        self,
        number: int,
        calculator: Calculator,
        link_ids: list[str],
        account: Account | None,
    ) -> None:
        self.number = number
        self.random = random.Random(ARGS.seed * 1000 + number)
        self.calculator = calculator
        self.link_ids = link_ids
        self.account = account
        self.who = "anon" if account is None else ("main" if account.main else "user")
        mix = ANONYMOUS_MIX if account is None else SIGNED_IN_MIX
        self.mix = mix
        self.choices = list(mix)
        self.cumulative = [sum(list(mix.values())[: i + 1]) for i in range(len(mix))]
        self.headers: dict[str, str] = {}
        if account is not None:
            csrf = account.cookies["csrftoken"]
            cookie = "; ".join(f"{name}={value}" for name, value in account.cookies.items())
            self.headers = {"Cookie": cookie, "X-CSRFToken": csrf}
        self.edits = 0  # of their profile

    def next(self, phase: str, only: str = "") -> Request:
        """The next request of the mix; with `only`, of that endpoint's part of the mix."""
        choices, cumulative = self.choices, self.cumulative
        if only:
            choices = [what for what in self.choices if what.split("/")[0] == only]
            weights = [self.mix[what] for what in choices]
            cumulative = [sum(weights[: i + 1]) for i in range(len(weights))]
        what = self.random.choices(choices, cum_weights=cumulative)[0]
        return getattr(self, what.replace("/", "_").replace("-", "_"))(f"{phase}:{what}@{self.who}")

    def asks_for(self, name: str) -> bool:
        return any(what.split("/")[0] == name for what in self.choices)

    def _get(self, tag: str, path: str, expect: str = "200", **extra: str) -> Request:
        return Request(tag, "GET", path, None, {**self.headers, **extra, "X-Bench": tag}, expect)

    def _post(self, tag: str, path: str, body: bytes, content_type: str, expect: str) -> Request:
        headers = {**self.headers, "Content-Type": content_type, "X-Bench": tag}
        return Request(tag, "POST", path, body, headers, expect)

    def floor(self, tag: str) -> Request:
        return Request(tag, "GET", "/healthz", None, {"X-Bench": tag}, "200")

    def calculate(self, tag: str) -> Request:
        body = self.random.choice(self.calculator.api_bodies)
        return self._post(tag, "/api/v1/calculate", body, "application/json", "200")

    def _fragment(self, tag: str, query: str) -> Request:
        expect = "200" if self.account is None else "200 signed-in"
        return self._get(tag, f"/?{query}", expect, **{"HX-Request": "true"})

    def fragment_repeated(self, tag: str) -> Request:
        return self._fragment(tag, self.random.choice(self.calculator.repeated))

    def fragment_new(self, tag: str) -> Request:
        # A length typed by hand: one of 130,000, so almost never a query asked before.
        sequence_length = self.random.randint(1_000, 131_072)
        model, batch = self.random.choice(MODELS), self.random.choice(BATCHES)
        return self._fragment(tag, self.calculator.query(model, batch, sequence_length))

    def permalink_own(self, tag: str) -> Request:
        assert self.account is not None
        return self._get(tag, f"/e/{self.random.choice(self.account.known.own[-SAMPLED_IDS:])}/")

    def permalink_teammate(self, tag: str) -> Request:
        assert self.account is not None
        return self._get(tag, f"/e/{self.random.choice(self.account.known.teammate)}/")

    def permalink_link(self, tag: str) -> Request:
        return self._get(tag, f"/e/{self.random.choice(self.link_ids)}/")

    def history_page_1(self, tag: str) -> Request:
        return self._get(tag, "/history/")

    def history_later_page(self, tag: str) -> Request:
        return self._get(tag, f"/history/?page={self.random.choice(HISTORY_LATER_PAGES)}")

    def history_filtered(self, tag: str) -> Request:
        assert self.account is not None
        chosen = self.random.choice(HISTORY_FILTERS).format(team=self.account.team)
        return self._get(tag, f"/history/?{chosen}")

    def save(self, tag: str) -> Request:
        assert self.account is not None
        visibility = self.random.choices(["private", "team", "link"], [60, 25, 15])[0]
        fields = {
            "save-title": f"Saved by {self.account.username}",
            "save-notes": "",
            "save-visibility": visibility,
            "save-team": self.account.team if visibility == "team" else "",
        }
        query = self.calculator.query(self.random.choice(MODELS), self.random.choice(BATCHES), 4096)
        body = f"{query}&{urlencode(fields)}".encode()
        return self._post(
            tag, "/estimates/save/", body, "application/x-www-form-urlencoded", "saved"
        )

    def profile_edit(self, tag: str) -> Request:
        assert self.account is not None
        self.edits += 1
        fields = [
            (name, f"Edited {self.edits} times by the bench." if name == "description" else value)
            for name, value in self.account.profile_fields
        ]
        path = self.account.profile_path
        return self._post(
            tag,
            path,
            urlencode(fields).encode(),
            "application/x-www-form-urlencoded",
            f"to {path.removesuffix('edit/')}",
        )

    def answered(self, request: Request, location: str) -> None:
        """A saved estimate joins the user's own ones: later permalinks may open it."""
        if self.account is not None and request.expect == "saved":
            match = PERMALINK.fullmatch(location)
            if match:
                self.account.known.own.append(match.group(1))


# --- Phases ----------------------------------------------------------------------------------


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of whole processes (every thread), from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / ticks


def worker_pids(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as children:
        return [int(pid) for pid in children.read().split()]


@dataclass
class Phase:
    name: str
    seconds: float
    samples: list[Sample]
    client_cpu: float  # seconds of CPU this process used (the virtual users)
    worker_cpu: float  # seconds of CPU the gunicorn workers used


def run_phase(
    port: int,
    master: int,
    users: list[VirtualUser],
    seconds: float,
    name: str,
    pick: Callable[[VirtualUser, str], Request],
    think: float = 0.0,
) -> Phase:
    """Every user sends requests back to back (or `think` seconds apart on average) for
    `seconds` on its own connection; a request begun before the end counts."""
    start = threading.Barrier(len(users) + 1)
    lock = threading.Lock()
    samples: list[Sample] = []
    stop = [0.0]

    def run(user: VirtualUser) -> None:
        conn = KeepAlive(port)
        mine: list[Sample] = []
        start.wait()
        while time.perf_counter() < stop[0]:
            request = pick(user, name)
            begun = time.perf_counter()
            status, location, body = conn.send(
                request.method, request.path, request.body, request.headers
            )
            took = time.perf_counter() - begun
            error = judged(request, status, location, body)
            if not error:
                user.answered(request, location)
            mine.append(Sample(request.tag, took, status, error and f"{request.path}: {error}"))
            if think:
                time.sleep(user.random.uniform(0.5 * think, 1.5 * think))
        conn.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=run, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    pids = worker_pids(master)
    cpu_before, workers_before = time.process_time(), process_cpu_seconds(pids)
    stop[0] = time.perf_counter() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return Phase(
        name,
        seconds,
        samples,
        time.process_time() - cpu_before,
        process_cpu_seconds(pids) - workers_before,
    )


def mixed(user: VirtualUser, phase: str) -> Request:
    return user.next(phase)


def floor_only(user: VirtualUser, phase: str) -> Request:
    return user.floor(f"{phase}:floor@{user.who}")


def alone(name: str) -> Callable[[VirtualUser, str], Request]:
    return lambda user, phase: user.next(phase, only=name)


# --- The server's meter (bench/probe.py) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metered:
    tag: str
    status: int
    cpu: float  # seconds: the worker thread
    database_cpu: float  # seconds: its PostgreSQL backend; -1 when unknown
    queries: int
    wall: float
    worker: int  # its pid


def metered(folder: Path) -> dict[str, list[Metered]]:
    """The probe's records by phase."""
    phases: dict[str, list[Metered]] = defaultdict(list)
    for path in folder.glob("probe-*.tsv"):
        worker = int(path.stem.removeprefix("probe-"))
        for line in path.read_text().splitlines():
            tag, status, cpu, database_cpu, queries, wall, _ = line.split("\t")
            phase, _, what = tag.partition(":")
            database = int(database_cpu) / 1e9 if int(database_cpu) >= 0 else -1.0
            phases[phase].append(
                Metered(
                    what,
                    int(status),
                    int(cpu) / 1e9,
                    database,
                    int(queries),
                    int(wall) / 1e9,
                    worker,
                )
            )
    return phases


@dataclass
class Cost:
    """Server time per request: the worker thread's CPU, its PostgreSQL backend's CPU, and an
    equal share of the workers' CPU outside the metered window (gunicorn reading requests and
    writing answers, its event loop, the meter)."""

    requests: int
    cpu: float
    database: float
    overhead: float
    queries: tuple[int, int]

    @property
    def total(self) -> float:
        return self.cpu + self.database + self.overhead


def costs(records: list[Metered], phase: Phase) -> Callable[[Callable[[str], bool]], Cost]:
    overhead = max(0.0, phase.worker_cpu - sum(r.cpu for r in records)) / max(1, len(records))

    def of(chosen: Callable[[str], bool]) -> Cost:
        picked = [r for r in records if chosen(r.tag)]
        if not picked:
            return Cost(0, 0.0, 0.0, overhead, (0, 0))
        known = [r.database_cpu for r in picked if r.database_cpu >= 0]
        return Cost(
            len(picked),
            sum(r.cpu for r in picked) / len(picked),
            sum(known) / len(known) if known else 0.0,
            overhead,
            (min(r.queries for r in picked), max(r.queries for r in picked)),
        )

    return of


# --- Query counts (Django's test client, in this process) ------------------------------------


def counted(client: Client, method: str, path: str, **extra: Any) -> str:
    """The request's SQL statements, and how long they took (Django's own record of them
    rounds each to the millisecond)."""
    spent = [0.0]

    def timed(execute: Callable[..., Any], *args: Any) -> Any:
        begun = time.perf_counter()
        try:
            return execute(*args)
        finally:
            spent[0] += time.perf_counter() - begun

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timed):
        response = getattr(client, method)(path, **extra)
    if response.status_code not in (200, 302):
        raise SystemExit(f"{method.upper()} {path} answered {response.status_code} in-process")
    return f"{len(queries)} ({1e3 * spent[0]:.1f} ms of SQL)"


def fresh(client: Client, path: str, **extra: Any) -> str:
    """Queries of a request with nothing kept from an earlier one."""
    forget_kept()
    return counted(client, "get", path, **extra)


def query_counts(
    calculator: Calculator, accounts: list[Account], link_ids: list[str]
) -> list[tuple[str, str]]:
    main = next(a for a in accounts if a.main)
    other = next(a for a in accounts if not a.main)

    def client(account: Account | None) -> Client:
        made = Client()
        for name, value in (account.cookies if account else {}).items():
            made.cookies[name] = value
        return made

    anonymous, owner, teammate = client(None), client(main), client(other)
    listed = {
        account.username: -(-count_listed(account.username) // 25) for account in (main, other)
    }
    fragment = f"/?{calculator.repeated[0]}"
    htmx = {"HTTP_HX_REQUEST": "true"}
    own_private = (
        Estimate.objects.filter(owner__username=main.username, visibility="private")
        .order_by("id")
        .values_list("public_id", flat=True)
    )
    team_item = Estimate.objects.filter(
        visibility="team", team__memberships__user__username=other.username
    ).exclude(owner__username=other.username)
    calculate = {"data": calculator.api_bodies[0], "content_type": "application/json"}
    forget_kept()
    computed = counted(anonymous, "post", "/api/v1/calculate", **calculate)
    counts = [
        ("/healthz (floor)", counted(anonymous, "get", "/healthz")),
        ("POST /api/v1/calculate, catalog read", computed),
        (
            "POST /api/v1/calculate, catalog kept",
            counted(anonymous, "post", "/api/v1/calculate", **calculate),
        ),
        ("htmx fragment, computed (anonymous)", fresh(anonymous, fragment, **htmx)),
        ("htmx fragment, kept (anonymous)", counted(anonymous, "get", fragment, **htmx)),
        ("htmx fragment, computed (signed in)", fresh(owner, fragment, **htmx)),
        ("permalink, link reader", fresh(anonymous, f"/e/{link_ids[0]}/")),
        ("permalink, its owner (oldest private)", fresh(owner, f"/e/{own_private.first()}/")),
        ("permalink, its owner (newest private)", fresh(owner, f"/e/{own_private.last()}/")),
        ("permalink, a teammate", fresh(teammate, f"/e/{team_item.first().public_id}/")),
    ]
    for account, who in ((main, "the user under test"), (other, "another user")):
        signed_in = owner if account is main else teammate
        last = listed[account.username]
        counts += [
            (f"history page 1, {who}", fresh(signed_in, "/history/")),
            (
                f"history page {last:,} (the last), {who}",
                fresh(signed_in, f"/history/?page={last}"),
            ),
        ]
    counts += [
        ("history, the user under test, mode=training", fresh(owner, "/history/?mode=training")),
        ("history, the user under test, sort=largest", fresh(owner, "/history/?sort=largest")),
    ]
    body = calculator.query(MODELS[0], 1, 4096) + "&save-title=counted&save-visibility=private"
    counts.append(
        (
            "save an estimate (POST)",
            counted(
                owner,
                "post",
                "/estimates/save/",
                data=body,
                content_type="application/x-www-form-urlencoded",
            ),
        )
    )
    counts.append(
        (
            "edit a profile (POST)",
            counted(
                owner,
                "post",
                main.profile_path,
                data=urlencode(main.profile_fields),
                content_type="application/x-www-form-urlencoded",
            ),
        )
    )
    connection.close()
    return counts


def count_listed(username: str) -> int:
    from django.contrib.auth import get_user_model

    from calculator.domain.selectors import estimate_list

    return estimate_list(user=get_user_model().objects.get(username=username)).count()


# --- Static files ------------------------------------------------------------------------------


def request_once(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT_S)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def static_check(port: int, page: str) -> str:
    """The stylesheet the page links, fetched as a browser would (gzip or brotli)."""
    match = re.search(r'<link rel="stylesheet" href="([^"]+\.css)"', page)
    if match is None:
        raise SystemExit("No stylesheet link on the calculator page.")
    url = match.group(1)
    _, headers, plain = request_once(port, url, {})
    served = []
    for encoding in ("gzip", "br"):
        status, answer, body = request_once(port, url, {"Accept-Encoding": encoding})
        used = answer.get("content-encoding", "identity")
        mark = "" if status == 200 and used == encoding else " (NOT COMPRESSED)"
        served.append(f"{encoding} → {used}, {len(body):,} bytes{mark}")
    cache = headers.get("cache-control", "(none)")
    hashed = "yes" if re.search(r"\.[0-9a-f]{12}\.css$", url) else "NO"
    return (
        f"Static files (`{url}`, {len(plain):,} bytes): {'; '.join(served)};"
        f" Cache-Control `{cache}`"
        f" ({'far-future, immutable' if cache == FAR_FUTURE_CACHE else 'NOT far-future'});"
        f" hashed name: {hashed}."
    )


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
    gunicorn_version = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    return {
        "cpu": f"{os.cpu_count()} × {cpu}",
        "memory": f"{kib / 2**20:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": postgres.split()[0],
        "django": django.get_version(),
        "gunicorn": gunicorn_version.strip("()"),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "code": code_version(),
    }


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return "code outside a git checkout"
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.splitlines()
    dirty = f", with uncommitted changes to {len(changed)} files" if changed else ""
    return f"commit {head.stdout.strip()}{dirty}"


@dataclass(frozen=True)
class Row:
    label: str
    chosen: Callable[[str], bool]  # of a tag without its phase: "endpoint/variant@who"
    budget: str = ""  # the BUDGETS key checked on this row


def endpoint(name: str) -> Callable[[str], bool]:
    return lambda tag: tag.split("@")[0].split("/")[0] == name


def variant(name: str) -> Callable[[str], bool]:
    return lambda tag: tag.split("@")[0] == name


ROWS = (
    Row("/healthz (floor)", endpoint("floor")),
    Row("POST /api/v1/calculate", endpoint("calculate"), "calculate"),
    Row("GET / htmx fragment", endpoint("fragment"), "fragment"),
    Row("↳ a repeated query (24 in turn)", variant("fragment/repeated")),
    Row("↳ a new query", variant("fragment/new")),
    Row("GET /e/<id>/ permalink", endpoint("permalink"), "permalink"),
    Row("↳ the owner's", variant("permalink/own")),
    Row("↳ a teammate's team item", variant("permalink/teammate")),
    Row("↳ by link (signed in or not)", variant("permalink/link")),
    Row("GET /history/", endpoint("history"), "history"),
    Row("↳ page 1", variant("history/page-1")),
    Row("↳ pages 2 to 40", variant("history/later-page")),
    Row("↳ filtered or sorted", variant("history/filtered")),
    Row("↳ the user under test's", lambda tag: tag.startswith("history/") and "@main" in tag),
    Row("POST /estimates/save/ (write)", endpoint("save")),
    Row("POST /profiles/<id>/edit/ (write)", endpoint("profile-edit")),
    Row("all requests", lambda tag: True),
)


def summary_table(mix: Phase, records: list[Metered]) -> tuple[list[str], dict]:
    cost_of = costs(records, mix)
    floor_cost = cost_of(endpoint("floor")).total
    lines = [
        "| endpoint | requests | req/s | p50 ms | p99 ms | errors | CPU ms | PostgreSQL ms"
        " | server ms | × floor | budget | queries |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    verdicts: dict[str, tuple[float, bool]] = {}
    phase_tags = [(s, s.tag.split(":", 1)[1]) for s in mix.samples]
    for row in ROWS:
        picked = [s for s, tag in phase_tags if row.chosen(tag)]
        cost = cost_of(row.chosen)
        latencies = [1e3 * s.seconds for s in picked]
        ratio = floor_cost / cost.total if cost.requests else 0.0
        verdict = ""
        if row.budget:
            budget = BUDGETS[row.budget]
            verdicts[row.budget] = (ratio, ratio >= budget)
            verdict = f"≥ {budget:g}× {'met' if ratio >= budget else 'MISSED'}"
        low, high = cost.queries
        queries = f"{low}" if low == high else f"{low}–{high}"
        lines.append(
            f"| {row.label} | {len(picked):,} | {len(picked) / mix.seconds:,.1f}"
            f" | {percentile(latencies, 0.5):.1f} | {percentile(latencies, 0.99):.1f}"
            f" | {sum(1 for s in picked if s.error)} | {1e3 * cost.cpu:.2f}"
            f" | {1e3 * cost.database:.2f} | {1e3 * cost.total:.2f} | {ratio:.2f}"
            f" | {verdict} | {queries} |"
        )
    return lines, verdicts


def report(
    *,
    layout: bulkload.Layout,
    phases: dict[str, Phase],
    records: dict[str, list[Metered]],
    queries: list[tuple[str, str]],
    fragment_bytes: int,
    static: str,
    tracebacks: int,
    about: dict[str, str],
    load_seconds: float,
) -> tuple[list[str], int, dict]:
    mix = phases["mix"]
    floors = [phases["floor-before"], phases["floor-after"]]
    floor_rates = [len(f.samples) / f.seconds for f in floors]
    floor_costs = [costs(records[f.name], f)(endpoint("floor")).total for f in floors]
    table, verdicts = summary_table(mix, records["mix"])
    floor_tag = endpoint("floor")
    in_mix = [r.cpu + max(0.0, r.database_cpu) for r in records["mix"] if floor_tag(r.tag)]
    floor_spread = (
        f"{len(in_mix):,} requests; their thread and PostgreSQL time"
        f" {1e3 * sum(in_mix) / max(1, len(in_mix)):.2f} ms on average,"
        f" {1e3 * percentile(in_mix, 0.5):.2f} ms median"
    )
    errors = [s for phase in phases.values() for s in phase.samples if s.error]
    by_kind: dict[str, int] = defaultdict(int)
    for sample in errors:
        by_kind[sample.tag.split(":", 1)[1] + ": " + sample.error.split(": ", 1)[-1]] += 1
    total_errors = len(errors) + tracebacks
    database = sum(r.database_cpu for r in records["mix"] if r.database_cpu > 0)
    per_worker: dict[int, int] = defaultdict(int)
    for record in records["mix"]:
        per_worker[record.worker] += 1
    shares = " / ".join(
        f"{n / len(records['mix']):.0%}" for n in sorted(per_worker.values(), reverse=True)
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    options = " ".join(sys.argv[1:])
    command = f"`bench/http.py {options}`" if options else "`bench/http.py` (`make bench`)"
    listed = count_listed(layout.user_under_test)
    lines = [
        f"Measured {when} by {command}.",
        "",
        f"- Machine: {about['cpu']}, {about['memory']} memory, {about['os']};"
        f" load average {about['load']} at the end.",
        f"- Code: {about['code']}.",
        f"- Software: Python {about['python']}, PostgreSQL {about['postgres']} on 127.0.0.1,"
        f" Django {about['django']}, gunicorn {about['gunicorn']}"
        f" ({ARGS.workers} gthread workers × {ARGS.threads} threads, DEBUG off, persistent"
        " database connections, API throttles off"
        f"{', Redis at ' + ARGS.redis if ARGS.redis else ', no Redis'}).",
        f"- Data: {layout.estimates:,} estimates of {len(layout.usernames)} users in"
        f" {len(layout.team_slugs)} teams ("
        + (f"loaded in {load_seconds:.0f} s" if layout.seconds else "kept from an earlier run")
        + "); the user under test"
        f" owns {ARGS.main_share:,} and sees {listed:,} in their history.",
        f"- Load: {ARGS.signed_in} signed-in users ({ARGS.main_sessions} of them the user under"
        f" test) and {ARGS.anonymous} anonymous, back to back on keep-alive connections:"
        f" {ARGS.warmup:g} s of the mix as warm-up, {ARGS.floor:g} s of the floor alone,"
        f" {ARGS.duration:g} s of the mix, {ARGS.floor:g} s of the floor alone"
        + (
            f"; then {ARGS.alone:g} s of each budgeted endpoint alone, and of the floor."
            if ARGS.alone
            else "."
        ),
        f"- The floor alone: {floor_rates[0]:,.0f} and {floor_rates[1]:,.0f} requests/s before"
        f" and after the mix ({1e3 * floor_costs[0]:.2f} and {1e3 * floor_costs[1]:.2f} ms of"
        f" server time per request); within the mix, {floor_spread}.",
        f"- The mix: {len(mix.samples) / mix.seconds:,.0f} requests/s; the gunicorn workers used"
        f" {mix.worker_cpu / mix.seconds:.2f} cores, their PostgreSQL backends"
        f" {database / mix.seconds:.2f}, the virtual users {mix.client_cpu / mix.seconds:.2f};"
        f" the workers served {shares} of the requests (a keep-alive connection stays with"
        " the worker that accepted it).",
        "",
        *table,
        "",
        f"- Errors: {total_errors}"
        + (
            " (" + "; ".join(f"{n} × {kind}" for kind, n in sorted(by_kind.items())) + ")"
            if by_kind
            else ""
        )
        + (f"; {tracebacks} tracebacks in gunicorn's log" if tracebacks else "")
        + ".",
        *cross_check(phases, records),
        "- Budgets (× floor under the mix): "
        + ", ".join(
            f"{name} {ratio:.2f} ({'met' if ok else 'MISSED'})"
            for name, (ratio, ok) in verdicts.items()
        )
        + ".",
        f"- htmx fragment: {fragment_bytes:,} bytes (budget < {FRAGMENT_BUDGET_BYTES:,}:"
        f" {'met' if fragment_bytes < FRAGMENT_BUDGET_BYTES else 'MISSED'}).",
        f"- {static}",
        "- SQL queries per request, in-process (Django's test client, the same database; nothing"
        " kept from an earlier request unless said):",
        *(f"  - {label}: {count}" for label, count in queries),
    ]
    return lines, total_errors, verdicts


def cross_check(phases: dict[str, Phase], records: dict[str, list[Metered]]) -> list[str]:
    """Each budgeted endpoint's requests/s alone over the floor's alone (the old bench's
    measure), beside its cost ratio in the same slices: where they agree, the cost ratio under
    the mix reads as requests/s would."""
    if "alone-floor" not in phases:
        return []
    floors = [phases[name] for name in ("floor-after", "alone-floor")]
    floor_rate = sum(len(f.samples) / f.seconds for f in floors) / len(floors)
    floor_cost = sum(costs(records[f.name], f)(endpoint("floor")).total for f in floors) / 2
    parts = []
    for name in BUDGETS:
        phase = phases[f"alone-{name}"]
        rate = len(phase.samples) / phase.seconds
        cost = costs(records[phase.name], phase)(endpoint(name)).total
        parts.append(
            f"{name} {rate:,.0f} requests/s, {rate / floor_rate:.2f}× the floor's"
            f" ({floor_cost / cost:.2f}× by server time)"
        )
    return [
        f"- Cross-check, each endpoint alone for {ARGS.alone:g} s (its users only, back to back),"
        f" against the floor alone ({floor_rate:,.0f} requests/s, after the mix and last): "
        + "; ".join(parts)
        + "."
    ]


def write_doc(lines: list[str]) -> None:
    block = "\n".join([DOC_START, *lines, DOC_END])
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{DOC_START}\n{DOC_END}\n"
    if DOC_START not in text or DOC_END not in text:
        text = text.rstrip("\n") + f"\n\n{DOC_START}\n{DOC_END}\n"
    before, rest = text.split(DOC_START, 1)
    _, after = rest.split(DOC_END, 1)
    DOC.write_text(before + block + after)


# --- Main -------------------------------------------------------------------------------------


def accounts_signed_in(
    port: int, layout: bulkload.Layout, known: dict[str, Known]
) -> list[Account]:
    """One account per signed-in virtual user: the first --main-sessions are the user under
    test (each its own session, as on several devices), then one other user each."""
    names = [layout.user_under_test] * ARGS.main_sessions
    names += layout.usernames[1 : 1 + ARGS.signed_in - ARGS.main_sessions]
    sessions: dict[int, dict[str, str]] = {}

    def sign(number: int) -> None:
        sessions[number] = sign_in(port, names[number])

    threads = [threading.Thread(target=sign, args=(n,)) for n in range(len(names))]
    for batch in range(0, len(threads), 8):  # the password hash is slow on purpose
        for thread in threads[batch : batch + 8]:
            thread.start()
        for thread in threads[batch : batch + 8]:
            thread.join()
    if len(sessions) != len(names):
        raise SystemExit("Not every virtual user could sign in.")
    accounts = []
    forms: dict[str, list[tuple[str, str]]] = {}
    for number, name in enumerate(names):
        path = f"/profiles/{layout.profiles[name]}/edit/"
        if name not in forms:
            cookie = "; ".join(f"{k}={v}" for k, v in sessions[number].items())
            status, _, page = request_once(port, path, {"Cookie": cookie})
            if status != 200:
                raise SystemExit(f"GET {path} as {name} answered {status}")
            # Each session sends its own CSRF token (a header): not the one of the page read here.
            forms[name] = [
                pair
                for pair in form_fields(page.decode(), "action", path)
                if pair[0] != "csrfmiddlewaretoken"
            ]
        accounts.append(
            Account(
                username=name,
                main=name == layout.user_under_test,
                cookies=sessions[number],
                known=Known(list(known[name].own), list(known[name].teammate)),
                team=layout.home_team[name],
                profile_path=path,
                profile_fields=forms[name],
            )
        )
    return accounts


def main() -> int:
    # SIGTERM unwinds like Ctrl-C, so that gunicorn is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    layout = prepare()
    load_seconds = layout.seconds or time.perf_counter() - started
    known, link_ids = sampled_ids(layout)
    connection.close()
    probe_dir = Path(tempfile.mkdtemp(prefix="llmtools-bench-probe-"))
    env = {**SERVICE_ENV, "ALLOWED_HOSTS": HOST, "BENCH_PROBE_DIR": str(probe_dir)}
    tracebacks: list[str] = []
    phases: dict[str, Phase] = {}
    try:
        with gunicorn(
            env,
            workers=ARGS.workers,
            threads=ARGS.threads,
            app="bench.probe:application",
            found_tracebacks=tracebacks,
        ) as (port, master):
            status, _, page = request_once(port, "/", {})
            if status != 200:
                raise SystemExit(f"GET / answered {status}")
            calculator = Calculator(page.decode())
            accounts = accounts_signed_in(port, layout, known)
            users = [
                VirtualUser(n, calculator, link_ids, account)
                for n, account in enumerate([*accounts, *[None] * ARGS.anonymous])
            ]
            _, _, fragment = request_once(
                port, f"/?{calculator.repeated[0]}", {"HX-Request": "true"}
            )
            static = static_check(port, page.decode())
            print(f"{len(accounts)} users signed in; running the phases:", flush=True)
            for name, seconds, pick in (
                ("warmup", ARGS.warmup, mixed),
                ("floor-before", ARGS.floor, floor_only),
                ("mix", ARGS.duration, mixed),
                ("floor-after", ARGS.floor, floor_only),
            ):
                think = ARGS.think if pick is mixed else 0.0
                phases[name] = run_phase(port, master, users, seconds, name, pick, think)
                count = len(phases[name].samples)
                print(f"  {name}: {count:,} requests ({count / seconds:,.0f}/s)", flush=True)
            # The cross-check: each budgeted endpoint alone, from the users whose mix has it.
            for name in [*BUDGETS, "floor"] if ARGS.alone else []:
                phase = f"alone-{name}"
                askers = [user for user in users if user.asks_for(name)]
                if name == "floor":
                    askers, pick = users, floor_only
                else:
                    pick = alone(name)
                phases[phase] = run_phase(port, master, askers, ARGS.alone, phase, pick)
                count = len(phases[phase].samples)
                print(f"  {phase}: {count:,} requests ({count / ARGS.alone:,.0f}/s)", flush=True)
        records = metered(probe_dir)
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    queries = query_counts(calculator, accounts, link_ids)
    lines, errors, _ = report(
        layout=layout,
        phases=phases,
        records=records,
        queries=queries,
        fragment_bytes=len(fragment),
        static=static,
        tracebacks=len(tracebacks),
        about=machine(),
        load_seconds=load_seconds,
    )
    print("\n" + "\n".join(lines))
    examples = sorted({s.error for phase in phases.values() for s in phase.samples if s.error})
    for example in examples[:5]:
        print(f"error: {example}")
    if not ARGS.no_write:
        write_doc(lines)
        print(f"\nWritten to {DOC.relative_to(ROOT)}.")
    if errors:
        print(f"\nFAIL: {errors} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
