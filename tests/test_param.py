import itertools

import pytest
import torch

from visgen.oracles import eight_gaussians
from visgen.param import PREDICTIONS, Denoiser, convert
from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete, VPLinear

SCHEDULES = [VPDiscrete(), VPLinear(), VPCosine(), VE(), EDM(), Linear()]


@pytest.mark.parametrize("sch", SCHEDULES, ids=lambda s: s.name)
@pytest.mark.parametrize("a,b", list(itertools.permutations(PREDICTIONS, 2)))
def test_conversions_round_trip(sch, a, b, gen):
    x = torch.randn(16, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = torch.rand(16, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    p = torch.randn(16, 3, 4, 4, generator=gen, dtype=torch.float64)
    back = convert(convert(p, a, b, x, t, sch), b, a, x, t, sch)
    assert torch.allclose(back, p, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("sch", SCHEDULES, ids=lambda s: s.name)
def test_conversions_agree_with_definitions(sch, gen):
    x0 = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    t = torch.rand(8, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
    da, ds = sch.d_alpha(t)[:, None], sch.d_sigma(t)[:, None]
    xt = a * x0 + s * eps
    expected = {
        "x0": x0,
        "eps": eps,
        "v": a * eps - s * x0,
        "velocity": da * x0 + ds * eps,
        "score": -eps / s,
    }
    for kind, value in expected.items():
        assert torch.allclose(convert(x0, "x0", kind, xt, t, sch), value, atol=1e-9), kind


def test_flow_matching_identities(gen):
    # lecture 5: x̂ = x_t − t v, ε̂ = x_t + (1 − t) v
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    v = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    t = torch.full((5,), 0.3, dtype=torch.float64)
    assert torch.allclose(convert(v, "velocity", "x0", x, t, Linear()), x - 0.3 * v)
    assert torch.allclose(convert(v, "velocity", "eps", x, t, Linear()), x + 0.7 * v)


def test_denoiser_counts_nfe_and_shares_one_evaluation(gen):
    den = eight_gaussians(dtype=torch.float64).denoiser("linear")
    x = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    p = den(x, 0.5)
    _ = p.x0, p.eps, p.velocity, p.score, p.v
    assert den.nfe == 1
    den.velocity(x, 0.5)
    assert den.nfe == 2


def test_denoiser_bad_input(gen):
    den = Denoiser(lambda x, t, c: x, "linear", "eps")
    with pytest.raises(ValueError, match="unknown prediction 'noise'"):
        Denoiser(lambda x, t, c: x, "linear", "noise")
    with pytest.raises(TypeError, match="model must be callable"):
        Denoiser(3, "linear", "eps")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        den([1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(4,\)"):
        den(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        den(torch.zeros(4, 2), -0.1)
    with pytest.raises(ValueError, match="model returned shape"):
        Denoiser(lambda x, t, c: x[:, :1], "linear", "eps")(torch.zeros(4, 2), 0.5)
