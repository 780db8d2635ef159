"""Lecture 4's fast solvers against exact oracles: convergence orders on a 2D Gaussian mixture
against a DOP853 reference, closed-form identities, schedule invariance, NFE accounting."""

import math

import pytest
import torch

from visgen import Denoiser
from visgen.oracles import (
    DiracMixture,
    GaussianMixture,
    eight_gaussians,
    gaussian_pfode,
    reference_pfode,
)
from visgen.sampling import (
    SOLVERS,
    Solver,
    grids,
    sample_ancestral,
    sample_ddim,
    sample_dpm_1,
    sample_dpm_2m,
    sample_dpmpp_2m_sde,
    sample_euler,
)
from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete, VPLinear

SCHEDULES = [VPDiscrete(), VPLinear(), VPCosine(), VE(0.01, 50.0), EDM(), Linear()]

LAMBDA_SOLVERS = [n for n in SOLVERS if n not in ("euler", "heun", "ddim")]

T0, T1 = 0.99, 0.02  # flow matching, λ-uniform grid, away from λ = ±∞


@pytest.fixture(scope="module")
def problem():
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    x1 = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return den, x1, reference_pfode(den, x1, T0, T1, rtol=1e-12, atol=1e-12)


def rms(a, b):
    return ((a - b) ** 2).sum(1).mean().sqrt().item()


# The asymptotic range: a 3-D mixture of unequal components integrated from t = 0.6, where x̂0
# still changes along λ, so a low-order start shows (on the 2-D problem from t = 0.99 the
# 3M start's O(h²) term hides until n ≈ 2000). Measured slopes at 128 → 256 → 512 steps are
# within 0.06 of the order for every solver.
ORDER_STEPS = (128, 256, 512)


