"""Business rules. Every change of seats goes through ``book``, ``move`` and ``cancel``.

The concurrency guard (README, "Concurrency design"):

1. One short transaction per action. On SQLite it starts with BEGIN IMMEDIATE (settings), which
   serialises writers up front; on PostgreSQL READ COMMITTED is enough because of step 2.
2. A seat is taken by a conditional UPDATE, ``booked = booked + 1 WHERE booked < capacity``; it
   succeeds for exactly ``capacity`` requests however many race (on PostgreSQL the row lock makes
   the others wait and re-check the WHERE). CHECK (booked <= capacity) backs it up.
3. The partial UNIQUE index "one active booking per student per exam" makes double submits
   harmless: the loser's whole transaction rolls back, seat included, and it returns the winner.
4. Moves lock both slot rows in id order before touching them (no deadlock between two moves),
   and a failed move rolls back completely: the student keeps the old seat.
5. Every change writes its audit event and its emails (outbox) in the same transaction; emails
   are sent after commit.
6. Removing a student from a roster locks their roster row, then cancels their booking through
   ``cancel`` (seat, audit row, email), then deletes the row. A booking racing with it cannot
   slip in between: on PostgreSQL its commit must check the booking's foreign key against the
   locked row, so it waits and then fails (rolled back, seat included); SQLite serialises
   writers anyway.
"""

import dataclasses
import datetime as dt

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import outbox, timeutil
from .ics import booking_ics
from .models import AuditEvent, Booking, Enrollment, Exam, Examiner, InviteCode, Slot, User
from .signin import new_invite_code

ONE_ACTIVE_BOOKING = "one_active_booking_per_student_per_exam"


class BookingError(Exception):
    """A refused action; ``status`` is the HTTP status the views and the API answer with."""

    status = 409

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(BookingError):
    status = 404


class Unavailable(BookingError):
    """Full, hidden, already started, or outside the booking window."""


class AlreadyBooked(BookingError):
    pass


class Changed(BookingError):
    """The booking was changed by a concurrent request; reloading shows the current state."""


@dataclasses.dataclass(frozen=True)
class Result:
    booking: Booking
    created: bool  # False: the request repeated a booking that already existed (idempotent)


# --- helpers -------------------------------------------------------------------------------


def constraint_name(exc: IntegrityError) -> str | None:
    """Name of the constraint an IntegrityError reports, on PostgreSQL and SQLite."""
    diag = getattr(exc.__cause__, "diag", None)
    if diag is not None:
        return diag.constraint_name
    message = str(exc)
    if message.startswith("CHECK constraint failed: "):
        return message.removeprefix("CHECK constraint failed: ")
    if message == "UNIQUE constraint failed: booking_booking.enrollment_id":
        return ONE_ACTIVE_BOOKING  # SQLite names the columns, not the partial index
    return None


def _is_gone(enrollment: Enrollment) -> bool:
    return not Enrollment.objects.filter(pk=enrollment.pk).exists()


def _audit(action: str, *, actor: User | None, exam_id: int, **fields) -> None:
    AuditEvent.objects.create(
        action=action,
        actor_id=actor.pk if actor else None,
        actor_email=actor.email if actor else "",
        exam_id=exam_id,
        **fields,
    )


def active_booking(enrollment: Enrollment) -> Booking | None:
    return (
        Booking.objects.select_related(
            "slot__exam", "slot__examiner", "enrollment__exam", "enrollment__student"
        )
        .filter(enrollment=enrollment, status=Booking.ACTIVE)
        .first()
    )


def _check_window(exam: Exam, now: dt.datetime) -> None:
    if now < exam.booking_opens_at:
        when = timeutil.describe(exam.booking_opens_at, exam.tz)
        raise Unavailable(f"Booking opens on {when}.")
    if now >= exam.booking_closes_at:
        when = timeutil.describe(exam.booking_closes_at, exam.tz)
        raise Unavailable(f"Booking closed on {when}.")


