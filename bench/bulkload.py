"""A fast bulk loader for benchmarks: users, teams with memberships, one profile per user and
1,000,000 saved estimates holding real engine results, in PostgreSQL in a few minutes.

Layout (`load()`; the figures are its arguments' defaults):

- 40 users, `bench-00` (the user under test) to `bench-39`, all with one password;
- 8 teams of five (`bench-team-0` to `-7`, the first member its owner); the user under test
  is in three of them (owner of team 0, member of teams 1 and 2);
- one typed-in profile per user (every fourth shared with the owner's team);
- 1,000,000 estimates over two years, one a minute, the users' rows interleaved in time: the
  user under test owns 100,000 (every tenth), the other 39 about 23,000 each; 80 % private,
  15 % shared with the owner's team, 5 % shared by link. Their inputs, architecture and result
  are those of eight real calculations (catalog models in inference and training, both
  methods), so every stored document has the size and shape that saving writes.

How it is fast, and why the result is still what the service would have:

- the rows are made by PostgreSQL (`INSERT ... SELECT` over `generate_series`, joined to a
  temporary table of the eight calculations), in batches on two connections at once: no row
  travels from Python;
- the estimate table's secondary indexes and unique constraints are dropped first and built
  again afterwards from their own definitions (`pg_get_indexdef`, `pg_get_constraintdef`;
  the loader checks that the same set comes back): one sort per index instead of 1,000,000
  insertions into each;
- foreign keys are not checked row by row while loading (`session_replication_role =
  replica`, which turns off their triggers); the loader checks afterwards, with one anti-join
  each, that every owner, team and profile exists;
- then `VACUUM ANALYZE`: the planner's statistics and the visibility map (index-only scans)
  are what autovacuum leaves after such an insert, so plans are the ones production would get.

Run on its own against the (migrated, empty) database that DATABASE_URL names:
`DATABASE_URL=postgres://postgres@127.0.0.1:5432/llmtools_bench .venv/bin/python bench/bulkload.py`
(`--help` for the sizes). bench/http.py calls `load()` on its own database.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, where bench/http.py would hide the standard
# library's `http` package: the repository root goes there instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

USER_PREFIX = "bench-"
TEAM_PREFIX = "bench-team-"
PUBLIC_ID_PREFIX = "bench"  # + the row number, zero-padded: unique, and tells a bench row
ROW_SECONDS = 60  # one estimate a minute, the newest a minute ago
BATCH_ROWS = 50_000
LOAD_CONNECTIONS = 2  # one per core of the machine the figures come from
# Percentages of the estimates by visibility (the rest are private).
LINK_PERCENT = 5
TEAM_PERCENT = 15
# The calculations whose real results the rows carry (catalog slug, inputs besides the model).
CALCULATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("meta-llama/Llama-3.1-8B", {}),
    ("meta-llama/Llama-3.1-8B", {"mode": "training", "finetuning": "lora"}),
    ("Qwen/Qwen3-30B-A3B", {"batch_size": 8, "sequence_length": 32768}),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", {"weight_dtype": "int4"}),
    ("google/gemma-2-9b-it", {"mode": "training", "mixed_precision": True}),
    ("deepseek-ai/DeepSeek-V2-Lite", {"method": "standard"}),
    ("Qwen/Qwen3-8B", {"batch_size": 16, "sequence_length": 4096}),
    ("meta-llama/Llama-3.1-70B-Instruct", {"mode": "training", "finetuning": "qlora"}),
)
# Each user's own profile: a small typed-in architecture (the engine counts its parameters).
PROFILE_ARCHITECTURE = {
    "hidden_size": 2048,
    "num_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "intermediate_size": 8192,
    "vocab_size": 32000,
}


@dataclass(frozen=True)
class Layout:
    """What was loaded, for a benchmark to sign in, read and write with."""

    usernames: list[str]  # the user under test first
    password: str
    team_slugs: list[str]
    home_team: dict[str, str]  # username -> the team slug their team items are shared with
    profiles: dict[str, str]  # username -> public id of their own profile
    estimates: int
    seconds: float

    @property
    def user_under_test(self) -> str:
        return self.usernames[0]


def public_id(row: int) -> str:
    return f"{PUBLIC_ID_PREFIX}{row:09d}"


# --- Users, teams, memberships, profiles (the ORM: a few hundred rows) -----------------------


def _people(users: int, teams: int, password: str) -> tuple[list[Any], list[Any], dict[Any, Any]]:
    """The users, the teams and each user's home team (None for a user in no team)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from calculator.models import Membership, Role, Team

    # One hash for all: hashing is slow on purpose (PBKDF2), and a login checks it as usual.
    hashed = make_password(password)
    people = get_user_model().objects.bulk_create(
        get_user_model()(username=f"{USER_PREFIX}{i:02d}", password=hashed) for i in range(users)
    )
    team_rows = Team.objects.bulk_create(
        Team(name=f"Bench team {t}", slug=f"{TEAM_PREFIX}{t}") for t in range(teams)
    )
    # Users 1.. in turn: user i in team (i - 1) % teams; the user under test owns team 0 and
    # belongs to teams 1 and 2, so its history holds teammates' items from three teams.
    members: dict[int, list[Any]] = {t: [] for t in range(teams)}
    for index, person in enumerate(people[1:], start=1):
        members[(index - 1) % teams].append(person)
    memberships = [Membership(team=team_rows[0], user=people[0], role=Role.OWNER)]
    memberships += [
        Membership(team=team_rows[t], user=people[0], role=Role.MEMBER)
        for t in range(1, min(3, teams))
    ]
    for t, team_members in members.items():
        for position, person in enumerate(team_members):
            role = Role.OWNER if position == 0 and t != 0 else Role.MEMBER
            memberships.append(Membership(team=team_rows[t], user=person, role=role))
    Membership.objects.bulk_create(memberships)
    home = {people[0]: team_rows[0] if teams else None}
    for t, team_members in members.items():
        home.update(dict.fromkeys(team_members, team_rows[t]))
    return people, team_rows, home


