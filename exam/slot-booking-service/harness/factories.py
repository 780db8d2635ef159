"""Building exams, slots and students quickly (needs a configured Django)."""

import datetime as dt
import secrets

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from booking.hashing import digest
from booking.models import ApiToken, Enrollment, Exam, Slot, User


def make_instructor(email: str = "teacher@example.org", password: str | None = None) -> User:
    return User.objects.create_user(email, password, name="Teacher", is_staff=True)


def make_exam(
    instructor: User | None = None,
    *,
    title="Oral exam",
    time_zone="Europe/Berlin",
    now=None,
    **fields,
) -> Exam:
    now = now or timezone.now()
    values = {
        "booking_opens_at": now - dt.timedelta(days=1),
        "booking_closes_at": now + dt.timedelta(days=7),
        "cancellation_deadline": now + dt.timedelta(days=6),
        **fields,
    }
    exam = Exam.objects.create(title=title, time_zone=time_zone, **values)
    if instructor is not None:
        exam.instructors.add(instructor)
    return exam


def make_slots(
    exam: Exam,
    count: int = 1,
    *,
    capacity: int = 3,
    published: bool = True,
    start: dt.datetime | None = None,
    room: str = "Room 1.01",
) -> list[Slot]:
    start = start or timezone.now() + dt.timedelta(days=10)
    length = dt.timedelta(minutes=20)
    return Slot.objects.bulk_create(
        Slot(
            exam=exam,
            starts_at=start + i * length,
            ends_at=start + (i + 1) * length,
            capacity=capacity,
            room=room,
            is_published=published,
        )
        for i in range(count)
    )


def make_students(exam: Exam, count: int, *, prefix: str = "student") -> list[Enrollment]:
    password = make_password(None)
    users = User.objects.bulk_create(
        User(
            email=f"{prefix}{i}@uni.example",
            name=f"Student {prefix.title()} {i}",
            password=password,
        )
        for i in range(count)
    )
    return Enrollment.objects.bulk_create(
        Enrollment(exam=exam, student=u, name=u.name) for u in users
    )


def api_tokens(users: list[User]) -> list[str]:
    keys = [secrets.token_urlsafe(32) for _ in users]
    ApiToken.objects.bulk_create(
        ApiToken(user=u, key_hash=digest(k)) for u, k in zip(users, keys, strict=True)
    )
    return keys


def session_cookies(users: list[User]) -> list[str]:
    """Signed-in session keys, as if each user had signed in with a code."""
    keys = []
    for user in users:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        keys.append(store.session_key)
    return keys
