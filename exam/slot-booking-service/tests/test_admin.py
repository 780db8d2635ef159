"""Removing a booked student, on SQLite and PostgreSQL: through Django admin (one roster row,
the bulk action, a whole student account) and the instructor pages, each goes through
``services.remove_student``: the seat is freed, the audit log has the cancellation and the
removal, the student gets a cancellation email with METHOD:CANCEL, and every seat counter still
equals its bookings (what ``manage.py check_integrity`` verifies)."""

from tests import scenarios


def expect(effects, *, rows: int, seats: dict) -> None:
    assert effects["on roster"] == 0
    assert effects["seats freed"] == seats
    assert effects["cancel audits"] == effects["remove audits"] == rows
    assert effects["cancellation emails"] == effects["cancellation ics"] == rows
    assert effects["drift"] == []


def test_removals_in_django_admin(on_db):
    seen = on_db(scenarios.admin_removals)
    assert seen["single page"] == 200 and seen["single"] == 302
    (first_slot,) = seen["single effects"]["seats freed"]
    expect(seen["single effects"], rows=1, seats={first_slot: 1})
    assert seen["bulk"] == 302
    expect(
        seen["bulk effects"], rows=2, seats=dict.fromkeys(seen["bulk effects"]["seats freed"], 1)
    )
    assert seen["user"] == 302 and not seen["user left"]
    expect(
        seen["user effects"], rows=2, seats=dict.fromkeys(seen["user effects"]["seats freed"], 1)
    )
    # what admin cannot do: delete an exam with bookings, or edit seats
    assert seen["exam with bookings delete"] == 403 and seen["exam still there"]
    assert seen["slot change allowed"] == 403 and seen["slot capacity"] == 2


def test_removal_on_the_instructor_pages(on_db):
    seen = on_db(scenarios.instructor_removal)
    assert seen["question"] == 200 and seen["question names the slot"]
    assert seen["unconfirmed"] == 200 and seen["booking after question"] == seen["slot"]
    assert seen["done"] == 302
    assert seen["other instructor"] == 404
    expect(seen["effects"], rows=1, seats={seen["slot"]: 1})
    assert seen["rebook refused"] == "NotFound"  # no roster row, no booking
