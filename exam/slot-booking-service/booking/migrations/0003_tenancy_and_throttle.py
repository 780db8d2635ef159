"""Tenancy (issue 23), first half (0004 finishes the schema): roster names per exam, examiners per exam, invite codes per roster row;
login codes bound to the browser session that asked for them; outbox emails know their exam;
throttle windows know when they expire; one-line validators on titles, names and rooms.

Data: each roster row gets its student's current name. An examiner used by several exams is
split into one examiner per exam, and every copy gets a new feed token, since the old token was
shown to the instructors of all those exams (an examiner of one exam keeps the token). Unused
invite codes of students on exactly one roster move to that roster row; the others are deleted
(it is unknown which exam they were made for). Login codes issued before the migration still
work through their link, not by typing the code. Throttle counters start afresh.
"""

import secrets

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

import booking.validation


def copy_names(apps, schema_editor):
    Enrollment = apps.get_model("booking", "Enrollment")
    User = apps.get_model("booking", "User")
    names = User.objects.filter(pk=OuterRef("student_id")).values("name")[:1]
    Enrollment.objects.update(name=Subquery(names))


def split_examiners(apps, schema_editor):
    Examiner = apps.get_model("booking", "Examiner")
    Slot = apps.get_model("booking", "Slot")
    for examiner in Examiner.objects.order_by("pk"):
        exam_ids = sorted(set(Slot.objects.filter(examiner=examiner).values_list("exam_id", flat=True)))
        if not exam_ids:
            examiner.delete()
            continue
        first, *others = exam_ids
        examiner.exam_id = first
        if others:
            examiner.feed_token = secrets.token_urlsafe(24)
        examiner.save()
        for exam_id in others:
            copy = Examiner.objects.create(
                exam_id=exam_id, name=examiner.name, feed_token=secrets.token_urlsafe(24)
            )
            Slot.objects.filter(examiner=examiner, exam_id=exam_id).update(examiner=copy)


def move_invites(apps, schema_editor):
    InviteCode = apps.get_model("booking", "InviteCode")
    Enrollment = apps.get_model("booking", "Enrollment")
    for invite in InviteCode.objects.order_by("pk"):
        rows = list(Enrollment.objects.filter(student_id=invite.user_id).values_list("pk", flat=True))
        if len(rows) == 1 and invite.used_at is None:
            InviteCode.objects.filter(pk=invite.pk).update(enrollment_id=rows[0])
        else:
            InviteCode.objects.filter(pk=invite.pk).delete()


def clear_throttle(apps, schema_editor):
    apps.get_model("booking", "ThrottleWindow").objects.all().delete()


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
        # Data last: on PostgreSQL a table cannot be altered after rows with deferred foreign
        # key checks changed in the same transaction, so 0004 finishes the schema.
        migrations.RunPython(copy_names, migrations.RunPython.noop),
        migrations.RunPython(split_examiners, migrations.RunPython.noop),
        migrations.RunPython(move_invites, migrations.RunPython.noop),
        migrations.RunPython(clear_throttle, migrations.RunPython.noop),
    ]
