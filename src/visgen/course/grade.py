"""``visgen grade hwN NOTEBOOK``: score a submitted notebook against the hidden tests.

The grader never executes the notebook and never lets its code near the hidden tests. It
keeps the notebook's imports, functions, classes and UPPERCASE constants
(:mod:`visgen.course.extract`); three processes do the rest:

* this one (the report), which starts
* the **runner** (:mod:`visgen.course._runner`, trusted): it imports the hidden tests and
  runs every check, on values that came back from the sandbox, against references it
  computes itself; and
* the **sandbox** (:mod:`visgen.course.sandbox`, started by the runner): the only process
  that runs the notebook's code, as an unprivileged user in its own namespaces (no network,
  no other processes, a file system with the library but without the instructor's tree),
  with limits on time, memory, processes, file size and output. It answers the runner's
  calls over a socket with plain data (:mod:`visgen.course.rpc`): nothing it prints, writes
  or sends can claim a pass.

Each test has a time limit: the sandbox's alarm stops the notebook's code (the reason names
the line), the runner's alarm stops the test, and this process kills a runner that stops
responding and starts a fresh one for the remaining tests. A rubric item earns its points
when all of its tests pass; every lost point comes with a reason. A test ends as
``passed``, ``failed`` (the notebook's answer, exception or time), ``no grade`` (the
notebook's process died or broke the protocol, or loading failed: no points, never a crash)
or ``error`` (the grader's own reference failed: tell the instructor). The points table is
printed, or JSON with ``--json``; the report never holds hidden-test source.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from visgen.course.homework import Homework, RubricItem, load_homework
from visgen.course.notebook import notebook_code_cells

__all__ = [
    "DESCRIPTION",
    "ItemResult",
    "Report",
    "TestResult",
    "add_arguments",
    "grade",
    "main",
    "run",
]

DESCRIPTION = (
    "Score a homework notebook: load only its imports, functions, classes and UPPERCASE "
    "constants (no cell runs), run the hidden tests against them in a sandbox, and print "
    "a points table with a reason for every lost point. Needs the instructor's tree "
    "(--instructor), where the hidden tests are."
)

FILE_BYTES = 256 * 2**20  # largest file the submission may write


@dataclass
class TestResult:
    name: str
    status: str  # passed | failed | no grade | error
    reason: str | None = None
    seconds: float = 0.0
    printed: int | None = None  # characters printed, when more than the cap

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class ItemResult:
    item: RubricItem
    tests: list[TestResult]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tests)

    @property
    def status(self) -> str:
        for status in ("error", "no grade", "failed"):
            if any(t.status == status for t in self.tests):
                return status
        return "passed"

    @property
    def points(self) -> float:
        return self.item.points if self.passed else 0.0

    @property
    def reasons(self) -> list[str]:
        return [f"{t.name}: {t.reason}" for t in self.tests if not t.passed]


@dataclass
class Report:
    homework: Homework
    notebook: str
    items: list[ItemResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    isolation: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        return sum(r.points for r in self.items)

    @property
    def max_score(self) -> float:
        return self.homework.auto_points

    @property
    def grader_errors(self) -> list[str]:
        return [r.item.id for r in self.items if r.status == "error"]

    @property
    def sandbox(self) -> str:
        """One line on how the notebook's code was isolated."""
        iso = self.isolation
        if not iso:
            return "not started"
        if iso.get("namespaces"):
            return (
                f"{iso.get('user')}; own mount, PID, network, IPC and UTS namespaces; "
                "network none; file system: the library only"
            )
        return (
            "WEAK: the notebook ran as the grader's own user without namespaces"
            f" ({iso.get('why', 'unavailable')}); limits and a private working folder only"
        )

    def as_dict(self) -> dict:
        return {
            "homework": self.homework.name,
            "title": self.homework.title,
            "notebook": self.notebook,
            "score": self.score,
            "max_score": self.max_score,
            "items": [
                {
                    "id": r.item.id,
                    "title": r.item.title,
                    "functions": list(r.item.functions),
                    "points": r.points,
                    "max_points": r.item.points,
                    "passed": r.passed,
                    "status": r.status,
                    "tests": [{k: v for k, v in vars(t).items() if v is not None} for t in r.tests],
                }
                for r in self.items
            ],
            "manual": [
                {"id": m.id, "title": m.title, "max_points": m.points} for m in self.homework.manual
            ],
            "notes": self.notes,
            "grader_errors": self.grader_errors,
            "sandbox": self.sandbox,
            "seconds": round(self.seconds, 2),
        }

    def format_table(self) -> str:
        hw = self.homework
        width = max(
            [len(r.item.title) for r in self.items] + [len(m.title) for m in hw.manual] + [24]
        )
        marks = {"passed": "ok", "failed": "LOST", "no grade": "NO GRADE", "error": "ERROR"}
        lines = [f"{hw.name}: {hw.title} — {self.notebook}", ""]
        for r in self.items:
            lines.append(
                f"  {r.item.id:<5} {r.item.title:<{width}}  {_pts(r.points):>4} / "
                f"{_pts(r.item.points):<4} {marks[r.status]}"
            )
            lines += [f"          - {reason}" for reason in r.reasons]
        lines.append(
            f"  {'':<5} {'total (autograded)':<{width}}  {_pts(self.score):>4} / {_pts(self.max_score):<4}"
        )
        if hw.manual:
            doc = f"{hw.document}.pdf" if hw.document else "the notebook"
            lines += ["", f"  graded by hand ({_pts(hw.manual_points)} points, see {doc}):"]
            lines += [
                f"  {m.id:<5} {m.title:<{width}}  {'':>4}   {_pts(m.points):<4}" for m in hw.manual
            ]
        if self.grader_errors:
            lines += [
                "",
                f"GRADER ERROR in {', '.join(self.grader_errors)}: the grader's own reference "
                "failed; these points are not the notebook's fault — tell the instructor.",
            ]
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        lines += ["", f"sandbox: {self.sandbox}"]
        return "\n".join(lines)


