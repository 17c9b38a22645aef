from __future__ import annotations

from django.db import migrations


def load_catalogs(apps, schema_editor) -> None:
    """models.json gained LLaVA 1.5 7B, and multimodal entries are now counted whole (the
    vision tower and projector beside the text model): reload the model catalog."""
    from calculator.catalog import catalog_models_load

    catalog_models_load(
        profile_model=apps.get_model("calculator", "ModelProfile"),
        estimate_model=apps.get_model("calculator", "Estimate"),
    )


class Migration(migrations.Migration):
    dependencies = [("calculator", "0013_estimate_history_team_index")]

    operations = [migrations.RunPython(load_catalogs, migrations.RunPython.noop, elidable=False)]
