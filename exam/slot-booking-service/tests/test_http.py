"""End to end over HTTP: gunicorn with 4 worker processes, 1000 concurrent booking requests
(64 in flight) from 1000 different students for one 3-seat slot."""

from collections import Counter
from functools import partial

import pytest

from harness.load import request, run_all
from harness.seed import seed_database
from harness.server import Gunicorn
from tests.conftest import BACKENDS, assert_consistent, database_state


@pytest.mark.parametrize("vendor", BACKENDS)
def test_1000_concurrent_bookings_for_3_seats(vendor, databases_for, static_root):
    url = databases_for(vendor).fresh()
    seeded = seed_database(url, {"slots": 1, "capacity": 3, "students": 1000, "auth": "token"})
    exam, slot = seeded["exam"], seeded["slots"][0]
    with Gunicorn(url, static_root=static_root, workers=4) as server:
        calls = [
            partial(
                request,
                server.url,
                "POST",
                f"/api/exams/{exam}/booking",
                headers={"Authorization": f"Bearer {s['credential']}"},
                body={"slot_id": slot},
            )
            for s in seeded["students"]
        ]
        responses = run_all(calls, concurrency=64)
        log = server.log_text()
    statuses = Counter(r.status for r in responses)
    assert statuses == {201: 3, 409: 997}, (statuses, {r.error for r in responses}, log)
    refusals = Counter(r.json()["detail"] for r in responses if r.status == 409)
    assert refusals == {"This slot is full. Pick another one.": 997}
    state = database_state(url, exam)
    assert state["slots"][slot] == (3, 3, 3)
    assert_consistent(state)
