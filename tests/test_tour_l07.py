"""The lecture-7 tour chapter's drift-field section (no trained model needed)."""

import pytest

import visgen.course.chapters.l07_distribution_matching as l07
from visgen.course import select_chapters
from visgen.course.tour import Context
from visgen.fewstep import UnsupportedTeacher, get_task


def test_l07_drift_section(tmp_path):
    (ch,) = select_chapters(["L07"])
    ctx = Context(ch, tmp_path, progress=False)
    l07._drift_section(ctx)
    assert [b["kind"] for b in ctx.blocks] == ["image"]
    assert (tmp_path / "L07" / "fig01.png").stat().st_size > 10_000


def test_l07_skips_only_the_teachers_a_method_cannot_use(monkeypatch):
    task = get_task("8gauss")  # analytic teacher: SwD and the feature methods refuse it
    for method in ("swd", "mmd", "ladd"):
        with pytest.raises(UnsupportedTeacher):
            l07.METHODS[method][1](task, 0, None)
        assert l07._student(method, task) is None

    def broken(method, task, steps, **options):
        raise TypeError("a bug in a method, not a teacher it cannot use")

    monkeypatch.setattr(l07, "trained", broken)
    with pytest.raises(TypeError, match="a bug in a method"):
        l07._student("dmd", task)