@pytest.fixture(scope="module")
def order_problem():
    g = torch.Generator().manual_seed(3)
    means = 1.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    stds = torch.tensor([0.2, 0.3, 0.5, 0.25, 0.4], dtype=torch.float64)
    den = GaussianMixture(means, stds).denoiser("linear")
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return den, x, reference_pfode(den, x, 0.6, 0.05, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", list(SOLVERS))
def test_convergence_order_against_dop853(name, order_problem):
    den, x, ref = order_problem
    solver = SOLVERS[name]
    errors = [
        rms(solver.fn(den, x, grids.logsnr(n, "linear", 0.6, 0.05)), ref) for n in ORDER_STEPS
    ]
    logs = torch.log(torch.tensor(ORDER_STEPS, dtype=torch.float64))
    loge = torch.log(torch.tensor(errors, dtype=torch.float64))
    slope = -((logs - logs.mean()) * (loge - loge.mean())).sum() / ((logs - logs.mean()) ** 2).sum()
    assert abs(slope - solver.order) <= 0.15, (name, errors, slope.item())


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
    fn = SOLVERS[name].fn
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
    solver = SOLVERS.get(name, Solver(name, sample_dpmpp_2m_sde, 1, 1, name))
    fn, cost = solver.fn, solver.per_step * 6 + solver.warmup
    den = eight_gaussians(dtype=torch.float64).denoiser(VPDiscrete())
    x = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    kwargs = {"generator": gen} if name == "dpmpp_2m_sde" else {}
    with den.counting() as count:
        fn(den, x, grids.logsnr(6, den.schedule), **kwargs)
    assert count.nfe == cost
    with den.counting() as count:
        y = fn(den, x, grids.logsnr(6, den.schedule), denoise_to_zero=True, **kwargs)
    assert count.nfe == cost + 1
    with den.counting() as count:  # a grid that ends where σ = 0: a 1-NFE denoising step
        ts = torch.cat([grids.logsnr(6, den.schedule), torch.zeros(1, dtype=torch.float64)])
        z = fn(den, x, ts, **kwargs)
    assert count.nfe == cost + 1 == solver.nfe(7)
    if name not in ("euler", "heun", "dpmpp_2m_sde"):  # the denoised endpoint is x̂0 either way
        assert (z - y).abs().max() < 1e-12
    assert torch.isfinite(y).all() and torch.isfinite(z).all()
    assert den.nfe == 3 * cost + 2  # the total keeps counting


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
    fn = SOLVERS[name].fn if name in SOLVERS else sample_dpmpp_2m_sde
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
    # on flow matching, t = σ/(1 + σ) with Karras' σ_i
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


# --- DPM-Solver++(3M): exact curvature term, lower-order final steps, diffusers' coefficient --


def _quadratic_x0_problem():
    """A model with x̂0(λ) = a + c (λ − m)², whatever x: the PF-ODE is solved in closed form,
    x_s = (σ_s/σ_t) x_t + σ_s [P(λ_s) − P(λ_t)], P(λ) = e^λ (a + c((λ − m)² − 2(λ − m) + 2))."""
    sch, a, c, m = VPDiscrete(), 0.3, 0.05, 1.0
    x0_of = lambda lam: a + c * (lam - m) ** 2

    def model(x, t, cond=None):
        return x0_of(sch.logsnr(t).to(x.dtype)).reshape(-1, 1).expand_as(x)

    def exact(x_t, lam_t, lam_s):
        prim = lambda lam: math.exp(lam) * (a + c * ((lam - m) ** 2 - 2 * (lam - m) + 2))
        sig = lambda lam: 1 / math.sqrt(1 + math.exp(2 * lam))  # VP: α² + σ² = 1, α/σ = e^λ
        return sig(lam_s) / sig(lam_t) * x_t + sig(lam_s) * (prim(lam_s) - prim(lam_t))

    return Denoiser(model, sch, "x0"), x0_of, exact, c


def test_dpmpp_3m_integrates_a_quadratic_x0_exactly_after_its_start(gen):
    den, _, exact, _ = _quadratic_x0_problem()
    ts = grids.logsnr(8, den.schedule)
    lam = den.schedule.logsnr(ts).tolist()
    sig = den.schedule.sigma(ts).tolist()
    x = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    for lower_order_final in (False, True):
        states = []
        out = SOLVERS["dpmpp_3m"].fn(
            den, x, ts, lower_order_final=lower_order_final,
            callback=lambda i, t, y, pred, states=states: states.append(y),
        )  # fmt: skip
        states.append(out)
        errors = [y - exact(x, lam[0], lam[i]) for i, y in enumerate(states)]
        assert errors[2].abs().max() > 1e-4  # the start (2S, then a 2-point step) is not exact
        # from step 2 on, third-order steps add nothing: the error only decays as σ_s/σ_t
        gaps = [(e - sig[i] / sig[2] * errors[2]).abs().max().item() for i, e in enumerate(errors)]
        if lower_order_final:  # the last two steps drop to orders 2 and 1
            assert max(gaps[3:7]) < 1e-12 and gaps[8] > 1e-5
        else:
            assert max(gaps[3:]) < 1e-12


def test_dpmpp_3m_curvature_term_vs_diffusers(gen):
    """diffusers' DPMSolverMultistepScheduler(solver_order=3) weights D₂ = h² d₂ by φ₃/h²:
    from the exact history of a quadratic x̂0 its step misses exactly α_s φ₃ d₂ (d₂ = c),
    half the exact integral's curvature term 2 α_s φ₃ d₂, which visgen's 3M uses."""
    pytest.importorskip("diffusers")
    from diffusers import DPMSolverMultistepScheduler

    den, x0_of, exact, c = _quadratic_x0_problem()
    sch = DPMSolverMultistepScheduler(solver_order=3)
    sch.set_timesteps(8)
    sigmas = sch.sigmas.double()  # σ/α = e^{−λ}; the last one is 0
    lam = (-torch.log(sigmas[:-1])).tolist()
    x = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    k = 4
    x_k = exact(x, lam[0], lam[k])
    history = [torch.full_like(x, x0_of(lam[j])) for j in (k - 2, k - 1, k)]
    sch._step_index = k
    ours_exact = exact(x, lam[0], lam[k + 1])
    theirs = sch.multistep_dpm_solver_third_order_update(history, sample=x_k)
    h = lam[k + 1] - lam[k]
    phi_3 = h * h / 2 - (h + math.expm1(-h))
    alpha_s = 1 / math.sqrt(1 + math.exp(-2 * lam[k + 1]))
    assert ((theirs - ours_exact) - (-alpha_s * phi_3 * c)).abs().max() < 1e-5
    assert alpha_s * phi_3 * c > 5e-4  # 50× the tolerance: far above float32 round-off
