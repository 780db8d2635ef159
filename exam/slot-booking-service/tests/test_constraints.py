"""The invariants are database constraints: direct writes that break them are refused, on
SQLite and on PostgreSQL, and the refusal names the constraint (services.constraint_name)."""

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from tests import workers
from tests.conftest import BACKENDS

EXPECTED = {
    "overbook": "slot_not_overbooked",
    "negative counter": "slot_not_overbooked",
    "negative capacity": "slot_capacity_not_negative",
    "end before start": "slot_time_order",
    "no place": "slot_has_place",
    "second active booking": "one_active_booking_per_student_per_exam",
}


def check(caught: dict[str, str]) -> None:
    assert {k: caught[k] for k in EXPECTED} == EXPECTED
    for change in ("audit update", "audit delete"):
        assert "the audit log is append-only" in caught[change]


@pytest.mark.parametrize("vendor", BACKENDS)
def test_constraints_refuse_invalid_writes(vendor, databases_for):
    url = databases_for(vendor).fresh()
    with ProcessPoolExecutor(
        1, mp_context=get_context("spawn"), initializer=workers.init, initargs=(url,)
    ) as pool:
        check(pool.submit(workers.constraint_violations).result(timeout=120))