def _check_cancellable(booking: Booking, now: dt.datetime) -> None:
    exam = booking.enrollment.exam
    if now >= exam.cancellation_deadline:
        when = timeutil.describe(exam.cancellation_deadline, exam.tz)
        raise Unavailable(f"The cancellation deadline passed on {when}; ask your instructor.")
    if booking.slot.starts_at <= now:
        raise Unavailable("Your slot has already started.")


def _take_seat(enrollment: Enrollment, slot_id: int, *, by_instructor: bool, now) -> Slot:
    """The conditional UPDATE of step 2; raise a precise refusal when no row was updated."""
    slots = Slot.objects.filter(pk=slot_id, exam_id=enrollment.exam_id)
    if not by_instructor:
        slots = slots.filter(is_published=True, starts_at__gt=now)
    if slots.filter(booked__lt=F("capacity")).update(booked=F("booked") + 1) == 1:
        return Slot.objects.select_related("exam", "examiner").get(pk=slot_id)
    slot = Slot.objects.filter(pk=slot_id, exam_id=enrollment.exam_id).first()
    if slot is None or not (slot.is_published or by_instructor):
        raise NotFound(f"There is no slot {slot_id} in this exam.")
    if slot.starts_at <= now and not by_instructor:
        raise Unavailable("This slot has already started.")
    raise Unavailable("This slot is full. Pick another one.")


def _notify(booking: Booking, subject: str, lead: str) -> None:
    exam, slot = booking.slot.exam, booking.slot
    enrollment = booking.enrollment
    when = timeutil.describe(slot.starts_at, exam.tz)
    until = f"{timeutil.local(slot.ends_at, exam.tz):%H:%M}"
    examiner = slot.examiner.name if slot.examiner else "to be announced"
    body = (
        f"Hello {enrollment.name or enrollment.student.email},\n\n{lead}\n\n"
        f"Exam: {exam.title}\nWhen: {when} to {until} ({exam.time_zone})\n"
        f"Where: {slot.room or slot.online_url}\nExaminer: {examiner}\n\n"
        "The attached calendar file updates your calendar.\n"
    )
    outbox.queue(
        key=f"booking-{booking.pk}-seq-{booking.sequence}",
        exam_id=exam.pk,
        to=enrollment.student.email,
        subject=f"{subject}: {exam.title}",
        body=body,
        ics=booking_ics(booking),
    )


# --- booking, moving, cancelling ---------------------------------------------------------------


