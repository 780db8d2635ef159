"""Timing small CPU jobs side by side on a machine that other jobs share.

A call that lasts milliseconds is moved by one busy moment of the machine, and a slow phase of
it (another job starting) would land on whichever job happens to run then. So every job runs
once per round, the rounds interleave the jobs, and each job's time is the median over rounds:
a busy moment then costs every job alike, and the ratios between jobs hold.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from visgen._checks import check_positive

__all__ = ["Timing", "interleaved_medians"]


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
