"""The lecture-8 tour chapter: every section runs on the FAST assets and reports its numbers."""

import math

import visgen.course.chapters.l08_autoregressive as l08
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l08_sections(tmp_path):
    (ch,) = select_chapters(["L08"])
    ctx = Context(ch, tmp_path, progress=False)
    l08._spectral_section(ctx)
    crossings = list(ctx.metrics["values"]["spectra.crossover"].values())
    assert all(a >= b for a, b in zip(crossings, crossings[1:])), crossings
    l08._tokenizer_section(ctx)
    values = ctx.metrics["values"]
    errors = values["msvq_digits.cumulative_mse"]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    l08._generator_section(ctx)
    values = ctx.metrics["values"]
    assert values["raster.passes"] == 16 and values["var.passes"] == 4
    assert values["switti_cfg_off.token_evals"] < 0.75 * values["switti.token_evals"]
    assert all(math.isfinite(v) for k, v in values.items() if k.endswith(".fd"))
    kinds = [b["kind"] for b in ctx.blocks]
    assert kinds.count("table") == 2 and kinds.count("image") == 4
