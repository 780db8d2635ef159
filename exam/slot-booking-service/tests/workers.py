"""Code that runs in separate processes (spawned, each with its own Django and connection) to
race against each other on a real SQLite file or PostgreSQL database."""

import os
import random
import time

BARRIER = None


def init(database_url: str, barrier=None) -> None:
    global BARRIER
    BARRIER = barrier
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.dummy.EmailBackend"
    import django

    django.setup()


def _start_together() -> None:
    """Every process of the pool waits here, so the racing requests really overlap."""
    if BARRIER is not None:
        BARRIER.wait(timeout=120)


def seed(*, slots: int, capacity: int, students: int) -> dict:
    from harness import factories

    exam = factories.make_exam(factories.make_instructor(f"t{time.time_ns()}@example.org"))
    return {
        "exam": exam.pk,
        "slots": [s.pk for s in factories.make_slots(exam, slots, capacity=capacity)],
        "students": [e.pk for e in factories.make_students(exam, students, prefix=f"e{exam.pk}s")],
    }


def _run(kind: str, enrollment_id: int, slot_id: int | None) -> str:
    """One action; returns 'booked', 'repeat', 'moved', 'cancelled', 'removed', 'gone' (the
    student was already off the roster), a refusal class name, or 'error: ...' for anything
    the service did not turn into a refusal."""
    from booking import services
    from booking.models import Enrollment

    enrollment = Enrollment.objects.select_related("exam", "student").filter(pk=enrollment_id)
    enrollment = enrollment.first()
    if enrollment is None:
        return "gone"
    actor = enrollment.student
    try:
        if kind == "remove":
            services.remove_student(enrollment, actor=enrollment.exam.instructors.first())
            return "removed"
        if kind == "book":
            result = services.book(enrollment, slot_id, actor=actor)
            return "booked" if result.created else "repeat"
        if kind == "move":
            services.move(enrollment, slot_id, actor=actor)
            return "moved"
        services.cancel(enrollment, actor=actor)
        return "cancelled"
    except services.BookingError as exc:
        return type(exc).__name__
    except Exception as exc:  # the point of these tests: there must be none
        return f"error: {type(exc).__name__}: {exc}"


def run(ops: list[tuple[str, int, int | None]]) -> list[str]:
    """Run the actions in order."""
    return [_run(*op) for op in ops]


def race(ops: list[tuple[str, int, int | None]]) -> list[str]:
    """Run the actions in order, after all processes have arrived."""
    _start_together()
    return run(ops)


def churn(enrollment_ids: list[int], slot_ids: list[int], seed_value: int) -> list[str]:
    """Each student books a random slot, moves twice, and cancels with probability 0.3."""
    rng = random.Random(seed_value)
    _start_together()
    outcomes = []
    for enrollment_id in enrollment_ids:
        outcomes.append(_run("book", enrollment_id, rng.choice(slot_ids)))
        for _ in range(2):
            outcomes.append(_run("move", enrollment_id, rng.choice(slot_ids)))
        if rng.random() < 0.3:
            outcomes.append(_run("cancel", enrollment_id, None))
    return outcomes


def state(exam_id: int) -> dict:
    """What the invariants are checked on: counters, bookings and students of one exam."""
    from django.db.models import Count, Q

    from booking.models import Booking, Enrollment, Slot

    slots = Slot.objects.filter(exam_id=exam_id).annotate(
        active=Count("bookings", filter=Q(bookings__status="active"))
    )
    per_student = Enrollment.objects.filter(exam_id=exam_id).annotate(
        active=Count("bookings", filter=Q(bookings__status="active"))
    )
    active = Booking.objects.filter(enrollment__exam_id=exam_id, status="active")
    return {
        "students": len(per_student),
        "slots": {s.pk: (s.booked, s.capacity, s.active) for s in slots},
        "students_with_two": sum(1 for e in per_student if e.active > 1),
        "active_by_student": {e.pk: e.active for e in per_student},
        "slot_by_student": dict(active.values_list("enrollment_id", "slot_id")),
    }


def constraint_violations() -> dict[str, str]:
    """Break each invariant with direct writes; return the name of what stopped each write."""
    from django.db import DatabaseError, IntegrityError, transaction
    from django.db.models import F

    from booking import services
    from booking.models import AuditEvent, Booking, Slot
    from harness import factories

    exam = factories.make_exam(factories.make_instructor(f"c{time.time_ns()}@example.org"))
    slot = factories.make_slots(exam, 1, capacity=1)[0]
    enrollment = factories.make_students(exam, 1, prefix=f"c{exam.pk}")[0]
    Booking.objects.create(enrollment=enrollment, slot=slot)
    AuditEvent.objects.create(action="test", exam_id=exam.pk)
    slots = Slot.objects.filter(pk=slot.pk)
    attempts = {
        "overbook": lambda: slots.update(booked=F("capacity") + 1),
        "negative counter": lambda: slots.update(booked=-1),
        "negative capacity": lambda: slots.update(capacity=-1, booked=0),
        "end before start": lambda: slots.update(ends_at=F("starts_at")),
        "no place": lambda: slots.update(room="", online_url=""),
        "second active booking": lambda: Booking.objects.create(enrollment=enrollment, slot=slot),
        "audit update": lambda: AuditEvent.objects.filter(exam_id=exam.pk).update(action="x"),
        "audit delete": lambda: AuditEvent.objects.filter(exam_id=exam.pk).delete(),
    }
    caught = {}
    for name, attempt in attempts.items():
        try:
            with transaction.atomic():
                attempt()
            caught[name] = "not refused"
        except IntegrityError as exc:
            caught[name] = services.constraint_name(exc) or str(exc)
        except DatabaseError as exc:
            caught[name] = str(exc).splitlines()[0]
    return caught


def hang_after_seat_taken(
    database_url: str, enrollment_id: int, slot_id: int, flag_path: str
) -> None:
    """Book, but stop inside the transaction after the seat counter was incremented and the
    booking row written (uncommitted), signal the parent, and wait to be killed."""
    init(database_url)
    from booking import services

    def stop_here(*args, **kwargs):
        with open(flag_path, "w") as flag:
            flag.write("in transaction")
        time.sleep(600)

    services._audit = stop_here
    _run("book", enrollment_id, slot_id)
