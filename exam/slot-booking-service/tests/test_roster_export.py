"""Roster CSV import (with a report of rejected rows) and the schedule CSV export."""

import csv
import io

import pytest
from django.urls import reverse

from booking import exports, roster, services
from booking.models import Enrollment, User
from harness import factories


def upload(client, exam, content: bytes, name="roster.csv"):
    file = io.BytesIO(content)
    file.name = name
    return client.post(reverse("staff-roster", args=[exam.pk]), {"file": file}, follow=True)


def test_import_adds_students_and_reports_rejected_rows(staff_client, exam):
    content = (
        b"Name;Email;Group\n"
        b"Ada Lovelace;ADA@uni.example;A\n"
        b"Alan Turing;alan@uni.example;\n"
        b";nobody@uni.example;B\n"
        b"Grace Hopper;not-an-email;B\n"
        b"Ada Again;ada@uni.example;C\n"
        b"Too;many;columns;here\n"
    )
    page = upload(staff_client, exam, content).content.decode()
    assert "2 added, 0 updated, 0 unchanged, 4 rejected" in page
    for reason in (
        "the name is empty",
        "&#x27;not-an-email&#x27; is not an email address",
        "the same email as line 2",
        "expected 3 columns, found 4",
    ):
        assert reason in page
    assert set(exam.enrollments.values_list("student__email", flat=True)) == {
        "ada@uni.example",
        "alan@uni.example",
    }


def test_reimport_updates_names_and_groups(staff_client, exam):
    upload(staff_client, exam, b"name,email,group\nAda,ada@uni.example,A\n")
    page = upload(staff_client, exam, b"name,email,group\nAda L.,ada@uni.example,B\n")
    assert "0 added, 1 updated" in page.content.decode()
    enrollment = Enrollment.objects.get(exam=exam)
    assert (enrollment.name, enrollment.group) == ("Ada L.", "B")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not UTF-8 text"),
        ("name,email\nJos\u00e9,jose@uni.example\n".encode("latin-1"), "not UTF-8 text"),
        (b"first,last,mail\nA,B,c@d.e\n", "must name the columns name, email"),
        (b"", "The submitted file is empty"),
        (b"name,email,group\n", "header but no students"),
        (b'name,email\n"unterminated,a@b.c\n', "not valid CSV"),
        (b"name,email\n" + b"x,y@z.org\n" * 120_000, "larger than the limit of 1024 KiB"),
    ],
)
def test_malformed_rosters_change_nothing(staff_client, exam, content, message):
    users_before = User.objects.count()
    response = upload(staff_client, exam, content)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert User.objects.count() == users_before and not exam.enrollments.exists()


def test_instructor_addresses_are_rejected(exam, instructor):
    rows, rejected = roster.parse(f"name,email\nMe,{instructor.email}\n".encode())
    outcome = services.import_roster(exam, rows, actor=instructor, rejected=rejected)
    assert [r.reason for r in outcome.rejected] == ["this address belongs to an instructor"]


def test_export_lists_bookings_then_unbooked_with_formulas_neutralised(
    staff_client, exam, slots, instructor
):
    enrollments = factories.make_students(exam, 2)
    Enrollment.objects.filter(pk=enrollments[0].pk).update(name="=HYPERLINK(1)")
    enrollments[0].refresh_from_db()
    services.book(enrollments[0], slots[1].pk, actor=instructor)
    response = staff_client.get(reverse("staff-export", args=[exam.pk]))
    assert response["Content-Disposition"] == f'attachment; filename="exam-{exam.pk}-schedule.csv"'
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == exports.HEADER
    assert rows[1][6] == "'=HYPERLINK(1)" and rows[1][9] == "booked"
    assert rows[1][2] == "Europe/Berlin"
    assert [r[9] for r in rows[2:]] == ["not booked"]


@pytest.mark.parametrize("value", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_safe_cell(value):
    assert exports.safe_cell(value) == "'" + value


def test_invite_csv_download(staff_client, exam, students):
    confirm = staff_client.get(reverse("staff-invites", args=[exam.pk]))
    assert "Make new invite codes?" in confirm.content.decode()
    response = staff_client.post(reverse("staff-invites", args=[exam.pk]), {"confirm": "yes"})
    rows = list(csv.reader(io.StringIO(response.content.decode()[1:])))
    assert rows[0] == ["name", "email", "group", "invite_code"] and len(rows) == 5
    assert all(len(r[3]) == 19 for r in rows[1:])
