"""Time zones across DST changes: slots keep their wall-clock time; .ics times are UTC and right."""

import datetime as dt
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.urls import reverse

from booking import ics, services, timeutil
from booking.forms import SeriesForm
from booking.models import Slot
from harness import factories

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_series_keeps_wall_clock_time_across_spring_forward():
    # Europe/Berlin switches from CET (+1) to CEST (+2) on Sunday 2026-03-29 at 02:00.
    times = timeutil.series(
        dt.date(2026, 3, 28), 3, dt.time(9, 0), 1, dt.timedelta(minutes=20), dt.timedelta(0), BERLIN
    )
    assert [start for start, _ in times] == [
        utc(2026, 3, 28, 8, 0),
        utc(2026, 3, 29, 7, 0),
        utc(2026, 3, 30, 7, 0),
    ]
    assert all(f"{timeutil.local(s, BERLIN):%H:%M}" == "09:00" for s, _ in times)


def test_series_keeps_wall_clock_time_across_fall_back():
    # ... and back from CEST to CET on Sunday 2026-10-25 at 03:00.
    times = timeutil.series(
        dt.date(2026, 10, 24),
        2,
        dt.time(14, 30),
        2,
        dt.timedelta(minutes=30),
        dt.timedelta(minutes=10),
        BERLIN,
    )
    assert times == [
        (utc(2026, 10, 24, 12, 30), utc(2026, 10, 24, 13, 0)),
        (utc(2026, 10, 24, 13, 10), utc(2026, 10, 24, 13, 40)),
        (utc(2026, 10, 25, 13, 30), utc(2026, 10, 25, 14, 0)),
        (utc(2026, 10, 25, 14, 10), utc(2026, 10, 25, 14, 40)),
    ]


def test_a_slot_spanning_the_night_of_the_change_has_its_real_length():
    # 01:30-03:30 wall clock on the spring-forward night lasts one real hour.
    start = timeutil.to_utc(dt.datetime(2026, 3, 29, 1, 30), BERLIN)
    end = timeutil.to_utc(dt.datetime(2026, 3, 29, 3, 30), BERLIN)
    assert end - start == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("wall", "message"),
    [
        (dt.datetime(2026, 3, 29, 2, 30), "does not exist in Europe/Berlin"),
        (dt.datetime(2026, 10, 25, 2, 30), "happens twice in Europe/Berlin"),
    ],
)
def test_times_the_change_skips_or_repeats_are_refused(wall, message):
    with pytest.raises(ValueError, match=message):
        timeutil.to_utc(wall, BERLIN)


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        ("Asia/Kolkata", dt.datetime(2026, 6, 1, 9, 0), utc(2026, 6, 1, 3, 30)),  # +05:30
        ("America/Los_Angeles", dt.datetime(2026, 3, 8, 9, 0), utc(2026, 3, 8, 16, 0)),  # PDT day 1
        (
            "America/Los_Angeles",
            dt.datetime(2026, 3, 7, 23, 30),
            utc(2026, 3, 8, 7, 30),
        ),  # next UTC day
        (
            "Pacific/Auckland",
            dt.datetime(2026, 4, 5, 9, 0),
            utc(2026, 4, 4, 21, 0),
        ),  # previous UTC day
    ],
)
def test_other_zones(zone, wall, expected):
    assert timeutil.to_utc(wall, ZoneInfo(zone)) == expected


def test_series_form_refuses_a_gap_time_and_the_past(exam, now):
    exam.time_zone = "Europe/Berlin"
    base = {
        "days": 1,
        "per_day": 1,
        "length_minutes": 20,
        "gap_minutes": 0,
        "capacity": 1,
        "room": "R1",
        "online_url": "",
        "examiner": "",
    }
    gap = SeriesForm({**base, "first_day": "2030-03-31", "first_start": "02:30"}, exam=exam)
    assert not gap.is_valid() and "does not exist in Europe/Berlin" in str(gap.errors)
    past = SeriesForm({**base, "first_day": "2020-01-06", "first_start": "09:00"}, exam=exam)
    assert not past.is_valid() and "would start in the past" in str(past.errors)


def test_ics_times_are_utc_and_the_uid_is_stable(exam, students, instructor):
    exam.time_zone = "Europe/Berlin"
    exam.save()
    start = timeutil.to_utc(dt.datetime(2030, 3, 31, 9, 0), BERLIN)  # first CEST Monday
    slot = Slot.objects.create(
        exam=exam,
        starts_at=start,
        ends_at=start + dt.timedelta(minutes=20),
        capacity=1,
        room="Hörsaal 3; Building B, 2nd floor",
        is_published=True,
    )
    booking = services.book(students[0], slot.pk, actor=instructor, by_instructor=True).booking
    text = ics.booking_ics(booking)
    assert "\r\n" in text and all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    assert "DTSTART:20300331T070000Z" in text and "DTEND:20300331T072000Z" in text
    event = icalendar.Calendar.from_ical(text).walk("VEVENT")[0]
    assert event["DTSTART"].dt == start and str(event["LOCATION"]) == slot.room
    assert str(event["UID"]) == ics.booking_uid(booking)
    assert str(icalendar.Calendar.from_ical(text)["METHOD"]) == "REQUEST"
    cancelled = services.cancel(students[0], actor=instructor, by_instructor=True)
    again = icalendar.Calendar.from_ical(ics.booking_ics(cancelled))
    assert str(again["METHOD"]) == "CANCEL"
    assert again.walk("VEVENT")[0]["UID"] == event["UID"]
    assert again.walk("VEVENT")[0]["SEQUENCE"] == 1


def test_student_page_shows_exam_zone_times_and_ics_download(student_client, enrollment):
    exam = enrollment.exam
    exam.time_zone = "Asia/Kolkata"
    exam.save()
    start = timeutil.to_utc(dt.datetime(2030, 6, 3, 10, 0), ZoneInfo("Asia/Kolkata"))
    slot = factories.make_slots(exam, 1, start=start)[0]
    page = student_client.get(reverse("student-exam", args=[exam.pk])).content.decode()
    assert "10:00–10:20" in page and "Monday 03 June 2030" in page and "Asia/Kolkata" in page
    services.book(enrollment, slot.pk, actor=enrollment.student)
    response = student_client.get(reverse("student-ics", args=[exam.pk]))
    assert response["Content-Type"].startswith("text/calendar")
    assert b"DTSTART:20300603T043000Z" in response.content


def test_examiner_feed(client, exam, students, instructor):
    slot = factories.make_slots(exam, 1, capacity=2)[0]
    services.update_slot(
        Slot.objects.get(pk=slot.pk), actor=instructor, capacity=2, examiner_name="Prof. Noether"
    )
    slot.refresh_from_db()
    services.book(students[0], slot.pk, actor=students[0].student)
    response = client.get(reverse("examiner-feed", args=[slot.examiner.feed_token]))
    calendar = icalendar.Calendar.from_ical(response.content)
    event = calendar.walk("VEVENT")[0]
    assert "(1/2 booked)" in str(event["SUMMARY"])
    assert students[0].name in str(event["DESCRIPTION"])
    assert client.get(reverse("examiner-feed", args=["x" * 32])).status_code == 404