def _pts(x: float) -> str:
    return f"{x:g}"


_EVENTS = ("isolation", "loaded", "start", "result")
_STATUSES = ("passed", "failed", "no grade", "error")


class _Runner:
    """One test-runner process (trusted: it holds the hidden tests) and its event pipe."""

    def __init__(self, spec_path: Path, log_path: Path):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env.update(
            VISGEN_FAST="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            MPLBACKEND="Agg",
            PYTHONDONTWRITEBYTECODE="1",
        )
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "visgen.course._runner", str(spec_path), str(write_fd)],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        os.close(write_fd)
        self.fd, self.buffer = read_fd, b""

    def next_event(self, deadline: float) -> dict | str:
        """The next event (a dict), or "eof" / "timeout" / "malformed"."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return "timeout"
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return "eof"
            self.buffer += chunk
            if len(self.buffer) > 1 << 20:
                return "malformed"
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "malformed"
        if not isinstance(event, dict) or event.get("event") not in _EVENTS:
            return "malformed"
        return event

    def stop(self) -> str:
        """Kill the runner (its sandbox dies with it); how the runner ended."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        os.close(self.fd)
        if code < 0:
            try:
                return f"killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"


def _test_limit(hw: Homework, item: RubricItem) -> float:
    return float(item.time_s if item.time_s is not None else hw.time_s)


def _result(name: str, event: dict) -> TestResult | None:
    """A result event checked field by field (None if anything is off)."""
    status, reason = event.get("status"), event.get("reason")
    seconds, printed = event.get("seconds", 0.0), event.get("printed")
    if status not in _STATUSES or not (reason is None or isinstance(reason, str)):
        return None
    if not isinstance(seconds, int | float) or not (printed is None or isinstance(printed, int)):
        return None
    if (status == "passed") != (reason is None):
        return None
    return TestResult(name, status, reason, float(seconds), printed)


