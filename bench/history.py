"""History and export speed with 100,000 saved estimates: prints median and p99 times.

Fills the database that DATABASE_URL names (PostgreSQL; it refuses to run without one, so the
SQLite development database is never filled) with 100,000 estimates in batches: 50,000 of one
user (bench-alice), 30,000 of a teammate (bench-bob, half of them shared with their team) and
20,000 of an outsider (bench-carol). Then it times the history page for bench-alice with the
main filter combinations, the CSV and JSON exports, and prints PostgreSQL's plan for the page
query. Run:

    createdb -h 127.0.0.1 -U postgres llmtools_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/llmtools_bench .venv/bin/python bench/history.py

A second run reuses the rows (pass --refill to rebuild them).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a file, Python puts bench/ first on the path, where bench/http.py would stand in for
# the standard library's http package: the repository root goes there instead.
sys.path = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
    sys.exit("Set DATABASE_URL to a PostgreSQL database (see this file's docstring).")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmtools.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from calculator.engine.inputs import DEFAULTS  # noqa: E402
from calculator.models import Estimate, Membership, Role, Team, Visibility  # noqa: E402
from calculator.web.history_filters import history_filter  # noqa: E402

TOTAL = 100_000
SHARES = {"bench-alice": 50_000, "bench-bob": 30_000, "bench-carol": 20_000}
BATCH = 5_000
MODELS = ["Llama 3.1 8B", "Qwen3 30B-A3B", "Mistral 7B", "Gemma 2 9B", "gpt-oss 20b"]
PAGE_REPEATS = 40
EXPORT_REPEATS = 5


def _result(rng: random.Random, mode: str) -> tuple[dict, dict, int]:
    """A stored result shaped like the engine's (sizes vary; these are not estimates)."""
    weights = rng.randrange(1, 160) * 2**30
    kv_cache = rng.randrange(0, 64) * 2**28
    activations = rng.randrange(1, 32) * 2**26
    training = mode == "training"
    breakdown = {
        "weights": weights,
        "kv_cache": 0 if training else kv_cache,
        "activations": activations,
        "gradients": weights if training else 0,
        "optimizer_states": 4 * weights if training else 0,
        "runtime_overhead": 1_073_741_824,
    }
    inputs = {
        **DEFAULTS,  # the contract's defaults, as a saved estimate's inputs hold them
        "model": {"catalog": "meta-llama/Llama-3.1-8B"},
        "mode": mode,
        "batch_size": rng.choice([1, 2, 4, 8, 16]),
        "sequence_length": rng.choice([2048, 4096, 8192, 32768]),
        "weight_dtype": "bfloat16",
        "kv_cache_dtype": "bfloat16",
    }
    total = sum(breakdown.values())
    result = {
        "parameters": {"total": 8_030_261_248, "active": 8_030_261_248, "trainable": 0},
        "breakdown": breakdown,
        "total_bytes": total,
        "num_gpus": 1,
        "inputs": inputs,
        "notes": ["Activations: the prefill peak of one layer."],
        "engine_version": "bench",
    }
    return inputs, result, total


def fill(refill: bool) -> tuple[object, Team]:
    users = {name: get_user_model().objects.get_or_create(username=name)[0] for name in SHARES}
    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench team"})
    for name, role in (("bench-alice", Role.OWNER), ("bench-bob", Role.MEMBER)):
        Membership.objects.get_or_create(team=team, user=users[name], defaults={"role": role})
    existing = Estimate.objects.filter(owner__username__startswith="bench-").count()
    if existing == TOTAL and not refill:
        print(f"Reusing {existing:,} bench estimates.")
        return users["bench-alice"], team
    Estimate.objects.filter(owner__username__startswith="bench-").delete()
    rng = random.Random(4)
    now = timezone.now()
    started = time.perf_counter()
    for name, count in SHARES.items():
        batch = []
        for i in range(count):
            mode = "training" if i % 3 == 0 else "inference"
            inputs, result, total = _result(rng, mode)
            shared = name == "bench-bob" and i % 2 == 0
            batch.append(
                Estimate(
                    public_id=f"b{name[6]}{i:07d}",
                    owner=users[name],
                    team=team if shared or (name == "bench-alice" and i % 5 == 0) else None,
                    visibility=Visibility.TEAM if shared else Visibility.PRIVATE,
                    model_name=rng.choice(MODELS),
                    title=f"{name} run {i}",
                    notes="" if i % 7 else "checked against the cluster",
                    mode=mode,
                    method="standard" if i % 10 == 0 else "detailed",
                    inputs=inputs,
                    architecture={"hf_config": {"model_type": "llama"}},
                    result=result,
                    total_bytes=total,
                    num_gpus=1,
                    engine_version="bench",
                )
            )
            if len(batch) == BATCH:
                Estimate.objects.bulk_create(batch)
                batch = []
        Estimate.objects.bulk_create(batch)
    # Spread the rows over a year (auto_now_add stamped them all "now").
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE calculator_estimate SET created = %s - (id %% 365) * interval '1 day'"
            " - (id %% 86400) * interval '1 second' WHERE owner_id = ANY(%s)",
            [now, [user.pk for user in users.values()]],
        )
    print(f"Filled {TOTAL:,} estimates in {time.perf_counter() - started:.1f} s.")
    return users["bench-alice"], team


