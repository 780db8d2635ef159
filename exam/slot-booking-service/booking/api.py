"""JSON API (OpenAPI schema at /api/openapi.json, browsable docs at /api/docs).

Authentication: ``Authorization: Bearer <token>`` (made on the "API token" page, /account/), or
the browser session plus the CSRF header. Refusals are JSON ``{"detail": "..."}``: 404 (not yours,
or unknown), 409 (full, closed, already booked), 400 or 422 (malformed input: ids are integers
1 .. 2**63-1, booleans are not ids), 415 (a body that is not JSON), 429 (too many wrong tokens).
"""

import datetime as dt

from django.http import Http404, JsonResponse
from ninja import Field, NinjaAPI, Path, Schema, Status
from ninja.security import HttpBearer, django_auth
from pydantic import StrictInt

from . import services, signin, throttle
from .access import (
    enrollment_for,
    student_enrollments,
    taught_enrollment,
    taught_exam,
    taught_exams,
)
from .models import Booking, Enrollment, Exam, Slot
from .validation import MAX_ID

API_PREFIX = "/api/"
Id = Path[int, {"ge": 1, "le": MAX_ID}]


class JsonBodyMiddleware:
    """Refuse an API request whose body is not JSON (415) before anything reads the body.

    Otherwise a multipart body is parsed for the CSRF check of a session request, and the
    API's JSON parser then cannot read the consumed stream (a 500).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            request.path.startswith(API_PREFIX)
            and request.method in ("POST", "PUT", "PATCH")
            and request.content_type not in ("", "application/json")
        ):
            return JsonResponse(
                {"detail": "Send the request body as JSON (Content-Type: application/json)."},
                status=415,
            )
        return self.get_response(request)


class BearerToken(HttpBearer):
    def authenticate(self, request, token):
        user = signin.api_user(request, token)
        if user is not None:
            request.auth_by_token = True
        return user


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
    slot_id: StrictInt = Field(ge=1, le=MAX_ID)


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


@api.exception_handler(throttle.Refused)
def throttled(request, exc: throttle.Refused):
    return api.create_response(request, {"detail": exc.message}, status=exc.status)


@api.exception_handler(Http404)
def not_found(request, exc):
    return api.create_response(request, {"detail": "Not found, or not yours."}, status=404)


# --- everyone -------------------------------------------------------------------------------


@api.get("/exams", response=list[ExamOut], url_name="exams", tags=["exams"])
def list_exams(request):
    """Exams the caller is enrolled in (role student) or teaches (role instructor)."""
    enrolled = Exam.objects.filter(enrollments__in=student_enrollments(request))
    return [_exam(e, "student") for e in enrolled] + [
        _exam(e, "instructor") for e in taught_exams(request.auth)
    ]


@api.get("/exams/{exam_id}/slots", response=list[SlotOut], url_name="slots", tags=["exams"])
def list_slots(request, exam_id: Id):
    """Slots with live seat counts: published ones for students, all for instructors."""
    exams = taught_exams(request.auth)
    if exams.filter(pk=exam_id).exists():
        slots = Slot.objects.filter(exam_id=exam_id)
    else:
        enrollment = enrollment_for(request, exam_id)
        slots = enrollment.exam.slots.filter(is_published=True)
    return [_slot(s) for s in slots.select_related("examiner")]


# --- students: their own booking --------------------------------------------------------------


@api.get(
    "/exams/{exam_id}/booking",
    response={200: BookingOut, 404: Detail},
    url_name="my-booking",
    tags=["student"],
)
def my_booking(request, exam_id: Id):
    booking = services.active_booking(enrollment_for(request, exam_id))
    if booking is None:
        raise services.NotFound("You have no booking in this exam.")
    return _booking(booking)


@api.post(
    "/exams/{exam_id}/booking",
    response={201: BookingOut, 200: BookingOut, 404: Detail, 409: Detail},
    url_name="book",
    tags=["student"],
)
def book(request, exam_id: Id, choice: SlotChoice):
    """Book a slot: 201 when booked; 200 when this exact booking already existed (a repeated
    request); 409 when the slot is full or closed, or you hold another slot (use PUT to move)."""
    enrollment = enrollment_for(request, exam_id)
    result = services.book(enrollment, choice.slot_id, actor=request.auth)
    return Status(201 if result.created else 200, _booking(result.booking))


@api.put(
    "/exams/{exam_id}/booking",
    response={200: BookingOut, 404: Detail, 409: Detail},
    url_name="move",
    tags=["student"],
)
def move(request, exam_id: Id, choice: SlotChoice):
    """Move your booking; if the new slot is refused you keep the old one."""
    enrollment = enrollment_for(request, exam_id)
    return _booking(services.move(enrollment, choice.slot_id, actor=request.auth).booking)


@api.delete(
    "/exams/{exam_id}/booking",
    response={204: None, 404: Detail, 409: Detail},
    url_name="cancel",
    tags=["student"],
)
def cancel(request, exam_id: Id):
    """Cancel your booking (204 also when there was none)."""
    services.cancel(enrollment_for(request, exam_id), actor=request.auth)
    return Status(204, None)


# --- instructors ------------------------------------------------------------------------------


@api.get(
    "/exams/{exam_id}/bookings",
    response={200: list[BookingOut], 404: Detail},
    url_name="bookings",
    tags=["instructor"],
)
def exam_bookings(request, exam_id: Id):
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
def place(request, exam_id: Id, enrollment_id: Id, choice: SlotChoice):
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
def unplace(request, exam_id: Id, enrollment_id: Id):
    enrollment = taught_enrollment(request.auth, exam_id, enrollment_id)
    services.cancel(enrollment, actor=request.auth, by_instructor=True)
    return Status(204, None)
