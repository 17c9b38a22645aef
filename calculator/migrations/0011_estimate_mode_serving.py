"""Saved estimates may be serving plans (mode "serving", engine/serving.py): the mode's check
constraint takes the third mode."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("calculator", "0010_measuredrun"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="estimate",
            name="estimate_valid_mode",
        ),
        migrations.AddConstraint(
            model_name="estimate",
            constraint=models.CheckConstraint(
                condition=models.Q(("mode__in", ["inference", "training", "serving"])),
                name="estimate_valid_mode",
            ),
        ),
    ]
