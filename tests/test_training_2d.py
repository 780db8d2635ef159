"""Trained 2D models against the exact 8-Gaussian oracle (FAST budgets, fixed seeds).

Bars (lectures 1 and 3): "teacher OK" = energy distance ≤ 0.01 with
every mode ≥ 8 % of the samples (the data-vs-data floor is 0.0025 ± 0.0012 at N = 2000,
docs/metrics.md); the learned velocity within 10 % relative L2 of the analytic one.
"""

import torch

from visgen.metrics import energy_distance, mode_coverage
from visgen.objectives import noisy_sample
from visgen.oracles import eight_gaussians
from visgen.sampling import sample_ancestral, sample_euler, uniform
from visgen.train import asset

N = 2000


def _check(x):
    gmm = eight_gaussians()
    ref = gmm.sample(N, torch.Generator().manual_seed(123))
    cov = mode_coverage(x, gmm.means, 0.3)
    ed = energy_distance(x, ref)
    assert ed <= 0.01, ed
    assert cov.min_fraction >= 0.08, cov.as_dict()
    return ed


def test_ddpm_1000_step_ancestral_reaches_the_floor():
    den = asset("ddpm_2d", progress=False).denoiser()
    g = torch.Generator().manual_seed(0)
    x = sample_ancestral(den, torch.randn(N, 2, generator=g), uniform(1000), generator=g)
    assert den.nfe == 1000
    _check(x)


def test_flow_matching_100_step_euler_reaches_the_floor():
    den = asset("fm_2d", progress=False).denoiser()
    x = sample_euler(
        den, torch.randn(N, 2, generator=torch.Generator().manual_seed(0)), uniform(100)
    )
    _check(x)


def test_learned_velocity_matches_the_analytic_one():
    """sqrt(E‖v_θ − v*‖² / E‖v*‖²) over t on a uniform grid in [0.05, 0.95] and x_t ~ p_t.

    Pooled over t: near t ≈ 0.7 the exact velocity field itself is small (E‖v*‖² dips to
    ≈ 0.07 from ≈ 4 at the ends: ε and x0 cancel on average), so a per-t ratio there
    measures the denominator, not the model; the per-t RMS error is still required ≤ 0.2
    (10 % of ‖v*‖ ≈ 2 at the ends of the path).
    """
    den = asset("fm_2d", progress=False).denoiser()
    gmm = eight_gaussians()
    exact = gmm.denoiser("linear")
    g = torch.Generator().manual_seed(1)
    num = den_sq = 0.0
    for t in torch.linspace(0.05, 0.95, 19).tolist():
        x0 = gmm.sample(4000, g)
        xt = noisy_sample(
            x0, torch.full((4000,), t), den.schedule, torch.randn(4000, 2, generator=g)
        )
        err = (den.velocity(xt, t) - exact.velocity(xt, t)).pow(2).sum(1).mean()
        assert err.sqrt() <= 0.2, (t, err.sqrt())
        num += err
        den_sq += exact.velocity(xt, t).pow(2).sum(1).mean()
    assert (num / den_sq).sqrt() <= 0.10
