"""The lecture-5 tour chapter: registered, and its architecture section (no training)."""

import visgen.course.chapters.l05_diffusion_in_practice as l05
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l05_architecture_section(tmp_path, gen):
    (ch,) = select_chapters(["L05"])
    assert ch.lecture == 5
    ctx = Context(ch, tmp_path, progress=False)
    l05._architecture(ctx, gen)
    (table,) = [b for b in ctx.blocks if b["kind"] == "table"]
    rows = ctx.metrics["tables"][0]["rows"]
    assert len(rows) == 4 and all(r["max |output| at init"] == 0.0 for r in rows)
    # pixels and latents get the same transformer: the same token count, equal compute
    assert rows[0]["tokens"] == rows[1]["tokens"]
    assert table["columns"][0] == "DiT"
