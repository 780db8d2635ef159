"""Lecture 12's measured bars at FAST budgets (the cached assets cube_prior16, mvdream16,
zero123_16 and seva16). The bars sit below the worst of 3 seeds measured by
``benchmarks/threed.py`` (numbers and spread in BENCHMARKS.md, "Lecture 12")."""

import pytest
import torch

from visgen.threed import Cameras, orbit_colors
from visgen.threed.tasks import (
    canonical_truth_scores,
    distill_canonical_cube,
    joint_generation,
    novel_view_scores,
    pipeline_scores,
    sds_scores,
)
from visgen.train import asset


@pytest.fixture(scope="module")
def prior():
    return asset("cube_prior16", progress=False).denoiser()


def test_sds_recovers_the_colours_and_view_conditioning_removes_the_janus_problem(prior):
    truth = canonical_truth_scores()
    for seed in (0, 1, 2):
        agnostic = sds_scores(distill_canonical_cube(prior, view=False, seed=seed, steps=200))
        view = sds_scores(distill_canonical_cube(prior, view=True, seed=seed, steps=200))
        assert view["face colour RMSE"] <= 0.2  # measured 0.07–0.11 over 3 seeds
        assert view["Janus score"] == truth["Janus score"] == 0.375
        assert agnostic["Janus score"] >= 0.75  # the red front seen from most directions
        assert agnostic["face colour RMSE"] >= 0.5


def test_guidance_over_saturates_sds(prior):
    base = canonical_truth_scores()["saturation"]
    sat = [
        sds_scores(distill_canonical_cube(prior, view=True, guidance=w, seed=0, steps=200))[
            "saturation"
        ]
        for w in (1.0, 5.0, 20.0)
    ]
    assert sat[0] <= base + 0.03 and sat[1] >= base + 0.05 and sat[2] > sat[1]


def test_joint_generation_is_consistent_across_views():
    res = joint_generation(asset("mvdream16", progress=False).denoiser(), 100, seed=1)
    # seeds 1 / 2 / 3: joint 0.61 / 0.61 / 0.64, independent 0.17 / 0.19 / 0.20; the issue's
    # joint >= 0.9 is not met (top face 0.90, side faces 0.52-0.54: BENCHMARKS.md, "Lecture 12")
    # (stochastic samplers reach 0.91-0.97 only by painting both side pairs one colour: (d))
    assert res["data consistency"] == 1.0
    assert res["independent consistency"] <= 0.5
    assert res["joint consistency"] >= res["independent consistency"] + 0.3
    # consistency must not come from dropping colours (one-colour cubes agree everywhere):
    # joint colours per view 2.14 / 2.13 / 2.05, data 2.62 / 2.54 / 2.55; a model trained with
    # the noise shifted (t_mean 2 / 3) reaches 0.81-0.93 consistency at 1.86-1.91 / 1.2 colours
    assert res["joint colours"] >= 1.95


def test_a_stochastic_sampler_buys_consistency_by_merging_the_side_colours():
    # BENCHMARKS.md, Lecture 12 (d), seeds 1 / 2 / 3: predictor-corrector (100 steps, snr 0.3)
    # joint 0.914 / 0.974 / 0.926 vs Euler 0.609 / 0.608 / 0.641, independent 0.13-0.18,
    # colours 1.64-1.77 vs 2.05-2.14; cubes with 3 colours in every view 1-2 of 100 vs data
    # 56-65 (models retrained with seeds 1, 2: joint 0.91-0.98, colours 1.75-1.92)
    model = asset("mvdream16", progress=False).denoiser()
    euler = joint_generation(model, 100, seed=2)
    pc = joint_generation(model, 100, seed=2, sampler="pc", steps=100, snr=0.3)
    flat = Cameras.from_vector(pc["cameras"].reshape(-1, 16), 16, 16)
    assert pc["joint consistency"] >= euler["joint consistency"] + 0.15
    assert pc["independent consistency"] <= 0.5
    assert pc["joint colours"] < euler["joint colours"]
    three = int((orbit_colors(pc["joint"], flat) >= 3).all(1).sum())
    assert three <= 0.25 * int((orbit_colors(pc["data"], flat) >= 3).all(1).sum())


@pytest.mark.parametrize("name", ["zero123_16", "seva16"])
def test_novel_views_beat_copying_the_input_view(name):
    # margins over copying, seeds 2 / 3 / 4 (100 cubes): zero123_16 +14.0 / +14.1 / +13.8 dB,
    # seva16 +5.7 / +5.2 / +4.9 dB (at +90°: +5.9 / +5.4 / +5.1)
    res = novel_view_scores(asset(name, progress=False).denoiser(), 100, seed=2)
    assert res["model"] >= res["copy"] + 3.0
    assert res["model 90"] >= res["copy 90"] + 3.0


def test_generate_then_reconstruct_beats_sds_at_equal_network_evaluations():
    # 4 cubes: seeds 3 / 4 / 5 measured +3.7 / +6.6 / +6.0 dB (2 cubes are too few: one seed lost)
    res = pipeline_scores(
        asset("zero123_16", progress=False).denoiser(), 4, seed=3, sds_steps=(15,)
    )
    assert res["two-stage PSNR"] >= res["SDS 15 PSNR"] + 2.0
    assert torch.isfinite(res["two-stage"]).all()
