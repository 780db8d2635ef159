import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete, VPLinear, get_schedule

ALL = [VPDiscrete(), VPLinear(), VPCosine(), VE(), EDM(), Linear()]
VP = ALL[:3]
T = torch.linspace(0.02, 0.98, 49, dtype=torch.float64)
DTYPES = {torch.float32: 32, torch.float64: 64}


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


@pytest.mark.parametrize("sch", VP, ids=lambda s: s.name)
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


# --- the ends, in float32 and float64, on any CPU ------------------------------------------


def _edges(dtype) -> list[float]:
    """0, 1, their neighbours and the middle, where rounding decides the sign of σ² or log α."""
    tiny, one = torch.tensor(0.0, dtype=dtype), torch.tensor(1.0, dtype=dtype)
    below_one = torch.nextafter(one, tiny)
    return [0.0, 1.0, torch.nextafter(tiny, one).item(), below_one.item(), 0.5]


def _times(data, dtype) -> torch.Tensor:
    drawn = data.draw(st.lists(st.floats(0, 1, width=DTYPES[dtype]), min_size=1, max_size=32))
    return torch.tensor(_edges(dtype) + drawn, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sch", ALL, ids=lambda s: s.name)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_schedule_is_never_nan_and_inverts_its_logsnr(sch, dtype, data):
    t = _times(data, dtype)
    values = {
        name: getattr(sch, name)(t)
        for name in ("alpha", "sigma", "logsnr", "f", "g", "d_alpha", "d_sigma")
    }
    for name, v in values.items():
        assert v.dtype == dtype, name
        assert not v.isnan().any(), f"{name} is NaN at t = {t[v.isnan()].tolist()}"
    assert (values["alpha"] >= 0).all() and (values["sigma"] >= 0).all()
    lam = values["logsnr"]
    back = sch.t_from_logsnr(lam)
    assert back.dtype == dtype and not back.isnan().any() and ((back >= 0) & (back <= 1)).all()
    # λ = ±∞ only at the singular ends (or where σ² or α underflows next to them), and
    # t(±∞) is that end exactly
    assert (back[lam == math.inf] == 0).all() and (t[lam == math.inf] < 1e-30).all()
    assert (back[lam == -math.inf] == 1).all() and (t[lam == -math.inf] == 1).all()
    # t(λ(t)) = t up to the conditioning: λ carries a rounding error of a few ε(1 + |λ|),
    # which t(λ) turns into |dt/dλ| times that (measured worst case ≤ 3 ε of this bound
    # over 6·10⁵ times per schedule and dtype; the bar is 16), and absolutely below the
    # smallest normal number, where floats lose relative precision
    finite = torch.isfinite(lam)
    t64, lam64 = t[finite].double(), lam[finite].double()
    dlam_dt = sch.d_alpha(t64) / sch.alpha(t64) - sch.d_sigma(t64) / sch.sigma(t64)
    info = torch.finfo(dtype)
    bound = 16 * info.eps * (t64 + (1 + lam64.abs()) / dlam_dt.abs()) + info.tiny
    err = (back[finite].double() - t64).abs()
    assert (err <= bound).all(), f"t(λ(t)) − t = {err.max():.3g} at t = {t64[err.argmax()]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("sch", VP, ids=lambda s: s.name)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_vp_schedule_preserves_variance_exactly_at_the_ends(sch, dtype, data):
    t = _times(data, dtype)
    alpha, sigma = sch.alpha(t), sch.sigma(t)
    assert ((alpha**2 + sigma**2 - 1).abs() <= 4 * torch.finfo(dtype).eps).all()
    zero = torch.zeros(1, dtype=dtype)
    assert sch.alpha(zero) == 1 and sch.sigma(zero) == 0 and sch.logsnr(zero) == math.inf
    assert sch.log_alpha(zero) == 0 and sch.t_from_logsnr(sch.logsnr(zero)) == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cosine_and_linear_reach_pure_noise_exactly(dtype):
    one = torch.ones(1, dtype=dtype)
    for sch in (VPCosine(), Linear()):
        assert sch.alpha(one) == 0 and sch.sigma(one) == 1 and sch.logsnr(one) == -math.inf
        assert sch.t_from_logsnr(sch.logsnr(one)) == 1
        assert sch.f(one) == -math.inf and sch.g(one) == math.inf


def test_one_ulp_above_zero_in_log_alpha_is_clamped():
    """The NaN of issue 14, made on purpose: a VP schedule whose log α(0) rounds one ulp above
    0 (as torch's cos/log and math's did on an AVX-512 CPU) must still give σ(0) = 0 and
    λ(0) = +∞, not σ = √(negative) = NaN."""

    class OneUlpHigh(VPLinear):
        def _log_alpha(self, t):
            return torch.where(t == 0, torch.finfo(t.dtype).tiny, super()._log_alpha(t))

    sch = OneUlpHigh()
    for dtype in DTYPES:
        t = torch.tensor([0.0, 0.5], dtype=dtype)
        assert sch.alpha(t)[0] == 1 and sch.sigma(t)[0] == 0 and sch.logsnr(t)[0] == math.inf
        assert sch.t_from_logsnr(sch.logsnr(t))[0] == 0
