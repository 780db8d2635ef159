"""Booking rules of booking.services, one behaviour per test."""

import datetime as dt
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from booking import outbox, services
from booking.models import AuditEvent, Booking, OutboxEmail, Slot
from harness import factories


def seats(slot) -> int:
    return Slot.objects.get(pk=slot.pk).booked


def test_book_takes_a_seat_and_records_audit_and_email(enrollment, slots):
    result = services.book(enrollment, slots[0].pk, actor=enrollment.student)
    assert result.created
    assert seats(slots[0]) == 1
    event = AuditEvent.objects.get(action="booking.create")
    assert (event.slot_id, event.booking_id) == (slots[0].pk, result.booking.pk)
    assert event.actor_email == event.student_email == enrollment.student.email
    email = OutboxEmail.objects.get()
    assert email.to_email == enrollment.student.email and "METHOD:REQUEST" in email.ics


def test_confirmation_email_is_sent_only_after_commit(
    enrollment, slots, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.book(enrollment, slots[0].pk, actor=enrollment.student)
        assert mail.outbox == []  # nothing leaves before the transaction commits
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Exam slot booked: Oral exam"
    calendar = message.attachments[0]
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_param("method") == "REQUEST" and calendar.get_filename() == "exam.ics"
    assert "DTSTART:" in calendar.get_payload(decode=True).decode()
    assert OutboxEmail.objects.get().status == OutboxEmail.SENT


def test_failed_email_stays_in_outbox_and_does_not_undo_the_booking(
    enrollment, slots, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.broken_mail.Backend"
    with django_capture_on_commit_callbacks(execute=True):
        services.book(enrollment, slots[0].pk, actor=enrollment.student)
    email = OutboxEmail.objects.get()
    assert email.status == OutboxEmail.PENDING and email.attempts == 1
    assert "SMTP server unreachable" in email.last_error
    assert Booking.objects.filter(status=Booking.ACTIVE).count() == 1


def test_repeating_the_same_booking_is_idempotent(enrollment, slots):
    first = services.book(enrollment, slots[0].pk, actor=enrollment.student)
    again = services.book(enrollment, slots[0].pk, actor=enrollment.student)
    assert not again.created and again.booking.pk == first.booking.pk
    assert seats(slots[0]) == 1
    assert OutboxEmail.objects.count() == 1


def test_second_slot_in_same_exam_is_refused(enrollment, slots):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    with pytest.raises(services.AlreadyBooked, match="Move here"):
        services.book(enrollment, slots[1].pk, actor=enrollment.student)
    assert seats(slots[1]) == 0


def test_full_slot_is_refused_with_a_clear_message(students, slots):
    for enrollment in students[:2]:
        services.book(enrollment, slots[0].pk, actor=enrollment.student)
    with pytest.raises(services.Unavailable, match="This slot is full"):
        services.book(students[2], slots[0].pk, actor=students[2].student)
    assert seats(slots[0]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"booking_opens_at": dt.timedelta(hours=1)}, "Booking opens on"),
        ({"booking_closes_at": dt.timedelta(hours=-1)}, "Booking closed on"),
    ],
)
def test_booking_window_is_enforced_for_students(enrollment, slots, now, change, message):
    exam = enrollment.exam
    ((field, delta),) = change.items()
    if field == "booking_closes_at":
        exam.booking_opens_at = now - dt.timedelta(days=2)
    setattr(exam, field, now + delta)
    exam.save()
    with pytest.raises(services.Unavailable, match=message):
        services.book(enrollment, slots[0].pk, actor=enrollment.student)
    assert not Booking.objects.exists()


def test_instructor_books_outside_the_window_but_never_beyond_capacity(
    exam, students, instructor, now
):
    exam.booking_closes_at = now - dt.timedelta(minutes=1)
    exam.booking_opens_at = now - dt.timedelta(days=2)
    exam.save()
    hidden = factories.make_slots(exam, 1, capacity=1, published=False)[0]
    assert services.book(students[0], hidden.pk, actor=instructor, by_instructor=True).created
    with pytest.raises(services.Unavailable, match="full"):
        services.place(students[1], hidden.pk, actor=instructor)


