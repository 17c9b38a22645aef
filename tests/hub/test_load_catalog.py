"""`manage.py load_catalog --from-hub`: the catalog models' config.json read from the Hub (the
stand-in on 127.0.0.1) at a revision; a model the Hub cannot give keeps the file's config."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from calculator.domain.catalog import MODELS_FILE, catalog_file_read
from calculator.models import ModelProfile
from tests.hub.standin import model_repo

pytestmark = pytest.mark.django_db

LLAMA = "meta-llama/Llama-3.1-8B"
QWEN = "Qwen/Qwen3-8B"


def file_config(slug: str) -> dict:
    return next(
        entry["config"] for entry in catalog_file_read(MODELS_FILE) if entry["slug"] == slug
    )


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("load_catalog", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_refreshes_a_catalog_model_from_the_hub_at_a_revision(hub):
    # a new revision of the model on the Hub: a longer context than the file's
    newer = {**file_config(LLAMA), "max_position_embeddings": 262_144}
    repo = hub.repos[LLAMA] = model_repo(newer)
    out, _ = run("--from-hub", "--revision", repo.sha, "--only", LLAMA)
    assert f"{LLAMA}: changed at {repo.sha} ({repo.sha[:12]})" in out
    profile = ModelProfile.objects.get(slug=LLAMA, source="catalog")
    assert profile.hf_config["max_position_embeddings"] == 262_144
    # the Hub was asked for that revision
    assert any(f"/revision/{repo.sha}" in path for _, path, _ in hub.requests)
    # models not asked for keep the file's config
    assert ModelProfile.objects.get(slug=QWEN).hf_config == file_config(QWEN)


def test_a_model_the_hub_cannot_give_keeps_the_file_s_config(hub):
    hub.repos[LLAMA] = model_repo(file_config(LLAMA), gated=True)  # no token given
    out, err = run("--from-hub", "--only", LLAMA, QWEN)
    assert f"{LLAMA}:" in err and "gated" in err.lower()
    assert f"{QWEN}:" in err  # not on the stand-in Hub at all
    assert "Not read from the Hub (2)" in out
    assert ModelProfile.objects.get(slug=LLAMA).hf_config == file_config(LLAMA)


def test_write_puts_the_configs_read_into_the_catalog_file(hub, tmp_path, monkeypatch):
    from calculator.management.commands import load_catalog

    copy = tmp_path / "models.json"
    copy.write_text(MODELS_FILE.read_text())
    monkeypatch.setattr(load_catalog, "MODELS_FILE", copy)
    newer = {**file_config(LLAMA), "rope_theta": 1_000_000.0}
    repo = hub.repos[LLAMA] = model_repo(newer)
    run("--from-hub", "--only", LLAMA, "--write")
    written = {entry["slug"]: entry for entry in json.loads(copy.read_text())}
    assert written[LLAMA]["config"]["rope_theta"] == 1_000_000.0
    assert written[LLAMA]["hub_revision"] == {"revision": "main", "sha": repo.sha}
    assert written[QWEN]["config"] == file_config(QWEN)


def test_it_refuses_unknown_slugs_and_a_hub_turned_off(hub, settings):
    with pytest.raises(CommandError, match="Not in the catalog: acme/none"):
        run("--from-hub", "--only", "acme/none")
    with pytest.raises(CommandError, match="go with --from-hub"):
        run("--only", LLAMA)
    settings.HUB_IMPORT = False
    with pytest.raises(CommandError, match="HUB_IMPORT is off"):
        run("--from-hub")
