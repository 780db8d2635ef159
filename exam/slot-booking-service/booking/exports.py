"""CSV export of an exam's schedule: UTF-8 with BOM (Excel opens it correctly), formula cells
neutralised (OWASP "CSV injection": a cell starting with = + - @ tab or CR gets a leading ')."""

import csv
import io

from . import timeutil
from .models import Booking, Exam

HEADER = [
    "slot_start",
    "slot_end",
    "time_zone",
    "room",
    "online_url",
    "examiner",
    "student_name",
    "student_email",
    "group",
    "status",
]


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def schedule_csv(exam: Exam) -> str:
    """One row per roster student: booked ones with their slot (by start), then the others."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    tz = exam.tz
    bookings = (
        Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE)
        .select_related("slot__examiner", "enrollment__student")
        .order_by("slot__starts_at", "enrollment__name")
    )
    booked = set()
    for b in bookings:
        slot, student = b.slot, b.enrollment.student
        booked.add(b.enrollment_id)
        writer.writerow(
            safe_cell(v)
            for v in (
                f"{timeutil.local(slot.starts_at, tz):%Y-%m-%d %H:%M}",
                f"{timeutil.local(slot.ends_at, tz):%Y-%m-%d %H:%M}",
                exam.time_zone,
                slot.room,
                slot.online_url,
                slot.examiner.name if slot.examiner else "",
                b.enrollment.name,
                student.email,
                b.enrollment.group,
                "booked",
            )
        )
    for e in exam.enrollments.select_related("student"):
        if e.pk not in booked:
            writer.writerow(
                safe_cell(v)
                for v in (
                    "",
                    "",
                    exam.time_zone,
                    "",
                    "",
                    "",
                    e.name,
                    e.student.email,
                    e.group,
                    "not booked",
                )
            )
    return out.getvalue()
