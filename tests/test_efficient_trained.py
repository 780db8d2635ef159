"""Lecture-10 bars on trained teachers (FAST budgets; full-budget numbers in BENCHMARKS.md).

Teachers: ``fm_digits_dit`` (FAST: 64 wide, 400 steps) and the ``fm_digits_unet`` recipe with
300 training steps in FAST mode (the standard asset's 1000 FAST steps would cost this file
most of its CPU budget; the full recipe is the standard 4000-step asset). 50 Euler steps,
the 397 test labels, noise seeds 0–2 (measured spread next to each bar):

* DeepCache N = 3 (shallowest branch): 0.443 of the U-Net FLOPs (exact); FD ratio
  0.952–0.975 (bar 1.2).
* FORA N = 2: 26 of 50 calls run the blocks (exact); FD ratio 0.962–0.966 (bar 1.2).
* TeaCache against the uniform cache at the same 26 of 50 full calls
  (``efficient.compare_at_matched_skips``, the course's one matching rule), 64 digits, 6
  calibration runs, generator seeds 1–3 (the test uses seed 1): on the teacher's own uniform
  grid +1.18 / +1.18 / +0.58 dB (bar 0.3: issue 19's +1 dB holds on average, not per batch;
  full budget +0.35 to +1.70); on SD3's shifted grid +3.58 / +3.76 / +3.40 dB (bar 1 dB; full
  budget +5.4 to +6.5). BENCHMARKS.md, ``benchmarks/teacache_matched.py``.
* W8A8 fake quantisation (per-channel weights, per-token activations): FD ratio
  0.997–0.9985 (bar 1.05); the real INT8 layers give the same samples to 64.2–64.6 dB
  (tested here on one call).
"""

import pytest
import torch

from visgen import budget
from visgen.data import get_dataset
from visgen.efficient import (
    calibrate_teacache,
    compare_at_matched_skips,
    deepcache,
    fora,
    int8_linears,
    quantize_linears,
)
from visgen.metrics import image_metrics
from visgen.param import Denoiser
from visgen.sampling import grids, sample_euler, uniform
from visgen.train import ASSETS, asset, train_cached

STEPS = 50


@pytest.fixture(scope="module")
def dit():
    return asset("fm_digits_dit", progress=False).denoiser()


@pytest.fixture(scope="module")
def unet():
    import visgen.fewstep  # noqa: F401  (registers fm_digits_unet)

    spec = ASSETS["fm_digits_unet"]()
    spec["train"]["steps"] = budget(full=spec["train"]["steps"], fast=300)
    return train_cached(spec, progress=False).denoiser()


@pytest.fixture(scope="module")
def batch():
    labels = get_dataset("digits", "test").labels
    return torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(0)), labels


@pytest.fixture(scope="module")
def plain(dit, unet, batch):
    """The uncached samples of both teachers (shared by the tests)."""
    return {"dit": _sample(dit, batch), "unet": _sample(unet, batch)}


def _fd(x, labels) -> float:
    return image_metrics(x.clamp(-1, 1), "digits", cond=labels)["fd"]


def _sample(den, batch):
    z, labels = batch
    return sample_euler(den, z, uniform(STEPS), labels)


def test_deepcache_interval_3_keeps_fd(unet, batch, plain):
    cached = deepcache(unet, steps=STEPS, interval=3)
    x = _sample(cached, batch)
    assert cached.stats["fraction"] <= 0.45
    assert _fd(x, batch[1]) <= 1.2 * _fd(plain["unet"], batch[1])


def test_fora_interval_2_keeps_fd(dit, batch, plain):
    cached = fora(dit, steps=STEPS, interval=2)
    x = _sample(cached, batch)
    assert cached.stats["computed"] / cached.stats["calls"] <= 0.55
    assert _fd(x, batch[1]) <= 1.2 * _fd(plain["dit"], batch[1])


# The teacher's own sampler is 50 uniform Euler steps (frontier.REFERENCE_STEPS): the faithful
# comparison, as TeaCache was evaluated with each generator's default sampler. There every step
# moves the output about equally and the gain depends on the batch: FAST seeds 1–3 +1.18 /
# +1.18 / +0.58 dB (full budget, 64 digits, 6 seeds: +0.35 to +1.54, mean +0.94): the issue's
# +1 dB holds on average, not per batch, so the bar here is TeaCache ahead by ≥ 0.3 dB. Even a
# perfect indicator (perfect_indicator_schedule, R² = 1) gains only −0.48 to +0.88 dB there
# (benchmarks/teacache_matched.py): the rule, not the polynomial's R² (0.55–0.65), is the limit.
# On SD3's shifted grid (how SD3 / FLUX / Wan-style flow models are sampled) the steps differ
# and the output moves unevenly: +3.58 / +3.76 / +3.40 dB (full budget +5.7 to +6.5), bar 1 dB.
@pytest.mark.parametrize("grid, bar", [("uniform", 0.3), ("sd3", 1.0)])
def test_teacache_beats_uniform_caching_at_equal_skips(dit, grid, bar):
    ts = uniform(STEPS) if grid == "uniform" else grids.sd3(STEPS, 3.0)
    g = torch.Generator().manual_seed(1)
    runs = [(torch.randn(16, 1, 8, 8, generator=g), torch.arange(16) % 10) for _ in range(6)]
    fit = calibrate_teacache(dit, runs, sample_euler, ts)
    z, labels = torch.randn(64, 1, 8, 8, generator=g), torch.arange(64) % 10
    matched = compare_at_matched_skips(dit, fit.coefficients, z, labels, sample_euler, ts)
    assert matched.teacache_computed == matched.uniform_computed == 26  # 24 of 50 skipped
    assert matched.gain >= bar, (matched.threshold, matched.gain)


def test_w8a8_keeps_fd_and_int8_is_the_same_model(dit, batch, plain):
    fake = quantize_linears(dit.model, w_bits=8, a_bits=8)
    x = _sample(Denoiser(fake, dit.schedule, dit.prediction), batch)
    assert _fd(x, batch[1]) <= 1.05 * _fd(plain["dit"], batch[1])
    # the real INT8 layers compute the same W8A8 model (one call on the whole batch): x·127/max
    # and x/(max/127) round differently in the last bit, so a few activations land on the
    # neighbouring integer (measured 0.84–1.1e-3 relative over 3 seeds and t = 0.1, 0.5, 0.9)
    z, labels = batch
    t = torch.full((len(z),), 0.5)
    with torch.no_grad():
        real_out, fake_out = int8_linears(dit.model)(z, t, labels), fake(z, t, labels)
    assert float((real_out - fake_out).norm() / fake_out.norm()) < 5e-3
