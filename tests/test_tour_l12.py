"""The lecture-12 tour chapter: its camera and rendering sections (no trained model) and the
tour's animation blocks."""

import pytest
import torch
from PIL import Image

import visgen.course.chapters.l12_3d as l12
from visgen.course import select_chapters
from visgen.course.tour import Context


@pytest.fixture
def ctx(tmp_path):
    (ch,) = select_chapters(["L12"])
    assert ch.lecture == 12
    return Context(ch, tmp_path, progress=False)


def test_l12_camera_and_render_sections(ctx, tmp_path):
    l12._cameras_section(ctx)
    values = ctx.metrics["values"]
    assert all(values[f"cameras.{k}"] <= 1e-9 for k in ("dm", "slide", "relative"))
    assert values["cameras.reproject"] <= 1e-9 and values["cameras.lookat"] <= 1e-9
    l12._render_section(ctx)
    assert ctx.metrics["values"]["render.gradient_relative_error"] <= 1e-6
    values = ctx.metrics["values"]
    assert values["fit.blobs_psnr"] >= values["fit.blobs_psnr_start"] + 8  # 8 views generalise
    gifs = sorted((tmp_path / "L12").glob("*.gif"))
    assert len(gifs) == 2
    with Image.open(gifs[0]) as gif:
        assert gif.n_frames == l12.FRAMES and gif.is_animated


def test_animation_block_inlines_a_gif(ctx, tmp_path):
    videos = torch.linspace(-1, 1, 5)[None, :, None, None, None].expand(1, 5, 3, 4, 4)
    ctx.animation(videos, "a grey ramp", scale=2, name="ramp")
    (block,) = ctx.blocks
    assert block["kind"] == "image" and block["src"].startswith("data:image/gif;base64,")
    with Image.open(tmp_path / "L12" / "ramp.gif") as gif:
        assert gif.n_frames == 5 and gif.size == (2 * 6, 2 * 6)  # 4 px + 1 px padding each side
    with pytest.raises(ValueError, match="videos"):
        ctx.animation(videos[0], "no video axis")
    with pytest.raises(ValueError, match="fps"):
        ctx.animation(videos, "no time", fps=0)
