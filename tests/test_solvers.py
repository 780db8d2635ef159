"""Lecture 4's fast solvers against exact oracles: convergence orders on a 2D Gaussian mixture
against a DOP853 reference, closed-form identities, schedule invariance, NFE accounting."""

import math

import pytest
import torch

from visgen import Denoiser
from visgen.oracles import DiracMixture, eight_gaussians, gaussian_pfode, reference_pfode
from visgen.sampling import (
    grids,
    sample_ancestral,
    sample_ddim,
    sample_dpm_1,
    sample_dpm_2,
    sample_dpm_2m,
    sample_dpm_3,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_2s,
    sample_dpmpp_3m,
    sample_euler,
    sample_heun,
    sample_unipc,
)
from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete, VPLinear

SCHEDULES = [VPDiscrete(), VPLinear(), VPCosine(), VE(0.01, 50.0), EDM(), Linear()]

# name: (sampler, theoretical order, NFE per step)
SOLVERS = {
    "euler": (sample_euler, 1, 1),
    "ddim": (sample_ddim, 1, 1),
    "dpm_1": (sample_dpm_1, 1, 1),
    "heun": (sample_heun, 2, 2),
    "dpm_2": (sample_dpm_2, 2, 2),
    "dpm_2m": (sample_dpm_2m, 2, 1),
    "dpmpp_2s": (sample_dpmpp_2s, 2, 2),
    "dpmpp_2m": (sample_dpmpp_2m, 2, 1),
    "dpm_3": (sample_dpm_3, 3, 3),
    "dpmpp_3m": (sample_dpmpp_3m, 3, 1),
    "unipc": (sample_unipc, 3, 1),  # UniPC-2 = UniP-2 + UniC: one order above its predictor
}
LAMBDA_SOLVERS = [n for n in SOLVERS if n not in ("euler", "heun", "ddim")]

T0, T1 = 0.99, 0.02  # METHODS §3.3: flow matching, λ-uniform grid, away from λ = ±∞
STEPS = (64, 128, 256)  # the asymptotic range: pre-asymptotic slopes at 8-16 steps are 1.5-4


@pytest.fixture(scope="module")
def problem():
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return den, x1, reference_pfode(den, x1, T0, T1, rtol=1e-12, atol=1e-12)


def rms(a, b):
    return ((a - b) ** 2).sum(1).mean().sqrt().item()


@pytest.mark.parametrize("name", list(SOLVERS))
def test_convergence_order_against_dop853(name, problem):
    den, x1, ref = problem
    fn, order, _ = SOLVERS[name]
    errors = [rms(fn(den, x1, grids.logsnr(n, "linear", T0, T1)), ref) for n in STEPS]
    logs = torch.log(torch.tensor(STEPS, dtype=torch.float64))
    loge = torch.log(torch.tensor(errors, dtype=torch.float64))
    slope = -((logs - logs.mean()) * (loge - loge.mean())).sum() / ((logs - logs.mean()) ** 2).sum()
    assert abs(slope - order) <= 0.25, (name, errors, slope.item())


def test_dpm_solver_1_is_euler_and_ddim_on_flow_matching(problem):
    den, x1, _ = problem
    ts = grids.sd3(7, 3.0, 0.97, 0.01)  # any grid: the identity is exact step by step
    euler = sample_euler(den, x1, ts)
    assert (sample_dpm_1(den, x1, ts) - euler).abs().max() < 1e-10
    assert (sample_ddim(den, x1, ts) - euler).abs().max() < 1e-10


@pytest.mark.parametrize("sch", SCHEDULES, ids=lambda s: s.name)
def test_single_dirac_is_sampled_exactly_in_one_ddim_step(sch, gen):
    point = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    den = DiracMixture(point).denoiser(sch)
    t, s = 0.9, 0.3
    xt = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    # straight PF-ODE trajectories: one step lands on the closed-form flow map ...
    exact = gaussian_pfode(xt, t, s, sch, point, 0.0)
    assert (sample_ddim(den, xt, [t, s]) - exact).abs().max() < 1e-12
    # ... and a step to t = 0 on the data point itself (α(0) = 1, σ(0) = 0 schedules)
    if sch.sigma(torch.tensor(0.0)) == 0:
        assert (sample_ddim(den, xt, [t, 0.0]) - point).abs().max() < 1e-12
    assert den.nfe == 1 + (sch.sigma(torch.tensor(0.0)) == 0)


def test_ddim_eta_one_is_ddpm_ancestral_sampling(gen):
    den = eight_gaussians(dtype=torch.float64).denoiser(VPDiscrete())
    x = torch.randn(256, 2, generator=gen, dtype=torch.float64)
    ts = grids.uniform(50)
    ddpm = sample_ancestral(den, x, ts, generator=torch.Generator().manual_seed(3))
    ddim = sample_ddim(den, x, ts, eta=1.0, generator=torch.Generator().manual_seed(3))
    assert (ddpm - ddim).abs().max() < 1e-10


