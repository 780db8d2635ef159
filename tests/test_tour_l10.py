"""The lecture-10 tour chapter, section by section, on small randomised teachers (no
training): every section writes its figure / table and the numbers the lecture quotes."""

import math

import pytest
import torch

import visgen.course.chapters.l10_efficient as l10
from visgen.course import select_chapters
from visgen.course.tour import Context
from visgen.efficient import calibrate_teacache
from visgen.nn import DiT, UNet
from visgen.param import Denoiser
from visgen.sampling import sample_euler, uniform


def _random(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return Denoiser(model.eval(), "linear", "velocity")


@pytest.fixture(scope="module")
def teachers():
    return {
        "U-Net": _random(UNet(1, 8, channels=16, mults=(1, 2), num_classes=10)),
        "DiT": _random(DiT(1, 8, patch_size=2, dim=32, depth=2, heads=2, num_classes=10)),
    }


def _ctx(tmp_path):
    (chapter,) = select_chapters(["L10"])
    assert chapter.lecture == 10
    return Context(chapter, tmp_path, progress=False)


def test_l10_quantisation_and_sparse_sections(tmp_path):
    ctx = _ctx(tmp_path)
    l10._quant_section(ctx)
    l10._sparse_section(ctx)
    values = ctx.metrics["values"]
    assert values["quant.svdquant32_over_naive"] <= 0.5
    assert values["quant.svdquant32_over_smoothing"] <= 0.75
    for g in ("channel", "group"):  # at practical granularities activations are the hard part
        assert values[f"quant.a4.{g}"] > values[f"quant.w4.{g}"]
    assert values["quant.w4.tensor"] > values["quant.w4.channel"]  # a few outlier weights
    assert all(values[f"sage.int{b}.reduction"] >= 2 for b in (4, 6, 8))
    assert values["sparse.profiling_accuracy"] >= 0.9
    assert [b["kind"] for b in ctx.blocks] == ["image", "table", "table"]


def test_l10_caching_sections(tmp_path, teachers):
    ctx = _ctx(tmp_path)
    z, y = l10._batch(ctx, 8, 2)
    l10._similarity_section(ctx, teachers["U-Net"], teachers["DiT"], z, y)
    fit, delta = l10._caching_section(ctx, teachers["U-Net"], teachers["DiT"], z, y)
    l10._cfg_section(ctx, teachers["DiT"], z, y)
    assert len(fit.coefficients) == 5 and delta > 0
    values = ctx.metrics["values"]
    assert math.isfinite(values["teacache.matched_gain_db"])
    assert values["cfg.shared_cache_loss_db"] > 0  # the shared cache is worse
    sweep = ctx.metrics["tables"][0]["rows"]
    # TeaCache's check (one adaLN map per call) can make a call that skips nothing cost a
    # hair more than the plain one
    assert all(0 < r["FLOP fraction"] <= 1.02 for r in sweep)
    assert (tmp_path / "L10" / "fig02.png").stat().st_size > 10_000


def test_l10_frontier_section(tmp_path, teachers, monkeypatch):
    monkeypatch.setattr(l10.l07, "_methods", lambda lecture=None: [])  # students: tour only
    mlp = _random(DiT(1, 8, patch_size=4, dim=16, depth=1, heads=1, num_classes=10), seed=1)
    monkeypatch.setattr(l10, "get_task", lambda name: type("Task", (), {"teacher": mlp})())
    ctx = _ctx(tmp_path)
    dit = teachers["DiT"]
    runs = [(torch.randn(4, 1, 8, 8), torch.arange(4)) for _ in range(3)]
    fit = calibrate_teacache(dit, runs, sample_euler, uniform(l10.STEPS))
    l10._frontier_section(ctx, {"MLP": mlp, **teachers}, fit, 0.1)
    rows = ctx.metrics["tables"][-1]["rows"]
    families = {r["technique"]: r for r in rows}
    assert families["real digits (floor)"]["fd"] > 0
    assert families["DeepCache N = 3"]["fraction"] <= 0.45
    assert families["FORA N = 2"]["fraction"] < 0.6
    assert families["DPM-Solver++(2M), 5 NFE"]["fraction"] == pytest.approx(5 / 50, rel=0.05)
    assert families["W8A8, real INT8"]["psnr"] > 30
