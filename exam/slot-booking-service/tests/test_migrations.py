"""The tenancy migration (booking 0003 and 0004) on data written the old way, on SQLite and
PostgreSQL: an examiner shared by two exams becomes one examiner per exam, each with a new feed
token (the old one was shown to the instructors of both exams), an examiner of one exam keeps
its token, an unused one goes; roster rows get their student's name; an unused invite code of a
student on one roster moves to that roster row, one of a student on two rosters is deleted (its
exam is unknown)."""

import pytest

from tests import scenarios


@pytest.fixture(scope="module")
def old_data(on_db):
    return on_db(scenarios.tenancy_migration_on_old_data)


def test_examiners_are_split_per_exam_with_fresh_tokens(old_data):
    assert old_data["examiners"] == [
        ("X", "Prof. Own", False, True),
        ("X", "Prof. Shared", False, False),
        ("Y", "Prof. Shared", False, False),
    ]
    assert all(same_exam for _, _, same_exam in old_data["slots"])


def test_names_and_invite_codes_move_to_roster_rows(old_data):
    assert old_data["names"] == [("X", "One"), ("X", "Two"), ("Y", "Two")]
    assert old_data["invites"] == [("X", "one@uni.example")]
