"""The built-in catalogs (models and GPUs) from calculator/data/*.json into the database.

Used by the data migration 0002 (with historical models) and by `manage.py load_catalog`
(with the current ones), so both load exactly the same way. Entries are matched by slug:
new ones are created, changed ones updated. A catalog model that left the file is removed
unless a saved estimate points at it; GPUs that are not in the file are kept (they may have
been added in the admin).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from calculator.engine.architecture import architecture_from_hf_config
from calculator.engine.errors import EstimateError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MODELS_FILE = DATA_DIR / "models.json"
GPUS_FILE = DATA_DIR / "gpus.json"

CATALOG_SOURCE = "catalog"  # ProfileSource.CATALOG, spelled out for historical models


class CatalogError(Exception):
    """A catalog file entry that cannot be loaded; says which entry and why."""


@dataclass
class CatalogChanges:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # not in the file, but still in use or added

    def summary(self, what: str) -> str:
        return (
            f"{what}: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, "
            f"{len(self.kept)} kept though not in the file"
        )


def catalog_file_read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as file:
        entries = json.load(file)
    if not isinstance(entries, list):
        raise CatalogError(f"{path}: expected a JSON list of entries")
    slugs = [entry.get("slug") for entry in entries]
    duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
    if duplicates:
        raise CatalogError(f"{path}: duplicate slugs {', '.join(map(str, duplicates))}")
    return entries


def _model_fields(entry: dict[str, Any]) -> dict[str, Any]:
    slug = entry["slug"]
    try:
        architecture, _notes = architecture_from_hf_config(entry["config"])
    except EstimateError as error:
        raise CatalogError(f"catalog model {slug}: {error.field}: {error.message}") from error
    display = entry.get("published_parameters_display") or ""
    source = entry.get("source") or ""
    description = " ".join(
        part for part in (f"{display} parameters." if display else "", source) if part
    )
    return {
        "name": entry["name"],
        "family": entry.get("family") or architecture.model_type,
        "description": description,
        "hf_config": entry["config"],
        "architecture": None,
        "config_json_text": json.dumps(entry["config"], indent=2),
        "num_parameters": architecture.num_parameters,
        "num_active_parameters": architecture.num_active_parameters,
        "published_parameters": entry.get("published_parameters"),
    }


def _saved_if_changed(row: Any, values: dict[str, Any]) -> bool:
    """Give a catalog row the file's values and save it, if any differs."""
    if all(getattr(row, name) == value for name, value in values.items()):
        return False
    for name, value in values.items():
        setattr(row, name, value)
    row.save()
    return True


def catalog_models_load(
    *,
    profile_model: Any = None,
    estimate_model: Any = None,
    entries: list[dict[str, Any]] | None = None,
) -> CatalogChanges:
    """Upsert catalog ModelProfiles by slug. Pass historical models from a migration."""
    from calculator.models import Estimate, ModelProfile, new_public_id

    profile_model = profile_model or ModelProfile
    estimate_model = estimate_model or Estimate
    entries = catalog_file_read(MODELS_FILE) if entries is None else entries
    changes = CatalogChanges()
    existing = {p.slug: p for p in profile_model.objects.filter(source=CATALOG_SOURCE)}
    for entry in entries:
        values = _model_fields(entry)
        slug = entry["slug"]
        profile = existing.pop(slug, None)
        if profile is None:
            profile_model.objects.create(
                slug=slug, source=CATALOG_SOURCE, owner=None, public_id=new_public_id(), **values
            )
            changes.created.append(slug)
        elif _saved_if_changed(profile, values):
            changes.updated.append(slug)
        else:
            changes.unchanged.append(slug)
    if existing:
        referenced = set(
            estimate_model.objects.filter(profile__in=existing.values()).values_list(
                "profile__slug", flat=True
            )
        )
        for slug, profile in sorted(existing.items()):
            if slug in referenced:
                changes.kept.append(slug)
            else:
                profile.delete()
                changes.removed.append(slug)
    return changes


def _gpu_fields(entry: dict[str, Any]) -> dict[str, Any]:
    price = entry.get("price_per_hour_usd")
    return {
        "name": entry["name"],
        "vendor": entry["vendor"],
        "memory_bytes": entry["memory_bytes"],
        "memory_bandwidth_bytes_per_s": entry["memory_bandwidth_bytes_per_s"],
        "bf16_dense_tflops": float(entry["bf16_dense_tflops"]),
        # via str: 4.1 stays 4.1, not the binary float's 4.0999999999999996447...
        "price_per_hour_usd": None
        if price is None
        else Decimal(str(price)).quantize(Decimal("0.0001")),
        "sources": entry.get("sources") or {},
        "notes": entry.get("notes") or "",
    }


def catalog_gpus_load(
    *, gpu_model: Any = None, entries: list[dict[str, Any]] | None = None
) -> CatalogChanges:
    """Upsert GPUs by slug. Pass the historical model from a migration."""
    from calculator.models import Gpu

    gpu_model = gpu_model or Gpu
    entries = catalog_file_read(GPUS_FILE) if entries is None else entries
    changes = CatalogChanges()
    existing = {gpu.slug: gpu for gpu in gpu_model.objects.all()}
    for entry in entries:
        values = _gpu_fields(entry)
        slug = entry["slug"]
        gpu = existing.pop(slug, None)
        if gpu is None:
            gpu_model.objects.create(slug=slug, **values)
            changes.created.append(slug)
        elif _saved_if_changed(gpu, values):
            changes.updated.append(slug)
        else:
            changes.unchanged.append(slug)
    changes.kept.extend(sorted(existing))
    return changes
