"""The security probe as code (issue 19): every URL pattern the resolver knows, filled in with
real items of each kind of sharing, requested by every kind of visitor (the item's owner, a
teammate, the team's owner, an outsider, anonymous) with GET and POST (and PATCH, DELETE under
/api/). Nothing answers 5xx, and no page shows what its visitor may not read: each secret is a
marker in a title or name, looked for in every body. docs/reliability.md has the counts.

Each request runs in a transaction that is rolled back, so a delete or a sign-out by one
request leaves the next request the same world."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from calculator.models import Estimate, MeasuredRun, Role, TeamInvitation
from tests.factories import (
    TINY_ARCHITECTURE,
    EstimateFactory,
    MembershipFactory,
    ModelProfileFactory,
    TeamFactory,
    UserFactory,
)

VISITORS = ("owner", "teammate", "team_owner", "outsider", "anonymous")
KINDS = ("private", "team", "link")
# A regex pattern has no converters to fill in: a path for each, by its prefix. A new one
# fails the test until it is listed here.
REGEX_SAMPLES = {
    "admin/^(?P<app_label>": ["admin/calculator/"],
    "admin/(?P<url>": ["admin/no/such/page/"],
    "api/v1/^catalog/models/": ["api/v1/catalog/models/meta-llama/Llama-3.1-8B/"],
    "api/v1/^(?P<path>": ["api/v1/no/such\nthing"],
}


@dataclass
class World:
    users: dict
    secrets: dict  # marker -> (who may read it, the public id whose own pages may show it)
    items: dict  # kind -> dict of ids
    fixed: dict  # converter name -> value


@pytest.fixture
def world(db, catalog) -> World:
    owner = UserFactory(username="owner")
    teammate = UserFactory(username="teammate")
    team_owner = UserFactory(username="team_owner")
    outsider = UserFactory(username="outsider")
    team = TeamFactory(name="Probe team", slug="probe-team")
    MembershipFactory(team=team, user=team_owner, role=Role.OWNER)
    MembershipFactory(team=team, user=owner, role=Role.MEMBER)
    teammates = MembershipFactory(team=team, user=teammate, role=Role.MEMBER)
    invitation = TeamInvitation.objects.create(
        team=team, address="secret-invitee-x7@example.org", invited_by=team_owner
    )
    team_people = {"owner", "teammate", "team_owner"}
    secrets = {"secret-invitee-x7": ({"team_owner"}, None)}
    profiles = {}
    for kind in KINDS:
        profiles[kind] = ModelProfileFactory(
            owner=owner,
            name=f"SECRET-P-{kind}",
            visibility=kind,
            architecture={**TINY_ARCHITECTURE, "num_layers": 4},
            **({"team": team} if kind == "team" else {}),
        )
    items = {}
    for kind in KINDS:
        # Every estimate is of the private profile, whose current name differs from the
        # snapshot the estimate keeps: only its owner may hear of it.
        estimate = EstimateFactory(
            owner=owner,
            title=f"SECRET-E-{kind}",
            visibility=kind,
            profile=profiles["private"],
            model_name="Snapshot model",
            inputs={
                "model": {"profile": profiles["private"].pk},
                "mode": "inference",
                "method": "detailed",
                "batch_size": 1,
                "sequence_length": 2048,
            },
            **({"team": team} if kind == "team" else {}),
        )
        run = MeasuredRun.objects.create(
            estimate=estimate, owner=owner, source_format="manual", total_bytes=1000
        )
        readers = {"owner"} | (team_people if kind == "team" else set())
        secrets[f"SECRET-E-{kind}"] = (readers, estimate.public_id if kind == "link" else None)
        profile = profiles[kind]
        secrets[f"SECRET-P-{kind}"] = (readers, profile.public_id if kind == "link" else None)
        items[kind] = {"estimate": estimate, "profile": profile, "run_id": str(run.pk)}
    users = {
        "owner": owner,
        "teammate": teammate,
        "team_owner": team_owner,
        "outsider": outsider,
        "anonymous": None,
    }
    fixed = {
        "membership_id": str(teammates.pk),
        "invitation_id": str(invitation.pk),
        "fmt": "json",
        "content_type_id": str(ContentType.objects.get_for_model(Estimate).pk),
        "object_id": str(items["private"]["estimate"].pk),
        "id": str(owner.pk),
        "team": team.slug,
    }
    return World(users=users, secrets=secrets, items=items, fixed=fixed)


def _patterns(resolver: URLResolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        text = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern, text)
        else:
            assert isinstance(pattern, URLPattern)
            yield text, pattern


CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _paths(route: str, pattern: URLPattern, world: World) -> list[tuple[str, str | None]]:
    """(path, the kind of item it addresses or None) for one pattern."""
    if isinstance(pattern.pattern, RegexPattern) or "^" in route:
        for prefix, samples in REGEX_SAMPLES.items():
            if route.startswith(prefix):
                return [("/" + sample, None) for sample in samples]
        raise AssertionError(f"no sample path for the regex pattern {route!r}")
    assert isinstance(pattern.pattern, RoutePattern)
    names = [match["name"] for match in CONVERTER.finditer(route)]
    item_names = {"public_id", "pk", "run_id"}
    kinds: tuple[str | None, ...] = KINDS if item_names & set(names) else (None,)
    paths = []
    for kind in kinds:
        item = world.items[kind] if kind else {}
        profile_route = "profiles/" in route

        def value(match: re.Match, item: dict = item, profile_route: bool = profile_route) -> str:
            name = match["name"]
            if name == "public_id":
                return item["profile" if profile_route else "estimate"].public_id
            if name == "pk":
                return str(item["profile" if profile_route else "estimate"].pk)
            if name == "run_id":
                return item["run_id"]
            if name == "slug":
                if route.startswith("api/v1/gpus/"):
                    return "h100-sxm5-80gb"
                return world.fixed["team"]
            return world.fixed[name]

        paths.append(("/" + CONVERTER.sub(value, route), kind))
    return paths


def _methods(path: str) -> tuple[str, ...]:
    return ("get", "post", "patch", "delete") if path.startswith("/api/") else ("get", "post")


def _client_for(user) -> tuple[Client, str | None]:
    client = Client(raise_request_exception=False)
    if user is None:
        return client, None
    client.force_login(user)
    return client, client.cookies[settings.SESSION_COOKIE_NAME].value


def test_every_url_for_every_visitor_has_no_5xx_and_no_leak(world):
    clients = {who: _client_for(user) for who, user in world.users.items()}
    tried: Counter = Counter()
    statuses: Counter = Counter()
    failures = []
    seen: set[str] = set()  # markers shown to a reader: the probe can see each one
    routes = list(_patterns(get_resolver()))
    for route, pattern in routes:
        for path, kind in _paths(route, pattern, world):
            addressed = None
            if kind is not None:
                addressed = {
                    world.items[kind]["estimate"].public_id,
                    world.items[kind]["profile"].public_id,
                }
            for who in VISITORS:
                client, session = clients[who]
                for method in _methods(path):
                    caches["default"].clear()  # throttle counters: every request is seen
                    client.cookies.clear()
                    if session is not None:
                        client.cookies[settings.SESSION_COOKIE_NAME] = session
                    with transaction.atomic():
                        response = getattr(client, method)(path)
                        transaction.set_rollback(True)
                    tried[method] += 1
                    statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        failures.append((method, path, who, response.status_code))
                        continue
                    body = b"".join(response) if response.streaming else response.content
                    text = body.decode("utf-8", "replace")
                    for marker, (readers, own_id) in world.secrets.items():
                        if marker in text and who in readers:
                            seen.add(marker)
                        if marker not in text or who in readers:
                            continue
                        if own_id is not None and addressed and own_id in addressed:
                            continue  # a link item on its own address
                        failures.append((method, path, who, f"shows {marker}"))
    assert failures == []
    assert seen == set(world.secrets)
    # what was tried, for docs/reliability.md (pytest -s prints it)
    print(f"\n{len(routes)} patterns, {sum(tried.values())} requests {dict(tried)}")
    print(f"statuses {dict(sorted(statuses.items()))}")
    assert len(routes) >= 130 and sum(tried.values()) >= 1800
