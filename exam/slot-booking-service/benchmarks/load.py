"""Load run: booking opens and N signed-in students book at once.

The students (sessions, as after the emailed code) are modelled the way booking night goes:

1. before opening, every student opens the exam page (HTML) and reads the free seats
   (GET /api/exams/{id}/slots);
2. at opening, all of them book a random slot that had free seats (POST, the burst); one
   whose slot filled up meanwhile reads the seats again and picks another (up to 5 times);
3. then a share of them (--move-share) moves to another slot (PUT).

``--concurrency`` requests are in flight at a time, against gunicorn with ``--workers``
processes on a fresh database (SQLite file, or a throwaway PostgreSQL cluster). The load
generator runs on the same 2-core machine, so the numbers are conservative; the load average
before and after is recorded, since other processes on a shared machine slow everything.

    python -m benchmarks.load --db sqlite        (from the service folder; or: make bench)
    python -m benchmarks.load --db postgresql

Prints a summary and writes it as JSON to benchmarks/runs/<db>.json (atomically).
"""

import argparse
import datetime as dt
import json
import os
import platform
import random
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from harness.databases import PostgresDatabases, SqliteDatabases, manage
from harness.load import cpu_seconds, percentile, request, run_all
from harness.seed import seed_database
from harness.server import Gunicorn

RETRIES = 5


class Student:
    def __init__(self, base: str, exam: int, session: str, seed: int):
        self.base, self.exam, self.rng = base, exam, random.Random(seed)
        csrf = secrets.token_hex(16)
        self.read = {"Cookie": f"sessionid={session}; csrftoken={csrf}"}
        self.write = {**self.read, "X-CSRFToken": csrf}
        self.free: list[int] = []
        self.booked: int | None = None

    def call(self, log, kind, method, path, headers, body=None):
        response = request(self.base, method, path, headers=headers, body=body)
        log.append((kind, response.status, response.seconds))
        return response

    def look(self) -> list:
        log = []
        self.call(log, "exam page", "GET", f"/exams/{self.exam}/", self.read)
        self._read_seats(log)
        return log

    def _read_seats(self, log) -> None:
        slots = self.call(log, "slot list", "GET", f"/api/exams/{self.exam}/slots", self.read)
        self.free = [s["id"] for s in slots.json() if s["free"] > 0] if slots.status == 200 else []

    def book(self) -> list:
        log = []
        path = f"/api/exams/{self.exam}/booking"
        for attempt in range(RETRIES):
            if attempt:
                self._read_seats(log)
            if not self.free:
                break
            choice = self.rng.choice(self.free)
            response = self.call(log, "book", "POST", path, self.write, {"slot_id": choice})
            if response.status in (200, 201):
                self.booked = choice
                break
        return log

    def move(self) -> list:
        log = []
        others = [s for s in self.free if s != self.booked]
        if self.booked is not None and others:
            body = {"slot_id": self.rng.choice(others)}
            self.call(log, "move", "PUT", f"/api/exams/{self.exam}/booking", self.write, body)
        return log


def phase(name: str, calls, concurrency: int, server_pids) -> dict:
    """Run one phase; besides latencies, count the CPU time the server side (gunicorn workers,
    PostgreSQL) and this load generator used per request: unlike wall-clock numbers, these do
    not depend on what else runs on a shared machine."""
    cpu_before, client_before = cpu_seconds(server_pids()), time.process_time()
    started = time.perf_counter()
    logs = run_all(calls, concurrency)
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(server_pids()) - cpu_before
    client_cpu = time.process_time() - client_before
    by_kind, statuses = defaultdict(list), defaultdict(int)
    for entries in logs:
        for kind, status, seconds in entries:
            by_kind[kind].append(seconds)
            statuses[f"{kind} {status}"] += 1
    requests = sum(len(v) for v in by_kind.values())
    return {
        "phase": name,
        "requests": requests,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(requests / wall, 1),
        "server_cpu_ms_per_request": round(1000 * server_cpu / requests, 1),
        "client_cpu_ms_per_request": round(1000 * client_cpu / requests, 1),
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": {
            kind: {f"p{q}": round(1000 * percentile(values, q), 1) for q in (50, 95, 99)}
            for kind, values in sorted(by_kind.items())
        },
    }


def errors(phases: list[dict]) -> int:
    return sum(
        n
        for p in phases
        for key, n in p["statuses"].items()
        if key.endswith(" None") or key.rsplit(" ", 1)[1].startswith("5")
    )


def write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--students", type=int, default=500)
    parser.add_argument("--slots", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--move-share", type=float, default=0.2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    databases = SqliteDatabases() if args.db == "sqlite" else PostgresDatabases()
    static_root = tempfile.mkdtemp(prefix="booking-static-")
    load_before = os.getloadavg()
    try:
        manage(
            "collectstatic", "--noinput", database_url="sqlite://:memory:", STATIC_ROOT=static_root
        )
        url = databases.fresh()
        spec = {"slots": args.slots, "capacity": args.capacity, "students": args.students}
        seeded = seed_database(url, {**spec, "auth": "session"})
        with Gunicorn(url, static_root=static_root, workers=args.workers) as server:
            students = [
                Student(server.url, seeded["exam"], s["credential"], i)
                for i, s in enumerate(seeded["students"])
            ]
            movers = random.Random(0).sample(students, round(args.move_share * len(students)))
            pg = getattr(databases, "cluster", None)

            def server_pids():
                return server.worker_pids() + (pg.processes() if pg else [])

            phases = [
                phase("before opening", [s.look for s in students], args.concurrency, server_pids),
                phase("booking opens", [s.book for s in students], args.concurrency, server_pids),
                phase("moves", [s.move for s in movers], args.concurrency, server_pids),
            ]
        integrity = manage("check_integrity", database_url=url).strip()
    finally:
        databases.close()
        shutil.rmtree(static_root, ignore_errors=True)

    burst = phases[1]
    bookings = burst["statuses"].get("book 201", 0)
    result = {
        "database": args.db,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average before/after "
        f"{load_before[0]:.1f}/{os.getloadavg()[0]:.1f}",
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "bookings": bookings,
        "bookings_per_second": round(bookings / burst["wall_seconds"], 1),
        "booking_p95_ms": burst["latency_ms"]["book"]["p95"],
        "burst_cpu_ms_per_request": round(
            burst["server_cpu_ms_per_request"] + burst["client_cpu_ms_per_request"], 1
        ),
        "errors": errors(phases),
        "integrity": integrity,
        "phases": phases,
    }
    out = args.out or Path(__file__).resolve().parent / "runs" / f"{args.db}.json"
    write_atomically(out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
