"""``visgen grade hwN NOTEBOOK``: score a submitted notebook against the hidden tests.

The grader never executes the notebook. It keeps the notebook's imports, functions, classes
and UPPERCASE constants (:mod:`visgen.course.extract`) and runs the homework's hidden tests
against them in a child process (:mod:`visgen.course._worker`) that has

* a working directory in a fresh temporary folder (the tests and the worker's files live
  outside it and are rewritten before every start, so a submission that deletes files
  cannot break the grading),
* a per-test time limit: a soft one (SIGALRM inside the worker) and a hard one (the parent
  kills the worker's process group and restarts it for the remaining tests),
* an address-space limit (``limits.memory_mb``), a file-size limit, and a cap on what a
  test may print (the rest is counted and dropped).

A rubric item earns its points when all of its tests pass; every lost point comes with the
reason of the first failing test. The points table is printed, or JSON with ``--json``.
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
    "constants (no cell runs), run the hidden tests with time and memory limits, and print "
    "a points table with a reason for every lost point."
)

OUTPUT_CHARS = 64 * 1024  # what one test may print before the rest is dropped
FILE_BYTES = 256 * 2**20  # largest file the submission may write


@dataclass
class TestResult:
    name: str
    passed: bool
    reason: str | None = None
    seconds: float = 0.0
    printed: int | None = None  # characters printed, when more than the cap


@dataclass
class ItemResult:
    item: RubricItem
    tests: list[TestResult]

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tests)

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

    @property
    def score(self) -> float:
        return sum(r.points for r in self.items)

    @property
    def max_score(self) -> float:
        return self.homework.auto_points

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
                    "tests": [{k: v for k, v in vars(t).items() if v is not None} for t in r.tests],
                }
                for r in self.items
            ],
            "manual": [
                {"id": m.id, "title": m.title, "max_points": m.points} for m in self.homework.manual
            ],
            "notes": self.notes,
            "seconds": round(self.seconds, 2),
        }

    def format_table(self) -> str:
        hw = self.homework
        width = max(
            [len(r.item.title) for r in self.items] + [len(m.title) for m in hw.manual] + [24]
        )
        lines = [f"{hw.name}: {hw.title} — {self.notebook}", ""]
        for r in self.items:
            mark = "ok" if r.passed else "LOST"
            lines.append(
                f"  {r.item.id:<5} {r.item.title:<{width}}  {_pts(r.points):>4} / {_pts(r.item.points):<4} {mark}"
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
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


def _pts(x: float) -> str:
    return f"{x:g}"


class _Worker:
    """One worker process and its event pipe."""

    def __init__(self, spec_path: Path, log_path: Path, workdir: Path):
        read_fd, write_fd = os.pipe()
        env = dict(os.environ)
        env.update(
            VISGEN_FAST="1",
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
            MPLBACKEND="Agg",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONHASHSEED="0",
            PYTHONUNBUFFERED="1",
        )
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "visgen.course._worker", str(spec_path), str(write_fd)],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        os.close(write_fd)
        self.fd, self.buffer = read_fd, b""

    def next_event(self, deadline: float) -> dict | str:
        """The next JSON event, or "eof" / "timeout"."""
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
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return "eof"

    def stop(self) -> str:
        """Kill the process group; return how the worker ended."""
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


def _prepare(root: Path, hw: Homework, notebook: Path, cells: list[str], tests: list[dict]):
    """(Re)write the harness files and the working directory; return (spec, log, workdir)."""
    harness, work = root / "harness", root / "work"
    harness.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    tests_file = harness / "tests_hidden.py"
    tests_file.write_text(hw.tests_path.read_text(encoding="utf-8"), encoding="utf-8")
    for pattern in hw.inputs:
        for src in notebook.parent.glob(pattern):
            if src.is_file():
                dst = work / src.relative_to(notebook.parent)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
    spec = {
        "cells": cells,
        "tests_file": str(tests_file),
        "tests": tests,
        "workdir": str(work),
        "memory_mb": hw.memory_mb,
        "file_bytes": FILE_BYTES,
        "output_chars": OUTPUT_CHARS,
        "statement_time_s": hw.statement_time_s,
    }
    spec_path = harness / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return spec_path, harness / "worker.log", work


def _log_tail(path: Path, n: int = 400) -> str:
    try:
        text = path.read_bytes()[-n:].decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return text.split("\n")[-1] if text else ""


def _run_tests(hw: Homework, notebook: Path, cells: list[str]) -> tuple[dict, list[str]]:
    """Run every rubric test; returns ({test name: TestResult}, load notes)."""
    limits = {t: _test_limit(hw, it) for it in hw.items for t in it.tests}
    pending = list(limits)
    results: dict[str, TestResult] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="visgen-grade-") as tmp:
        root = Path(tmp)
        while pending:
            spec_path, log_path, work = _prepare(
                root, hw, notebook, cells, [{"name": t, "time_s": limits[t]} for t in pending]
            )
            worker = _Worker(spec_path, log_path, work)
            current, loaded = None, False
            deadline = time.monotonic() + hw.load_time_s
            while True:
                event = worker.next_event(deadline)
                if isinstance(event, dict) and event.get("event") == "loaded":
                    loaded = True
                    if not notes:
                        notes += event.get("notes", [])
                elif isinstance(event, dict) and event.get("event") == "start":
                    current = event["name"]
                    limit = limits[current]
                    deadline = time.monotonic() + limit + 2 + 0.25 * limit
                elif isinstance(event, dict) and event.get("event") == "result":
                    name = event["name"]
                    results[name] = TestResult(
                        name,
                        bool(event["passed"]),
                        event.get("reason"),
                        float(event.get("seconds", 0.0)),
                        event.get("printed"),
                    )
                    pending.remove(name)
                    current = None
                else:
                    break
            ending = worker.stop()
            if event == "timeout" and current:
                why = f"took longer than {limits[current]:g} s (the time limit of this test)"
            elif event == "timeout" and not loaded:
                why = f"loading the notebook's definitions took longer than {hw.load_time_s:g} s"
            else:
                tail = _log_tail(log_path)
                why = f"the grading process died ({ending})" + (f": {tail}" if tail else "")
            if current is not None:
                results[current] = TestResult(current, False, why)
                pending.remove(current)
            elif pending and not loaded:
                for name in pending:
                    results[name] = TestResult(name, False, f"loading the notebook failed: {why}")
                pending = []
            elif pending:  # died between tests: retry the rest once more, then give up
                name = pending.pop(0)
                results[name] = TestResult(name, False, why)
    return results, notes


def grade(homework: str | Homework, notebook: str | Path, *, solutions=None) -> Report:
    """Grade ``notebook`` (``.ipynb``, or a jupytext ``.py``) for ``homework`` (``"hw1"``)."""
    start = time.monotonic()
    hw = homework if isinstance(homework, Homework) else load_homework(homework, solutions)
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist")
    try:
        cells = notebook_code_cells(notebook)
    except ValueError as err:
        results = {
            t: TestResult(t, False, f"the notebook could not be read: {err}")
            for it in hw.items
            for t in it.tests
        }
        notes = [str(err)]
    else:
        results, notes = _run_tests(hw, notebook, cells)
    items = [ItemResult(it, [results[t] for t in it.tests]) for it in hw.items]
    return Report(hw, notebook.name, items, notes, time.monotonic() - start)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("homework", help="homework name, e.g. hw1")
    parser.add_argument("notebook", type=Path, help="the submitted notebook (.ipynb)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--solutions",
        type=Path,
        default=None,
        help="the solutions/ folder with the hidden tests (default: the repository's)",
    )


def run(args: argparse.Namespace) -> int:
    """Grade and print; exit code 0 whenever the notebook was scored."""
    try:
        report = grade(args.homework, args.notebook, solutions=args.solutions)
    except (FileNotFoundError, ValueError) as err:
        print(f"visgen grade: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.format_table())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visgen.course.grade", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
