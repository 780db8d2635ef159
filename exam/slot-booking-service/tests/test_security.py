"""Authorization matrix, CSRF and the production checklist.

Every endpoint that changes something is tried by an anonymous visitor, a student of another
exam, an instructor of another exam and (for instructor endpoints) a student of the same exam:
each is refused and the database is unchanged. The owner's identical request succeeds, which
shows the refused requests were well-formed. A completeness check fails if a new route is added
without being classified here.
"""

import os
import subprocess
import sys

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from booking import services, signin
from booking.models import (
    ApiToken,
    AuditEvent,
    Booking,
    Enrollment,
    Exam,
    InviteCode,
    OutboxEmail,
    Slot,
    User,
)
from harness import SERVICE_DIR, factories


class Ctx:
    def __init__(self):
        self.teacher = factories.make_instructor("a-teacher@example.org")
        self.exam = factories.make_exam(self.teacher, title="Exam A")
        self.slot, self.free_slot = factories.make_slots(self.exam, 2, capacity=2)
        self.owner, self.classmate = factories.make_students(self.exam, 2, prefix="a")
        services.book(self.owner, self.slot.pk, actor=self.owner.student)
        self.other_teacher = factories.make_instructor("b-teacher@example.org")
        other_exam = factories.make_exam(self.other_teacher, title="Exam B")
        factories.make_slots(other_exam, 1)
        self.other_student = factories.make_students(other_exam, 1, prefix="b")[0]


def exam_form(ctx):
    return {
        "title": "Renamed",
        "time_zone": "UTC",
        "booking_opens_at": "2030-01-01T08:00",
        "booking_closes_at": "2030-02-01T08:00",
        "cancellation_deadline": "2030-01-30T08:00",
    }


def series_form(ctx):
    return {
        "first_day": "2030-05-06",
        "days": 1,
        "first_start": "09:00",
        "per_day": 1,
        "length_minutes": 20,
        "gap_minutes": 0,
        "capacity": 1,
        "room": "R9",
        "online_url": "",
        "examiner": "",
    }


def slot_form(ctx):
    local = ctx.slot.starts_at.astimezone(ctx.exam.tz)
    end = ctx.slot.ends_at.astimezone(ctx.exam.tz)
    return {
        "starts_at": f"{local:%Y-%m-%dT%H:%M}",
        "ends_at": f"{end:%Y-%m-%dT%H:%M}",
        "capacity": 5,
        "room": "New room",
        "online_url": "",
        "examiner": "",
    }


def roster_file(ctx):
    return {"file": SimpleUploadedFile("r.csv", b"name,email\nNew Person,new@uni.example\n")}


