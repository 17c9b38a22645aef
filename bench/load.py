"""Load and fault runs against gunicorn + PostgreSQL on 127.0.0.1 (issue 7, docs/reliability.md).

One run:

1. starts a private, throwaway PostgreSQL server (initdb into a temporary folder, its own free
   port on 127.0.0.1, run as the `postgres` user when started as root): the shared server on
   port 5432 is never touched, and the fault run can stop and start this one freely;
2. migrates it (the catalogs come with the migrations) and makes the load's users, each with a
   session, and a few estimates to read;
3. starts gunicorn (`llmtools.wsgi`, DEBUG off, API throttles off) on a free port of 127.0.0.1;
4. load run: N concurrent users (threads, each with its own session and a think time between
   requests) for a fixed time, each picking from a mix of the calculator page, its htmx
   fragment, saving an estimate (the HTML form and the API), the history page, permalinks, the
   stateless calculate API and the API's estimate list; prints requests served, errors, p50 and
   p99, per action and in all;
5. fault run (`--fault`): the same load while the database is stopped for `--outage` seconds in
   the middle. During the outage every answer must be a clean 503 (the page or the JSON, no
   traceback); after the database is back, the service must answer normally again within
   `--recovery-limit` seconds; every estimate whose save got a success answer must be in the
   database at the end (the script records their public ids and counts them).

It exits non-zero when a target is missed. Every request goes to 127.0.0.1 only; the run is
bounded in time, and gunicorn and the private PostgreSQL are stopped on exit, on errors and on
Ctrl-C too. Usage: `.venv/bin/python bench/load.py [--users 64] [--duration 60] [--fault]`.
"""

# ruff: noqa: E402 (sys.path is set before the imports that look for `http`)
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path, and bench/http.py would hide the standard
# library's `http` package: look in the project root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import argparse
import http.client
import json
import os
import random
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench.serving import HOST, free_port, gunicorn, percentile, service_env

PYTHON = sys.executable
PG_BIN_ROOT = Path("/usr/lib/postgresql")
MODELS = ["meta-llama/Llama-3.1-8B", "mistralai/Mixtral-8x7B-Instruct-v0.1", "Qwen/Qwen3-8B"]
# Relative weights of what a user does next
MIX = {
    "calculator_page": 3,
    "htmx_update": 6,
    "save_form": 1,
    "save_api": 1,
    "history": 2,
    "permalink": 3,
    "calculate_api": 3,
    "estimates_api": 2,
}
CLIENT_TIMEOUT_S = 30
TRACEBACK_MARKERS = ("Traceback", "OperationalError", "InterfaceError", "psycopg")


# --- A private PostgreSQL ------------------------------------------------------------------


def pg_bin(name: str) -> str:
    versions = sorted(PG_BIN_ROOT.glob("*/bin"), key=lambda path: int(path.parent.name))
    if not versions:
        sys.exit(f"No PostgreSQL server binaries under {PG_BIN_ROOT} (apt-get install postgresql).")
    return str(versions[-1] / name)


