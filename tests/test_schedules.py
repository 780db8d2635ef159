import math

import pytest
import torch

from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete, VPLinear, get_schedule

ALL = [VPDiscrete(), VPLinear(), VPCosine(), VE(), EDM(), Linear()]
T = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)


@pytest.mark.parametrize("sch", ALL, ids=lambda s: s.name)
def test_logsnr_inverse_and_monotone(sch):
    lam = sch.logsnr(T)
    assert (lam[1:] < lam[:-1]).all()
    assert torch.allclose(sch.t_from_logsnr(lam), T, atol=1e-10)


@pytest.mark.parametrize("sch", ALL, ids=lambda s: s.name)
def test_derivatives_match_finite_differences(sch):
    h = 1e-6
    t = T
    if isinstance(sch, VPDiscrete):  # log α has kinks at the knots k/T: stay inside segments
        t = (torch.floor(T * sch.T) + 0.5) / sch.T
    for f, df in ((sch.alpha, sch.d_alpha), (sch.sigma, sch.d_sigma)):
        fd = (f(t + h) - f(t - h)) / (2 * h)
        assert torch.allclose(df(t), fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sch", ALL, ids=lambda s: s.name)
def test_sde_coefficients_reproduce_marginal_variance(sch):
    # f = d log α/dt, g² = dσ²/dt − 2 f σ²  (Song et al. 2021, App. B): check the identity
    t = T
    g2 = sch.g(t) ** 2
    assert torch.allclose(sch.f(t), sch.d_alpha(t) / sch.alpha(t), rtol=1e-10)
    assert torch.allclose(
        g2, 2 * sch.sigma(t) * sch.d_sigma(t) - 2 * sch.f(t) * sch.sigma(t) ** 2, rtol=1e-8
    )
    assert (g2 > 0).all()


@pytest.mark.parametrize("sch", [VPDiscrete(), VPLinear(), VPCosine()], ids=lambda s: s.name)
def test_vp_is_variance_preserving(sch):
    assert torch.allclose(sch.alpha(T) ** 2 + sch.sigma(T) ** 2, torch.ones_like(T), atol=1e-12)


def test_ddpm_matches_discrete_cumprod():
    sch = VPDiscrete()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    k = torch.tensor([0, 1, 10, 500, 999])
    t = sch.t_of_index(k)
    assert torch.allclose(sch.alpha(t) ** 2, abar[k], rtol=1e-12)
    assert torch.allclose(sch.index_of_t(t), k.double())
    assert sch.alpha(torch.tensor(0.0, dtype=torch.float64)) == 1
    with pytest.raises(ValueError, match="k must be"):
        sch.t_of_index(1000)


def test_closed_forms():
    t = torch.tensor(0.3, dtype=torch.float64)
    assert math.isclose(Linear().logsnr(t), math.log(0.7 / 0.3), rel_tol=1e-12)
    assert math.isclose(VE(0.01, 50).sigma(t), 0.01 * 5000**0.3, rel_tol=1e-12)
    edm = EDM()
    assert math.isclose(edm.sigma(torch.tensor(0.0, dtype=torch.float64)), 0.002, rel_tol=1e-12)
    assert math.isclose(edm.sigma(torch.tensor(1.0, dtype=torch.float64)), 80, rel_tol=1e-12)
    c_skip, c_out, c_in, c_noise = edm.precondition(torch.tensor(0.5, dtype=torch.float64))
    assert math.isclose(c_skip, 0.5, rel_tol=1e-12) and math.isclose(
        c_in, 1 / math.sqrt(0.5), rel_tol=1e-12
    )
    assert math.isclose(c_out, 0.25 / math.sqrt(0.5), rel_tol=1e-12)
    assert math.isclose(c_noise, 0.25 * math.log(0.5), rel_tol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match="unknown schedule 'nope'"):
        get_schedule("nope")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        Linear().alpha(1.5)
    with pytest.raises(ValueError, match="t contains NaN"):
        VPLinear().sigma(torch.tensor([0.5, float("nan")]))
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VE(1.0, 0.5)
    with pytest.raises(TypeError, match="T must be an int"):
        VPDiscrete(T=10.5)
