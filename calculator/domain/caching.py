"""Everything the service keeps between requests, and the one way to forget it (`clear_all`).

Only results that are a pure function of their key are kept, never a page or a user: every
request still reads its session and user and runs its access check (docs/design.md).

- **Catalogs** (per process, `CATALOG_CACHE_SECONDS`): the catalog models and GPUs change only
  through `load_catalog` and the admin. A save or delete of a catalog row in this process forgets
  them at once (the receivers are connected in `CalculatorConfig.ready`); other processes see
  the change within `CATALOG_CACHE_SECONDS`.
- **Calculator fragments** (the "results" cache, `CATALOG_CACHE_SECONDS`): the rendered results
  for one query string, which depend only on it, on the catalogs and on the code; never for a
  saved profile, whose readers differ.
- **API calculations** (the "results" cache, `CATALOG_CACHE_SECONDS`): `POST /api/v1/calculate`'s
  answer for one JSON body, which depends only on it, on the catalogs and on the code; never
  for a saved profile or a Hub model, whose readers differ.
- **Hub imports** (the "results" cache, calculator/domain/hub.py): which commit a branch or tag of a
  Hugging Face repo names, for a few minutes and per token; and what a commit holds (its
  config.json and safetensors facts), for good, shared by every caller of a public repo and
  kept per token for a gated or private one.
- **Saved sections** (the "results" cache): a saved estimate's rendered results and inputs, per
  estimate, unit and `updated` time: what was saved never changes, and any edit moves `updated`.

The "results" cache is Redis when `REDIS_URL` is set (shared by every process and machine, and
kept across deploys): its keys carry `code_version()`, so code that renders differently never
reads what older code rendered.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import caches
from django.http import QueryDict

from calculator.models import Estimate, ModelProfile, ProfileSource

RESULTS = "results"  # the cache alias (llmtools/settings.py)
CATALOG_CACHE_SECONDS = 30.0

_catalogs: dict[str, tuple[float, Any]] = {}
_catalogs_lock = threading.Lock()
_catalog_generation = 0  # how many times this process has forgotten the catalogs


@cache
def code_version() -> str:
    """A digest of the code and templates that compute and render what is kept."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    for path in sorted([*package.rglob("*.py"), *(settings.BASE_DIR / "templates").rglob("*")]):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def catalog_cached(key: str, load: Callable[[], Any]) -> Any:
    """`load()`, kept for CATALOG_CACHE_SECONDS in this process; a raise is never kept."""
    now = time.monotonic()
    with _catalogs_lock:
        kept = _catalogs.get(key)
    if kept is not None and now - kept[0] < CATALOG_CACHE_SECONDS:
        return kept[1]
    value = load()
    with _catalogs_lock:
        _catalogs[key] = (now, value)
    return value


def catalog_cache_clear(instance: Any = None, **_: Any) -> None:
    """Forget the catalogs. Also the receiver of every save and delete of a model profile or
    a GPU (`instance`): only a catalog row's change forgets them. A user's own profile is no
    catalog, and each forgetting moves the fragments' keys too (`fragment_key`): the profile
    edits of the bench's mix (about one a second) had every kept fragment computed again."""
    global _catalog_generation
    if instance is not None and not _is_catalog_row(instance):
        return
    with _catalogs_lock:
        _catalogs.clear()
        _catalog_generation += 1


def _is_catalog_row(instance: Any) -> bool:
    """A GPU (all are the catalog's), a catalog profile, or a profile whose slug names a kept
    catalog model (a row the admin moved out of the catalog)."""
    if not isinstance(instance, ModelProfile):
        return True
    if instance.source == ProfileSource.CATALOG:
        return True
    with _catalogs_lock:
        return bool(instance.slug) and f"model:{instance.slug}" in _catalogs


def fragment_key(query: QueryDict) -> str:
    # Each name's values keep their order (a list such as lora_target_modules); names sorted.
    raw = urlencode(sorted(query.lists()), doseq=True)
    digest = hashlib.sha256(raw.encode()).hexdigest()
    return f"fragment:{code_version()}:{_catalog_generation}:{digest}"


def fragment_get(query: QueryDict) -> dict[str, Any] | None:
    return caches[RESULTS].get(fragment_key(query))


def fragment_set(query: QueryDict, fragment: dict[str, Any]) -> None:
    caches[RESULTS].set(fragment_key(query), fragment, timeout=CATALOG_CACHE_SECONDS)


def calculation_key(payload: Any) -> str:
    # the body as JSON with its keys sorted: equal bodies, equal keys
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(raw.encode()).hexdigest()
    return f"calculation:{code_version()}:{_catalog_generation}:{digest}"


def calculation_kept(payload: Any, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()`'s answer for `payload` (a parsed JSON body), computed once per payload,
    catalogs and code: the caller keeps only payloads whose answer is a pure function of them."""
    key = calculation_key(payload)
    answer = caches[RESULTS].get(key)
    if answer is None:
        answer = compute()
        caches[RESULTS].set(key, answer, timeout=CATALOG_CACHE_SECONDS)
    return answer


def saved_sections_key(estimate: Estimate, unit: str) -> str:
    return f"sections:{code_version()}:{estimate.pk}:{estimate.updated.isoformat()}:{unit}"


def saved_sections(estimate: Estimate, unit: str, render: Callable[[], dict[str, str]]) -> Any:
    """A saved estimate's rendered sections, rendered once per estimate, edit and unit."""
    key = saved_sections_key(estimate, unit)
    sections = caches[RESULTS].get(key)
    if sections is None:
        sections = render()
        caches[RESULTS].set(key, sections)
    return sections


def _hub_key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"hub-{kind}:{code_version()}:{digest}"


def hub_revision_get(repo_id: str, revision: str, reader: str) -> dict[str, Any] | None:
    return caches[RESULTS].get(_hub_key("revision", repo_id, revision, reader))


def hub_revision_set(
    repo_id: str, revision: str, reader: str, seen: dict[str, Any], timeout: float | None
) -> None:
    caches[RESULTS].set(_hub_key("revision", repo_id, revision, reader), seen, timeout=timeout)


def hub_model_get(repo_id: str, sha: str, scope: str) -> dict[str, Any] | None:
    return caches[RESULTS].get(_hub_key("model", repo_id, sha, scope))


def hub_model_set(repo_id: str, sha: str, scope: str, model: dict[str, Any]) -> None:
    caches[RESULTS].set(_hub_key("model", repo_id, sha, scope), model, timeout=None)


def clear_all() -> None:
    """Forget everything kept: the catalogs of this process and the whole results cache."""
    catalog_cache_clear()
    caches[RESULTS].clear()
