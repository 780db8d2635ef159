"""iCalendar (RFC 5545/5546) documents: a booking's invitation or cancellation, examiner feeds.

Times are written in UTC (``DTSTART:20260330T070000Z``), so calendar apps never guess a zone.
A booking keeps one UID for its whole life; SEQUENCE grows with every move or cancellation so
calendar apps replace the earlier version instead of adding a second event.
"""

import datetime as dt
from urllib.parse import urlsplit

import icalendar
from django.conf import settings
from django.utils import timezone

from .models import Booking, Examiner, Slot

PRODID = "-//visgen course//exam slot booking//EN"


def _host() -> str:
    return urlsplit(settings.SITE_URL).hostname or "localhost"


def _calendar(method: str | None = None) -> icalendar.Calendar:
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    return cal


def _utc(instant: dt.datetime) -> dt.datetime:
    return instant.astimezone(dt.UTC)


def _slot_event(slot: Slot, uid: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(timezone.now()))
    event.add("dtstart", _utc(slot.starts_at))
    event.add("dtend", _utc(slot.ends_at))
    event.add("location", slot.room or slot.online_url)
    if slot.online_url:
        event.add("url", slot.online_url)
    return event


def booking_uid(booking: Booking) -> str:
    return f"booking-{booking.pk}@{_host()}"


def booking_ics(booking: Booking) -> str:
    """REQUEST for an active booking, CANCEL for a cancelled one."""
    slot, enrollment = booking.slot, booking.enrollment
    student = enrollment.student
    cancelled = booking.status == Booking.CANCELLED
    cal = _calendar("CANCEL" if cancelled else "REQUEST")
    event = _slot_event(slot, booking_uid(booking))
    event.add("summary", f"Exam: {slot.exam.title}")
    event.add("sequence", booking.sequence)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("organizer", f"mailto:{settings.DEFAULT_FROM_EMAIL}")
    event.add(
        "attendee",
        f"mailto:{student.email}",
        parameters={"CN": enrollment.name or student.email, "ROLE": "REQ-PARTICIPANT"},
    )
    examiner = slot.examiner.name if slot.examiner else "to be announced"
    event.add("description", f"Examiner: {examiner}. Times are in {slot.exam.time_zone}.")
    cal.add_component(event)
    return cal.to_ical().decode()


def examiner_feed(examiner: Examiner) -> str:
    """All slots of an examiner (who belongs to one exam), with the booked students' names
    (a private, token-URL feed)."""
    cal = _calendar()
    cal.add("x-wr-calname", f"Exams: {examiner.name}")
    slots = examiner.slots.select_related("exam").prefetch_related("bookings__enrollment__student")
    for slot in slots:
        event = _slot_event(slot, f"slot-{slot.pk}@{_host()}")
        event.add("summary", f"{slot.exam.title} ({slot.booked}/{slot.capacity} booked)")
        names = sorted(
            b.enrollment.display_name for b in slot.bookings.all() if b.status == Booking.ACTIVE
        )
        event.add("description", "\n".join(names) or "No bookings yet.")
        cal.add_component(event)
    return cal.to_ical().decode()
