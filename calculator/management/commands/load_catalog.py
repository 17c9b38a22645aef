from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from calculator.catalog import CatalogError, catalog_gpus_load, catalog_models_load


class Command(BaseCommand):
    help = (
        "Refresh the built-in model and GPU catalogs from calculator/data/*.json: create new "
        "entries, update changed ones, remove catalog models that left the file unless a saved "
        "estimate uses them. GPUs that are not in the file (added in the admin) are kept."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with transaction.atomic():
                models = catalog_models_load()
                gpus = catalog_gpus_load()
        except CatalogError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(models.summary("Models"))
        if models.kept:
            self.stdout.write(f"  kept (saved estimates use them): {', '.join(models.kept)}")
        self.stdout.write(gpus.summary("GPUs"))
        if gpus.kept:
            self.stdout.write(f"  kept (not in the file): {', '.join(gpus.kept)}")
