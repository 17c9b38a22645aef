"""The built-in catalogs: loaded by the data migration, refreshed by `load_catalog`."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from calculator.domain.catalog import (
    GPUS_FILE,
    MODELS_FILE,
    CatalogError,
    catalog_gpus_load,
    catalog_models_load,
)
from calculator.models import Gpu, ModelProfile, ProfileSource
from tests.factories import EstimateFactory

pytestmark = pytest.mark.django_db

MODEL_ENTRIES = json.loads(MODELS_FILE.read_text())
GPU_ENTRIES = json.loads(GPUS_FILE.read_text())
ORIGINAL_PRESETS = [
    "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "meta-llama/Meta-Llama-3-70B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "microsoft/Phi-3-mini-4k-instruct",
    "Qwen/Qwen2-72B-Instruct",
    "microsoft/phi-2",
]


def catalog_slugs() -> set[str]:
    profiles = ModelProfile.objects.filter(source=ProfileSource.CATALOG)
    return set(profiles.values_list("slug", flat=True))


def test_the_migration_loads_every_entry_of_the_files(catalog):
    assert len(MODEL_ENTRIES) >= 30
    assert catalog_slugs() == {entry["slug"] for entry in MODEL_ENTRIES}
    assert set(Gpu.objects.values_list("slug", flat=True)) == {e["slug"] for e in GPU_ENTRIES}
    assert set(ORIGINAL_PRESETS) <= catalog_slugs()


def test_catalog_models_have_published_parameter_counts(catalog):
    llama = ModelProfile.objects.get(slug="meta-llama/Llama-3.1-8B", source=ProfileSource.CATALOG)
    # model card / safetensors total of Llama 3.1 8B
    assert llama.num_parameters == llama.num_active_parameters == 8_030_261_248
    assert llama.owner is None
    assert llama.hf_config["num_key_value_heads"] == 8
    # Mixtral 8x7B: 46.7B parameters in all, 12.9B active per token (Mistral AI's release)
    mixtral = ModelProfile.objects.get(slug="mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert round(mixtral.num_parameters / 1e9, 1) == 46.7
    assert round(mixtral.num_active_parameters / 1e9, 1) == 12.9


def test_load_catalog_changes_nothing_when_the_files_did_not_change(catalog):
    out = StringIO()
    call_command("load_catalog", stdout=out)
    models = len(MODEL_ENTRIES)
    gpus = len(GPU_ENTRIES)
    assert f"Models: 0 created, 0 updated, {models} unchanged, 0 removed" in out.getvalue()
    assert f"GPUs: 0 created, 0 updated, {gpus} unchanged, 0 removed" in out.getvalue()


def test_it_updates_changed_entries_and_adds_new_ones(catalog):
    entries = [dict(entry) for entry in MODEL_ENTRIES]
    entries[0]["name"] = "Renamed"
    changes = catalog_models_load(entries=entries)
    assert changes.updated == [entries[0]["slug"]]
    assert ModelProfile.objects.get(slug=entries[0]["slug"]).name == "Renamed"

    gpus = [dict(entry) for entry in GPU_ENTRIES]
    gpus[0]["price_per_hour_usd"] = 4.1
    gpus.append({**GPU_ENTRIES[0], "slug": "new-gpu", "name": "New GPU"})
    changes = catalog_gpus_load(entries=gpus)
    assert changes.updated == [gpus[0]["slug"]]
    assert changes.created == ["new-gpu"]
    assert Gpu.objects.get(slug=gpus[0]["slug"]).price_per_hour_usd == Decimal("4.1000")


def test_it_removes_models_that_left_the_file_unless_an_estimate_uses_them(catalog):
    used, unused = MODEL_ENTRIES[0]["slug"], MODEL_ENTRIES[1]["slug"]
    EstimateFactory(profile=ModelProfile.objects.get(slug=used, source=ProfileSource.CATALOG))
    changes = catalog_models_load(entries=MODEL_ENTRIES[2:])
    assert changes.removed == [unused]
    assert changes.kept == [used]
    assert used in catalog_slugs()
    assert unused not in catalog_slugs()


def test_it_keeps_gpus_that_are_not_in_the_file(catalog):
    changes = catalog_gpus_load(entries=GPU_ENTRIES[1:])
    assert changes.kept == [GPU_ENTRIES[0]["slug"]]
    assert Gpu.objects.filter(slug=GPU_ENTRIES[0]["slug"]).exists()


def test_it_names_the_entry_it_cannot_load(catalog):
    broken = {**MODEL_ENTRIES[0], "config": {"model_type": "llama"}}
    with pytest.raises(CatalogError, match=MODEL_ENTRIES[0]["slug"]):
        catalog_models_load(entries=[broken])


def test_the_command_reports_a_broken_file(catalog, tmp_path, monkeypatch):
    path = tmp_path / "models.json"
    path.write_text(json.dumps([MODEL_ENTRIES[0], MODEL_ENTRIES[0]]))
    monkeypatch.setattr("calculator.domain.catalog.MODELS_FILE", path)
    with pytest.raises(CommandError, match="duplicate slugs"):
        call_command("load_catalog", stdout=StringIO())
