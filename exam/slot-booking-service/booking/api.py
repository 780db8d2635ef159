"""JSON API (OpenAPI schema at /api/openapi.json, browsable docs at /api/docs).

Authentication: ``Authorization: Bearer <token>`` (made on the "API token" page, /account/), or
the browser session plus the CSRF header. Refusals are JSON ``{"detail": "..."}``: 404 (not yours,
or unknown), 409 (full, closed, already booked), 400 or 422 (malformed input).
"""

import datetime as dt

from django.http import Http404
from ninja import Field, NinjaAPI, Schema, Status
from ninja.security import HttpBearer, django_auth

from . import services, signin
from .access import enrollment_for, taught_enrollment, taught_exam, taught_exams
from .models import Booking, Enrollment, Exam, Slot


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        return signin.api_user(token)


api = NinjaAPI(
    title="Exam slot booking API",
    version="1",
    description=__doc__,
    auth=[BearerToken(), django_auth],
    urls_namespace="api",
)


class Detail(Schema):
    detail: str


class ExamOut(Schema):
    id: int
    title: str
    time_zone: str
    booking_opens_at: dt.datetime
    booking_closes_at: dt.datetime
    cancellation_deadline: dt.datetime
    role: str = Field(description="'student' or 'instructor'")


class SlotOut(Schema):
    id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    room: str
    online_url: str
    examiner: str | None
    capacity: int
    booked: int
    free: int
    is_published: bool


class BookingOut(Schema):
    id: int
    exam_id: int
    slot_id: int
    status: str
    student_email: str
    sequence: int
    starts_at: dt.datetime


class SlotChoice(Schema):
    slot_id: int = Field(ge=1)


def _booking(b: Booking) -> dict:
    return {
        "id": b.pk,
        "exam_id": b.enrollment.exam_id,
        "slot_id": b.slot_id,
        "status": b.status,
        "student_email": b.enrollment.student.email,
        "sequence": b.sequence,
        "starts_at": b.slot.starts_at,
    }


def _slot(s: Slot) -> dict:
    return {
        "id": s.pk,
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "room": s.room,
        "online_url": s.online_url,
        "examiner": s.examiner.name if s.examiner else None,
        "capacity": s.capacity,
        "booked": s.booked,
        "free": s.free,
        "is_published": s.is_published,
    }


def _exam(e: Exam, role: str) -> dict:
    fields = (
        "id",
        "title",
        "time_zone",
        "booking_opens_at",
        "booking_closes_at",
        "cancellation_deadline",
    )
    return {**{f: getattr(e, f) for f in fields}, "role": role}


@api.exception_handler(services.BookingError)
def refused(request, exc: services.BookingError):
    return api.create_response(request, {"detail": exc.message}, status=exc.status)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(request, {"detail": "Not found, or not yours."}, status=404)


# --- everyone -------------------------------------------------------------------------------


@api.get("/exams", response=list[ExamOut], url_name="exams", tags=["exams"])
def list_exams(request):
    """Exams the caller is enrolled in (role student) or teaches (role instructor)."""
    enrolled = Exam.objects.filter(enrollments__student=request.auth)
    return [_exam(e, "student") for e in enrolled] + [
        _exam(e, "instructor") for e in taught_exams(request.auth)
    ]


@api.get("/exams/{exam_id}/slots", response=list[SlotOut], url_name="slots", tags=["exams"])
def list_slots(request, exam_id: int):
    """Slots with live seat counts: published ones for students, all for instructors."""
    exams = taught_exams(request.auth)
    if exams.filter(pk=exam_id).exists():
        slots = Slot.objects.filter(exam_id=exam_id)
    else:
        enrollment = enrollment_for(request.auth, exam_id)
        slots = enrollment.exam.slots.filter(is_published=True)
    return [_slot(s) for s in slots.select_related("examiner")]


# --- students: their own booking --------------------------------------------------------------


@api.get(
    "/exams/{exam_id}/booking",
    response={200: BookingOut, 404: Detail},
    url_name="my-booking",
    tags=["student"],
)
def my_booking(request, exam_id: int):
    booking = services.active_booking(enrollment_for(request.auth, exam_id))
    if booking is None:
        raise services.NotFound("You have no booking in this exam.")
    return _booking(booking)


@api.post(
    "/exams/{exam_id}/booking",
    response={201: BookingOut, 200: BookingOut, 404: Detail, 409: Detail},
    url_name="book",
    tags=["student"],
)
def book(request, exam_id: int, choice: SlotChoice):
    """Book a slot: 201 when booked; 200 when this exact booking already existed (a repeated
    request); 409 when the slot is full or closed, or you hold another slot (use PUT to move)."""
    enrollment = enrollment_for(request.auth, exam_id)
    result = services.book(enrollment, choice.slot_id, actor=request.auth)
    return Status(201 if result.created else 200, _booking(result.booking))


@api.put(
    "/exams/{exam_id}/booking",
    response={200: BookingOut, 404: Detail, 409: Detail},
    url_name="move",
    tags=["student"],
)
def move(request, exam_id: int, choice: SlotChoice):
    """Move your booking; if the new slot is refused you keep the old one."""
    enrollment = enrollment_for(request.auth, exam_id)
    return _booking(services.move(enrollment, choice.slot_id, actor=request.auth).booking)


@api.delete(
    "/exams/{exam_id}/booking",
    response={204: None, 404: Detail, 409: Detail},
    url_name="cancel",
    tags=["student"],
)
def cancel(request, exam_id: int):
    """Cancel your booking (204 also when there was none)."""
    services.cancel(enrollment_for(request.auth, exam_id), actor=request.auth)
    return Status(204, None)


# --- instructors ------------------------------------------------------------------------------


@api.get(
    "/exams/{exam_id}/bookings",
    response={200: list[BookingOut], 404: Detail},
    url_name="bookings",
    tags=["instructor"],
)
def exam_bookings(request, exam_id: int):
    exam = taught_exam(request.auth, exam_id)
    bookings = Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE).select_related(
        "slot", "enrollment__student"
    )
    return [_booking(b) for b in bookings]


@api.put(
    "/exams/{exam_id}/students/{enrollment_id}/booking",
    response={200: BookingOut, 201: BookingOut, 404: Detail, 409: Detail},
    url_name="place",
    tags=["instructor"],
)
def place(request, exam_id: int, enrollment_id: int, choice: SlotChoice):
    """Put a roster student into a slot (book, or move an existing booking); capacity applies."""
    enrollment: Enrollment = taught_enrollment(request.auth, exam_id, enrollment_id)
    result = services.place(enrollment, choice.slot_id, actor=request.auth)
    return Status(201 if result.created else 200, _booking(result.booking))


@api.delete(
    "/exams/{exam_id}/students/{enrollment_id}/booking",
    response={204: None, 404: Detail},
    url_name="unplace",
    tags=["instructor"],
)
def unplace(request, exam_id: int, enrollment_id: int):
    enrollment = taught_enrollment(request.auth, exam_id, enrollment_id)
    services.cancel(enrollment, actor=request.auth, by_instructor=True)
    return Status(204, None)
