"""The lecture-11 tour chapter: registered, and its text-encoder section on the FAST CLIP."""

import math

import visgen.course.chapters.l11_multimodal as l11
from visgen.conditioning.evaluate import held_out
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l11_text_encoder_section(tmp_path):
    (ch,) = select_chapters(["L11"])
    assert ch.lecture == 11
    ctx = Context(ch, tmp_path, progress=False)
    l11._clip_section(ctx, held_out(60))
    (table,) = [b for b in ctx.blocks if b["kind"] == "table"]
    assert table["columns"][0] == "judge"
    values = ctx.metrics["values"]
    # the learned metric separates true captions from another shape's, and reads attributes
    assert values["clip.score_true"] > values["clip.score_shuffled"] + 30
    zero_shot = values["clip.zero_shot"]
    assert all(math.isfinite(v) and v > 0.6 for v in zero_shot.values()), zero_shot
