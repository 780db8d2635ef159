"""Timing small CPU jobs side by side on a machine that other jobs share, and recording which
machine and how busy it was.

A call that lasts milliseconds is moved by one busy moment of the machine, and a slow phase of
it (another job starting) would land on whichever job happens to run then. So every job runs
once per round, the rounds interleave the jobs, and each job's time is the median over rounds:
a busy moment then costs every job alike, and the ratios between jobs hold.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from visgen._checks import check_positive

__all__ = ["Timing", "interleaved_medians", "load_average", "machine"]


class Timing(NamedTuple):
    """Median seconds of one job: ``cpu`` (this thread's CPU time) and ``wall`` (clock)."""

    cpu: float
    wall: float


def interleaved_medians(jobs: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, Timing]:
    """Run every job of ``jobs`` once per round, ``rounds`` rounds; each job's median
    :class:`Timing`. CPU time is :func:`time.thread_time`: the job's own work, whatever else runs."""
    check_positive(rounds, "rounds", integer=True)
    if not jobs:
        raise ValueError("jobs must name at least one job")
    cpu = {name: [] for name in jobs}
    wall = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            c, w = time.thread_time(), time.perf_counter()
            job()
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
    return {n: Timing(statistics.median(cpu[n]), statistics.median(wall[n])) for n in jobs}


def machine() -> str:
    """The CPU model and the logical CPUs, as benchmarks record them: "AMD EPYC … (2 logical CPUs)"."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)  # fmt: skip
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} logical CPUs)"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, "1.0 / 1.2 / 1.5": how busy the machine was."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())
