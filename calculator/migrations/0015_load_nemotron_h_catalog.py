from __future__ import annotations

from django.db import migrations


def load_catalogs(apps, schema_editor) -> None:
    """models.json gained Nemotron-H 8B (Mamba-2, attention and MLP-only blocks), and Gemma 3
    27B, counted whole with its vision tower, lost "(text)" from its name."""
    from calculator.domain.catalog import catalog_models_load

    catalog_models_load(
        profile_model=apps.get_model("calculator", "ModelProfile"),
        estimate_model=apps.get_model("calculator", "Estimate"),
    )


class Migration(migrations.Migration):
    dependencies = [("calculator", "0014_load_vision_catalog")]

    operations = [migrations.RunPython(load_catalogs, migrations.RunPython.noop, elidable=False)]
