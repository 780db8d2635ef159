"""Lecture seminars: every committed ``lectures/NN-slug/seminar.ipynb`` is the fresh build of
its ``seminar.py`` (outputs cleared, no hand edits), and every seminar runs end to end in a
fresh kernel at FAST budgets (its wall time is a benchmark, not asserted)."""

from __future__ import annotations

import pytest

from visgen.course.seminar import expected_notebook, find_seminars, run_seminar

SEMINARS = find_seminars()


def test_there_is_a_seminar():
    # lectures 1 (DDPM/DSM by hand), 5 (U-Net vs DiT vs MMDiT) and 9 (video caches), as in
    # the original course
    lectures = {s.parent.name[:2] for s in SEMINARS}
    assert {"01", "05", "09"} <= lectures, sorted(lectures)


@pytest.mark.parametrize("source", SEMINARS, ids=lambda s: s.parent.name)
def test_committed_notebook_is_the_fresh_build(source):
    committed = source.with_name("seminar.ipynb")
    assert committed.is_file(), f"{committed} is missing: run `make seminars`"
    assert committed.read_bytes() == expected_notebook(source), "stale: run `make seminars`"


@pytest.mark.parametrize("source", SEMINARS, ids=lambda s: s.parent.name)
def test_seminar_runs_in_fast_mode(source):
    run_seminar(source, fast=True)
