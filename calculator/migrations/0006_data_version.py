# Whole pages kept per data version (calculator/pagecache.py, docs/performance.md).

import secrets

from django.db import migrations, models


def first_version_create(apps, schema_editor):
    apps.get_model("calculator", "DataVersion").objects.create(pk=1, token=secrets.token_hex(16))


class Migration(migrations.Migration):
    dependencies = [
        ("calculator", "0005_history_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="DataVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("token", models.CharField(max_length=32)),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("pk", 1)), name="dataversion_single_row"
                    )
                ],
            },
        ),
        migrations.RunPython(first_version_create, migrations.RunPython.noop),
    ]
