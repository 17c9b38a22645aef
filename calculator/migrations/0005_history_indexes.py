# History at scale (issue 4): measured with bench/history.py on 100,000 estimates.

import logging

from django.conf import settings
from django.db import DatabaseError, migrations, models, transaction

logger = logging.getLogger(__name__)

# The history's text search is `UPPER(column) LIKE UPPER('%...%')` (icontains) on these three
# columns; trigram indexes on the same expressions let PostgreSQL find rare words without
# reading every visible row. PostgreSQL only, and only where pg_trgm can be installed (a
# trusted extension since PostgreSQL 13): elsewhere the search still works, by a scan.
TEXT_COLUMNS = {"title": "title::text", "notes": "notes", "model_name": "model_name::text"}


def trigram_indexes_create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as error:
        logger.warning("pg_trgm is not available (%s): history text search will scan.", error)
        return
    for name, expression in TEXT_COLUMNS.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS estimate_{name}_trgm ON calculator_estimate "
            f"USING gin (UPPER({expression}) gin_trgm_ops)"
        )


def trigram_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in TEXT_COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS estimate_{name}_trgm")


class Migration(migrations.Migration):
    dependencies = [
        ("calculator", "0004_api_tokens"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="estimate",
            index=models.Index(
                fields=["owner", "team", "visibility"],
                include=("id", "created", "total_bytes", "mode", "method", "profile", "title"),
                name="estimate_listed_covering",
            ),
        ),
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop),
    ]