def _profiles(people: list[Any], home: dict[Any, Any]) -> dict[str, str]:
    from calculator.domain import services
    from calculator.models import Visibility

    profiles = {}
    for index, person in enumerate(people):
        shared = index % 4 == 0 and home.get(person) is not None
        profile = services.profile_create(
            user=person,
            name=f"{person.username}'s model",
            description="Bench profile.",
            architecture=dict(PROFILE_ARCHITECTURE),
            visibility=Visibility.TEAM if shared else Visibility.PRIVATE,
            team=home.get(person) if shared else None,
        )
        profiles[person.username] = profile.public_id
    return profiles


# --- Estimates (PostgreSQL makes the rows) ----------------------------------------------------


def _connect() -> Any:
    """A psycopg connection of its own to Django's database (one per loading thread)."""
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        autocommit=True,
    )


def _secondary_schema(cursor: Any, table: str) -> list[tuple[str, str]]:
    """(drop statement, create statement) for each index of `table` but its primary key:
    unique constraints as constraints, plain indexes as indexes, each from its own definition."""
    cursor.execute(
        """
        SELECT c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = 'u'
        ORDER BY c.conname
        """,
        [table],
    )
    schema = [
        (f'ALTER TABLE {table} DROP CONSTRAINT "{name}"',
         f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        for name, definition in cursor.fetchall()
    ]  # fmt: skip
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(x.indexrelid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass AND NOT x.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        ORDER BY i.relname
        """,
        [table],
    )
    schema += [(f'DROP INDEX "{name}"', definition) for name, definition in cursor.fetchall()]
    return schema


def _index_definitions(cursor: Any, table: str) -> list[str]:
    cursor.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s::regclass ORDER BY 1",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _in_parallel(jobs: list[Callable[[Any], None]], connections: int) -> None:
    """Run `jobs` on `connections` threads, each with its own database connection."""
    pending = list(reversed(jobs))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work() -> None:
        with _connect() as conn:
            conn.execute("SET session_replication_role = replica")  # no FK triggers
            conn.execute("SET synchronous_commit = off")  # a bulk load need not wait for fsync
            conn.execute("SET maintenance_work_mem = '512MB'")
            while True:
                with lock:
                    if failures or not pending:
                        return
                    job = pending.pop()
                try:
                    job(conn)
                except BaseException as error:  # stop the others, raise in the caller
                    with lock:
                        failures.append(error)
                    return

    threads = [threading.Thread(target=work) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _estimate_columns(known: dict[str, str]) -> tuple[str, str]:
    """The INSERT's column list and SELECT list in the model's column order; a column this
    loader does not know stops it (a new field must be filled on purpose, not left out)."""
    from calculator.models import Estimate

    columns = [field.column for field in Estimate._meta.concrete_fields]
    unknown = [column for column in columns if column not in known]
    if unknown:
        raise SystemExit(f"bench/bulkload.py does not fill calculator_estimate.{unknown}")
    return ", ".join(f'"{c}"' for c in columns), ", ".join(known[c] for c in columns)


def _hashed(expression: str, buckets: int) -> str:
    """SQL for a bucket 0..buckets-1 of an integer expression, spread by PostgreSQL's hash (its
    int4 shifted to be non-negative: abs() would overflow on the smallest int4)."""
    return f"mod(hashint8({expression})::bigint + 2147483648, {buckets})"


def _estimates(
    people: list[Any], home: dict[Any, Any], total: int, main_share: int, now: datetime
) -> None:
    from django.db import connection

    from calculator.domain.calculations import calculation_run

    calculations = [
        calculation_run(user=None, payload={"model": {"catalog": slug}, **changes})
        for slug, changes in CALCULATIONS
    ]
    # Row g (0 = oldest) belongs to the user under test when floor((g + 1) m / n) steps up,
    # which happens exactly m times, evenly spread; the other rows go to the other users in
    # turn. hashint8 gives each row a visibility and a calculation independent of its owner.
    # The whole row is one expression of g, so any batch can be made on any connection.
    main = f"((g + 1) * {main_share}::bigint / {total} - g * {main_share}::bigint / {total}) = 1"
    others = len(people) - 1
    other_index = f"1 + mod(g - (g + 1) * {main_share}::bigint / {total}, {others})"
    owner_index = f"(CASE WHEN {main} THEN 0 ELSE {other_index} END)"
    team = f"(%(teams)s::bigint[])[{owner_index} + 1]"
    bucket = _hashed("g", 100)
    # A user in no team shares nothing with a team: those rows stay private.
    visibility = (
        f"(CASE WHEN {bucket} < {LINK_PERCENT} THEN 'link'"
        f" WHEN {bucket} < {LINK_PERCENT + TEAM_PERCENT} AND {team} IS NOT NULL THEN 'team'"
        " ELSE 'private' END)"
    )
    known = {
        "id": "g + 1",
        "public_id": f"'{PUBLIC_ID_PREFIX}' || lpad(g::text, 9, '0')",
        "owner_id": f"(%(owners)s::bigint[])[{owner_index} + 1]",
        "team_id": f"CASE WHEN {visibility} = 'team' THEN {team} END",
        "visibility": visibility,
        "profile_id": "t.profile_id",
        "model_name": "t.model_name",
        "title": "'Run ' || g || ' · ' || t.model_name",
        "notes": "CASE WHEN mod(g, 7) = 0 THEN 'Checked against the cluster.' ELSE '' END",
        "mode": "t.mode",
        "method": "t.method",
        "inputs": "t.inputs",
        "architecture": "t.architecture",
        "result": "t.result",
        "total_bytes": "t.total_bytes",
        "num_gpus": "t.num_gpus",
        "engine_version": "t.engine_version",
        "created": f"%(now)s::timestamptz - ({total} - g) * interval '{ROW_SECONDS} seconds'",
        "updated": f"%(now)s::timestamptz - ({total} - g) * interval '{ROW_SECONDS} seconds'",
    }
    columns, select = _estimate_columns(known)
    insert = f"""
        INSERT INTO calculator_estimate ({columns})
        SELECT {select}
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
        JOIN bench_calculation AS t ON t.number = {_hashed("g + 1", len(calculations))}
    """
    parameters = {
        "owners": [person.pk for person in people],
        "teams": [home[p].pk if home.get(p) is not None else None for p in people],
        "now": now,
    }
    template_rows = [
        (
            number,
            c.resolved.profile.pk if c.resolved.profile else None,
            c.resolved.name[:200],
            c.result["inputs"]["mode"],
            c.result["inputs"]["method"],
            c.result["inputs"],
            c.resolved.engine_model,
            c.result,
            c.result["total_bytes"],
            c.result["num_gpus"],
            c.result["engine_version"],
        )
        for number, c in enumerate(calculations)
    ]
    table = "calculator_estimate"
    with connection.cursor() as cursor:
        indexes_before = _index_definitions(cursor, table)
        schema = _secondary_schema(cursor, table)
        for drop, _ in schema:
            cursor.execute(drop)
    connection.close()

    from psycopg.types.json import Jsonb

    def batch(first: int) -> Callable[[Any], None]:
        def run(conn: Any) -> None:
            conn.execute(
                """
                CREATE TEMPORARY TABLE IF NOT EXISTS bench_calculation (
                    number integer PRIMARY KEY, profile_id bigint, model_name text, mode text,
                    method text, inputs jsonb, architecture jsonb, result jsonb,
                    total_bytes bigint, num_gpus integer, engine_version text)
                """
            )
            if conn.execute("SELECT count(*) FROM bench_calculation").fetchone()[0] == 0:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO bench_calculation VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [
                            (*row[:5], Jsonb(row[5]), Jsonb(row[6]), Jsonb(row[7]), *row[8:])
                            for row in template_rows
                        ],
                    )
            conn.execute(
                insert,
                {**parameters, "first": first, "last": min(first + BATCH_ROWS, total) - 1},
            )

        return run

    _in_parallel([batch(first) for first in range(0, total, BATCH_ROWS)], LOAD_CONNECTIONS)
    _in_parallel(
        [lambda conn, sql=create: conn.execute(sql) for _, create in schema],
        LOAD_CONNECTIONS,
    )
    with _connect() as conn:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
        with conn.cursor() as cursor:
            indexes_after = _index_definitions(cursor, table)
        if indexes_after != indexes_before:
            raise SystemExit(
                f"The indexes of {table} differ after loading:\n"
                f"before {indexes_before}\nafter  {indexes_after}"
            )
        _check_references(conn)
        conn.execute(f"VACUUM ANALYZE {table}")
        conn.execute("ANALYZE")


def _check_references(conn: Any) -> None:
    """What the foreign keys would have checked row by row, in one anti-join each."""
    for column, target in (
        ("owner_id", "auth_user"),
        ("team_id", "calculator_team"),
        ("profile_id", "calculator_modelprofile"),
    ):
        missing = conn.execute(
            f"SELECT count(*) FROM calculator_estimate e WHERE e.{column} IS NOT NULL"
            f" AND NOT EXISTS (SELECT 1 FROM {target} r WHERE r.id = e.{column})"
        ).fetchone()[0]
        if missing:
            raise SystemExit(f"{missing} estimates name a {column} that does not exist.")


def load(
    *,
    password: str,
    users: int = 40,
    teams: int = 8,
    total: int = 1_000_000,
    main_share: int = 100_000,
    progress: Callable[[str], None] = print,
) -> Layout:
    """Fill Django's (migrated, PostgreSQL) database; see the module's docstring."""
    from django.db import connection
    from django.utils import timezone

    from calculator.models import Estimate

    if connection.vendor != "postgresql":
        raise SystemExit("bench/bulkload.py loads PostgreSQL only.")
    if users < 2 or not 0 < main_share <= total:
        raise SystemExit("Load at least two users and give the user under test some estimates.")
    if Estimate.objects.filter(public_id__startswith=PUBLIC_ID_PREFIX).exists():
        raise SystemExit("This database holds bench estimates already: use a fresh one.")
    started = time.perf_counter()
    people, team_rows, home = _people(users, teams, password)
    profiles = _profiles(people, home)
    seconds = time.perf_counter() - started
    progress(f"  {users} users, {teams} teams, {users} profiles ({seconds:.0f} s)")
    _estimates(people, home, total, main_share, timezone.now())
    seconds = time.perf_counter() - started
    progress(f"  {total:,} estimates, indexes built, analysed ({seconds:.0f} s in all)")
    return Layout(
        usernames=[person.username for person in people],
        password=password,
        team_slugs=[team.slug for team in team_rows],
        home_team={p.username: home[p].slug for p in people if home.get(p) is not None},
        profiles=profiles,
        estimates=total,
        seconds=seconds,
    )


def layout_read(password: str) -> Layout | None:
    """The layout of an earlier load() in this database, or None when there is none."""
    from django.contrib.auth import get_user_model

    from calculator.models import Estimate, Membership, ModelProfile

    people = list(
        get_user_model().objects.filter(username__startswith=USER_PREFIX).order_by("username")
    )
    if not people:
        return None
    home: dict[str, str] = {}
    for username, slug in (
        Membership.objects.filter(user__in=people)
        .order_by("-team__slug")
        .values_list("user__username", "team__slug")
    ):
        home[username] = slug  # the lowest slug last: the user under test's team 0
    profiles = dict(
        ModelProfile.objects.filter(owner__in=people, name__endswith="'s model")
        .order_by("-id")
        .values_list("owner__username", "public_id")
    )
    return Layout(
        usernames=[person.username for person in people],
        password=password,
        team_slugs=sorted(set(home.values())),
        home_team=home,
        profiles=profiles,
        estimates=Estimate.objects.filter(public_id__startswith=PUBLIC_ID_PREFIX).count(),
        seconds=0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--estimates", type=int, default=1_000_000, help="rows in all")
    parser.add_argument("--main-share", type=int, default=100_000, help="the user under test's")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--teams", type=int, default=8)
    parser.add_argument("--password", default="bench-only-password")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a migrated PostgreSQL database (see this file's docstring).")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmtools.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    layout = load(
        password=args.password,
        users=args.users,
        teams=args.teams,
        total=args.estimates,
        main_share=args.main_share,
    )
    print(f"Loaded in {layout.seconds:.0f} s; the user under test is {layout.user_under_test}.")


if __name__ == "__main__":
    main()
