"""Scenarios that run in a separate process against a real SQLite file or PostgreSQL database
(``conftest.on_db``), through Django's test client and the whole middleware stack: what an
instructor of one exam can do to another exam, removing students in Django admin, and a corpus
of bad input. Each returns plain data (statuses, counts, texts) that the tests assert on.

Every scenario builds its own exams and people with fresh names, so scenarios share a database
without seeing each other. Emails are kept in memory (``django.core.mail.outbox``).
"""

import csv
import io
import itertools
import json
import os
import re

CLIENT_ADDRESSES = (f"192.0.2.{i}" for i in itertools.count(1))  # one per client: no throttle
_tags = itertools.count()


def init(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from django.test.utils import override_settings, setup_test_environment

    setup_test_environment()  # locmem email, "testserver" allowed
    override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ).enable()


def _client(user=None, *, csrf: bool = False):
    from django.test import Client

    client = Client(REMOTE_ADDR=next(CLIENT_ADDRESSES), enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def _tag() -> str:
    return f"{os.getpid()}x{next(_tags)}"


def _world() -> dict:
    """Exams X and Y with an instructor each; student S on Y's roster, booked in Y."""
    from booking import services
    from harness import factories

    tag = _tag()
    tx = factories.make_instructor(f"x-teacher{tag}@example.org")
    ty = factories.make_instructor(f"y-teacher{tag}@example.org")
    ex = factories.make_exam(tx, title=f"Exam X {tag}")
    ey = factories.make_exam(ty, title=f"Exam Y {tag}")
    sx = factories.make_slots(ex, 2, capacity=2)
    sy = factories.make_slots(ey, 2, capacity=2)
    (s,) = factories.make_students(ey, 1, prefix=f"s{tag}")
    services.book(s, sy[0].pk, actor=s.student)
    return {"tag": tag, "tx": tx, "ty": ty, "ex": ex, "ey": ey, "sx": sx, "sy": sy, "s": s}


def _invite_codes(response) -> dict[str, str]:
    text = response.content.decode("utf-8-sig")
    return {row["email"]: row["invite_code"] for row in csv.DictReader(io.StringIO(text))}


def _active_slot(enrollment) -> int | None:
    from booking import services

    booking = services.active_booking(enrollment)
    return booking.slot_id if booking else None


# --- tenancy ----------------------------------------------------------------------------------


def roster_and_invites_across_exams() -> dict:
    """X's instructor puts Y's student S on X's roster under another name, downloads invite
    codes and signs in as S with X's code: what does that reach of Y?"""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from booking.models import AuditEvent, Enrollment, User

    w = _world()
    s, ex, ey = w["s"], w["ex"], w["ey"]
    email = s.student.email
    x_staff, y_staff = _client(w["tx"]), _client(w["ty"])
    y_codes = _invite_codes(
        y_staff.post(f"/manage/exams/{ey.pk}/invites/", {"confirm": "yes"})
    )  # Y's instructor printed codes first
    csv_file = SimpleUploadedFile("r.csv", f"name,email\nMallory's Puppet,{email}\n".encode())
    imported = x_staff.post(f"/manage/exams/{ex.pk}/roster/", {"file": csv_file})
    unconfirmed = x_staff.post(f"/manage/exams/{ex.pk}/invites/")
    x_codes = _invite_codes(x_staff.post(f"/manage/exams/{ex.pk}/invites/", {"confirm": "yes"}))

    puppet = _client()
    signed_in = puppet.post("/login/invite/", {"code": x_codes[email]})
    reach = {
        "X page": puppet.get(f"/exams/{ex.pk}/").status_code,
        "Y page": puppet.get(f"/exams/{ey.pk}/").status_code,
        "Y seats": puppet.get(f"/exams/{ey.pk}/seats/").status_code,
        "Y calendar": puppet.get(f"/exams/{ey.pk}/booking.ics").status_code,
        "Y cancel": puppet.post(f"/exams/{ey.pk}/cancel/").status_code,
        "Y move": puppet.post(f"/exams/{ey.pk}/move/", {"slot": w["sy"][1].pk}).status_code,
        "API Y booking": puppet.get(f"/api/exams/{ey.pk}/booking").status_code,
        "API Y cancel": puppet.delete(
            f"/api/exams/{ey.pk}/booking", headers={"X-CSRFToken": "x" * 32}
        ).status_code,
        "API token": puppet.post("/account/").status_code,
    }
    listed = [e["title"] for e in puppet.get("/api/exams").json()]
    my_exams = puppet.get("/exams/", follow=True).content.decode()

    owner = _client()  # S with Y's printed code, made before X's download
    owner_in = owner.post("/login/invite/", {"code": y_codes[email]})
    return {
        "imported": imported.status_code,
        "unconfirmed download": unconfirmed.status_code,
        "unconfirmed is a question": "Make new invite codes?" in unconfirmed.content.decode(),
        "signed in": signed_in.status_code,
        "reach": reach,
        "listed": listed,
        "Y in my exams": ey.title in my_exams,
        "X title": ex.title,
        "Y booking": _active_slot(Enrollment.objects.get(pk=s.pk)),
        "Y slot": w["sy"][0].pk,
        "Y cancellations": AuditEvent.objects.filter(
            exam_id=ey.pk, action="booking.cancel"
        ).count(),
        "Y roster name": Enrollment.objects.get(pk=s.pk).name,
        "X roster name": Enrollment.objects.get(exam=ex, student=s.student).name,
        "account name": User.objects.get(pk=s.student_id).name,
        "original name": s.name,
        "Y code after X's download": owner_in.status_code,
        "owner reaches Y": owner.get(f"/exams/{ey.pk}/").status_code,
    }


def invite_reissue_is_per_exam() -> dict:
    """Re-issuing codes in X kills X's older unused codes, never Y's."""
    w = _world()
    from harness import factories

    (both,) = factories.make_students(w["ex"], 1, prefix=f"b{w['tag']}")
    from booking.models import Enrollment

    Enrollment.objects.create(exam=w["ey"], student=both.student, name="B in Y")
    email = both.student.email
    x_staff, y_staff = _client(w["tx"]), _client(w["ty"])
    y_code = _invite_codes(
        y_staff.post(f"/manage/exams/{w['ey'].pk}/invites/", {"confirm": "yes"})
    )[email]
    x_old = _invite_codes(x_staff.post(f"/manage/exams/{w['ex'].pk}/invites/", {"confirm": "yes"}))[
        email
    ]
    x_new = _invite_codes(x_staff.post(f"/manage/exams/{w['ex'].pk}/invites/", {"confirm": "yes"}))[
        email
    ]
    return {
        "old X code": _client().post("/login/invite/", {"code": x_old}).status_code,
        "new X code": _client().post("/login/invite/", {"code": x_new}).status_code,
        "Y code": _client().post("/login/invite/", {"code": y_code}).status_code,
    }


def examiners_and_feeds_across_exams() -> dict:
    """X's instructor types Y's examiner's name on a hidden slot of X."""
    from booking import services
    from booking.models import Examiner, Slot

    w = _world()
    y_slot = Slot.objects.select_related("exam").get(pk=w["sy"][0].pk)
    services.update_slot(y_slot, actor=w["ty"], capacity=2, examiner_name="Prof. Shared")
    y_examiner = Examiner.objects.get(exam=w["ey"])
    x_slot = Slot.objects.get(pk=w["sx"][0].pk)
    Slot.objects.filter(pk=x_slot.pk).update(is_published=False)
    local = x_slot.starts_at.astimezone(w["ex"].tz)
    end = x_slot.ends_at.astimezone(w["ex"].tz)
    x_staff = _client(w["tx"])
    saved = x_staff.post(
        f"/manage/slots/{x_slot.pk}/",
        {
            "starts_at": f"{local:%Y-%m-%dT%H:%M}",
            "ends_at": f"{end:%Y-%m-%dT%H:%M}",
            "capacity": 2,
            "room": "Room X",
            "online_url": "",
            "examiner": "Prof. Shared",
        },
    )
    x_examiner = Examiner.objects.get(exam=w["ex"])
    x_page = x_staff.get(f"/manage/exams/{w['ex'].pk}/").content.decode()
    anonymous = _client()
    x_feed = anonymous.get(f"/feeds/examiner/{x_examiner.feed_token}.ics").content.decode()
    y_feed = anonymous.get(f"/feeds/examiner/{y_examiner.feed_token}.ics").content.decode()
    student = w["s"]
    return {
        "saved": saved.status_code,
        "examiners named so": Examiner.objects.filter(name="Prof. Shared").count(),
        "Y token on X's page": y_examiner.feed_token in x_page,
        "X token on X's page": x_examiner.feed_token in x_page,
        "X feed names Y's student": student.student.email in x_feed or student.name in x_feed,
        "X feed shows Y's exam": w["ey"].title in x_feed,
        "X feed shows X's exam": w["ex"].title in x_feed,
        "Y feed shows X's exam": w["ex"].title in y_feed,
        "Y feed names Y's student": student.name in y_feed,
    }


def admin_is_for_superusers_only() -> dict:
    """An instructor with every model permission still cannot use the admin (its lists cross
    exams); a superuser can."""
    from django.contrib.auth.models import Permission

    from booking.models import Enrollment, User

    w = _world()
    w["tx"].user_permissions.set(Permission.objects.all())
    x_staff = _client(User.objects.get(pk=w["tx"].pk))
    row = w["s"]
    paths = [
        "/admin/",
        "/admin/booking/enrollment/",
        f"/admin/booking/enrollment/{row.pk}/change/",
        "/admin/booking/examiner/",
        "/admin/booking/user/",
    ]
    instructor = {p: x_staff.get(p).status_code for p in paths}
    deleted = x_staff.post(f"/admin/booking/enrollment/{row.pk}/delete/", {"post": "yes"})
    root = User.objects.create_superuser(f"root{w['tag']}@example.org", "root password 1234")
    superuser = {p: _client(root).get(p).status_code for p in paths}
    return {
        "instructor": instructor,
        "instructor delete": deleted.status_code,
        "still on roster": Enrollment.objects.filter(pk=row.pk).exists(),
        "superuser": superuser,
    }


# --- removing students --------------------------------------------------------------------------


def _removal_effects(rows, slots_before: dict) -> dict:
    from django.core import mail

    from booking.models import AuditEvent, Enrollment, OutboxEmail, Slot
    from booking.services import integrity_report

    emails = {row.student.email for row in rows}
    return {
        "on roster": Enrollment.objects.filter(pk__in=[r.pk for r in rows]).count(),
        "seats freed": {
            pk: before - Slot.objects.get(pk=pk).booked for pk, before in slots_before.items()
        },
        "cancel audits": AuditEvent.objects.filter(
            action="booking.cancel", student_email__in=emails
        ).count(),
        "remove audits": AuditEvent.objects.filter(
            action="roster.remove", student_email__in=emails
        ).count(),
        "cancellation emails": sum(
            1 for m in mail.outbox if m.to[0] in emails and "cancelled" in m.subject
        ),
        "cancellation ics": OutboxEmail.objects.filter(
            to_email__in=emails, ics__contains="METHOD:CANCEL", status=OutboxEmail.SENT
        ).count(),
        "drift": [(d.slot_id, d.counter, d.bookings) for d in integrity_report()],
    }


def admin_removals() -> dict:
    """A superuser removes booked students in Django admin: one roster row, several rows with
    the bulk action, and a whole student account on two rosters."""
    from booking import services
    from booking.models import Enrollment, Exam, Slot, User
    from harness import factories

    w = _world()
    root = User.objects.create_superuser(f"root{w['tag']}@example.org", "root password 1234")
    admin = _client(root)
    ex, ey, sx, sy = w["ex"], w["ey"], w["sx"], w["sy"]
    a, b, c = factories.make_students(ex, 3, prefix=f"r{w['tag']}")
    services.book(a, sx[0].pk, actor=a.student)
    services.book(b, sx[0].pk, actor=b.student)
    services.book(c, sx[1].pk, actor=c.student)
    s = w["s"]  # booked in Y; put them on X too, booked there
    s_in_x = Enrollment.objects.create(exam=ex, student=s.student, name="S in X")
    Slot.objects.filter(pk=sx[1].pk).update(capacity=3)
    services.book(s_in_x, sx[1].pk, actor=s.student)

    out = {}
    before = {sx[0].pk: Slot.objects.get(pk=sx[0].pk).booked}
    out["single page"] = admin.get(f"/admin/booking/enrollment/{a.pk}/delete/").status_code
    out["single"] = admin.post(
        f"/admin/booking/enrollment/{a.pk}/delete/", {"post": "yes"}
    ).status_code
    out["single effects"] = _removal_effects([a], before)

    before = {
        sx[0].pk: Slot.objects.get(pk=sx[0].pk).booked,
        sx[1].pk: Slot.objects.get(pk=sx[1].pk).booked,
    }
    out["bulk"] = admin.post(
        "/admin/booking/enrollment/",
        {"action": "delete_selected", "_selected_action": [b.pk, c.pk], "post": "yes"},
    ).status_code
    out["bulk effects"] = _removal_effects([b, c], before)

    before = {
        sx[1].pk: Slot.objects.get(pk=sx[1].pk).booked,
        sy[0].pk: Slot.objects.get(pk=sy[0].pk).booked,
    }
    out["user"] = admin.post(
        f"/admin/booking/user/{s.student_id}/delete/", {"post": "yes"}
    ).status_code
    out["user effects"] = _removal_effects([s, s_in_x], before)
    out["user left"] = User.objects.filter(pk=s.student_id).exists()

    (d,) = factories.make_students(ey, 1, prefix=f"d{w['tag']}")
    services.book(d, sy[1].pk, actor=d.student)
    out["exam with bookings delete"] = admin.get(f"/admin/booking/exam/{ey.pk}/delete/").status_code
    out["exam still there"] = Exam.objects.filter(pk=ey.pk).exists()
    out["slot change allowed"] = admin.post(
        f"/admin/booking/slot/{sy[1].pk}/change/", {"capacity": 0}
    ).status_code
    out["slot capacity"] = Slot.objects.get(pk=sy[1].pk).capacity
    return out


def instructor_removal() -> dict:
    from booking.models import Slot

    w = _world()
    s, ey, sy = w["s"], w["ey"], w["sy"]
    y_staff = _client(w["ty"])
    url = f"/manage/exams/{ey.pk}/students/{s.pk}/remove/"
    question = y_staff.get(url)
    asked = y_staff.post(url)  # no confirmation: nothing happens
    after_question = _active_slot(s)
    before = {sy[0].pk: Slot.objects.get(pk=sy[0].pk).booked}
    done = y_staff.post(url, {"confirm": "yes"})
    other = _client(w["tx"]).post(url, {"confirm": "yes"})  # X's instructor: not theirs
    return {
        "question": question.status_code,
        "question names the slot": "cancelled first" in question.content.decode(),
        "unconfirmed": asked.status_code,
        "booking after question": after_question,
        "slot": sy[0].pk,
        "done": done.status_code,
        "other instructor": other.status_code,
        "effects": _removal_effects([s], before),
        "rebook refused": _rebook(s, sy[1].pk),
    }


def _rebook(enrollment, slot_id) -> str:
    from booking import services

    try:
        services.book(enrollment, slot_id, actor=enrollment.student)
    except services.BookingError as exc:
        return type(exc).__name__
    return "booked"


# --- bad input --------------------------------------------------------------------------------

HUGE = [str(2**63), str(2**64), "9" * 30]


ADMIN_CONVENTIONS = {200, 302, 400, 404}  # see bad_input_corpus


def bad_input_corpus() -> list[tuple[str, int, set[int] | None]]:
    """(case, status, allowed) for every malformed request of the corpus; allowed None means
    "a 4xx". Django admin keeps its own conventions for two things: an unknown object id
    redirects to the list with a message (302), and a filter or search that matches nothing
    shows an empty list (200); neither is a 5xx."""
    from booking import signin, urls
    from booking.models import Examiner, User
    from harness import factories

    w = _world()
    ex, sx, tx = w["ex"], w["sx"], w["tx"]
    (row,) = factories.make_students(ex, 1, prefix=f"c{w['tag']}")
    Examiner.objects.create(exam=ex, name="Prof. C")
    root = User.objects.create_superuser(f"root{w['tag']}@example.org", "root password 1234")
    staff, student, admin = _client(tx), _client(row.student), _client(root)
    token = signin.issue_api_token(row.student)
    api = _client()
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    results = []

    def record(case, response, allowed=None):
        results.append((case, response.status_code, allowed))

    # every page URL with an id no database can hold; all kinds of non-ids on one of them
    for pattern in urls.urlpatterns:
        route = str(pattern.pattern)
        if "<id:" in route:
            path = "/" + re.sub(r"<id:\w+>", HUGE[0], route)
            record(f"GET {path}", staff.get(path))
            record(f"POST {path}", staff.post(path, {"slot": "1"}))
    for bad in [*HUGE, "0", "-1", "%C2%B2", "1%00"]:
        record(f"GET /exams/{bad}/ (student)", student.get(f"/exams/{bad}/"))
        record(f"POST /exams/{bad}/book/ (student)", student.post(f"/exams/{bad}/book/"))
    # JSON API: ids in paths and bodies
    for bad in HUGE:
        for method, path in [
            ("get", f"/api/exams/{bad}/slots"),
            ("get", f"/api/exams/{bad}/booking"),
            ("delete", f"/api/exams/{bad}/booking"),
            ("get", f"/api/exams/{bad}/bookings"),
            ("delete", f"/api/exams/{ex.pk}/students/{bad}/booking"),
        ]:
            record(f"{method.upper()} {path}", getattr(api, method)(path, **bearer))
    booking_path = f"/api/exams/{ex.pk}/booking"
    bodies = [
        {"slot_id": True},
        {"slot_id": False},
        {"slot_id": 2**63},
        {"slot_id": 2**64},
        {"slot_id": -(2**63)},
        {"slot_id": 1.5},
        {"slot_id": str(sx[0].pk)},
        {"slot_id": None},
        {"slot_id": [sx[0].pk]},
        {"slot_id": {"id": 1}},
        {"slot_id": "\x00"},
        [sx[0].pk],
        "x",
    ]
    for body in bodies:
        for method in ("post", "put"):
            record(
                f"{method.upper()} booking {json.dumps(body)}",
                getattr(api, method)(booking_path, body, content_type="application/json", **bearer),
            )
        record(
            f"PUT place {json.dumps(body)}",
            _client(tx).put(
                f"/api/exams/{ex.pk}/students/{row.pk}/booking",
                body,
                content_type="application/json",
            ),
        )
    raw = [
        ("not json", "{slot_id: 1", "application/json"),
        ("deep nesting", "[" * 100_000 + "]" * 100_000, "application/json"),
        ("NUL in JSON", '{"slot_id": 1\x00}', "application/json"),
        ("empty", "", "application/json"),
        ("text", "slot_id=1", "text/plain"),
        ("urlencoded", "slot_id=1", "application/x-www-form-urlencoded"),
        (
            "multipart",
            '--b\r\nContent-Disposition: form-data; name="slot_id"\r\n\r\n1\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
        ("multipart without boundary", "x", "multipart/form-data"),
    ]
    session_api = _client(row.student, csrf=True)  # the CSRF check reads form bodies first
    session_api.get(f"/exams/{ex.pk}/")
    csrf = session_api.cookies["csrftoken"].value
    for name, body, content_type in raw:
        record(
            f"POST booking {name} (token)",
            api.post(booking_path, body, content_type=content_type, **bearer),
        )
        record(
            f"POST booking {name} (session)",
            session_api.post(
                booking_path, body, content_type=content_type, headers={"X-CSRFToken": csrf}
            ),
        )
    # feeds and sign-in links with malformed tokens
    for bad in ["%00", "a%00b" * 8, "x" * 200, "%E2%80%AE" * 10, "..%2F..%2Fetc", "a" * 15]:
        record(f"GET feed {bad}", _client().get(f"/feeds/examiner/{bad}.ics"))
        record(f"GET link {bad}", _client().get(f"/login/link/{bad}/"))
        record(f"POST link {bad}", _client().post(f"/login/link/{bad}/"))
    # forms: years, control characters, lengths, odd numbers
    exam_form = {
        "title": "T",
        "time_zone": "Europe/Berlin",
        "booking_opens_at": "2030-03-01T08:00",
        "booking_closes_at": "2030-03-20T18:00",
        "cancellation_deadline": "2030-03-19T23:59",
    }
    exam_changes = [
        {"booking_opens_at": "9999-12-31T23:59", "booking_closes_at": "9999-12-31T23:59"},
        {"booking_opens_at": "0001-01-01T00:00"},
        {"cancellation_deadline": "0001-01-01T00:00"},
        {"booking_closes_at": "9999-12-31T23:30"},
        {"booking_opens_at": "0000-01-01T00:00"},
        {"booking_opens_at": "2030-02-30T08:00"},
        {"title": "Oral exam\nBcc: everyone@example.org"},
        {"title": "Oral\rexam"},
        {"title": "Oral\x00exam"},
        {"title": "Oral\u2028exam"},
        {"title": "Oral \u202eexam"},
        {"title": "x" * 5000},
        {"time_zone": "\x00"},
        {"time_zone": "Mars/Olympus"},
    ]
    for change in exam_changes:
        record(f"POST exam new {change}", staff.post("/manage/exams/new/", {**exam_form, **change}))
        record(
            f"POST exam edit {change}",
            staff.post(f"/manage/exams/{ex.pk}/edit/", {**exam_form, **change}),
        )
    series = {
        "first_day": "2030-05-06",
        "days": 1,
        "first_start": "09:00",
        "per_day": 1,
        "length_minutes": 20,
        "gap_minutes": 0,
        "capacity": 1,
        "room": "R",
        "online_url": "",
        "examiner": "",
    }
    series_changes = [
        {"first_day": "9999-12-31", "days": 5},
        {"first_day": "0001-01-01"},
        {"capacity": str(2**63)},
        {"days": "1e10"},
        {"first_start": "25:00"},
        {"room": "R\n2"},
        {"examiner": "Prof\x00"},
        {"examiner": "Prof\nX"},
        {"online_url": "https://example.org/" + "a" * 300},
        {"online_url": "https://exa\x00mple.org/"},
        {"room": "x" * 300},
    ]
    for change in series_changes:
        for action in ("create", "preview"):
            record(
                f"POST series {action} {change}",
                staff.post(
                    f"/manage/exams/{ex.pk}/slots/new/", {**series, **change, "action": action}
                ),
            )
    slot = sx[0]
    slot_form = {
        "starts_at": "2030-05-06T09:00",
        "ends_at": "2030-05-06T09:20",
        "capacity": 2,
        "room": "R",
        "online_url": "",
        "examiner": "",
    }
    for change in [
        {"starts_at": "9999-12-31T23:59", "ends_at": "9999-12-31T23:59"},
        {"starts_at": "0001-01-01T00:00"},
        {"capacity": "-1"},
        {"capacity": str(2**63)},
        {"examiner": "A\nB"},
        {"room": "\x00"},
    ]:
        record(
            f"POST slot edit {change}",
            staff.post(f"/manage/slots/{slot.pk}/", {**slot_form, **change}),
        )
    for bad in ["\u00b2", "\u0661", "1e3", *HUGE, "-1", "\x00", ""]:
        record(
            f"POST publish slot={bad!r}",
            staff.post(f"/manage/exams/{ex.pk}/slots/publish/", {"slot": bad, "publish": "1"}),
        )
        record(
            f"POST place enrollment={bad!r}",
            staff.post(f"/manage/slots/{slot.pk}/place/", {"enrollment": bad}),
        )
        record(f"POST book slot={bad!r}", student.post(f"/exams/{ex.pk}/book/", {"slot": bad}))
        record(f"POST move slot={bad!r}", student.post(f"/exams/{ex.pk}/move/", {"slot": bad}))
    from django.core.files.uploadedfile import SimpleUploadedFile

    for name, content in [
        ("NUL", b"name,email\nA\x00,a@b.example\n"),
        ("long email", f"name,email\nA,{'a' * 300}@example.org\n".encode()),
        ("line break in name", b'name,email\n"A\nB",ab@example.org\n'),
        ("control char in group", b"name,email,group\nA,ac@example.org,G\x1b[31m\n"),
    ]:
        upload = SimpleUploadedFile("r.csv", content)
        record(
            f"POST roster {name}", staff.post(f"/manage/exams/{ex.pk}/roster/", {"file": upload})
        )
    # sign-in forms
    for data, path in [
        ({"email": "a\x00@b.example"}, "/login/"),
        ({"email": "a" * 10_000 + "@b.example"}, "/login/"),
        ({"code": "\x00"}, "/login/invite/"),
        ({"code": "\u0661" * 16}, "/login/invite/"),
        ({"email": "t\x00@example.org", "password": "x"}, "/staff/login/"),
        ({"username": "t\x00@example.org", "password": "x"}, "/admin/login/"),
    ]:
        record(f"POST {path} {data!r:.60}", _client().post(path, data))
    code_client = _client()
    code_client.post("/login/", {"email": row.student.email})
    record("POST code NUL", code_client.post("/login/code/", {"code": "\x00"}))
    record("POST code long", code_client.post("/login/code/", {"code": "1" * 5000}))
    # Django admin
    for path in [
        f"/admin/booking/exam/{HUGE[0]}/change/",
        f"/admin/booking/enrollment/{HUGE[1]}/change/",
        "/admin/booking/exam/%00/change/",
        "/admin/booking/slot/?exam__id__exact=%C2%B2",
        f"/admin/booking/slot/?exam__id__exact={HUGE[0]}",
        "/admin/booking/user/?q=%00",
    ]:
        record(f"GET {path} (admin)", admin.get(path), ADMIN_CONVENTIONS)
    admin_exam = {
        "title": "A\nB",
        "time_zone": "UTC",
        "instructors": [tx.pk],
        "booking_opens_at_0": "2030-03-01",
        "booking_opens_at_1": "08:00",
        "booking_closes_at_0": "2030-03-02",
        "booking_closes_at_1": "08:00",
        "cancellation_deadline_0": "2030-03-02",
        "cancellation_deadline_1": "08:00",
        "enrollments-TOTAL_FORMS": "0",
        "enrollments-INITIAL_FORMS": "0",
    }
    record(
        "POST admin exam title A\\nB",
        admin.post(f"/admin/booking/exam/{ex.pk}/change/", admin_exam),
    )
    return results


def title_with_a_line_break_does_not_stop_emails() -> dict:
    """An exam whose title already holds a line break (written before validation existed, or
    by hand in the database): its booking emails still go out, with a one-line subject."""
    from django.core import mail

    from booking import services
    from booking.models import Exam, OutboxEmail

    w = _world()
    Exam.objects.filter(pk=w["ey"].pk).update(title="Oral exam\r\nBcc: everyone@example.org")
    row = w["s"].__class__.objects.select_related("exam", "student").get(pk=w["s"].pk)
    services.move(row, w["sy"][1].pk, actor=row.student)
    email = OutboxEmail.objects.filter(to_email=row.student.email).order_by("-pk").first()
    sent = [m for m in mail.outbox if m.to == [row.student.email]]
    return {
        "status": email.status,
        "subject": email.subject,
        "error": email.last_error,
        "sent subject": sent[-1].subject if sent else None,
    }


# --- the tenancy migration (0003, 0004) ----------------------------------------------------------


def tenancy_migration_on_old_data() -> dict:
    """Go back to migration 0002 (the schema before tenancy), write data the old way (one
    examiner shared by two exams, invite codes per person, names on the account), migrate
    forward, and report what became of it. Needs a database of its own."""
    import secrets

    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.utils import timezone

    call_command("migrate", "booking", "0002", verbosity=0)
    old = MigrationExecutor(connection).loader.project_state(("booking", "0002_audit_append_only"))
    models = {
        name: old.apps.get_model("booking", name)
        for name in ("User", "Exam", "Examiner", "Slot", "Enrollment", "InviteCode")
    }
    now, hour = timezone.now(), timezone.timedelta(hours=1)
    window = {
        "booking_opens_at": now,
        "booking_closes_at": now + hour,
        "cancellation_deadline": now,
    }
    x = models["Exam"].objects.create(title="X", time_zone="UTC", **window)
    y = models["Exam"].objects.create(title="Y", time_zone="UTC", **window)
    shared = models["Examiner"].objects.create(
        name="Prof. Shared", feed_token=secrets.token_urlsafe(24)
    )
    own = models["Examiner"].objects.create(name="Prof. Own", feed_token=secrets.token_urlsafe(24))
    models["Examiner"].objects.create(name="Prof. Idle", feed_token=secrets.token_urlsafe(24))
    for exam, examiner in [(x, shared), (y, shared), (x, own)]:
        models["Slot"].objects.create(
            exam=exam, examiner=examiner, starts_at=now, ends_at=now + hour, capacity=1, room="R"
        )
    one = models["User"].objects.create(email="one@uni.example", name="One", password="!")
    two = models["User"].objects.create(email="two@uni.example", name="Two", password="!")
    models["Enrollment"].objects.create(exam=x, student=one)
    models["Enrollment"].objects.create(exam=x, student=two)
    models["Enrollment"].objects.create(exam=y, student=two)
    for user in (one, two):
        models["InviteCode"].objects.create(
            user=user, code_hash=secrets.token_hex(32), expires_at=now + hour
        )

    call_command("migrate", verbosity=0)
    from booking.models import Enrollment, Examiner, InviteCode, Slot

    return {
        "examiners": sorted(
            (
                e.exam.title,
                e.name,
                e.feed_token == shared.feed_token,
                e.feed_token == own.feed_token,
            )
            for e in Examiner.objects.select_related("exam")
        ),
        "slots": sorted(
            (s.exam.title, s.examiner.name, s.examiner.exam_id == s.exam_id)
            for s in Slot.objects.select_related("exam", "examiner")
        ),
        "names": sorted((e.exam.title, e.name) for e in Enrollment.objects.select_related("exam")),
        "invites": sorted(
            (i.enrollment.exam.title, i.enrollment.student.email)
            for i in InviteCode.objects.select_related("enrollment__exam", "enrollment__student")
        ),
    }
