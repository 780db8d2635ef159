import math

import pytest
import torch

from visgen.metrics import energy_distance, mmd_rbf, mode_coverage, sliced_wasserstein
from visgen.oracles import eight_gaussians


def test_energy_distance_properties(gen):
    x = torch.randn(500, 3, generator=gen)
    y = torch.randn(500, 3, generator=gen) + torch.tensor([1.0, 0.0, 0.0])
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)
    assert energy_distance(x, y) > 10 * energy_distance(x, torch.randn(500, 3, generator=gen))


def test_unbiased_mmd_is_zero_in_expectation(gen):
    g = eight_gaussians()
    vals = torch.tensor([mmd_rbf(g.sample(400, gen), g.sample(400, gen), 0.5) for _ in range(30)])
    assert abs(vals.mean()) < 3 * vals.std() / math.sqrt(len(vals))
    far = mmd_rbf(g.sample(400, gen), g.sample(400, gen) * 0.5, [0.5, 1.0])
    assert far > vals.max()


def test_sliced_wasserstein_of_a_shift(gen):
    x = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    c = torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=torch.float64)
    # projections of a shift: W2² = (c·θ)², mean over the sphere ‖c‖²/D
    sw = sliced_wasserstein(x, x + c, n_projections=20_000, generator=gen)
    assert sw == pytest.approx(c.norm().item() / 2, rel=0.03)


def test_mode_coverage_counts_modes():
    g = eight_gaussians()
    pts = torch.cat([g.means[:4].repeat(10, 1), torch.zeros(20, 2)])
    cov = mode_coverage(pts, g.means, 0.3)
    assert cov.covered == 4 and cov.in_mode == pytest.approx(40 / 60)
    assert cov.min_fraction == 0
    assert cov.fractions[:4].tolist() == pytest.approx([10 / 60] * 4)


def test_metric_bad_input():
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        mmd_rbf(torch.zeros(4, 2), torch.zeros(4, 2), 0.0)
    with pytest.raises(ValueError, match="same dimension"):
        energy_distance(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same number of points"):
        sliced_wasserstein(torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="x contains NaN"):
        energy_distance(torch.full((4, 2), float("nan")), torch.zeros(4, 2))


def test_mode_coverage_core_sees_blurred_modes(gen):
    g = eight_gaussians()
    exact = mode_coverage(g.sample(4000, gen), g.means, 0.3)
    assert exact.core_expected == pytest.approx(1 - math.exp(-0.5))
    assert abs(exact.core - exact.core_expected) < 0.03
    blurred = eight_gaussians(std=0.45).sample(4000, gen)  # modes 1.5x too wide
    cov = mode_coverage(blurred, g.means, 0.3)
    assert cov.covered == 8 and cov.min_fraction >= 0.08  # the 3-std counts are fooled
    # exact: 1 - exp(-0.3² / (2 · 0.45²)) = 0.20, half of 0.39
    assert cov.core == pytest.approx(1 - math.exp(-0.09 / (2 * 0.45**2)), abs=0.03)
