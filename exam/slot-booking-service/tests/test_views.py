"""The HTML pages of students and instructors, and their answers to bad input."""

import datetime as dt

import pytest
from django.urls import reverse

from booking import services
from booking.models import AuditEvent, Booking, Exam, Slot
from harness import factories


def page(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- students ----------------------------------------------------------------------------------


def test_single_exam_students_land_on_their_exam(student_client, exam):
    response = student_client.get(reverse("home"), follow=True)
    assert response.wsgi_request.path == reverse("student-exam", args=[exam.pk])


def test_book_move_cancel_through_the_pages(student_client, enrollment, slots):
    exam_url = reverse("student-exam", args=[enrollment.exam_id])
    html = page(student_client.get(exam_url))
    assert "You have <strong>not booked</strong>" in html
    assert html.count('aria-label="Book ') == 3 and html.count(">Book</button>") == 3

    response = student_client.post(
        reverse("student-book", args=[enrollment.exam_id]), {"slot": slots[0].pk}, follow=True
    )
    assert messages_of(response)[0].startswith("You are booked for")
    assert page(response).count(">Move here</button>") == 2
    response = student_client.post(  # the same submit again, e.g. a double click
        reverse("student-book", args=[enrollment.exam_id]), {"slot": slots[0].pk}, follow=True
    )
    assert messages_of(response)[0].startswith("You are already booked for")

    response = student_client.post(
        reverse("student-move", args=[enrollment.exam_id]), {"slot": slots[1].pk}, follow=True
    )
    assert messages_of(response)[0].startswith("Your slot is now")
    assert services.active_booking(enrollment).slot_id == slots[1].pk

    confirm = student_client.get(reverse("student-cancel", args=[enrollment.exam_id]))
    assert "Yes, cancel my booking" in page(confirm)
    assert services.active_booking(enrollment) is not None  # GET only asks
    response = student_client.post(
        reverse("student-cancel", args=[enrollment.exam_id]), follow=True
    )
    assert messages_of(response) == ["Your booking is cancelled."]
    assert services.active_booking(enrollment) is None


def test_full_slot_message(student_client, students, slots):
    for other in students[1:3]:
        services.book(other, slots[0].pk, actor=other.student)
    exam_id = students[0].exam_id
    html = page(student_client.get(reverse("student-exam", args=[exam_id])))
    assert 'class="tag full">Full<' in html
    response = student_client.post(
        reverse("student-book", args=[exam_id]), {"slot": slots[0].pk}, follow=True
    )
    assert messages_of(response) == ["This slot is full. Pick another one."]


def test_live_seat_counts_are_out_of_band_fragments(student_client, enrollment, slots):
    response = student_client.get(
        reverse("student-seats", args=[enrollment.exam_id]), headers={"HX-Request": "true"}
    )
    html = page(response)
    assert html.count('hx-swap-oob="true"') == 3 and "2 of 2 free" in html
    assert "<html" not in html


def test_deadline_passed_hides_cancel_and_refuses_it(student_client, enrollment, slots, now):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    Exam.objects.filter(pk=enrollment.exam_id).update(
        cancellation_deadline=now - dt.timedelta(hours=1)
    )
    html = page(student_client.get(reverse("student-exam", args=[enrollment.exam_id])))
    assert "Cancel booking" not in html and "Cancelling is no longer possible" in html
    assert "Move here" not in html
    response = student_client.post(
        reverse("student-cancel", args=[enrollment.exam_id]), follow=True
    )
    assert "cancellation deadline passed" in messages_of(response)[0]
    assert services.active_booking(enrollment) is not None


def test_window_not_open_yet(student_client, enrollment, slots, now):
    Exam.objects.filter(pk=enrollment.exam_id).update(booking_opens_at=now + dt.timedelta(days=1))
    html = page(student_client.get(reverse("student-exam", args=[enrollment.exam_id])))
    assert "Booking opens on" in html and ">Book</button>" not in html


@pytest.mark.parametrize("slot", ["", "abc", "99999999"])
def test_bad_slot_ids_are_refused_and_change_nothing(student_client, enrollment, slots, slot):
    response = student_client.post(
        reverse("student-book", args=[enrollment.exam_id]), {"slot": slot}
    )
    if slot == "99999999":
        assert "no slot 99999999" in messages_of(student_client.get(response.url))[0]
    else:
        assert response.status_code == 400
    assert not Booking.objects.exists()


def test_unknown_exam_is_404(student_client, enrollment):
    assert student_client.get(reverse("student-exam", args=[424242])).status_code == 404


# --- instructors --------------------------------------------------------------------------------


def test_create_exam_and_slot_series(staff_client, instructor):
    response = staff_client.post(
        reverse("staff-exam-new"),
        {
            "title": "Generative models, oral",
            "time_zone": "Europe/Berlin",
            "booking_opens_at": "2030-03-01T08:00",
            "booking_closes_at": "2030-03-20T18:00",
            "cancellation_deadline": "2030-03-19T23:59",
        },
        follow=True,
    )
    exam = Exam.objects.get(title="Generative models, oral")
    assert response.wsgi_request.path == reverse("staff-exam", args=[exam.pk])
    assert exam.booking_opens_at == dt.datetime(2030, 3, 1, 7, 0, tzinfo=dt.UTC)
    response = staff_client.post(
        reverse("staff-slots-new", args=[exam.pk]),
        {
            "first_day": "2030-03-29",
            "days": 3,
            "first_start": "09:00",
            "per_day": 4,
            "length_minutes": 20,
            "gap_minutes": 5,
            "capacity": 2,
            "room": "HS 1",
            "online_url": "",
            "examiner": "Prof. Lovelace",
            "publish": "on",
        },
        follow=True,
    )
    assert messages_of(response) == ["12 slots created, visible to students."]
    assert exam.slots.count() == 12 and all(s.is_published for s in exam.slots.all())
    html = page(response)  # 2030-03-31 is the spring-forward day: 09:00 stays 09:00
    assert "Fri 29 Mar 2030, 09:00 CET" in html and "Sun 31 Mar 2030, 09:00 CEST" in html
    assert AuditEvent.objects.filter(action="slot.create", exam_id=exam.pk).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"capacity": -1}, "The number of seats must be 0 or more."),
        ({"first_day": "2001-01-01"}, "would start in the past"),
        ({"room": ""}, "Give a room, an online meeting link, or both."),
        ({"days": 60, "per_day": 100}, "at most 500 at a time"),
        ({"first_day": "tomorrow"}, "Enter a valid date."),
        ({"online_url": "javascript:alert(1)"}, "Enter a valid URL."),
    ],
)
def test_bad_series_input_changes_nothing(staff_client, exam, change, message):
    data = {
        "first_day": "2030-05-06",
        "days": 1,
        "first_start": "09:00",
        "per_day": 2,
        "length_minutes": 20,
        "gap_minutes": 0,
        "capacity": 1,
        "room": "R",
        "online_url": "",
        "examiner": "",
    }
    response = staff_client.post(reverse("staff-slots-new", args=[exam.pk]), {**data, **change})
    assert response.status_code == 400 and message in page(response)
    assert not exam.slots.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"booking_closes_at": "2030-02-01T08:00"}, "Booking must close after it opens."),
        ({"booking_opens_at": "2030-03-31T02:30"}, "does not exist in Europe/Berlin"),
        ({"time_zone": "Mars/Olympus"}, "Select a valid choice"),
        ({"booking_opens_at": "next week"}, "Enter a date and time like"),
    ],
)
def test_bad_exam_input_changes_nothing(staff_client, exam, change, message):
    before = Exam.objects.values().get(pk=exam.pk)
    data = {
        "title": "T",
        "time_zone": "Europe/Berlin",
        "booking_opens_at": "2030-03-01T08:00",
        "booking_closes_at": "2030-03-20T18:00",
        "cancellation_deadline": "2030-03-19T23:59",
    }
    response = staff_client.post(reverse("staff-exam-edit", args=[exam.pk]), {**data, **change})
    assert message in page(response)
    assert Exam.objects.values().get(pk=exam.pk) == before