def vacuum() -> None:
    """What autovacuum does in a running database: statistics and the visibility map (which
    index-only scans rely on)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE calculator_estimate")


class SqlTimer:
    """Time spent in the database, to tell it from rendering (and from a busy machine)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - start


def timings(run, repeats: int) -> tuple[float, float, float]:
    """Median and p99 wall time of `run`, and the median time of its SQL."""
    run()  # warm caches, as a running server has
    samples, sql_samples = [], []
    for _ in range(repeats):
        timer = SqlTimer()
        with connection.execute_wrapper(timer):
            start = time.perf_counter()
            run()
            samples.append(time.perf_counter() - start)
        sql_samples.append(timer.seconds)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99, statistics.median(sql_samples)


def explain(user, query: dict[str, str]) -> None:
    """PostgreSQL's plans for the two queries that grow with the table: the page's ids and
    the count."""
    from django.test import RequestFactory

    request = RequestFactory().get("/history/", query)
    request.user = user
    ids = history_filter(request).qs.values_list("pk", flat=True)
    print(f"\nEXPLAIN ANALYZE for {query or 'no filter'}: the page's ids")
    print(ids[:25].explain(analyze=True))
    sql, params = ids.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN ANALYZE SELECT COUNT(*) FROM ({sql}) AS visible", params)
        print("...and the count\n" + "\n".join(line for (line,) in cursor.fetchall()))


def main() -> None:
    call_command("migrate", verbosity=0)
    alice, team = fill(refill="--refill" in sys.argv)
    vacuum()
    client = Client()
    client.force_login(alice)
    visible = (
        Estimate.objects.filter(owner=alice).count()
        + Estimate.objects.filter(visibility=Visibility.TEAM, team=team)
        .exclude(owner=alice)
        .count()
    )
    print(f"bench-alice sees {visible:,} of {Estimate.objects.count():,} estimates.\n")
    since = (timezone.now() - timedelta(days=30)).date().isoformat()
    cases = {
        "newest first": {},
        "page 40": {"page": "40"},
        "largest first": {"sort": "largest"},
        "training only": {"mode": "training"},
        "team, standard": {"team": team.slug, "method": "standard"},
        "last 30 days": {"created_after": since},
        "text 'cluster'": {"q": "cluster"},
        "mine, title sort": {"whose": "mine", "sort": "title"},
    }
    print(
        f"{'history page':32s} {'median':>9s} {'p99':>9s} {'SQL':>9s}"
        f"   ({PAGE_REPEATS} requests each; SQL: median time in the database)"
    )
    for name, query in cases.items():

        def get(query: dict[str, str] = query) -> None:
            response = client.get("/history/", query)
            assert response.status_code == 200, response.status_code

        median, p99, sql = timings(get, PAGE_REPEATS)
        print(f"{name:32s} {median * 1e3:7.1f} ms {p99 * 1e3:7.1f} ms {sql * 1e3:7.1f} ms")
    print(
        f"\n{'export':32s} {'median':>9s} {'p99':>9s} {'1st byte':>9s}"
        f"   ({EXPORT_REPEATS} downloads each)"
    )
    for fmt, query in (("csv", {}), ("json", {}), ("csv", {"mode": "training"})):
        first_bytes: list[float] = []

        def download(
            fmt: str = fmt, query: dict[str, str] = query, first_bytes: list = first_bytes
        ) -> None:
            start = time.perf_counter()
            response = client.get(f"/history/export.{fmt}", query)
            chunks = iter(response.streaming_content)
            size = len(next(chunks))
            first_bytes.append(time.perf_counter() - start)
            size += sum(len(chunk) for chunk in chunks)
            assert size > 0

        median, p99, _ = timings(download, EXPORT_REPEATS)
        first = statistics.median(first_bytes)
        label = f"{fmt.upper()} {query or 'all'}"
        print(f"{label:32s} {median * 1e3:7.0f} ms {p99 * 1e3:7.0f} ms {first * 1e3:7.1f} ms")
    for query in ({}, {"sort": "largest"}, {"q": "cluster"}):
        explain(alice, query)


if __name__ == "__main__":
    main()
