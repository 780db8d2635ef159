"""Student pages: my exams, an exam's slots with live free seats, book / move / cancel, .ics."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from .. import services, timeutil
from ..access import enrollment_for, student_enrollments
from ..ics import booking_ics
from ..models import Booking, Enrollment
from ..validation import parse_id


def _slot_id(request) -> int:
    slot_id = parse_id(request.POST.get("slot"))
    if slot_id is None:
        raise BadRequest("Choose a slot.")
    return slot_id


def seat(slot, *, staff: bool = False) -> tuple[str, str]:
    """Text and CSS class of a slot's seat cell (the page and the htmx refresh share it)."""
    if staff:
        return f"{slot.booked} / {slot.capacity}", "count"
    if slot.free > 0:
        return f"{slot.free} of {slot.capacity} free", "open"
    return "Full", "full"


def _state(enrollment: Enrollment, now) -> dict:
    exam = enrollment.exam
    booking = services.active_booking(enrollment)
    window_open = exam.booking_opens_at <= now < exam.booking_closes_at
    can_cancel = (
        booking is not None and now < exam.cancellation_deadline and booking.slot.starts_at > now
    )
    slots = exam.slots.filter(is_published=True).select_related("examiner")
    return {
        "exam": exam,
        "booking": booking,
        "window_open": window_open,
        "not_yet_open": now < exam.booking_opens_at,
        "can_cancel": can_cancel,
        "days": _rows_by_day(slots, exam, booking, now, window_open, can_cancel),
    }


def _rows_by_day(slots, exam, booking, now, window_open, can_cancel) -> list[tuple[str, list]]:
    """Table rows grouped by day in the exam's time zone, everything a row shows precomputed
    (the page is the most requested one on booking night)."""
    days: dict[str, list] = {}
    for slot in slots:
        start, end = timeutil.local(slot.starts_at, exam.tz), timeutil.local(slot.ends_at, exam.tz)
        if booking is not None and booking.slot_id == slot.pk:
            action = "mine"
        elif slot.starts_at <= now:
            action = "started"
        elif window_open and booking is None:
            action = "book"
        elif window_open and can_cancel:
            action = "move"
        else:
            action = ""
        text, css = seat(slot)
        day, time = f"{start:%A %d %B %Y}", f"{start:%H:%M}\u2013{end:%H:%M}"  # en dash
        place = slot.room or "online"
        days.setdefault(day, []).append(
            {
                "slot": slot,
                "time": time,
                "seat_text": text,
                "seat_class": css,
                "action": action,
                "full": slot.free <= 0,
                "names": f"{day}, {time}, {place}",  # completes the button's accessible name
            }
        )
    return list(days.items())


@login_required
def exams(request):
    enrollments = student_enrollments(request).select_related("exam")
    rows = [
        (
            e,
            Booking.objects.filter(enrollment=e, status=Booking.ACTIVE)
            .select_related("slot")
            .first(),
        )
        for e in enrollments
    ]
    if len(rows) == 1 and not request.user.is_staff:
        return redirect("student-exam", rows[0][0].exam_id)
    return render(request, "booking/student_exams.html", {"rows": rows})


@login_required
def exam(request, exam_id):
    enrollment = enrollment_for(request, exam_id)
    return render(request, "booking/student_exam.html", _state(enrollment, timezone.now()))


@login_required
def seats(request, exam_id):
    """Polled every few seconds by htmx: out-of-band updates of the free-seat cells only, so the
    buttons a student is about to click are never replaced under the pointer."""
    enrollment = enrollment_for(request, exam_id)
    slots = enrollment.exam.slots.filter(is_published=True)
    cells = [(slot.pk, *seat(slot)) for slot in slots]
    return render(request, "booking/partials/seats.html", {"cells": cells})


def _act(request, exam_id, action):
    enrollment = enrollment_for(request, exam_id)
    try:
        message = action(enrollment)
    except services.BookingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect("student-exam", exam_id)


def _when(booking: Booking) -> str:
    return timeutil.describe(booking.slot.starts_at, booking.slot.exam.tz)


@login_required
@require_POST
def book(request, exam_id):
    slot_id = _slot_id(request)

    def action(enrollment):
        result = services.book(enrollment, slot_id, actor=request.user)
        if not result.created:  # a repeated submit: nothing changed, no second email
            return f"You are already booked for {_when(result.booking)}."
        return f"You are booked for {_when(result.booking)}. A confirmation email is on its way."

    return _act(request, exam_id, action)


@login_required
@require_POST
def move(request, exam_id):
    slot_id = _slot_id(request)

    def action(enrollment):
        result = services.move(enrollment, slot_id, actor=request.user)
        return f"Your slot is now {_when(result.booking)}."

    return _act(request, exam_id, action)


@login_required
def cancel(request, exam_id):
    """GET asks for confirmation; POST cancels."""
    enrollment = enrollment_for(request, exam_id)
    if request.method != "POST":
        return render(request, "booking/student_cancel.html", _state(enrollment, timezone.now()))

    def action(enrollment):
        booking = services.cancel(enrollment, actor=request.user)
        return "Your booking is cancelled." if booking else "You had no booking to cancel."

    return _act(request, exam_id, action)


@login_required
def booking_calendar(request, exam_id):
    enrollment = enrollment_for(request, exam_id)
    booking = services.active_booking(enrollment)
    if booking is None:
        raise Http404("You have no booking in this exam.")
    response = HttpResponse(booking_ics(booking), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="exam-{exam_id}.ics"'
    return response