def test_slot_page_places_and_cancels_students(staff_client, exam, students, slots):
    url = reverse("staff-slot-place", args=[slots[0].pk])
    response = staff_client.post(url, {"enrollment": students[0].pk}, follow=True)
    assert f"{students[0].display_name} is now in this slot." in messages_of(response)
    assert students[0].student.email in page(response)
    staff_client.post(url, {"enrollment": students[1].pk})
    response = staff_client.post(url, {"enrollment": students[2].pk}, follow=True)
    assert "This slot is full. Pick another one." in messages_of(response)
    response = staff_client.post(
        reverse("staff-student-cancel", args=[exam.pk, students[0].pk]), follow=True
    )
    assert f"Booking of {students[0].display_name} cancelled." in messages_of(response)
    assert Slot.objects.get(pk=slots[0].pk).booked == 1


def test_place_refuses_students_of_other_exams(staff_client, exam, slots, instructor):
    stranger = factories.make_students(factories.make_exam(instructor, title="B"), 1, prefix="o")[0]
    response = staff_client.post(
        reverse("staff-slot-place", args=[slots[0].pk]), {"enrollment": stranger.pk}, follow=True
    )
    assert messages_of(response) == ["Choose a student from this exam's roster."]
    assert not Booking.objects.exists()


def test_edit_slot_capacity_below_booked_is_refused(staff_client, exam, students, slots):
    services.book(students[0], slots[0].pk, actor=students[0].student)
    services.book(students[1], slots[0].pk, actor=students[1].student)
    slot = Slot.objects.get(pk=slots[0].pk)
    local = slot.starts_at.astimezone(exam.tz)
    response = staff_client.post(
        reverse("staff-slot", args=[slot.pk]),
        {
            "starts_at": f"{local:%Y-%m-%dT%H:%M}",
            "ends_at": f"{local + dt.timedelta(minutes=20):%Y-%m-%dT%H:%M}",
            "capacity": 1,
            "room": "R",
            "online_url": "",
            "examiner": "",
        },
    )
    assert "2 seats are booked; the capacity cannot be lower." in page(response)
    assert Slot.objects.get(pk=slot.pk).capacity == 2