def book(
    enrollment: Enrollment,
    slot_id: int,
    *,
    actor: User,
    by_instructor: bool = False,
    now: dt.datetime | None = None,
) -> Result:
    """Give the student a seat in ``slot_id``; repeating the same request returns the booking.

    Instructors (``by_instructor``) may book outside the window and in hidden or past slots,
    never beyond capacity.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            existing = active_booking(enrollment)
            if existing is None:
                if not by_instructor:
                    _check_window(enrollment.exam, now)
                slot = _take_seat(enrollment, slot_id, by_instructor=by_instructor, now=now)
                booking = Booking.objects.create(
                    enrollment=enrollment, slot=slot, created_at=now, updated_at=now
                )
                _audit(
                    "booking.create",
                    actor=actor,
                    exam_id=enrollment.exam_id,
                    slot_id=slot.pk,
                    booking_id=booking.pk,
                    student_email=enrollment.student.email,
                    details={"by_instructor": by_instructor},
                )
                _notify(booking, "Exam slot booked", "Your exam slot is booked.")
                return Result(booking, created=True)
    except IntegrityError as exc:
        if constraint_name(exc) != ONE_ACTIVE_BOOKING:
            if _is_gone(enrollment):  # removed from the roster while this request ran
                raise NotFound("You are not on this exam's roster.") from exc
            raise
        existing = active_booking(enrollment)  # a concurrent request of the same student won
        if existing is None:
            raise Changed("Your booking changed while this request ran; reload.") from exc
    if existing.slot_id == slot_id:
        return Result(existing, created=False)
    raise AlreadyBooked(
        "You already hold a slot in this exam; use 'Move here' to change it."
        if not by_instructor
        else "This student already holds a slot in this exam; move them instead."
    )


def move(
    enrollment: Enrollment,
    slot_id: int,
    *,
    actor: User,
    by_instructor: bool = False,
    now: dt.datetime | None = None,
) -> Result:
    """Move the student's booking to ``slot_id`` atomically: if it fails, the old seat is kept."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = active_booking(enrollment)
        if booking is None:
            raise NotFound("There is no booking to move; book a slot instead.")
        if booking.slot_id == slot_id:
            return Result(booking, created=False)
        if not by_instructor:
            _check_window(enrollment.exam, now)
            _check_cancellable(booking, now)
        old_slot_id = booking.slot_id
        # PostgreSQL: lock both slot rows in one global order (by id) before changing either,
        # so two moves in opposite directions cannot deadlock. (SQLite: BEGIN IMMEDIATE
        # already serialises writers; Django omits FOR UPDATE there.)
        list(
            Slot.objects.select_for_update()
            .filter(pk__in=[old_slot_id, slot_id])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        new_slot = _take_seat(enrollment, slot_id, by_instructor=by_instructor, now=now)
        moved = Booking.objects.filter(
            pk=booking.pk, status=Booking.ACTIVE, slot_id=old_slot_id
        ).update(slot=new_slot, sequence=F("sequence") + 1, updated_at=now)
        if moved != 1:
            raise Changed("Your booking changed while this request ran; reload.")
        Slot.objects.filter(pk=old_slot_id).update(booked=F("booked") - 1)
        booking.refresh_from_db()
        _audit(
            "booking.move",
            actor=actor,
            exam_id=enrollment.exam_id,
            slot_id=slot_id,
            booking_id=booking.pk,
            student_email=enrollment.student.email,
            details={"from_slot": old_slot_id, "by_instructor": by_instructor},
        )
        _notify(booking, "Exam slot changed", "Your exam slot has changed to this one.")
        return Result(booking, created=False)


def cancel(
    enrollment: Enrollment,
    *,
    actor: User,
    by_instructor: bool = False,
    now: dt.datetime | None = None,
) -> Booking | None:
    """Cancel the student's booking; None if there was none (cancelling twice is harmless)."""
    now = now or timezone.now()
    with transaction.atomic():
        booking = active_booking(enrollment)
        if booking is None:
            return None
        if not by_instructor:
            _check_cancellable(booking, now)
        # Same lock order as move: slot row first, then the booking row.
        list(Slot.objects.select_for_update().filter(pk=booking.slot_id).values_list("pk"))
        cancelled = Booking.objects.filter(
            pk=booking.pk, status=Booking.ACTIVE, slot_id=booking.slot_id
        ).update(status=Booking.CANCELLED, sequence=F("sequence") + 1, updated_at=now)
        if cancelled != 1:
            raise Changed("Your booking changed while this request ran; reload.")
        Slot.objects.filter(pk=booking.slot_id).update(booked=F("booked") - 1)
        booking.refresh_from_db()
        _audit(
            "booking.cancel",
            actor=actor,
            exam_id=enrollment.exam_id,
            slot_id=booking.slot_id,
            booking_id=booking.pk,
            student_email=enrollment.student.email,
            details={"by_instructor": by_instructor},
        )
        _notify(booking, "Exam slot cancelled", "Your exam slot has been cancelled.")
        return booking


def place(enrollment: Enrollment, slot_id: int, *, actor: User) -> Result:
    """Instructor action: put a student into a slot (a booking, or a move if they have one)."""
    try:
        return book(enrollment, slot_id, actor=actor, by_instructor=True)
    except AlreadyBooked:
        return move(enrollment, slot_id, actor=actor, by_instructor=True)


# --- exams, slots, roster ----------------------------------------------------------------------


def create_exam(*, actor: User, **fields) -> Exam:
    with transaction.atomic():
        exam = Exam.objects.create(**fields)
        exam.instructors.add(actor)
        _audit("exam.create", actor=actor, exam_id=exam.pk, details={"title": exam.title})
        return exam


def update_exam(exam: Exam, *, actor: User, **fields) -> None:
    with transaction.atomic():
        before = {name: str(getattr(exam, name)) for name in fields}
        Exam.objects.filter(pk=exam.pk).update(**fields)
        exam.refresh_from_db()
        after = {name: str(getattr(exam, name)) for name in fields}
        _audit(
            "exam.update", actor=actor, exam_id=exam.pk, details={"before": before, "after": after}
        )


def _examiner(exam: Exam, name: str) -> Examiner | None:
    """This exam's examiner of that name (examiners of other exams are never reused)."""
    name = name.strip()
    return Examiner.objects.get_or_create(exam=exam, name=name)[0] if name else None


def create_slots(
    exam: Exam,
    times: list[tuple[dt.datetime, dt.datetime]],
    *,
    actor: User,
    capacity: int,
    room: str,
    online_url: str,
    examiner_name: str,
    publish: bool,
) -> list[Slot]:
    with transaction.atomic():
        examiner = _examiner(exam, examiner_name)
        slots = Slot.objects.bulk_create(
            Slot(
                exam=exam,
                starts_at=start,
                ends_at=end,
                capacity=capacity,
                room=room,
                online_url=online_url,
                examiner=examiner,
                is_published=publish,
            )
            for start, end in times
        )
        _audit(
            "slot.create",
            actor=actor,
            exam_id=exam.pk,
            details={"count": len(slots), "capacity": capacity, "published": publish},
        )
        return slots


def update_slot(slot: Slot, *, actor: User, capacity: int, examiner_name: str, **place) -> int:
    """Change a slot; booked students get an updated calendar entry. Returns how many."""
    with transaction.atomic():
        if not Slot.objects.filter(pk=slot.pk, booked__lte=capacity).update(capacity=capacity):
            booked = Slot.objects.get(pk=slot.pk).booked
            raise Unavailable(f"{booked} seats are booked; the capacity cannot be lower.")
        examiner = _examiner(slot.exam, examiner_name)
        Slot.objects.filter(pk=slot.pk).update(examiner=examiner, **place)
        changed = {k for k, v in place.items() if getattr(slot, k) != v}
        _audit(
            "slot.update",
            actor=actor,
            exam_id=slot.exam_id,
            slot_id=slot.pk,
            details={"capacity": capacity, "changed": sorted(changed)},
        )
        bookings = Booking.objects.filter(slot=slot, status=Booking.ACTIVE)
        if not changed:
            return 0
        bookings.update(sequence=F("sequence") + 1)
        notified = 0
        for booking in bookings.select_related(
            "slot__exam", "slot__examiner", "enrollment__student", "enrollment__exam"
        ):
            _notify(
                booking, "Exam slot changed", "The time or place of your exam slot has changed."
            )
            notified += 1
        return notified


def set_published(exam: Exam, slot_ids: list[int], published: bool, *, actor: User) -> int:
    with transaction.atomic():
        count = Slot.objects.filter(exam=exam, pk__in=slot_ids).update(is_published=published)
        _audit(
            "slot.publish" if published else "slot.hide",
            actor=actor,
            exam_id=exam.pk,
            details={"slots": sorted(slot_ids), "count": count},
        )
        return count


def delete_slot(slot: Slot, *, actor: User) -> None:
    """Only a slot that was never booked can be deleted (history stays); hide it otherwise."""
    with transaction.atomic():
        if slot.bookings.exists():
            raise Unavailable("This slot has bookings (or had them); hide it instead of deleting.")
        Slot.objects.filter(pk=slot.pk).delete()
        _audit(
            "slot.delete",
            actor=actor,
            exam_id=slot.exam_id,
            slot_id=slot.pk,
            details={"starts_at": slot.starts_at.isoformat()},
        )


@dataclasses.dataclass
class RosterOutcome:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list = dataclasses.field(default_factory=list)  # roster.Rejected rows


def import_roster(exam: Exam, rows: list, *, actor: User, rejected: list) -> RosterOutcome:
    """Add or update this exam's roster rows (``roster.RosterRow``); instructors' addresses are
    refused. Names and groups live on the roster row, so a student on several rosters keeps
    the name each exam gave them: an import changes nothing outside its own exam."""
    outcome = RosterOutcome(rejected=list(rejected))
    with transaction.atomic():
        for row in rows:
            user = User.objects.filter(email=row.email).first()
            if user is not None and user.is_staff:
                outcome.rejected.append(row.reject("this address belongs to an instructor"))
                continue
            if user is None:
                user = User.objects.create_user(row.email, name=row.name)
            enrollment, created = Enrollment.objects.get_or_create(
                exam=exam, student=user, defaults={"name": row.name, "group": row.group}
            )
            if created:
                outcome.added += 1
            elif (enrollment.name, enrollment.group) != (row.name, row.group):
                Enrollment.objects.filter(pk=enrollment.pk).update(name=row.name, group=row.group)
                outcome.updated += 1
            else:
                outcome.unchanged += 1
        _audit(
            "roster.import",
            actor=actor,
            exam_id=exam.pk,
            details={
                "added": outcome.added,
                "updated": outcome.updated,
                "unchanged": outcome.unchanged,
                "rejected": len(outcome.rejected),
            },
        )
    return outcome


def issue_invites(exam: Exam, *, actor: User, valid_for=dt.timedelta(days=30)):
    """New one-time invite codes for every student on this exam's roster; their older unused
    codes for this exam die, codes other exams made for the same students are untouched.

    Returns (enrollment, code) pairs; the codes exist only in this return value.
    """
    now = timezone.now()
    enrollments = list(exam.enrollments.select_related("student"))
    with transaction.atomic():
        InviteCode.objects.filter(enrollment__exam=exam, used_at__isnull=True).delete()
        pairs = [(e, new_invite_code(e, now + valid_for)) for e in enrollments]
        _audit("invites.issue", actor=actor, exam_id=exam.pk, details={"count": len(pairs)})
    return pairs


def remind_unbooked(exam: Exam, *, actor: User, login_url: str) -> int:
    """Email every roster student without an active booking (at most once a day each)."""
    today = timezone.now().date().isoformat()
    with transaction.atomic():
        unbooked = exam.enrollments.exclude(bookings__status=Booking.ACTIVE).select_related(
            "student"
        )
        count = 0
        for enrollment in unbooked:
            student = enrollment.student
            outbox.queue(
                key=f"remind-{enrollment.pk}-{today}",
                exam_id=exam.pk,
                to=student.email,
                subject=f"Please book your exam slot: {exam.title}",
                body=(
                    f"Hello {enrollment.name or student.email},\n\nYou have not booked a slot for "
                    f"{exam.title} yet. Booking closes on "
                    f"{timeutil.describe(exam.booking_closes_at, exam.tz)}.\n\n"
                    f"Sign in with your email address at {login_url}\n"
                ),
            )
            count += 1
        _audit("students.remind", actor=actor, exam_id=exam.pk, details={"count": count})
        return count


def remove_student(enrollment: Enrollment, *, actor: User) -> Booking | None:
    """Take a student off an exam's roster: their booking is cancelled the normal way (seat
    freed, audit row, cancellation email), then the roster row and its invite codes go.
    Returns the cancelled booking, if there was one."""
    try:
        with transaction.atomic():
            if not Enrollment.objects.select_for_update().filter(pk=enrollment.pk).exists():
                raise NotFound("This student is not on the roster (any more).")
            booking = cancel(enrollment, actor=actor, by_instructor=True)
            _audit(
                "roster.remove",
                actor=actor,
                exam_id=enrollment.exam_id,
                booking_id=booking.pk if booking else None,
                student_email=enrollment.student.email,
                details={"name": enrollment.name, "group": enrollment.group},
            )
            Enrollment.objects.get(pk=enrollment.pk).delete()
    except IntegrityError as exc:  # a last line: the locked row makes this unreachable
        raise Changed("The student's booking changed meanwhile; try again.") from exc
    return booking


@dataclasses.dataclass(frozen=True)
class Drift:
    slot_id: int
    counter: int
    bookings: int


def integrity_report() -> list[Drift]:
    """Slots whose seat counter differs from their number of active bookings (should be none)."""
    slots = Slot.objects.annotate(
        active=Count("bookings", filter=Q(bookings__status=Booking.ACTIVE))
    ).exclude(booked=F("active"))
    return [Drift(s.pk, s.booked, s.active) for s in slots]
