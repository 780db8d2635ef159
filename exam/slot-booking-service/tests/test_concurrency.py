"""Many processes racing through booking.services on a real SQLite file and PostgreSQL.

Each process has its own Django and database connection and waits at a barrier, so the
requests overlap. After every race the invariants are checked from the database: no slot over
capacity, the counter equals the active bookings, no student with two active bookings, and no
request ended in anything but a booking or a clear refusal (no "database is locked", no
deadlock, no IntegrityError leaking out).
"""

from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from tests import workers
from tests.conftest import BACKENDS, assert_consistent

PROCESSES = 8


class Racers:
    def __init__(self, database_url: str):
        context = get_context("spawn")
        self.pool = ProcessPoolExecutor(
            PROCESSES,
            mp_context=context,
            initializer=workers.init,
            initargs=(database_url, context.Barrier(PROCESSES)),
        )

    def call(self, function, *args, **kwargs):
        return self.pool.submit(function, *args, **kwargs).result(timeout=180)

    def all(self, function, per_process_args: list[tuple]) -> list:
        """Run ``function`` once in each process, at the same moment; results in order."""
        assert len(per_process_args) == PROCESSES
        futures = [self.pool.submit(function, *args) for args in per_process_args]
        return [f.result(timeout=180) for f in futures]


@pytest.fixture(scope="module", params=BACKENDS)
def racers(request):
    url = request.getfixturevalue(f"{request.param}_databases").fresh()
    racers = Racers(url)
    yield racers
    racers.pool.shutdown()


def chunks(items: list, n: int) -> list[list]:
    return [items[i::n] for i in range(n)]


@pytest.mark.parametrize("round_", range(3))
def test_80_students_race_for_3_seats(racers, round_):
    seed = racers.call(workers.seed, slots=1, capacity=3, students=80)
    slot = seed["slots"][0]
    ops = [[("book", e, slot) for e in part] for part in chunks(seed["students"], PROCESSES)]
    outcomes = Counter(
        o for result in racers.all(workers.race, [(o,) for o in ops]) for o in result
    )
    assert outcomes == {"booked": 3, "Unavailable": 77}
    state = racers.call(workers.state, seed["exam"])
    assert state["slots"][slot] == (3, 3, 3)
    assert_consistent(state)


def test_double_submits_are_idempotent(racers):
    """Pairs of processes submit the same students at the same time: half of the students to
    the same slot twice (one booking, one 'repeat'), half to two different slots (one booking,
    one refusal). Every student ends with exactly one booking."""
    seed = racers.call(workers.seed, slots=4, capacity=40, students=40)
    a, b, c, d = seed["slots"]
    groups = chunks(seed["students"], PROCESSES // 2)
    ops = []
    for index, group in enumerate(groups):
        same = index % 2 == 0
        ops.append([("book", e, a if same else b) for e in group])
        ops.append([("book", e, a if same else c) for e in group])
    results = racers.all(workers.race, [(o,) for o in ops])
    for index in range(0, PROCESSES, 2):
        pairs = Counter(frozenset(p) for p in zip(results[index], results[index + 1], strict=True))
        expected = {"booked", "repeat"} if index % 4 == 0 else {"booked", "AlreadyBooked"}
        assert pairs == {frozenset(expected): len(results[index])}, pairs
    state = racers.call(workers.state, seed["exam"])
    assert set(state["active_by_student"].values()) == {1}
    assert state["slots"][d] == (0, 40, 0)
    assert_consistent(state)


def test_opposite_moves_never_deadlock(racers):
    """Half the processes move students from slot X to Y while the other half move students
    from Y to X: the textbook deadlock, prevented by locking slot rows in id order."""
    seed = racers.call(workers.seed, slots=2, capacity=30, students=40)
    x, y = seed["slots"]
    students = seed["students"]
    in_x, in_y = students[:20], students[20:]
    racers.call(workers.run, [("book", e, x) for e in in_x] + [("book", e, y) for e in in_y])
    half = PROCESSES // 2
    ops = [[("move", e, y) for e in part] for part in chunks(in_x, half)]
    ops += [[("move", e, x) for e in part] for part in chunks(in_y, half)]
    outcomes = Counter(
        o for result in racers.all(workers.race, [(o,) for o in ops]) for o in result
    )
    assert set(outcomes) <= {"moved", "Unavailable"}, outcomes
    assert outcomes["moved"] >= 20
    state = racers.call(workers.state, seed["exam"])
    assert set(state["active_by_student"].values()) == {1}  # a refused move keeps the old seat
    assert_consistent(state)


def test_churn_of_bookings_moves_and_cancellations(racers):
    seed = racers.call(workers.seed, slots=10, capacity=3, students=64)
    parts = chunks(seed["students"], PROCESSES)
    results = racers.all(workers.churn, [(p, seed["slots"], i) for i, p in enumerate(parts)])
    outcomes = Counter(o for result in results for o in result)
    allowed = {"booked", "moved", "cancelled", "repeat", "Unavailable", "NotFound"}
    assert set(outcomes) <= allowed, outcomes
    state = racers.call(workers.state, seed["exam"])
    assert sum(booked for booked, _, _ in state["slots"].values()) > 0
    assert_consistent(state)


def test_removals_race_with_bookings(racers):
    """Half the processes book students while the other half take the same students off the
    roster (``services.remove_student``), in the same order, at the same moment. Whichever
    wins, no seat is left counted for a removed student and no request fails unexplained."""
    seed = racers.call(workers.seed, slots=2, capacity=40, students=48)
    a, b = seed["slots"]
    half = PROCESSES // 2
    parts = chunks(seed["students"], half)
    ops = [[("book", e, a if e % 2 else b) for e in part] for part in parts]
    ops += [[("remove", e, None) for e in part] for part in parts]
    outcomes = Counter(
        o for result in racers.all(workers.race, [(o,) for o in ops]) for o in result
    )
    assert set(outcomes) <= {"booked", "removed", "gone", "NotFound", "Changed"}, outcomes
    assert outcomes["removed"] + outcomes["Changed"] == 48  # every removal ran or was refused
    state = racers.call(workers.state, seed["exam"])
    assert state["students"] == 48 - outcomes["removed"]
    assert_consistent(state)
