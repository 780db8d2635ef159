"""Grading time of an honest solution: the sandboxed grader against the grader it replaced.

    .venv/bin/python benchmarks/grading.py                 # every homework, baseline = main
    .venv/bin/python benchmarks/grading.py hw1 --baseline 4ae045c --repeat 2

For each homework the solution notebook (built from this checkout's source) is graded twice in
alternation: by this checkout's grader (runner + sandbox) and by the grader of ``--baseline``
(a git commit; its ``src/`` and ``solutions/`` extracted with ``git archive`` into a temporary
folder and run with this virtual environment's Python, so only the grader and the hidden tests
differ). Each run is a fresh ``python -m visgen.course.grade ... --json`` process; its CPU
time is user + system of it and everything it started (runner, sandbox), which is what a
loaded machine cannot inflate; wall time is printed next to the load average. With
``--repeat N`` the smallest of N runs is kept. One thread per process (``VISGEN_FAST=1``,
``OMP_NUM_THREADS=1``: the grader's own settings).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from visgen.course.build import homework_notebook
from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.notebook import write_notebook
from visgen.timing import machine

ROOT = repo_root()


def _extract(ref: str, into: Path) -> str:
    """``src/`` and ``solutions/`` of commit ``ref`` into ``into``; the full commit hash."""
    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "src", "solutions"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def _grade(command: list[str], env: dict) -> tuple[float, float, dict]:
    """(CPU seconds of the process tree, wall seconds, the JSON report)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{' '.join(command)} failed: {out.stderr[-2000:]}")
    return cpu, wall, json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("homeworks", nargs="*", help="default: all")
    parser.add_argument("--baseline", default="main", help="git commit of the old grader")
    parser.add_argument("--repeat", type=int, default=1, help="runs per grader (min kept)")
    args = parser.parse_args(argv)
    names = args.homeworks or list_homeworks()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory(prefix="visgen-bench-") as tmp:
        old = Path(tmp) / "baseline"
        commit = _extract(args.baseline, old)
        old_env = {**env, "PYTHONPATH": str(old / "src")}
        for name in names:
            hw = load_homework(name)
            notebook = Path(tmp) / name / f"{hw.notebook}.ipynb"
            write_notebook(homework_notebook(hw, starter=False), notebook)
            new_cmd = [sys.executable, "-m", "visgen.course.grade", name, str(notebook), "--json"]
            old_cmd = new_cmd + ["--solutions", str(old / "solutions")]
            runs = {"old": [], "new": []}
            for _ in range(args.repeat):
                runs["old"].append(_grade(old_cmd, old_env))
                runs["new"].append(_grade(new_cmd, env))
            best = {k: min(v, key=lambda r: r[0]) for k, v in runs.items()}
            rows.append((name, best["old"], best["new"]))
            print(
                f"{name}: CPU {best['old'][0]:.1f} s → {best['new'][0]:.1f} s "
                f"({best['new'][0] / best['old'][0]:.2f}×), scores "
                f"{best['old'][2]['score']:g} → {best['new'][2]['score']:g} / "
                f"{best['new'][2]['max_score']:g}",
                flush=True,
            )
    print(f"\nbaseline {commit[:12]} ({args.baseline}); {machine()}; load {os.getloadavg()[0]:.1f}")
    print(
        "\n| homework | old grader CPU s (score) | sandboxed CPU s (score) | ratio | wall old → new s |"
    )
    print("|---|---:|---:|---:|---|")
    total_old = total_new = 0.0
    for name, (c_old, w_old, r_old), (c_new, w_new, r_new) in rows:
        total_old, total_new = total_old + c_old, total_new + c_new
        print(
            f"| {name} | {c_old:.1f} ({r_old['score']:g}/{r_old['max_score']:g}) | "
            f"{c_new:.1f} ({r_new['score']:g}/{r_new['max_score']:g}) | {c_new / c_old:.2f}× | "
            f"{w_old:.0f} → {w_new:.0f} |"
        )
    print(f"| all | {total_old:.1f} | {total_new:.1f} | {total_new / total_old:.2f}× | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
