"""Tenancy (issue 23), in three steps: 0003 adds the columns, 0004 moves the data, 0005 adds
the constraints. (On PostgreSQL a table cannot get an index or constraint in the transaction
that changed rows with deferred foreign-key checks, so data and schema are separate migrations.)

What: roster names per exam, examiners per exam, invite codes per roster row;
login codes bound to the browser session that asked for them; outbox emails know their exam;
throttle windows know when they expire; one-line validators on titles, names and rooms.

Data: each roster row gets its student's current name. An examiner used by several exams is
split into one examiner per exam, and every copy gets a new feed token, since the old token was
shown to the instructors of all those exams (an examiner of one exam keeps the token). Unused
invite codes of students on exactly one roster move to that roster row; the others are deleted
(it is unknown which exam they were made for). Login codes issued before the migration still
work through their link, not by typing the code. Throttle counters start afresh.
"""

import django.db.models.deletion
from django.db import migrations, models

import booking.validation


class Migration(migrations.Migration):
    dependencies = [("booking", "0002_audit_append_only")]

    operations = [
        migrations.AddField(
            model_name="enrollment",
            name="name",
            field=models.CharField(blank=True, max_length=200, validators=[booking.validation.one_line]),
        ),
        migrations.AlterField(
            model_name="examiner",
            name="name",
            field=models.CharField(max_length=200, validators=[booking.validation.one_line]),
        ),
        migrations.AddField(
            model_name="examiner",
            name="exam",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="examiners",
                to="booking.exam",
            ),
        ),
        migrations.AddField(
            model_name="invitecode",
            name="enrollment",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="invite_codes",
                to="booking.enrollment",
            ),
        ),
        migrations.AddField(
            model_name="logintoken",
            name="binding",
            field=models.CharField(db_index=True, default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="outboxemail",
            name="exam_id",
            field=models.BigIntegerField(help_text="The exam the email is about, if any.", null=True),
        ),
        migrations.AddField(
            model_name="throttlewindow",
            name="expires",
            field=models.BigIntegerField(default=0, help_text="Unix time at which the window ends."),
            preserve_default=False,
        ),
    ]