def test_publish_and_hide(staff_client, exam, slots):
    url = reverse("staff-slots-publish", args=[exam.pk])
    response = staff_client.post(
        url, {"slot": [slots[0].pk, slots[1].pk], "publish": "0"}, follow=True
    )
    assert messages_of(response) == ["2 slots hidden."]
    assert list(exam.slots.values_list("is_published", flat=True)) == [False, False, True]
    response = staff_client.post(url, {"publish": "1"}, follow=True)
    assert messages_of(response) == ["Tick at least one slot first."]
    response = staff_client.post(url, {"publish": "1", "scope": "all"}, follow=True)
    assert messages_of(response) == ["3 slots published."]
    response = staff_client.post(url, {"publish": "0", "scope": "all"})  # asks first
    assert (
        "Hide all 3 slots?" in page(response) and exam.slots.filter(is_published=True).count() == 3
    )
    response = staff_client.post(
        url, {"publish": "0", "scope": "all", "confirm": "yes"}, follow=True
    )
    assert messages_of(response) == ["3 slots hidden."]


def test_dashboard_exam_unbooked_audit_pages(staff_client, exam, students, slots):
    services.book(students[0], slots[0].pk, actor=students[0].student)
    assert "Oral exam" in page(staff_client.get(reverse("staff-dashboard")))
    html = page(staff_client.get(reverse("staff-exam", args=[exam.pk])))
    assert "not booked yet" in html and "Only 6 visible seats for 4 students" not in html
    unbooked = page(staff_client.get(reverse("staff-unbooked", args=[exam.pk])))
    assert "3 students without a slot" in unbooked
    audit = page(staff_client.get(reverse("staff-audit", args=[exam.pk])))
    assert "booking.create" in audit and students[0].student.email in audit
    response = staff_client.post(reverse("staff-remind", args=[exam.pk]), follow=True)
    assert messages_of(response) == ["Reminder queued for 3 students (at most one per day each)."]


def test_capacity_warning(staff_client, exam, slots):
    factories.make_students(exam, 7)
    html = page(staff_client.get(reverse("staff-exam", args=[exam.pk])))
    assert "Only 6 visible seats for 7 students" in html


def test_account_page_shows_a_new_token_once(student_client):
    html = page(student_client.post(reverse("account")))
    assert 'class="secret"' in html
    assert 'class="secret"' not in page(student_client.get(reverse("account")))


def test_admin_loads_for_superusers(client, db):
    admin = factories.make_instructor("root@example.org")
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    for name in ("booking_slot", "booking_booking", "booking_auditevent", "booking_exam"):
        assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200
