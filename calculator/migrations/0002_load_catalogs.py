from __future__ import annotations

from django.db import migrations


def load_catalogs(apps, schema_editor) -> None:
    from calculator.domain.catalog import catalog_gpus_load, catalog_models_load

    catalog_models_load(
        profile_model=apps.get_model("calculator", "ModelProfile"),
        estimate_model=apps.get_model("calculator", "Estimate"),
    )
    catalog_gpus_load(gpu_model=apps.get_model("calculator", "Gpu"))


class Migration(migrations.Migration):
    dependencies = [("calculator", "0001_initial")]

    # Unapplying leaves the catalog rows in place: they are plain data, harmless to keep.
    operations = [migrations.RunPython(load_catalogs, migrations.RunPython.noop, elidable=False)]