@pytest.mark.parametrize("kind", ["hidden", "other exam", "unknown"])
def test_slots_students_cannot_see_are_not_found(enrollment, instructor, kind):
    if kind == "hidden":
        slot_id = factories.make_slots(enrollment.exam, 1, published=False)[0].pk
    elif kind == "other exam":
        slot_id = factories.make_slots(factories.make_exam(instructor, title="Other"))[0].pk
    else:
        slot_id = 987654
    with pytest.raises(services.NotFound, match=f"no slot {slot_id}"):
        services.book(enrollment, slot_id, actor=enrollment.student)
    assert not Booking.objects.exists()


def test_started_slot_cannot_be_booked(enrollment, now):
    slot = factories.make_slots(enrollment.exam, 1, start=now - dt.timedelta(minutes=5))[0]
    with pytest.raises(services.Unavailable, match="already started"):
        services.book(enrollment, slot.pk, actor=enrollment.student)


def test_move_is_atomic_and_keeps_the_ics_uid(enrollment, slots):
    booked = services.book(enrollment, slots[0].pk, actor=enrollment.student).booking
    moved = services.move(enrollment, slots[1].pk, actor=enrollment.student).booking
    assert moved.pk == booked.pk and moved.slot_id == slots[1].pk and moved.sequence == 1
    assert (seats(slots[0]), seats(slots[1])) == (0, 1)
    assert AuditEvent.objects.get(action="booking.move").details["from_slot"] == slots[0].pk
    update = OutboxEmail.objects.get(dedupe_key=f"booking-{booked.pk}-seq-1")
    assert f"UID:booking-{booked.pk}@" in update.ics and "SEQUENCE:1" in update.ics


def test_failed_move_keeps_the_old_seat(students, slots):
    mover = students[0]
    services.book(mover, slots[0].pk, actor=mover.student)
    for other in students[1:3]:
        services.book(other, slots[1].pk, actor=other.student)
    with pytest.raises(services.Unavailable, match="full"):
        services.move(mover, slots[1].pk, actor=mover.student)
    assert services.active_booking(mover).slot_id == slots[0].pk
    assert (seats(slots[0]), seats(slots[1])) == (1, 2)


def test_move_to_the_same_slot_changes_nothing(enrollment, slots):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    result = services.move(enrollment, slots[0].pk, actor=enrollment.student)
    assert result.booking.sequence == 0 and seats(slots[0]) == 1


def test_move_without_booking_is_refused(enrollment, slots):
    with pytest.raises(services.NotFound, match="book a slot instead"):
        services.move(enrollment, slots[0].pk, actor=enrollment.student)


def test_cancel_frees_the_seat_and_sends_a_cancellation(enrollment, slots):
    booking = services.book(enrollment, slots[0].pk, actor=enrollment.student).booking
    cancelled = services.cancel(enrollment, actor=enrollment.student)
    assert cancelled.status == Booking.CANCELLED and seats(slots[0]) == 0
    ics = OutboxEmail.objects.get(dedupe_key=f"booking-{booking.pk}-seq-1").ics
    assert "METHOD:CANCEL" in ics and "STATUS:CANCELLED" in ics
    assert services.cancel(enrollment, actor=enrollment.student) is None  # twice is harmless
    assert services.book(enrollment, slots[1].pk, actor=enrollment.student).created


def test_cancellation_deadline_applies_to_students_not_instructors(
    enrollment, slots, now, instructor
):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    exam = enrollment.exam
    exam.cancellation_deadline = now - dt.timedelta(minutes=1)
    exam.save()
    with pytest.raises(services.Unavailable, match="cancellation deadline passed"):
        services.cancel(enrollment, actor=enrollment.student)
    with pytest.raises(services.Unavailable, match="cancellation deadline passed"):
        services.move(enrollment, slots[1].pk, actor=enrollment.student)
    assert seats(slots[0]) == 1
    services.cancel(enrollment, actor=instructor, by_instructor=True)
    assert seats(slots[0]) == 0