@dataclass
class PrivatePostgres:
    """A throwaway PostgreSQL cluster in a temporary folder, on its own port of 127.0.0.1."""

    folder: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_user, *command], check=True, capture_output=True, text=True)

    def init(self) -> None:
        if os.geteuid() == 0:  # initdb refuses root: the folder belongs to the postgres user
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses={HOST} -c fsync=on"
        log = str(self.folder / "postgres.log")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    folder = Path(tempfile.mkdtemp(prefix="llmtools-load-pg-"))
    server = PrivatePostgres(folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


SETUP_SCRIPT = """
import json, sys
from importlib import import_module
from django.conf import settings
from django.contrib.auth import get_user_model, load_backend
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from calculator.domain.calculations import calculation_run
from calculator import services

count = int(sys.argv[1])
User = get_user_model()
# the session store and the sign-in backend the service is configured with, as login() saves
SessionStore = import_module(settings.SESSION_ENGINE).SessionStore
BACKEND = next(
    path for path in settings.AUTHENTICATION_BACKENDS if hasattr(load_backend(path), "get_user")
)
users = []
for number in range(count):
    user = User.objects.create_user(f"load{number}", password=None)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = BACKEND
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    calculation = calculation_run(user=user, payload={"model": {"catalog": MODEL}})
    estimate = services.estimate_save(
        user=user, calculation=calculation, title="seed", notes="", visibility="link", team=None
    )
    users.append({"session": session.session_key, "permalink": estimate.public_id})
print(json.dumps(users))
"""


def prepare_database(env: dict[str, str], users: int) -> list[dict[str, str]]:
    manage = [PYTHON, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    script = f"MODEL = {MODELS[0]!r}\n" + SETUP_SCRIPT
    result = subprocess.run(
        [*manage, "shell", "-c", f"import sys; sys.argv = ['', '{users}']\n{script}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- Virtual users -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    action: str
    started: float  # seconds since the run began
    seconds: float
    status: int  # 0: no answer (connection refused or reset, timeout)
    clean: bool  # the body shows no traceback or database error text
    signed_in: bool = True  # not sent to the login page, nor refused as unauthenticated


@dataclass
class Recorder:
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    saved_public_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)

    def saved(self, public_id: str) -> None:
        with self.lock:
            self.saved_public_ids.append(public_id)


class VirtualUser:
    """One person with a session, a CSRF token and a few permalinks to read."""

    def __init__(self, port: int, session: str, permalink: str, recorder: Recorder) -> None:
        self.port = port
        self.csrf = secrets.token_hex(16)  # 32 characters: Django accepts an unmasked secret
        self.cookie = f"sessionid={session}; csrftoken={self.csrf}"
        self.permalinks = [permalink]
        self.recorder = recorder
        self.random = random.Random(session)

    def request(
        self,
        action: str,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        all_headers = {"Cookie": self.cookie, "X-CSRFToken": self.csrf, **(headers or {})}
        begun = self.recorder.now()
        status, response_headers, content = 0, {}, b""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=CLIENT_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            content = response.read()
            status, response_headers = response.status, dict(response.getheaders())
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            connection.close()
        text = content[:20000].decode(errors="replace")
        clean = not any(marker in text for marker in TRACEBACK_MARKERS)
        # every virtual user has a session: the login page or a 401/403 means it was not read
        login = status == 302 and "/accounts/login" in response_headers.get("Location", "")
        signed_in = not login and status not in (401, 403)
        self.recorder.add(
            Sample(
                action, begun, self.recorder.now() - begun, status, clean and status != 0, signed_in
            )
        )
        return status, response_headers, content

    def inputs(self) -> dict[str, str]:
        return {
            "model": "catalog",
            "catalog": self.random.choice(MODELS),
            "batch_size": str(self.random.choice([1, 2, 4, 8, 16])),
            "sequence_length": str(self.random.choice([1024, 2048, 4096, 8192])),
            "mode": self.random.choice(["inference", "inference", "training"]),
        }

    def step(self) -> None:
        action = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        getattr(self, action)(action)

    def calculator_page(self, action: str) -> None:
        self.request(action, "GET", "/?" + urlencode(self.inputs()))

    def htmx_update(self, action: str) -> None:
        self.request(action, "GET", "/?" + urlencode(self.inputs()), headers={"HX-Request": "true"})

    def save_form(self, action: str) -> None:
        fields = {**self.inputs(), "save-title": "load run", "save-visibility": "link"}
        status, headers, _ = self.request(
            action,
            "POST",
            "/estimates/save/",
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        match = re.fullmatch(r"/e/([^/]+)/", headers.get("Location", ""))
        if status == 302 and match:
            self.recorder.saved(match.group(1))
            self.permalinks.append(match.group(1))

    def save_api(self, action: str) -> None:
        inputs = self.inputs()
        payload = {
            "model": {"catalog": inputs["catalog"]},
            "batch_size": int(inputs["batch_size"]),
            "sequence_length": int(inputs["sequence_length"]),
            "title": "load run (API)",
            "visibility": "link",
        }
        status, _, content = self.request(
            action,
            "POST",
            "/api/v1/estimates/",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        if status == 201:
            public_id = json.loads(content)["public_id"]
            self.recorder.saved(public_id)
            self.permalinks.append(public_id)

    def history(self, action: str) -> None:
        self.request(action, "GET", "/history/")

    def permalink(self, action: str) -> None:
        self.request(action, "GET", f"/e/{self.random.choice(self.permalinks[-20:])}/")

    def calculate_api(self, action: str) -> None:
        inputs = self.inputs()
        payload = {
            "model": {"catalog": inputs["catalog"]},
            "mode": inputs["mode"],
            "batch_size": int(inputs["batch_size"]),
            "sequence_length": int(inputs["sequence_length"]),
        }
        self.request(
            action,
            "POST",
            "/api/v1/calculate",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )

    def estimates_api(self, action: str) -> None:
        self.request(action, "GET", "/api/v1/estimates/")


def drive(
    port: int, users: list[dict[str, str]], seconds: float, think: float, recorder: Recorder
) -> None:
    stop_at = recorder.now() + seconds

    def run(user: VirtualUser) -> None:
        time.sleep(user.random.uniform(0, think))  # spread the first requests
        while recorder.now() < stop_at:
            user.step()
            time.sleep(user.random.uniform(0.5 * think, 1.5 * think))

    threads = [
        threading.Thread(
            target=run, args=(VirtualUser(port, u["session"], u["permalink"], recorder),)
        )
        for u in users
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + CLIENT_TIMEOUT_S * 2)


# --- Reports -------------------------------------------------------------------------------


def is_error(sample: Sample, accepted_503: tuple[float, float] | None = None) -> bool:
    """No answer, a traceback, a signed-in user treated as signed out, any other 4xx (every
    request of the mix is valid), or a 5xx; in the fault run a clean 503 is the right answer
    while the database is down, and until the recovery limit after it is back."""
    if sample.status == 0 or not sample.clean or not sample.signed_in:
        return True
    if 400 <= sample.status < 500:
        return True
    if sample.status == 503 and accepted_503:
        begin, end = accepted_503
        return not (sample.started + sample.seconds >= begin and sample.started <= end)
    return sample.status >= 500


def report(
    title: str,
    samples: list[Sample],
    seconds: float,
    accepted_503: tuple[float, float] | None = None,
) -> int:
    print(f"\n{title}")
    print(f"{'action':<16} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    errors_total = 0
    for action in [*MIX, "all"]:
        chosen = [s for s in samples if action in (s.action, "all")]
        errors = sum(is_error(s, accepted_503) for s in chosen)
        if action == "all":
            errors_total = errors
        durations = [s.seconds * 1000 for s in chosen]
        print(
            f"{action:<16} {len(chosen):>9} {errors:>7} "
            f"{percentile(durations, 0.5):>8.0f} {percentile(durations, 0.99):>8.0f}"
        )
    print(f"requests served: {len(samples)} in {seconds:.0f} s ({len(samples) / seconds:.1f}/s)")
    print(f"errors: {errors_total}")
    return errors_total


def count_saved(env: dict[str, str], public_ids: list[str]) -> int:
    script = (
        "import json, sys\nfrom calculator.models import Estimate\n"
        "ids = json.load(sys.stdin)\n"
        "print(Estimate.objects.filter(public_id__in=ids).count())"
    )
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        input=json.dumps(public_ids),
        check=True,
        capture_output=True,
        text=True,
    )
    return int(result.stdout.strip().splitlines()[-1])


def load_run(args: argparse.Namespace, port: int, users: list[dict[str, str]], env) -> bool:
    recorder = Recorder()
    drive(port, users, args.duration, args.think, recorder)
    errors = report(
        f"Load: {len(users)} users for {args.duration:.0f} s (think time {args.think:g} s)",
        recorder.samples,
        recorder.now(),
    )
    saved = count_saved(env, recorder.saved_public_ids)
    attempted = sum(s.action in ("save_form", "save_api") for s in recorder.samples)
    print(
        f"saves attempted: {attempted}, answered with success: {len(recorder.saved_public_ids)},"
        f" in the database: {saved}"
    )
    # with the database up, every save must succeed and be there
    return errors == 0 and saved == len(recorder.saved_public_ids) == attempted


def fault_run(args: argparse.Namespace, port: int, users, env, database: PrivatePostgres) -> bool:
    recorder = Recorder()
    driver = threading.Thread(
        target=drive, args=(port, users, args.fault_duration, args.think, recorder)
    )
    driver.start()
    time.sleep(args.fault_at)
    stopped = recorder.now()
    database.stop()
    print(f"\nFault: PostgreSQL stopped at {stopped:.1f} s")
    time.sleep(args.outage)
    database.start()
    back = recorder.now()
    print(f"Fault: PostgreSQL accepting connections again at {back:.1f} s")
    driver.join()

    samples = recorder.samples
    errors = report(
        f"Fault: {len(users)} users for {args.fault_duration:.0f} s, database down "
        f"{back - stopped:.1f} s",
        samples,
        recorder.now(),
        (stopped, back + args.recovery_limit),
    )
    during = [s for s in samples if stopped <= s.started + s.seconds and s.started <= back]
    answered_503 = [s for s in during if s.status == 503]
    unclean = [s for s in during if not s.clean]
    statuses = Counter(s.status for s in during)
    print(
        f"during the outage: {len(during)} requests, {len(answered_503)} clean 503s, "
        f"{len(unclean)} without a clean answer; by status: {dict(sorted(statuses.items()))}"
    )
    failing_after = [s.started for s in samples if s.started > back and s.status >= 500]
    recovery = max(failing_after) - back if failing_after else 0.0
    print(f"recovered {recovery:.1f} s after the database returned (limit {args.recovery_limit} s)")
    saved = count_saved(env, recorder.saved_public_ids)
    print(
        f"saves answered with success: {len(recorder.saved_public_ids)}, in the database: {saved}"
    )
    return (
        errors == 0
        and not unclean
        and recovery <= args.recovery_limit
        and saved == len(recorder.saved_public_ids)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=64, help="concurrent users (64)")
    parser.add_argument("--duration", type=float, default=60, help="load run seconds (60)")
    parser.add_argument("--think", type=float, default=1.0, help="mean think time, s (1)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (3)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (4)")
    parser.add_argument("--warmup", type=float, default=10, help="unmeasured seconds first")
    parser.add_argument("--fault", action="store_true", help="then run the fault run")
    parser.add_argument("--no-load", action="store_true", help="skip the plain load run")
    parser.add_argument("--fault-duration", type=float, default=40, help="fault run seconds")
    parser.add_argument("--fault-at", type=float, default=12, help="stop the database at (s)")
    parser.add_argument("--outage", type=float, default=10, help="database down for (s)")
    parser.add_argument("--recovery-limit", type=float, default=5, help="seconds (5)")
    args = parser.parse_args()

    passed = True
    with private_postgres() as database:
        # No collectstatic for a load run: the pages link the static files by their plain names.
        env = service_env(database.url, STATIC_MANIFEST="0")
        print(f"Private PostgreSQL on {HOST}:{database.port} ({database.folder})")
        users = prepare_database(env, args.users)
        port = free_port()
        with gunicorn(env, workers=args.workers, threads=args.threads, port=port):
            print(f"gunicorn on {HOST}:{port}: {args.workers} workers x {args.threads} threads")
            # Warm-up, not measured: every worker's first requests fill its caches.
            drive(port, users[: args.workers * args.threads], args.warmup, 0.2, Recorder())
            if not args.no_load:
                passed &= load_run(args, port, users, env)
            if args.fault:
                passed &= fault_run(args, port, users, env, database)
    print("\nPASS" if passed else "\nFAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
