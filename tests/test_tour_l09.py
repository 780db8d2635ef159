"""The lecture-9 tour chapter's sections that need no trained model: the animated clips with
their metric floor, and the cache section (cached = recomputed, token counts, memory)."""

import json

import visgen.course.chapters.l09_video as l09
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l09_data_and_cache_sections(tmp_path):
    (ch,) = select_chapters(["L09"])
    ctx = Context(ch, tmp_path, progress=False)
    l09._data_section(ctx)
    l09._cache_section(ctx)
    kinds = [b["kind"] for b in ctx.blocks]
    assert kinds == ["image", "table", "table", "image", "table"]
    assert ctx.blocks[0]["src"].startswith("data:image/gif;base64,")
    assert (tmp_path / "L09" / "fig01.gif").stat().st_size > 10_000
    assert ctx.metrics["values"]["cache.max_difference"] <= 1e-5
    floor = ctx.metrics["tables"][0]["rows"][0]
    assert floor["tracking error (px)"] < 0.4 and floor["temporal consistency"] > 0.9
    counts = ctx.metrics["tables"][1]["rows"]
    assert counts[1]["token-forwards per video"] > 3 * counts[0]["token-forwards per video"]
    json.dumps(ctx.metrics)  # the report's metrics stay JSON-able
