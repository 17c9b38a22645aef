# The whole-page cache per data version is gone (issue 13): every page runs its access check on
# every request, so nothing needs a token that changes with each write.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("calculator", "0006_data_version"),
    ]

    operations = [
        migrations.DeleteModel(name="DataVersion"),
    ]
