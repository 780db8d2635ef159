"""The lecture-7 tour chapter's drift-field section (no trained model needed)."""

import visgen.course.chapters.l07_distribution_matching as l07
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l07_drift_section(tmp_path):
    (ch,) = select_chapters(["L07"])
    ctx = Context(ch, tmp_path, progress=False)
    l07._drift_section(ctx)
    assert [b["kind"] for b in ctx.blocks] == ["image"]
    assert (tmp_path / "L07" / "fig01.png").stat().st_size > 10_000
    assert "→" in l07._swd_sizes() and "70%" in l07._swd_sizes()