# name, method, path(ctx), data(ctx), owner ("student" or "instructor")
HTML = [
    (
        "student-book",
        "post",
        lambda c: reverse("student-book", args=[c.exam.pk]),
        lambda c: {"slot": c.free_slot.pk},
        "classmate",
    ),
    (
        "student-move",
        "post",
        lambda c: reverse("student-move", args=[c.exam.pk]),
        lambda c: {"slot": c.free_slot.pk},
        "student",
    ),
    (
        "student-cancel",
        "post",
        lambda c: reverse("student-cancel", args=[c.exam.pk]),
        lambda c: {},
        "student",
    ),
    (
        "staff-exam-edit",
        "post",
        lambda c: reverse("staff-exam-edit", args=[c.exam.pk]),
        exam_form,
        "instructor",
    ),
    (
        "staff-slots-new",
        "post",
        lambda c: reverse("staff-slots-new", args=[c.exam.pk]),
        series_form,
        "instructor",
    ),
    (
        "staff-slots-publish",
        "post",
        lambda c: reverse("staff-slots-publish", args=[c.exam.pk]),
        lambda c: {"slot": [c.slot.pk], "publish": "0"},
        "instructor",
    ),
    (
        "staff-roster",
        "post",
        lambda c: reverse("staff-roster", args=[c.exam.pk]),
        roster_file,
        "instructor",
    ),
    (
        "staff-remind",
        "post",
        lambda c: reverse("staff-remind", args=[c.exam.pk]),
        lambda c: {},
        "instructor",
    ),
    (
        "staff-invites",
        "post",
        lambda c: reverse("staff-invites", args=[c.exam.pk]),
        lambda c: {"confirm": "yes"},
        "instructor",
    ),
    (
        "staff-student-remove",
        "post",
        lambda c: reverse("staff-student-remove", args=[c.exam.pk, c.owner.pk]),
        lambda c: {"confirm": "yes"},
        "instructor",
    ),
    (
        "staff-student-cancel",
        "post",
        lambda c: reverse("staff-student-cancel", args=[c.exam.pk, c.owner.pk]),
        lambda c: {},
        "instructor",
    ),
    (
        "staff-slot",
        "post",
        lambda c: reverse("staff-slot", args=[c.slot.pk]),
        slot_form,
        "instructor",
    ),
    (
        "staff-slot-place",
        "post",
        lambda c: reverse("staff-slot-place", args=[c.free_slot.pk]),
        lambda c: {"enrollment": c.classmate.pk},
        "instructor",
    ),
    (
        "staff-slot-delete",
        "post",
        lambda c: reverse("staff-slot-delete", args=[c.free_slot.pk]),
        lambda c: {},
        "instructor",
    ),
    ("staff-exam-new", "post", lambda c: reverse("staff-exam-new"), exam_form, "any-instructor"),
    ("account", "post", lambda c: reverse("account"), lambda c: {}, "any-user"),
]
API = [
    (
        "POST /api/exams/{exam_id}/booking",
        "post",
        lambda c: f"/api/exams/{c.exam.pk}/booking",
        lambda c: {"slot_id": c.free_slot.pk},
        "classmate",
    ),
    (
        "PUT /api/exams/{exam_id}/booking",
        "put",
        lambda c: f"/api/exams/{c.exam.pk}/booking",
        lambda c: {"slot_id": c.free_slot.pk},
        "student",
    ),
    (
        "DELETE /api/exams/{exam_id}/booking",
        "delete",
        lambda c: f"/api/exams/{c.exam.pk}/booking",
        lambda c: None,
        "student",
    ),
    (
        "PUT /api/exams/{exam_id}/students/{enrollment_id}/booking",
        "put",
        lambda c: f"/api/exams/{c.exam.pk}/students/{c.classmate.pk}/booking",
        lambda c: {"slot_id": c.free_slot.pk},
        "instructor",
    ),
    (
        "DELETE /api/exams/{exam_id}/students/{enrollment_id}/booking",
        "delete",
        lambda c: f"/api/exams/{c.exam.pk}/students/{c.owner.pk}/booking",
        lambda c: None,
        "instructor",
    ),
]
# Reading is scoped too: another exam's students and instructors get 404 / 403.
READ = [
    ("student-exam", lambda c: reverse("student-exam", args=[c.exam.pk]), "student"),
    ("student-seats", lambda c: reverse("student-seats", args=[c.exam.pk]), "student"),
    ("student-ics", lambda c: reverse("student-ics", args=[c.exam.pk]), "student"),
    ("staff-exam", lambda c: reverse("staff-exam", args=[c.exam.pk]), "instructor"),
    ("staff-seats", lambda c: reverse("staff-seats", args=[c.exam.pk]), "instructor"),
    ("staff-unbooked", lambda c: reverse("staff-unbooked", args=[c.exam.pk]), "instructor"),
    ("staff-export", lambda c: reverse("staff-export", args=[c.exam.pk]), "instructor"),
    ("staff-audit", lambda c: reverse("staff-audit", args=[c.exam.pk]), "instructor"),
    ("staff-roster", lambda c: reverse("staff-roster", args=[c.exam.pk]), "instructor"),
    ("staff-exam-edit", lambda c: reverse("staff-exam-edit", args=[c.exam.pk]), "instructor"),
    ("staff-slot", lambda c: reverse("staff-slot", args=[c.slot.pk]), "instructor"),
    ("staff-invites", lambda c: reverse("staff-invites", args=[c.exam.pk]), "instructor"),
    (
        "staff-student-remove",
        lambda c: reverse("staff-student-remove", args=[c.exam.pk, c.owner.pk]),
        "instructor",
    ),
    ("api:my-booking", lambda c: f"/api/exams/{c.exam.pk}/booking", "student"),
    ("api:slots", lambda c: f"/api/exams/{c.exam.pk}/slots", "student"),
    ("api:bookings", lambda c: f"/api/exams/{c.exam.pk}/bookings", "instructor"),
]
# Open to everyone by design (signing in), or reading only the caller's own data.
PUBLIC = {
    "home",
    "login",
    "login-code",
    "login-link",
    "login-invite",
    "staff-login",
    "staff-setup",
    "logout",
    "examiner-feed",
    "student-exams",
    "staff-dashboard",
    "api:exams",
    "api:openapi-json",
    "api:openapi-view",
}


def snapshot():
    return (
        list(Booking.objects.order_by("pk").values_list("pk", "slot_id", "status", "sequence")),
        list(
            Slot.objects.order_by("pk").values_list(
                "pk", "booked", "capacity", "is_published", "room"
            )
        ),
        list(Exam.objects.order_by("pk").values_list("pk", "title", "time_zone")),
        Enrollment.objects.count(),
        User.objects.count(),
        list(ApiToken.objects.values_list("key_hash", flat=True)),
        InviteCode.objects.count(),
        OutboxEmail.objects.count(),
        AuditEvent.objects.count(),
    )


