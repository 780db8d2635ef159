"""Instructor pages. Every exam, slot and roster row is looked up through ``access`` (scoped to
the exams the instructor teaches); every change goes through ``services``. A form sent with
errors is answered 400; actions that cannot be undone from the page (new invite codes, hiding
every slot, removing a student) ask for confirmation first."""

import csv
import datetime as dt
import io

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import BadRequest
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from .. import exports, roster, services
from ..access import instructor_required, taught_enrollment, taught_exam, taught_exams, taught_slot
from ..forms import ExamForm, PlaceForm, RosterForm, SeriesForm, SlotForm
from ..ics import examiner_feed
from ..models import AuditEvent, Booking, Examiner, OutboxEmail
from ..validation import parse_id
from .student import seat


def _status(request, *forms) -> int:
    return 400 if request.method == "POST" and any(f.errors for f in forms) else 200


def _confirmed(request) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _download(content: str, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@instructor_required
def dashboard(request):
    exams = taught_exams(request.user).annotate(
        students=Count("enrollments", distinct=True),
        booked=Count("slots__bookings", filter=Q(slots__bookings__status="active"), distinct=True),
    )
    return render(request, "booking/staff_dashboard.html", {"exams": exams})


@instructor_required
def exam_new(request):
    form = ExamForm.for_exam(None, settings.TIME_ZONE, request.POST or None)
    if request.method == "POST" and form.is_valid():
        exam = services.create_exam(actor=request.user, **form.cleaned_data)
        messages.success(request, "Exam created. Next: import the roster and add slots.")
        return redirect("staff-exam", exam.pk)
    return render(
        request, "booking/staff_exam_form.html", {"form": form}, status=_status(request, form)
    )


@instructor_required
def exam_edit(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    form = ExamForm.for_exam(exam, settings.TIME_ZONE, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.update_exam(exam, actor=request.user, **form.cleaned_data)
        messages.success(request, "Exam settings saved.")
        return redirect("staff-exam", exam.pk)
    context = {"form": form, "exam": exam}
    return render(request, "booking/staff_exam_form.html", context, status=_status(request, form))


@instructor_required
def exam_detail(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    slots = exam.slots.select_related("examiner")
    students = exam.enrollments.count()
    booked = Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE).count()
    seats = slots.aggregate(total=Sum("capacity"))["total"] or 0
    published_seats = slots.filter(is_published=True).aggregate(total=Sum("capacity"))["total"] or 0
    context = {
        "exam": exam,
        "slots": slots,
        "students": students,
        "booked": booked,
        "seats": seats,
        "published_seats": published_seats,
        "unbooked": students - booked,
        "examiners": Examiner.objects.filter(exam=exam, slots__isnull=False).distinct(),
        "outbox_problems": _outbox_problems(exam),
    }
    return render(request, "booking/staff_exam.html", context)


def _outbox_problems(exam) -> int:
    """This exam's emails that failed, or are still unsent 10 minutes after their change."""
    stuck = timezone.now() - dt.timedelta(minutes=10)
    return OutboxEmail.objects.filter(
        Q(status=OutboxEmail.FAILED) | Q(status=OutboxEmail.PENDING, created_at__lt=stuck),
        exam_id=exam.pk,
    ).count()


@instructor_required
def seats(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    cells = [(slot.pk, *seat(slot, staff=True)) for slot in exam.slots.all()]
    return render(request, "booking/partials/seats.html", {"cells": cells})


@instructor_required
def slots_new(request, exam_id):
    """A series of slots; "Preview" (also sent by htmx as the form changes) lists the slots
    the series would create, in the exam's time zone, without creating anything."""
    exam = taught_exam(request.user, exam_id)
    form = SeriesForm(request.POST or None, exam=exam)
    if request.method == "POST" and request.POST.get("action") == "preview":
        times = form.cleaned_data["times"] if form.is_valid() else []
        context = {"form": form, "exam": exam, "preview": times, "previewed": True}
        if request.htmx:  # just the preview, swapped into the page
            return render(request, "booking/partials/series_preview.html", context)
        status = _status(request, form)
        return render(request, "booking/staff_slots_new.html", context, status=status)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        slots = services.create_slots(
            exam,
            data["times"],
            actor=request.user,
            capacity=data["capacity"],
            room=data["room"],
            online_url=data["online_url"],
            examiner_name=data["examiner"],
            publish=data["publish"],
        )
        state = "visible to students" if data["publish"] else "hidden until you publish them"
        messages.success(request, f"{len(slots)} slots created, {state}.")
        return redirect("staff-exam", exam.pk)
    context = {"form": form, "exam": exam}
    return render(request, "booking/staff_slots_new.html", context, status=_status(request, form))


@instructor_required
@require_POST
def slots_publish(request, exam_id):
    """Publish or hide the ticked slots, or all slots of the exam (scope 'all'; hiding all
    asks for confirmation first)."""
    exam = taught_exam(request.user, exam_id)
    publish = request.POST.get("publish") == "1"
    if request.POST.get("scope") == "all":
        ids = list(exam.slots.values_list("pk", flat=True))
        if not publish and not _confirmed(request):
            context = {
                "exam": exam,
                "slots": len(ids),
                "booked": Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE).count(),
            }
            return render(request, "booking/staff_hide_all.html", context)
    else:
        ids = [parse_id(v) for v in request.POST.getlist("slot")]
        if None in ids:
            raise BadRequest("Slot ids are whole numbers.")
    if not ids:
        messages.error(request, "Tick at least one slot first.")
        return redirect("staff-exam", exam.pk)
    count = services.set_published(exam, ids, publish, actor=request.user)
    messages.success(request, f"{count} slots {'published' if publish else 'hidden'}.")
    return redirect("staff-exam", exam.pk)


@instructor_required
def slot_detail(request, slot_id):
    slot = taught_slot(request.user, slot_id)
    form = SlotForm.for_slot(slot, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            notified = services.update_slot(
                slot,
                actor=request.user,
                capacity=data["capacity"],
                examiner_name=data["examiner"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                room=data["room"],
                online_url=data["online_url"],
            )
        except services.BookingError as exc:
            form.add_error("capacity", exc.message)
        else:
            extra = f" {notified} booked students are notified." if notified else ""
            messages.success(request, "Slot saved." + extra)
            return redirect("staff-slot", slot.pk)
    return _slot_page(request, slot, form=form, status=_status(request, form))


def _slot_page(request, slot, *, form=None, place_form=None, status=200):
    bookings = slot.bookings.filter(status=Booking.ACTIVE).select_related("enrollment__student")
    context = {
        "slot": slot,
        "exam": slot.exam,
        "form": form or SlotForm.for_slot(slot),
        "bookings": bookings,
        "place_form": place_form or PlaceForm(exam=slot.exam),
    }
    return render(request, "booking/staff_slot.html", context, status=status)


@instructor_required
@require_POST
def slot_delete(request, slot_id):
    slot = taught_slot(request.user, slot_id)
    try:
        services.delete_slot(slot, actor=request.user)
    except services.BookingError as exc:
        messages.error(request, exc.message)
        return redirect("staff-slot", slot.pk)
    messages.success(request, "Slot deleted.")
    return redirect("staff-exam", slot.exam_id)


@instructor_required
@require_POST
def slot_place(request, slot_id):
    """Book a student into this slot, or move them here (capacity still applies)."""
    slot = taught_slot(request.user, slot_id)
    form = PlaceForm(request.POST, exam=slot.exam)
    if not form.is_valid():
        messages.error(request, "Choose a student from this exam's roster.")
        return _slot_page(request, slot, place_form=form, status=400)
    enrollment = form.cleaned_data["enrollment"]
    try:
        services.place(enrollment, slot.pk, actor=request.user)
    except services.BookingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{enrollment.display_name} is now in this slot.")
    return redirect("staff-slot", slot.pk)


@instructor_required
@require_POST
def student_cancel(request, exam_id, enrollment_id):
    enrollment = taught_enrollment(request.user, exam_id, enrollment_id)
    booking = services.cancel(enrollment, actor=request.user, by_instructor=True)
    if booking is None:
        messages.info(request, f"{enrollment.display_name} had no booking.")
        return redirect("staff-exam", exam_id)
    messages.success(request, f"Booking of {enrollment.display_name} cancelled.")
    return redirect("staff-slot", booking.slot_id)


@instructor_required
def student_remove(request, exam_id, enrollment_id):
    """GET asks for confirmation; POST takes the student off this exam's roster (a booking is
    cancelled first, with the usual email and audit row)."""
    enrollment = taught_enrollment(request.user, exam_id, enrollment_id)
    if not _confirmed(request):
        booking = services.active_booking(enrollment)
        context = {"exam": enrollment.exam, "enrollment": enrollment, "booking": booking}
        return render(request, "booking/staff_student_remove.html", context)
    try:
        services.remove_student(enrollment, actor=request.user)
    except services.BookingError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{enrollment.display_name} is no longer on the roster.")
    return redirect("staff-roster", exam_id)


@instructor_required
def roster_page(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    form = RosterForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            rows, rejected = roster.parse(upload.read(settings.ROSTER_MAX_BYTES + 1))
        except roster.RosterFileError as exc:
            form.add_error("file", f"Nothing was imported. {exc}")
        else:
            outcome = services.import_roster(exam, rows, actor=request.user, rejected=rejected)
            report = {
                "added": outcome.added,
                "updated": outcome.updated,
                "unchanged": outcome.unchanged,
                "rejected": [[r.line, r.text, r.reason] for r in outcome.rejected],
            }
            if outcome.added + outcome.updated + outcome.unchanged:
                request.session["roster_report"] = report
                return redirect("staff-roster", exam.pk)
            form.add_error("file", "Nothing was imported: every row was rejected (see below).")
            request.session["roster_report"] = report
    enrollments = exam.enrollments.select_related("student")
    active = {
        b.enrollment_id: b
        for b in Booking.objects.filter(slot__exam=exam, status=Booking.ACTIVE).select_related(
            "slot"
        )
    }
    context = {
        "exam": exam,
        "form": form,
        "rows": [(e, active.get(e.pk)) for e in enrollments],
        "report": request.session.pop("roster_report", None),
    }
    return render(request, "booking/staff_roster.html", context, status=400 if form.errors else 200)


@instructor_required
def unbooked(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    students = exam.enrollments.exclude(bookings__status=Booking.ACTIVE).select_related("student")
    return render(request, "booking/staff_unbooked.html", {"exam": exam, "students": students})


@instructor_required
@require_POST
def remind(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    login_url = settings.SITE_URL + reverse("login")
    count = services.remind_unbooked(exam, actor=request.user, login_url=login_url)
    messages.success(request, f"Reminder queued for {count} students (at most one per day each).")
    return redirect("staff-unbooked", exam.pk)


@instructor_required
def invites(request, exam_id):
    """New invite codes for this exam's roster, after a confirmation (they replace the unused
    codes made for this exam before; other exams' codes are untouched)."""
    exam = taught_exam(request.user, exam_id)
    if not _confirmed(request):
        unused = exam.enrollments.filter(
            invite_codes__used_at__isnull=True, invite_codes__expires_at__gt=timezone.now()
        )
        context = {
            "exam": exam,
            "students": exam.enrollments.count(),
            "with_codes": unused.distinct().count(),
        }
        return render(request, "booking/staff_invites.html", context)
    pairs = services.issue_invites(exam, actor=request.user)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["name", "email", "group", "invite_code"])
    for enrollment, code in pairs:
        writer.writerow(
            exports.safe_cell(v)
            for v in (enrollment.name, enrollment.student.email, enrollment.group, code)
        )
    return _download("\ufeff" + out.getvalue(), f"invite-codes-exam-{exam.pk}.csv", "text/csv")


@instructor_required
def export_csv(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    return _download(
        exports.schedule_csv(exam), f"exam-{exam.pk}-schedule.csv", "text/csv; charset=utf-8"
    )


@instructor_required
def audit(request, exam_id):
    exam = taught_exam(request.user, exam_id)
    events = AuditEvent.objects.filter(exam_id=exam.pk)[:500]
    return render(request, "booking/staff_audit.html", {"exam": exam, "events": events})


def examiner_calendar(request, token):
    """Subscribable iCal feed of one exam's examiner; the unguessable token in the URL is the
    credential."""
    examiner = get_object_or_404(Examiner, feed_token=token)
    if not examiner.slots.exists():
        raise Http404("No slots for this examiner.")
    return HttpResponse(examiner_feed(examiner), content_type="text/calendar; charset=utf-8")