def test_first_step_of_sde_dpmpp_is_ddim_eta_one(gen):
    den = eight_gaussians(dtype=torch.float64).denoiser(VPLinear())
    x = torch.randn(128, 2, generator=gen, dtype=torch.float64)
    one = sde = None
    for ts in ([0.8, 0.5], [0.8, 0.5, 0.2, 0.0]):
        ddim = sample_ddim(den, x, ts[:2], eta=1.0, generator=torch.Generator().manual_seed(4))
        sde = sample_dpmpp_2m_sde(den, x, ts, generator=torch.Generator().manual_seed(4))
        one = sde if len(ts) == 2 else one
    assert (one - ddim).abs().max() < 1e-10
    assert torch.isfinite(sde).all()


@pytest.mark.parametrize("name", LAMBDA_SOLVERS)
def test_lambda_solvers_are_schedule_invariant(name, gen):
    """Exponential integrators depend only on the λ grid and x/α: every schedule, flow
    matching included, gives the same x/α as any other for the same λ's."""
    fn = SOLVERS[name][0]
    gmm = eight_gaussians(dtype=torch.float64)
    lam = torch.linspace(-3.5, 4.0, 9, dtype=torch.float64)
    y1 = torch.randn(32, 2, generator=gen, dtype=torch.float64)  # x/α at the start
    outputs = []
    for sch in SCHEDULES:
        ts = sch.t_from_logsnr(lam).double()
        a0, a1 = sch.alpha(ts[0]), sch.alpha(ts[-1])
        outputs.append(fn(gmm.denoiser(sch), y1 * a0, ts) / a1)
    for sch, out in zip(SCHEDULES[1:], outputs[1:]):
        assert (out - outputs[0]).abs().max() < 1e-9, sch.name


@pytest.mark.parametrize("name", list(SOLVERS) + ["dpmpp_2m_sde"])
def test_nfe_accounting_and_final_denoising(name, gen):
    fn, _, per_step = SOLVERS.get(name, (sample_dpmpp_2m_sde, 1, 1))
    den = eight_gaussians(dtype=torch.float64).denoiser(VPDiscrete())
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    kwargs = {"generator": gen} if name == "dpmpp_2m_sde" else {}
    fn(den, x, grids.logsnr(6, den.schedule), **kwargs)
    assert den.nfe == 6 * per_step
    den.nfe = 0
    y = fn(den, x, grids.logsnr(6, den.schedule), denoise_to_zero=True, **kwargs)
    assert den.nfe == 6 * per_step + 1
    den.nfe = 0  # a grid that ends where σ = 0: its last step is the 1-NFE denoising step
    z = fn(den, x, torch.cat([grids.logsnr(6, den.schedule), torch.zeros(1, dtype=torch.float64)]))
    assert den.nfe == 6 * per_step + 1
    if name not in ("euler", "heun", "dpmpp_2m_sde"):  # the denoised endpoint is x̂0 either way
        assert (z - y).abs().max() < 1e-12
    assert torch.isfinite(y).all() and torch.isfinite(z).all()


def test_precomputed_coefficients_match_the_schedule(gen):
    sch = VPCosine()
    x = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    raw = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    g = grids.schedule_on_grid(sch, [0.7, 0.3])
    for kind in ("eps", "x0", "v", "velocity", "score"):
        den = Denoiser(lambda x, t, cond=None: raw, sch, kind)
        plain = den(x, 0.7)
        fast = den(x, 0.7, coefficients=g.coefficients[0])
        for attr in ("x0", "eps", "v", "velocity", "score"):
            assert torch.allclose(getattr(plain, attr), getattr(fast, attr), atol=1e-12)
        short = den(x, 0.7, coefficients=g.coefficients[0][:2])  # velocity falls back
        assert torch.allclose(short.velocity, plain.velocity, atol=1e-12)


@pytest.mark.parametrize("sch", [VPLinear(), Linear()], ids=lambda s: s.name)
def test_sde_dpmpp_2m_samples_the_gaussian_marginal(sch, gen):
    """Gaussian data N(μ, c²): the reverse SDE ends in N(α μ, α² c² + σ²) exactly. The
    second-order multistep term removes most of the first-order (DDPM) variance bias."""
    from visgen.oracles import GaussianMixture

    mu, c, n = 0.5, 0.8, 100_000
    den = GaussianMixture([[mu]], c).to(torch.float64).denoiser(sch)
    ts = grids.logsnr(40, sch)
    a0, s0 = sch.alpha(ts[0]).item(), sch.sigma(ts[0]).item()
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64) * math.hypot(a0 * c, s0)
    a, s = sch.alpha(ts[-1]).item(), sch.sigma(ts[-1]).item()
    std = math.hypot(a * c, s)
    sde = sample_dpmpp_2m_sde(den, x, ts, generator=gen)
    ddpm = sample_ddim(den, x, ts, eta=1.0, generator=gen)
    assert abs(sde.mean().item() - a * mu) < 4 * std / math.sqrt(n)
    assert abs(sde.std().item() / std - 1) < 0.03  # measured: 0.009 (VP), 0.019 (FM)
    assert ddpm.std().item() / std - 1 < -0.08  # measured: -0.11 (VP), -0.15 (FM); SE 0.002


