"""Seed a database for a server run: ``python -m harness.seed '<json spec>'`` prints JSON.

Spec keys: slots (count), capacity, students (count), auth ("token" or "session"),
instructor_password (optional; for teacher@example.org and any "instructors" listed),
instructors (more instructor addresses), superuser (instructors are superusers),
instructor_session (also return a signed-in session key of the instructor), instructor_email
(instead of teacher@example.org), exam (fields such as title), room, online_url, examiner
(a name), student_prefix, bookings ([student index, slot index] pairs, booked in order).
"""

import json
import os
import subprocess
import sys

from . import SERVICE_DIR


def seed_database(database_url: str, spec: dict, *, settings: str = "config.settings") -> dict:
    """Run ``seed`` in a subprocess against ``database_url``; return its JSON answer."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": settings,
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",  # stdout is the answer
    }
    result = subprocess.run(
        [sys.executable, "-m", "harness.seed", json.dumps(spec)],
        cwd=SERVICE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def seed(spec: dict) -> dict:
    from booking import services
    from booking.models import Examiner, Slot
    from harness import factories

    password = spec.get("instructor_password")
    email = spec.get("instructor_email", "teacher@example.org")
    instructor = factories.make_instructor(email, password=password)
    for email in spec.get("instructors", []):
        factories.make_instructor(email, password=password)
    if spec.get("superuser"):
        from booking.models import User

        User.objects.filter(is_staff=True).update(is_superuser=True)
    exam = factories.make_exam(instructor, **spec.get("exam", {}))
    slots = factories.make_slots(
        exam,
        spec.get("slots", 1),
        capacity=spec.get("capacity", 3),
        room=spec.get("room", "Room 1.01"),
    )
    place = {"online_url": spec.get("online_url", "")}
    if spec.get("examiner"):
        place["examiner"] = Examiner.objects.create(exam=exam, name=spec["examiner"])
    Slot.objects.filter(exam=exam).update(**place)
    enrollments = factories.make_students(
        exam, spec.get("students", 0), prefix=spec.get("student_prefix", "student")
    )
    for student, slot in spec.get("bookings", []):
        services.book(enrollments[student], slots[slot].pk, actor=enrollments[student].student)
    users = [e.student for e in enrollments]
    credentials = (
        factories.session_cookies(users)
        if spec.get("auth") == "session"
        else factories.api_tokens(users)
    )
    return {
        "instructor_session": (
            factories.session_cookies([instructor])[0] if spec.get("instructor_session") else None
        ),
        "exam": exam.pk,
        "slots": [s.pk for s in slots],
        "students": [
            {"enrollment": e.pk, "email": e.student.email, "credential": c}
            for e, c in zip(enrollments, credentials, strict=True)
        ],
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    json.dump(seed(json.loads(sys.argv[1])), sys.stdout)