def _stage_inputs(hw: Homework, notebook: Path, folder: Path) -> Path | None:
    """Copy the input files the homework allows (trained weights, …) for the sandbox."""
    copied, base = False, notebook.parent.resolve()
    for pattern in hw.inputs:
        for src in notebook.parent.glob(pattern):
            rel = src.relative_to(notebook.parent)
            if not src.is_file() or src.resolve() != base / rel:  # no link leads elsewhere
                continue
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
            copied = True
    if not copied:
        return None
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def _run_tests(hw: Homework, notebook: Path, cells: list[str]) -> tuple[dict, list[str], dict]:
    """Run every rubric test; returns ({test: TestResult}, load notes, isolation)."""
    limits = {t: _test_limit(hw, it) for it in hw.items for t in it.tests}
    pending = list(limits)
    results: dict[str, TestResult] = {}
    notes: list[str] = []
    isolation: dict = {}
    with tempfile.TemporaryDirectory(prefix="visgen-grade-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o700)
        inputs = _stage_inputs(hw, notebook, root / "inputs")
        failures = 0
        while pending:
            spec = {
                "tests_file": str(hw.tests_path),
                "cells": cells,
                "tests": [{"name": t, "time_s": limits[t]} for t in pending],
                "memory_mb": hw.memory_mb,
                "file_bytes": FILE_BYTES,
                "cpu_s": int(sum(limits.values()) * 2 + hw.load_time_s * 4 + 120),
                "statement_time_s": hw.statement_time_s,
                "load_time_s": hw.load_time_s,
                "scratch": str(root / f"run{failures}"),
                "inputs": str(inputs) if inputs else None,
                "protect": [str(hw.dir.parent), str(hw.dir.parent.parent), tmp, str(Path.home())],
            }
            spec_path = root / "spec.json"
            spec_path.write_text(json.dumps(spec), encoding="utf-8")
            runner = _Runner(spec_path, root / "runner.log")
            current = None
            deadline = time.monotonic() + hw.load_time_s + 120
            while pending:
                event = runner.next_event(deadline)
                if not isinstance(event, dict):
                    break
                kind = event["event"]
                if kind == "isolation" and isinstance(event.get("isolation"), dict):
                    isolation = isolation or event["isolation"]
                elif kind == "loaded" and isinstance(event.get("notes"), list):
                    if not notes:
                        notes = [n for n in event["notes"] if isinstance(n, str)]
                elif kind == "start" and current is None and event.get("name") == pending[0]:
                    current = pending[0]
                    limit = limits[current]
                    deadline = time.monotonic() + limit * 1.25 + hw.load_time_s + 60
                elif kind == "result" and current is not None and event.get("name") == current:
                    result = _result(current, event)
                    if result is None:
                        event = "malformed"
                        break
                    results[current] = result
                    pending.remove(current)
                    current = None
                else:
                    event = "malformed"
                    break
            ending = runner.stop()
            if not pending:
                break
            failures += 1
            why = {
                "timeout": "stopped responding",
                "malformed": "sent a malformed event",
            }.get(event, f"died ({ending})")
            tail = _log_tail(root / "runner.log")
            why = f"the grader's test process {why}" + (f": {tail}" if tail else "")
            if current is not None:
                results[current] = TestResult(current, "no grade", why)
                pending.remove(current)
            elif failures >= 2:  # it cannot even start: give up on the rest
                for name in pending:
                    results[name] = TestResult(name, "no grade", why)
                pending = []
    return results, notes, isolation


def _log_tail(path: Path, n: int = 400) -> str:
    try:
        text = path.read_bytes()[-n:].decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return text.split("\n")[-1] if text else ""


def grade(homework: str | Homework, notebook: str | Path, *, instructor=None) -> Report:
    """Grade ``notebook`` (``.ipynb``, or a jupytext ``.py``) for ``homework`` (``"hw1"``).

    ``instructor``: the instructor's repository or its ``solutions/`` folder (default: this
    repository's); the hidden tests live there and nowhere else.
    """
    start = time.monotonic()
    hw = homework if isinstance(homework, Homework) else load_homework(homework, instructor)
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    isolation: dict = {}
    try:
        cells = notebook_code_cells(notebook)
    except ValueError as err:
        results = {
            t: TestResult(t, "failed", f"the notebook could not be read: {err}")
            for it in hw.items
            for t in it.tests
        }
        notes = [str(err)]
    else:
        results, notes, isolation = _run_tests(hw, notebook, cells)
    items = [ItemResult(it, [results[t] for t in it.tests]) for it in hw.items]
    return Report(hw, notebook.name, items, notes, time.monotonic() - start, isolation)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("homework", help="homework name, e.g. hw1")
    parser.add_argument("notebook", type=Path, help="the submitted notebook (.ipynb)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--instructor",
        type=Path,
        default=None,
        metavar="PATH",
        help="the instructor's repository (or its solutions/ folder), where the hidden "
        "tests are (default: this repository)",
    )


def run(args: argparse.Namespace) -> int:
    """Grade and print: exit code 0 when scored, 3 when the grader itself failed somewhere."""
    try:
        report = grade(args.homework, args.notebook, instructor=args.instructor)
    except (FileNotFoundError, ValueError) as err:
        print(f"visgen grade: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.format_table())
    return 3 if report.grader_errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visgen.course.grade", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