def test_multistep_beats_singlestep_first_order_at_equal_nfe(problem):
    # METHODS lecture 4 (d): at equal NFE ∈ {8, 16}, DPM-2M error ≤ DPM-1 error / 3
    den, x1, ref = problem
    for nfe in (8, 16):
        ts = grids.logsnr(nfe, "linear", T0, T1)
        assert rms(sample_dpm_2m(den, x1, ts), ref) <= rms(sample_dpm_1(den, x1, ts), ref) / 3


@pytest.mark.parametrize("name", list(SOLVERS) + ["dpmpp_2m_sde"])
def test_bad_input(name):
    fn = SOLVERS.get(name, (sample_dpmpp_2m_sde,))[0]
    den = eight_gaussians().denoiser("linear")
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="strictly decreasing"):
        fn(den, x, [0.9, 0.5, 0.7, 0.1])
    with pytest.raises(ValueError, match="at least 2 times"):
        fn(den, x, [0.5])
    if name in LAMBDA_SOLVERS or name == "dpmpp_2m_sde":
        with pytest.raises(ValueError, match=r"ts\[0\] = 1.0 has log-SNR λ = -inf"):
            fn(den, x, grids.uniform(4))  # flow matching's t = 1 has α = 0
    with pytest.raises(ValueError, match="already ends at t = 0.0"):
        fn(den, x, grids.uniform(4, 0.9, 0.0), denoise_to_zero=True)


def test_ddim_bad_eta():
    den = eight_gaussians().denoiser("linear")
    with pytest.raises(ValueError, match="eta must be a non-negative float"):
        sample_ddim(den, torch.zeros(2, 2), grids.uniform(2), eta=-0.5)


# --- grids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sch", SCHEDULES, ids=lambda s: s.name)
def test_logsnr_grid_is_uniform_in_lambda_and_clipped(sch):
    ts = grids.logsnr(10, sch)
    lam = sch.logsnr(ts)
    assert torch.isfinite(lam).all() and lam.abs().max() <= grids.LOGSNR_MAX
    steps = torch.diff(lam)
    assert torch.allclose(steps, steps.mean().expand(10), rtol=1e-9)
    lam_ends = sch.logsnr(torch.tensor([1.0, 0.0], dtype=torch.float64))
    expected = [1.0 - grids.T_EPS if lam_ends[0].abs() > 15 else 1.0]
    expected.append(grids.T_EPS if lam_ends[1].abs() > 15 else 0.0)
    assert ts[[0, -1]].tolist() == expected


def test_edm_grid():
    # on the EDM schedule, whose σ(t) is the ρ-warped interval, the grid is uniform in t
    assert torch.allclose(grids.edm(8, EDM()), grids.uniform(8), atol=1e-12)
    # on flow matching, t = σ/(1 + σ) with Karras' σ_i (METHODS §3.4)
    rho, lo, hi = 7.0, 0.002, 80.0
    i = torch.arange(9, dtype=torch.float64) / 8
    sigma = (hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    assert torch.allclose(grids.edm(8, "linear", lo, hi, rho), sigma / (1 + sigma), atol=1e-12)
    with pytest.raises(ValueError, match="fall outside the range"):
        grids.edm(8, VPDiscrete(), sigma_max=500.0)


def test_sd3_and_quadratic_grids():
    assert torch.allclose(grids.sd3(6, 1.0), grids.uniform(6), atol=1e-15)
    ts = grids.sd3(6, 3.0)
    u = grids.uniform(6)
    assert torch.allclose(ts, 3 * u / (1 + 2 * u)) and ts[0] == 1 and ts[-1] == 0
    assert (ts >= u).all()  # s > 1 moves steps towards noise
    q = grids.quadratic(4, 0.8, 0.0)
    assert torch.allclose(q, torch.tensor([0.8, 0.45, 0.2, 0.05, 0.0], dtype=torch.float64))


def test_grid_bad_input():
    for builder in (
        lambda n: grids.uniform(n),
        lambda n: grids.logsnr(n, "linear"),
        lambda n: grids.edm(n, "linear"),
        lambda n: grids.sd3(n),
        lambda n: grids.quadratic(n),
    ):
        with pytest.raises(ValueError, match="n must be positive"):
            builder(0)
        with pytest.raises(TypeError, match="n must be an int"):
            builder(2.5)
    with pytest.raises(ValueError, match=r"t_start=1.0 gives log-SNR λ = -inf"):
        grids.logsnr(10, "linear", t_start=1.0)
    with pytest.raises(ValueError, match="t_end < t_start"):
        grids.logsnr(10, "linear", 0.2, 0.5)
    with pytest.raises(ValueError, match="strictly decreasing"):
        grids.check_grid([1.0, 0.5, 0.5, 0.0])
    assert math.isclose(grids.uniform(3)[1].item(), 2 / 3)