def test_instructor_place_moves_a_booked_student(students, slots, instructor):
    services.book(students[0], slots[0].pk, actor=students[0].student)
    result = services.place(students[0], slots[2].pk, actor=instructor)
    assert not result.created and result.booking.slot_id == slots[2].pk
    event = AuditEvent.objects.get(action="booking.move")
    assert event.actor_email == instructor.email and event.details["by_instructor"]


def test_capacity_cannot_drop_below_booked_seats(students, slots, instructor):
    for enrollment in students[:2]:
        services.book(enrollment, slots[0].pk, actor=enrollment.student)
    slot = Slot.objects.get(pk=slots[0].pk)
    with pytest.raises(services.Unavailable, match="2 seats are booked"):
        services.update_slot(slot, actor=instructor, capacity=1, examiner_name="")
    assert Slot.objects.get(pk=slot.pk).capacity == 2


def test_moving_a_slot_notifies_its_students(students, slots, instructor):
    booking = services.book(students[0], slots[0].pk, actor=students[0].student).booking
    slot = Slot.objects.select_related("exam").get(pk=slots[0].pk)
    later = slot.starts_at + dt.timedelta(hours=2)
    notified = services.update_slot(
        slot,
        actor=instructor,
        capacity=2,
        examiner_name="Dr. Who",
        starts_at=later,
        ends_at=later + dt.timedelta(minutes=20),
    )
    assert notified == 1
    email = OutboxEmail.objects.get(dedupe_key=f"booking-{booking.pk}-seq-1")
    assert "Exam slot changed" in email.subject and "Dr. Who" in email.body


def test_slots_with_history_cannot_be_deleted(enrollment, slots, instructor):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    services.cancel(enrollment, actor=enrollment.student)
    with pytest.raises(services.Unavailable, match="hide it instead"):
        services.delete_slot(Slot.objects.get(pk=slots[0].pk), actor=instructor)
    services.delete_slot(Slot.objects.get(pk=slots[1].pk), actor=instructor)
    assert not Slot.objects.filter(pk=slots[1].pk).exists()


def test_reminders_go_to_unbooked_students_once_a_day(students, slots, instructor):
    services.book(students[0], slots[0].pk, actor=students[0].student)
    exam = students[0].exam
    assert services.remind_unbooked(exam, actor=instructor, login_url="http://x/login/") == 3
    services.remind_unbooked(exam, actor=instructor, login_url="http://x/login/")
    assert OutboxEmail.objects.filter(subject__startswith="Please book").count() == 3


def test_integrity_report_finds_counter_drift(enrollment, slots):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    assert services.integrity_report() == []
    Slot.objects.filter(pk=slots[1].pk).update(booked=1)
    assert services.integrity_report() == [services.Drift(slots[1].pk, 1, 0)]


def test_send_outbox_retries_pending_and_stale_emails(enrollment, slots, settings):
    settings.EMAIL_BACKEND = "tests.broken_mail.Backend"
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    outbox.deliver()  # fails: stays pending
    OutboxEmail.objects.update(
        status=OutboxEmail.SENDING, claimed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    out = StringIO()
    call_command("send_outbox", stdout=out)
    assert out.getvalue().strip() == "sent 1 emails (1 stale claims released)"
    assert OutboxEmail.objects.get().status == OutboxEmail.SENT and len(mail.outbox) == 1


def test_check_integrity_command(enrollment, slots):
    services.book(enrollment, slots[0].pk, actor=enrollment.student)
    out = StringIO()
    call_command("check_integrity", stdout=out)
    assert out.getvalue().startswith("ok")
    Slot.objects.filter(pk=slots[1].pk).update(booked=2)
    with pytest.raises(CommandError, match=f"slot {slots[1].pk}: counter 2, bookings 0"):
        call_command("check_integrity")
