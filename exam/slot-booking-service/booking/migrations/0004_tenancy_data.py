"""Tenancy (issue 23), step 2 of 3: the data (see 0003 for what and why)."""

import secrets

from django.db import migrations
from django.db.models import OuterRef, Subquery


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
    dependencies = [("booking", "0003_tenancy_and_throttle")]

    operations = [
        migrations.RunPython(copy_names, migrations.RunPython.noop),
        migrations.RunPython(split_examiners, migrations.RunPython.noop),
        migrations.RunPython(move_invites, migrations.RunPython.noop),
        migrations.RunPython(clear_throttle, migrations.RunPython.noop),
    ]
