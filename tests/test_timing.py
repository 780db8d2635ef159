"""visgen.timing: jobs interleaved round by round, each job's median."""

import os
from types import SimpleNamespace

import pytest

import visgen.timing
from visgen.timing import Timing, interleaved_medians, load_average, machine


def test_rounds_interleave_the_jobs_and_each_job_gets_its_median():
    calls = []
    jobs = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    out = interleaved_medians(jobs, 4)
    assert calls == ["a", "b", "c"] * 4
    assert list(out) == ["a", "b", "c"]
    assert all(isinstance(t, Timing) and t.cpu >= 0 and t.wall >= 0 for t in out.values())


def test_the_median_ignores_one_slow_round(monkeypatch):
    # one clock serves both timers; each call reads cpu, wall before and cpu, wall after it:
    # rounds of 1, 8, 1 and 1 seconds
    ticks = iter([0, 0, 1, 1, 1, 1, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11])
    clock = SimpleNamespace(thread_time=lambda: next(ticks), perf_counter=lambda: next(ticks))
    monkeypatch.setattr(visgen.timing, "time", clock)
    out = interleaved_medians({"job": lambda: None}, 4)
    assert out["job"] == Timing(1.0, 1.0)


@pytest.mark.parametrize("rounds", [0, -1, 2.5])
def test_bad_rounds_are_named(rounds):
    with pytest.raises((ValueError, TypeError), match="rounds"):
        interleaved_medians({"job": lambda: None}, rounds)


def test_no_jobs_is_an_error():
    with pytest.raises(ValueError, match="jobs"):
        interleaved_medians({}, 3)


def test_the_machine_and_its_load_are_described():
    assert machine().endswith(f"({os.cpu_count()} logical CPUs)")
    assert len(load_average().split(" / ")) == 3
