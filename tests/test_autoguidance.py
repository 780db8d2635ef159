"""AutoGuidance against analytic mixtures: the combination, its limits, and its effect."""

import math

import pytest
import torch

from visgen import Denoiser
from visgen.oracles import GaussianMixture, eight_gaussians
from visgen.sampling import sample_heun
from visgen.sampling.guidance import autoguidance
from visgen.schedules import VPLinear


class Counting:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x, t, cond=None):
        self.calls += 1
        return self.model(x, t, cond)


def broadened(std, schedule="linear"):
    """The eight-Gaussian means with a wider component std: an imperfect 'model' of the data."""
    g = GaussianMixture(eight_gaussians().means, std, labels=list(range(8)))
    return g.to(torch.float64).denoiser(schedule)


@pytest.mark.parametrize("space", [None, "eps", "velocity"])
def test_autoguidance_is_the_extrapolation_from_the_weak_model(space, gen):
    main, weak = broadened(0.4), broadened(0.7)
    x = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    cond = torch.tensor([0, 1, 2, 3, 4, 5, -1])
    got = autoguidance(main, weak, 2.5, space=space)(x, 0.4, cond)
    key = space or main.prediction
    d1, d0 = getattr(main(x, 0.4, cond), key), getattr(weak(x, 0.4, cond), key)
    assert torch.allclose(getattr(got, key), d0 + 2.5 * (d1 - d0), atol=1e-12)
    # the combination is affine with weights summing to one: the same in x0
    assert torch.allclose(
        got.x0, weak.x0(x, 0.4, cond) + 2.5 * (main.x0(x, 0.4, cond) - weak.x0(x, 0.4, cond))
    )
    # w = 1 is the main model; unconditional models are guided too
    assert torch.allclose(autoguidance(main, weak, 1.0)(x, 0.4).x0, main.x0(x, 0.4))


def test_autoguidance_interval_and_errors(gen):
    counting = Counting(broadened(0.7).model)
    weak = Denoiser(counting, "linear", "x0")
    main = broadened(0.4)
    guided = autoguidance(main, weak, 3.0, interval=(0.2, 0.6))
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    assert torch.allclose(guided(x, 0.8).x0, main.x0(x, 0.8)) and counting.calls == 0
    guided(x, 0.5)
    assert counting.calls == 1 and guided.nfe == 2
    with pytest.raises(ValueError, match="share a schedule"):
        autoguidance(main, broadened(0.7, VPLinear()), 2.0)
    with pytest.raises(TypeError, match="weak must be a visgen Denoiser"):
        autoguidance(main, counting, 2.0)
    with pytest.raises(ValueError, match="interval"):
        autoguidance(main, weak, 2.0, interval=(0.5, 0.5))


def test_autoguidance_corrects_an_over_dispersed_model(gen):
    # data: components of std 0.3; main model: std 0.45 (too blurry); weak model: std 0.6,
    # wrong in the same direction. Extrapolating away from the weak model (w = 2) brings the
    # samples' spread around the modes towards the data's (Karras et al. 2024, Fig. 1 idea).
    means = eight_gaussians().means.double()
    main, weak = broadened(0.45), broadened(0.6)
    z = torch.randn(4000, 2, generator=gen, dtype=torch.float64)
    grid = torch.linspace(1, 0, 41, dtype=torch.float64)

    def spread(den):
        x = sample_heun(den, z, grid)
        return torch.cdist(x, means).min(1).values.pow(2).mean().sqrt().item()

    truth = 0.3 * math.sqrt(2)  # rms distance of a 2D N(m, 0.3² I) sample to m
    plain, guided = spread(main), spread(autoguidance(main, weak, 2.0))
    # measured: plain 0.595, guided 0.489 (Monte-Carlo standard error ≈ 0.005)
    assert guided < plain - 0.08
    assert abs(guided - truth) < abs(plain - truth) - 0.08
