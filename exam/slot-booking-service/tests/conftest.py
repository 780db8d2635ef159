"""Shared fixtures. In-process tests use pytest-django (SQLite in memory); the multi-process,
HTTP, crash and browser tests use real databases (a SQLite file, and a throwaway PostgreSQL
cluster) through ``harness``."""

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
from django.test import Client
from django.utils import timezone

from harness import factories
from harness.databases import PostgresDatabases, SqliteDatabases, manage
from harness.pg import PostgresMissing
from tests import scenarios, workers

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- in-process (pytest-django) -------------------------------------------------------------


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def instructor(db):
    return factories.make_instructor()


@pytest.fixture
def exam(instructor, now):
    return factories.make_exam(instructor, now=now)


@pytest.fixture
def slots(exam):
    return factories.make_slots(exam, 3, capacity=2)


@pytest.fixture
def students(exam):
    return factories.make_students(exam, 4)


@pytest.fixture
def enrollment(students):
    return students[0]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def student_client(enrollment):
    return client_for(enrollment.student)


@pytest.fixture
def staff_client(instructor):
    return client_for(instructor)


# --- real databases for other processes -------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_databases():
    databases = SqliteDatabases()
    yield databases
    databases.close()


@pytest.fixture(scope="session")
def postgresql_databases():
    if os.environ.get("SKIP_POSTGRES") == "1":
        pytest.skip("SKIP_POSTGRES=1 was set explicitly")
    try:
        databases = PostgresDatabases()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield databases
    databases.close()


@pytest.fixture
def databases_for(request):
    """``databases_for("sqlite")`` or ``("postgresql")``: the session's template databases."""

    def get(vendor: str):
        return request.getfixturevalue(f"{vendor}_databases")

    return get


class ScenarioProcess:
    """One spawned process with Django on a real database; runs ``tests.scenarios``."""

    def __init__(self, database_url: str, vendor: str):
        self.vendor = vendor
        self.pool = ProcessPoolExecutor(
            1,
            mp_context=get_context("spawn"),
            initializer=scenarios.init,
            initargs=(database_url,),
        )

    def __call__(self, scenario, *args):
        return self.pool.submit(scenario, *args).result(timeout=300)


@pytest.fixture(scope="module", params=BACKENDS)
def on_db(request):
    """Run a scenario of ``tests.scenarios`` on a fresh SQLite file, then on PostgreSQL."""
    url = request.getfixturevalue(f"{request.param}_databases").fresh()
    process = ScenarioProcess(url, request.param)
    yield process
    process.pool.shutdown()


@pytest.fixture(scope="session")
def static_root():
    """collectstatic once for the gunicorn servers (production storage with a manifest)."""
    root = tempfile.mkdtemp(prefix="booking-static-")
    manage("collectstatic", "--noinput", database_url="sqlite://:memory:", STATIC_ROOT=root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def database_state(database_url: str, exam_id: int) -> dict:
    """``workers.state`` read by a fresh process (counters, bookings, students)."""
    with ProcessPoolExecutor(
        1, mp_context=get_context("spawn"), initializer=workers.init, initargs=(database_url,)
    ) as pool:
        return pool.submit(workers.state, exam_id).result(timeout=120)


def assert_consistent(state: dict) -> None:
    for slot_id, (booked, capacity, active) in state["slots"].items():
        assert booked == active, f"slot {slot_id}: counter {booked} != {active} bookings"
        assert booked <= capacity, f"slot {slot_id} overbooked: {booked} > {capacity}"
    assert state["students_with_two"] == 0
