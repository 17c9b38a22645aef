# History's access filter as a union of index ranges (issue 13, docs/performance.md): a team's
# team items newest first, with the owner (to leave out the user's own rows) and the size (for
# "largest first") read from the index alone.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calculator", "0012_team_invitation"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="estimate",
            index=models.Index(
                condition=models.Q(("visibility", "team")),
                fields=["team", "-created", "-id"],
                include=("owner", "total_bytes"),
                name="estimate_history_team",
            ),
        ),
    ]