def html_client(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def api_client(user) -> Client:
    if user is None:
        return Client()
    return Client(headers={"Authorization": f"Bearer {signin.issue_api_token(user)}"})


def actors(ctx, owner: str) -> dict:
    refused = {"anonymous": None}
    if owner in ("student", "classmate", "instructor"):
        refused |= {
            "other student": ctx.other_student.student,
            "foreign instructor": ctx.other_teacher,
        }
    if owner in ("instructor", "any-instructor"):
        refused["student of this exam"] = ctx.owner.student
    return refused


def owner_user(ctx, owner: str):
    return {
        "student": ctx.owner.student,
        "classmate": ctx.classmate.student,
        "instructor": ctx.teacher,
        "any-instructor": ctx.other_teacher,
        "any-user": ctx.other_student.student,
    }[owner]


def send(client, method, path, data, api: bool):
    if api and data is None:
        return getattr(client, method)(path)
    if api:
        return getattr(client, method)(path, data, content_type="application/json")
    return getattr(client, method)(path, data)


def assert_refused(response, who: str) -> None:
    if who == "anonymous" and response.status_code == 302:
        assert response.url.startswith("/login/"), response.url
    else:
        assert response.status_code in (401, 403, 404), (who, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "method", "path", "data", "owner"), HTML + API, ids=[e[0] for e in HTML + API]
)
def test_mutating_endpoint_refuses_everyone_but_its_owner(name, method, path, data, owner):
    ctx = Ctx()
    is_api = name.startswith(("POST ", "PUT ", "DELETE "))
    make_client = api_client if is_api else html_client
    clients = {who: make_client(user) for who, user in actors(ctx, owner).items()}
    owner_client = make_client(owner_user(ctx, owner))
    before = snapshot()
    for who, client in clients.items():
        assert_refused(send(client, method, path(ctx), data(ctx), is_api), who)
        assert snapshot() == before, f"{who} changed something via {name}"
    response = send(owner_client, method, path(ctx), data(ctx), is_api)
    assert response.status_code in (200, 201, 204, 302), response.content[:300]
    assert snapshot() != before, f"the owner's request to {name} changed nothing"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path", "owner"), READ, ids=[f"GET {e[0]}" for e in READ])
def test_reading_is_scoped_to_the_exam(name, path, owner):
    ctx = Ctx()
    make_client = api_client if name.startswith("api:") else html_client
    for who, user in actors(ctx, owner).items():
        assert_refused(make_client(user).get(path(ctx)), who)
    assert make_client(owner_user(ctx, owner)).get(path(ctx)).status_code == 200


def all_route_names() -> set[str]:
    names = set()

    def walk(patterns, namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                if p.namespace != "admin":  # Django admin: its own staff permissions
                    walk(p.url_patterns, f"{namespace}{p.namespace}:" if p.namespace else namespace)
            elif isinstance(p, URLPattern) and p.name:
                names.add(namespace + p.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_route_is_classified(client, db):
    html_mutating = {e[0] for e in HTML}
    read = {e[0] for e in READ}
    api_routes = {e[0] for e in API}
    schema = client.get("/api/openapi.json").json()
    api_mutating = {
        f"{method.upper()} {path.removeprefix('/api')}".replace(" /", " /api/", 1)
        for path, ops in schema["paths"].items()
        for method in ops
        if method != "get"
    }
    assert api_mutating == api_routes
    unclassified = {
        n for n in all_route_names() - html_mutating - read - PUBLIC if not n.startswith("api:")
    }
    assert unclassified == set()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "method", "path", "data", "owner"), HTML, ids=[e[0] for e in HTML]
)
def test_csrf_is_enforced_on_every_form(name, method, path, data, owner):
    ctx = Ctx()
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner_user(ctx, owner))
    before = snapshot()
    response = getattr(client, method)(path(ctx), data(ctx))
    assert response.status_code == 403 and b"This form has expired" in response.content
    assert snapshot() == before


@pytest.mark.django_db
def test_csrf_is_enforced_on_the_api_with_a_session():
    ctx = Ctx()
    client = Client(enforce_csrf_checks=True)
    client.force_login(ctx.classmate.student)
    response = client.post(
        f"/api/exams/{ctx.exam.pk}/booking",
        {"slot_id": ctx.free_slot.pk},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert not Booking.objects.filter(enrollment=ctx.classmate).exists()


def test_deploy_checklist_is_clean_in_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_prod",
        "DJANGO_SECRET_KEY": "x9!" * 20 + "long-random-production-secret",
        "DJANGO_ALLOWED_HOSTS": "exams.example.org",
        "DATABASE_URL": "sqlite://:memory:",  # no data/ folder in the checkout
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=SERVICE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
