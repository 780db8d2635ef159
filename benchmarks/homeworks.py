"""Run time of every homework's solution notebook: CPU and wall time, with the load average.

CI checks that each solution notebook runs end to end with ``VISGEN_FAST=1`` and that the
grader gives it full marks; it never times it (CI machines differ: AMD/Intel, idle/loaded).
The times live here, in BENCHMARKS.md and in the homework READMEs
(``python -m visgen.course.build --measure full|fast hwN`` records the README's numbers).

CPU time is the kernel process's user + system time (it runs as a child process and is
reaped when the notebook ends) plus this process's; on a shared machine it is the number to
compare, the wall time next to the load average only says how busy the machine was.

    python benchmarks/homeworks.py                  # every homework, VISGEN_FAST=1
    python benchmarks/homeworks.py hw3 hw4 --full   # also at full budget (minutes each)
    python benchmarks/homeworks.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from visgen.course.build import _machine, execute_notebook
from visgen.course.homework import list_homeworks, load_homework
from visgen.course.notebook import build_notebook, read_source


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(name: str, fast: bool) -> dict:
    """Execute homework ``name``'s solution notebook once; its CPU and wall seconds."""
    hw = load_homework(name)
    nb = build_notebook(read_source(hw.source_path), starter=False)
    load_before = os.getloadavg()[0]
    cpu, wall = _cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"visgen-bench-{name}-") as tmp:
        execute_notebook(nb, tmp, fast=fast)
    return {
        "homework": name,
        "mode": "fast" if fast else "full",
        "cpu_s": round(_cpu_seconds() - cpu, 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("homeworks", nargs="*", help="e.g. hw1 hw3 (default: all)")
    p.add_argument("--full", action="store_true", help="also run at full budget")
    p.add_argument("--json", type=Path, help="also write the rows to this file")
    args = p.parse_args(argv)
    names = args.homeworks or list_homeworks()
    print(f"{_machine()}; trained-model cache {os.environ.get('VISGEN_CACHE', '(default)')}")
    print(
        f"{'homework':9} {'mode':5} {'CPU s':>8} {'wall s':>8}  load average (1 min) before → after"
    )
    rows = []
    for fast in (True, False) if args.full else (True,):
        for name in names:
            row = run(name, fast)
            rows.append(row)
            before, after = row["load_average"]
            print(
                f"{name:9} {row['mode']:5} {row['cpu_s']:8.1f} {row['wall_s']:8.1f}  "
                f"{before:.2f} → {after:.2f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": _machine(), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
