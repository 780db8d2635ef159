"""Lecture-10 video bars on the *trained* video DiTs of lecture 9 (FAST budgets; full-budget
numbers from ``benchmarks/efficient_video.py`` in BENCHMARKS.md).

16 held-out captions, noise seed 0, 50 Euler steps (measured over seeds 0–2; FAST teachers,
full-budget teachers with 64 clips in brackets):

* Sparse VideoGen on ``video_teacher`` (full 3-D attention, 32 tokens): the per-head
  spatial / temporal masks keep 12.5–25 % of the pairs but leave 23–93 % (full: 18–79 %)
  relative error in the attention output at t = 0.9, 0.5, 0.1 — issue 19's ≤ 5 % is met only by
  the synthetic heads of ``test_efficient_sparse.py``: this model's heads are not spatial or
  temporal. Bar: ≥ 10 % at every step and block.
* Sparse VideoGen on ``video_teacher_p2`` (the same teacher with patches of 2: 64 tokens per
  frame, 512 per clip): the rows stay nearly uniform, the best mask of ≤ 30 % density
  (profiled, sliding tiles 2×2×2 / 3×3×3, or the per-query top-30 % oracle) leaves ≥ 8 %
  error (full budget ≥ 6.4 %); bars in the test.
* PAB on ``video_teacher_factorised``: between consecutive steps the spatial attention output
  changes most, then temporal, cross-attention least (the pyramid's premise; mean change about
  13 / 9 / 5 %, full 9 / 5 / 2 %), falling over the trajectory rather than U-shaped. The
  pyramid (2, 4, 6) at 0.819 of the FLOPs is 40.5–41.4 dB (full 38.4–39.4) from the uncached
  samples; broadcasting every kind every 4 steps (0.806) gives 39.6–39.9 (full 38.9–39.8):
  no reliable advantage of the pyramid on this model (bar: within 2 dB of each other).
"""

import statistics

import pytest
import torch

from visgen.data import tokenize_captions
from visgen.efficient import density, pab, profile_video_dit, sliding_tile_mask
from visgen.metrics import psnr
from visgen.sampling import sample_euler, uniform
from visgen.train import asset
from visgen.video import assets
from visgen.video.evaluation import eval_clips
from visgen.video.sampling import video_denoiser

STEPS = 50


@pytest.fixture(scope="module")
def batch():
    clips = eval_clips(16, frames=assets.TRAIN_FRAMES)
    noise = torch.randn(16, assets.TRAIN_FRAMES, 1, 16, 16,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    return noise, tokenize_captions(clips.captions)


@pytest.fixture(scope="module")
def factorised():
    return asset("video_teacher_factorised", progress=False).model.eval()


def test_sparse_masks_on_the_trained_video_teacher(batch):
    model = asset("video_teacher", progress=False).model.eval()
    noise, cond = batch
    states = {}

    def record(i, t, x, pred):
        if i in (5, 25, 45):
            states[i] = (x.clone(), pred.t)

    sample_euler(video_denoiser(model), noise, uniform(STEPS), cond, callback=record)
    errors = []
    for x, t in states.values():
        rows = profile_video_dit(model, x, t, cond, generator=torch.Generator().manual_seed(0))
        assert len(rows) == model.cfg.depth
        for r in rows:
            assert 1 / 8 <= r["density"] <= 1 / 4  # spatial 1/8, temporal 1/4 per head
            # every query profiled (32 of 32): the per-head choice is the best of the two
            assert r["error"] <= min(r["error_spatial"], r["error_temporal"]) + 1e-6
            errors.append(r["error"])
    # measured 23–93 % over seeds 0–2 (full budget 18–79 %): far from the synthetic heads' ≤ 5 %
    assert min(errors) >= 0.1, errors


def test_pab_premise_and_pyramid_on_the_trained_factorised_teacher(factorised, batch):
    noise, cond = batch
    den = video_denoiser(factorised)
    exact = pab(den, steps=STEPS, spatial=1, temporal=1, cross=1)
    previous, changes = {}, {}

    def record(i, t, x, pred):
        for key, out in next(iter(exact.states.values())).store.items():
            if isinstance(key, tuple):
                kind = "cross" if key[1] == "cross_attention" else factorised.blocks[key[0]].kind
                if key in previous:
                    change = float((out - previous[key]).norm() / previous[key].norm())
                    changes.setdefault(kind, []).append(change)
                previous[key] = out.clone()

    plain = sample_euler(exact, noise, uniform(STEPS), cond, callback=record)
    assert torch.equal(plain, sample_euler(den, noise, uniform(STEPS), cond))  # ranges 1: exact
    mean = {kind: statistics.mean(v) for kind, v in changes.items()}
    assert mean["spatial"] > mean["temporal"] > mean["cross"], mean
    results = {}
    for ranges in ((2, 4, 6), (4, 4, 4)):
        cached = pab(den, steps=STEPS, spatial=ranges[0], temporal=ranges[1], cross=ranges[2])
        x = sample_euler(cached, noise, uniform(STEPS), cond)
        results[ranges] = (cached.stats["fraction"], float(psnr(x, plain).mean()))
    (f_pyramid, p_pyramid), (f_four, p_four) = results[(2, 4, 6)], results[(4, 4, 4)]
    assert f_pyramid <= f_four + 0.02  # about the same compute (measured 0.819 vs 0.806)
    assert p_pyramid >= 36.0, results  # measured 40.5–41.4 dB (full budget 38.4–39.4)
    # mean over seeds 0–2: +1.1 dB here (40.9 vs 39.8), −0.4 dB at full budget: no reliable edge
    assert abs(p_pyramid - p_four) <= 2.0, results


def test_sparse_masks_on_the_512_token_video_teacher():
    """Sparse VideoGen where the premise has room: 8 frames × 64 tokens (``video_teacher_p2``).
    The heads stay dense — nearly uniform rows — so no mask of ≤ 30 % density reaches 5 %."""
    model = asset("video_teacher_p2", progress=False).model.eval()
    clips = eval_clips(4, frames=assets.TRAIN_FRAMES)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(4, assets.TRAIN_FRAMES, 1, 16, 16, generator=g)
    cond = tokenize_captions(clips.captions)
    states = {}

    def record(i, t, x, pred):
        if i == 25:
            states[i] = (x.clone(), pred.t)

    sample_euler(video_denoiser(model), noise, uniform(STEPS), cond, callback=record)
    (x, t), side = states[25], model.cfg.size // model.cfg.patch_size
    tiles = sliding_tile_mask(assets.TRAIN_FRAMES, side, side, (2, 2, 2), (3, 3, 3))
    assert density(tiles) <= 0.3
    profiled = profile_video_dit(model, x, t, cond, queries=64, generator=g)
    tiled = profile_video_dit(model, x, t, cond, masks={"tiles": tiles})
    for r, s in zip(profiled, tiled, strict=True):
        assert r["density"] <= 0.3
        # measured over noise seeds 0–2 (FAST, 4 clips, t = 0.5; full budget, 16 clips, in
        # brackets): row entropy 0.92–0.97 of log N (0.89–0.94); the top 30 % of keys per query
        # keep 47–64 % of the mass (58–67 %); the least error of the profiled masks, the
        # sliding tiles and that oracle is 8.4 % (6.4 %): issue 19's ≤ 5 % is not reached
        assert r["entropy"] >= 0.85, r
        assert r["mass_oracle"] <= 0.75, r
        assert min(r["error"], s["error"], r["error_oracle"]) >= 0.05, (r, s)
