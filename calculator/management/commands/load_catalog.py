from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from calculator.domain import hub
from calculator.domain.catalog import (
    MODELS_FILE,
    CatalogError,
    catalog_file_read,
    catalog_gpus_load,
    catalog_models_load,
)


class Command(BaseCommand):
    help = (
        "Refresh the built-in model and GPU catalogs from calculator/data/*.json: create new "
        "entries, update changed ones, remove catalog models that left the file unless a saved "
        "estimate uses them. GPUs that are not in the file (added in the admin) are kept. With "
        "--from-hub, each catalog model's config.json is first read from the Hugging Face Hub "
        "(HF_ENDPOINT, HF_TOKEN) at --revision."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from-hub",
            action="store_true",
            help="read each catalog model's config.json from the Hub (its slug is its id)",
        )
        parser.add_argument(
            "--revision", default="main", help="with --from-hub: a branch, tag or commit (main)"
        )
        parser.add_argument(
            "--only",
            nargs="+",
            metavar="SLUG",
            help="with --from-hub: refresh only these catalog models",
        )
        parser.add_argument(
            "--write",
            action="store_true",
            help="with --from-hub: also write the configs read into calculator/data/models.json",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        entries = None
        if options["from_hub"]:
            entries = self._from_hub(options["revision"], options["only"], options["write"])
        elif options["only"] or options["write"]:
            raise CommandError("--only and --write go with --from-hub.")
        try:
            with transaction.atomic():
                models = catalog_models_load(entries=entries)
                gpus = catalog_gpus_load()
        except CatalogError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(models.summary("Models"))
        if models.kept:
            self.stdout.write(f"  kept (saved estimates use them): {', '.join(models.kept)}")
        self.stdout.write(gpus.summary("GPUs"))
        if gpus.kept:
            self.stdout.write(f"  kept (not in the file): {', '.join(gpus.kept)}")

    def _from_hub(self, revision: str, only: list[str] | None, write: bool) -> list[dict]:
        """The catalog file's entries, each with the Hub's config.json where it could be read
        (a model that could not be read keeps the file's config, and is named)."""
        if not hub.enabled():
            raise CommandError("HUB_IMPORT is off on this server: the Hub cannot be read.")
        entries = catalog_file_read(MODELS_FILE)
        slugs = {entry["slug"] for entry in entries}
        unknown = sorted(set(only or ()) - slugs)
        if unknown:
            raise CommandError(f"Not in the catalog: {', '.join(unknown)}")
        failed = []
        for entry in entries:
            if only and entry["slug"] not in only:
                continue
            try:
                model = hub.hub_model(repo_id=entry["slug"], revision=revision, who="load_catalog")
            except hub.HubError as error:
                failed.append(entry["slug"])
                self.stderr.write(f"  {entry['slug']}: {error.message} (the file's config kept)")
                continue
            changed = model.config != entry["config"]
            entry["config"] = model.config
            entry["hub_revision"] = {"revision": revision, "sha": model.sha}
            state = "changed" if changed else "unchanged"
            self.stdout.write(f"  {entry['slug']}: {state} at {revision} ({model.sha[:12]})")
        if write:
            MODELS_FILE.write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
            self.stdout.write(f"Wrote {MODELS_FILE}")
        if failed:
            self.stdout.write(f"Not read from the Hub ({len(failed)}): {', '.join(failed)}")
        return entries
