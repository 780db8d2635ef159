"""Tenancy (issue 23), step 3 of 3: constraints and non-null columns after the data moved."""

import django.db.models.deletion
from django.db import migrations, models

import booking.validation


class Migration(migrations.Migration):
    dependencies = [("booking", "0004_tenancy_data")]

    operations = [
        migrations.AlterModelOptions(
            name="enrollment", options={"ordering": ["name", "student__email"]}
        ),
        migrations.AlterField(
            model_name="examiner",
            name="exam",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="examiners",
                to="booking.exam",
            ),
        ),
        migrations.AddConstraint(
            model_name="examiner",
            constraint=models.UniqueConstraint(
                fields=("exam", "name"), name="one_examiner_name_per_exam"
            ),
        ),
        migrations.RemoveField(model_name="invitecode", name="user"),
        migrations.AlterField(
            model_name="invitecode",
            name="enrollment",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="invite_codes",
                to="booking.enrollment",
            ),
        ),
        migrations.AlterField(
            model_name="throttlewindow", name="name", field=models.CharField(max_length=300)
        ),
        migrations.AddIndex(
            model_name="throttlewindow",
            index=models.Index(fields=["expires"], name="throttle_expires"),
        ),
        migrations.AlterField(
            model_name="enrollment",
            name="group",
            field=models.CharField(blank=True, max_length=100, validators=[booking.validation.one_line]),
        ),
        migrations.AlterField(
            model_name="exam",
            name="title",
            field=models.CharField(max_length=200, validators=[booking.validation.one_line]),
        ),
        migrations.AlterField(
            model_name="slot",
            name="room",
            field=models.CharField(blank=True, max_length=200, validators=[booking.validation.one_line]),
        ),
        migrations.AlterField(
            model_name="user",
            name="name",
            field=models.CharField(blank=True, max_length=200, validators=[booking.validation.one_line]),
        ),
    ]
