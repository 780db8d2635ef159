r"""DPM-Solver (Lu et al. 2022, arXiv 2206.00927) and DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095).

Both integrate the PF-ODE exactly in its linear part, in the log-SNR λ = log(α/σ). From t to
s < t with h = λ_s − λ_t > 0 (DPM-Solver eq. 3.4; DPM-Solver++ §3 in x̂0):

.. math::
    x_s = \frac{α_s}{α_t} x_t − α_s \int_{λ_t}^{λ_s} e^{−λ} \hat ε(λ)\, dλ
        = \frac{σ_s}{σ_t} x_t + σ_s \int_{λ_t}^{λ_s} e^{λ} \hat x_0(λ)\, dλ,

and a Taylor expansion of ε̂ (DPM-Solver) or x̂0 (DPM-Solver++) in λ gives the k-th order
solvers. First order: x_s = (α_s/α_t) x_t − σ_s (e^h − 1) ε̂ = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) x̂0,
which is DDIM. Singlestep solvers evaluate the model at intermediate λ (k NFE per step);
multistep ones reuse earlier evaluations (1 NFE per step, first-order start).

Every solver here takes any schedule (flow matching included) and a grid with finite λ;
a last grid point where σ = 0 makes the last step the denoising step x_s = α_s x̂0 (the
first-order update's limit as λ_s → ∞), ``denoise_to_zero=True`` adds that step after a
grid that ends at σ > 0. Schedule values are computed once per grid
(:func:`~visgen.sampling.grids.schedule_on_grid`), intermediate times with one vectorised
``t_from_logsnr`` call.
"""

from __future__ import annotations

import functools
import math

import torch

from visgen._checks import check_choice
from visgen.param import Denoiser
from visgen.sampling._common import denoise_to_zero as _denoise
from visgen.sampling._common import lambda_grid
from visgen.sampling.grids import GridValues, schedule_values

__all__ = [
    "sample_dpm_1",
    "sample_dpm_2",
    "sample_dpm_2m",
    "sample_dpm_3",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s",
    "sample_dpmpp_3m",
]


def _stages(den: Denoiser, g: GridValues, fraction: float) -> GridValues:
    """Schedule values at λ_t + fraction · h of every step (once per schedule and grid)."""
    return _stage_values(den.schedule, g.t, fraction, den.prediction == "velocity")


@functools.lru_cache(maxsize=256)
def _stage_values(schedule, ts: tuple, fraction: float, derivatives: bool) -> GridValues:
    g = schedule_values(schedule, torch.tensor(ts, dtype=torch.float64), False)
    lam = [a + fraction * (b - a) for a, b in zip(g.logsnr[:-1], g.logsnr[1:])]
    if g.sigma[-1] == 0:  # the final denoising step has no intermediate stage
        lam[-1] = g.logsnr[-2]
    t = schedule.t_from_logsnr(torch.tensor(lam, dtype=torch.float64))
    return schedule_values(schedule, t.clamp(0, 1), derivatives)


@torch.no_grad()
def sample_dpm_1(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""DPM-Solver-1 (Lu et al. 2022, eq. 3.4 with ε̂ frozen): x_s = (α_s/α_t) x_t − σ_s (e^h − 1) ε̂.

    Order 1, 1 NFE per step; ≡ DDIM (η = 0), ≡ Euler for flow matching.
    """
    g = lambda_grid(den, ts, "sample_dpm_1")
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        h = g.logsnr[i + 1] - g.logsnr[i]
        x = (g.alpha[i + 1] / g.alpha[i]) * x - g.sigma[i + 1] * math.expm1(h) * pred.eps
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpm_2(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""Singlestep DPM-Solver-2 (Lu et al. 2022, §3.3, r₁ = ½): the λ-midpoint method.

    u = (α_m/α_t) x_t − σ_m (e^{h/2} − 1) ε̂(x_t, t) at λ_m = λ_t + h/2, then
    x_s = (α_s/α_t) x_t − σ_s (e^h − 1) ε̂(u, m). Order 2, 2 NFE per step (1 for a final
    denoising step).
    """
    g = lambda_grid(den, ts, "sample_dpm_2")
    m = _stages(den, g, 0.5)
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        a_t, h = g.alpha[i], g.logsnr[i + 1] - g.logsnr[i]
        u = (m.alpha[i] / a_t) * x - m.sigma[i] * math.expm1(h / 2) * pred.eps
        eps_m = den(u, m.t[i], cond, coefficients=m.coefficients[i]).eps
        x = (g.alpha[i + 1] / a_t) * x - g.sigma[i + 1] * math.expm1(h) * eps_m
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpm_3(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""Singlestep DPM-Solver-3 (Lu et al. 2022, §3.3, r₁ = 1/3, r₂ = 2/3).

    With D₁ = ε̂(u₁, s₁) − ε̂_t, D₂ = ε̂(u₂, s₂) − ε̂_t and φ(z) = (e^z − 1)/z − 1:

    .. math::
        u_1 &= \tfrac{α_{s_1}}{α_t} x_t − σ_{s_1}(e^{r_1 h} − 1) \hat ε_t, \quad
        u_2 = \tfrac{α_{s_2}}{α_t} x_t − σ_{s_2}(e^{r_2 h} − 1) \hat ε_t
              − σ_{s_2} \tfrac{r_2}{r_1} φ(r_2 h) D_1, \\
        x_s &= \tfrac{α_s}{α_t} x_t − σ_s (e^h − 1) \hat ε_t − \tfrac{σ_s}{r_2} φ(h) D_2.

    Order 3, 3 NFE per step (1 for a final denoising step).
    """
    r1, r2 = 1 / 3, 2 / 3
    g = lambda_grid(den, ts, "sample_dpm_3")
    g1, g2 = _stages(den, g, r1), _stages(den, g, r2)
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        a_t, h, eps = g.alpha[i], g.logsnr[i + 1] - g.logsnr[i], pred.eps
        u1 = (g1.alpha[i] / a_t) * x - g1.sigma[i] * math.expm1(r1 * h) * eps
        d1 = den(u1, g1.t[i], cond, coefficients=g1.coefficients[i]).eps - eps
        phi_2 = math.expm1(r2 * h) / (r2 * h) - 1
        u2 = (
            (g2.alpha[i] / a_t) * x
            - g2.sigma[i] * math.expm1(r2 * h) * eps
            - g2.sigma[i] * (r2 / r1) * phi_2 * d1
        )
        d2 = den(u2, g2.t[i], cond, coefficients=g2.coefficients[i]).eps - eps
        s_s = g.sigma[i + 1]
        x = (
            (g.alpha[i + 1] / a_t) * x
            - s_s * math.expm1(h) * eps
            - s_s / r2 * (math.expm1(h) / h - 1) * d2
        )
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpm_2m(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""Multistep DPM-Solver-2 in ε form (Lu et al. 2022b, arXiv 2211.01095, App. B).

    With r = h_{prev}/h and D = (ε̂_t − ε̂_{prev})/r (a backward difference in λ):
    x_s = (α_s/α_t) x_t − σ_s (e^h − 1) ε̂_t − ½ σ_s (e^h − 1) D. Order 2, 1 NFE per step;
    the first step is first order.
    """
    g = lambda_grid(den, ts, "sample_dpm_2m")
    eps_prev = h_prev = None
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        h, eps = g.logsnr[i + 1] - g.logsnr[i], pred.eps
        c = g.sigma[i + 1] * math.expm1(h)
        x = (g.alpha[i + 1] / g.alpha[i]) * x - c * eps
        if eps_prev is not None:
            x = x - (0.5 * c * h / h_prev) * (eps - eps_prev)
        eps_prev, h_prev = eps, h
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpmpp_2s(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""Singlestep DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1 with r = ½), data prediction.

    u = (σ_m/σ_t) x_t + α_m (1 − e^{−h/2}) x̂0(x_t, t) at λ_m = λ_t + h/2, then
    x_s = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) x̂0(u, m). Order 2, 2 NFE per step.
    """
    g = lambda_grid(den, ts, "sample_dpmpp_2s")
    m = _stages(den, g, 0.5)
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        s_t, h = g.sigma[i], g.logsnr[i + 1] - g.logsnr[i]
        u = (m.sigma[i] / s_t) * x - m.alpha[i] * math.expm1(-h / 2) * pred.x0
        x0_m = den(u, m.t[i], cond, coefficients=m.coefficients[i]).x0
        x = (g.sigma[i + 1] / s_t) * x - g.alpha[i + 1] * math.expm1(-h) * x0_m
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpmpp_2m(den, x, ts, cond=None, *, callback=None, denoise_to_zero=False):
    r"""Multistep DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2), data prediction.

    With r = h_{prev}/h and D = (1 + 1/(2r)) x̂0_t − 1/(2r) x̂0_{prev}:
    x_s = (σ_s/σ_t) x_t + α_s (1 − e^{−h}) D. Order 2, 1 NFE per step; first-order start.
    Matches diffusers' ``DPMSolverMultistepScheduler`` (dpmsolver++, midpoint) on its grid.
    """
    g = lambda_grid(den, ts, "sample_dpmpp_2m")
    x0_prev = h_prev = None
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        h, x0 = g.logsnr[i + 1] - g.logsnr[i], pred.x0
        c = -g.alpha[i + 1] * math.expm1(-h)
        x = (g.sigma[i + 1] / g.sigma[i]) * x + c * x0
        if x0_prev is not None:
            x = x + (0.5 * c * h / h_prev) * (x0 - x0_prev)
        x0_prev, h_prev = x0, h
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpmpp_3m(
    den,
    x,
    ts,
    cond=None,
    *,
    warmup: str = "singlestep",
    lower_order_final: bool = False,
    callback=None,
    denoise_to_zero=False,
):
    r"""Multistep DPM-Solver++(3M) (Lu et al. 2022b, arXiv 2211.01095, §4 and App. B), x̂0 form.

    x̂0(λ) is interpolated through its last three values (Newton divided differences in λ),
    x̂0 ≈ x̂0_t + d₁ (λ − λ_t) + d₂ (λ − λ_t)², and integrated exactly:

    .. math:: x_s = \frac{σ_s}{σ_t} x_t + α_s [φ_1 \hat x_{0,t} + φ_2 d_1 + 2 φ_3 d_2], \quad
              φ_1 = 1 − e^{−h},\ φ_2 = h − φ_1,\ φ_3 = h^2/2 − φ_2.

    **Start.** A multistep method has no history at its first step. ``warmup="singlestep"``
    (default) takes that step with DPM-Solver++(2S) (2 NFE; the second step is the 2-point
    multistep update): every step's local error is O(h³) or smaller and the method is of
    order 3 over the whole grid; n steps cost n + 1 NFE. ``warmup="multistep"`` starts with
    orders 1 and 2 at 1 NFE each (diffusers' and k-diffusion's choice): the first step's
    O(h²) local error survives, so the global order is 2 (its error curve bends from slope 3
    towards 2 as the grid is refined).

    ``lower_order_final``: the step with k steps left uses order ≤ k (diffusers' option, for
    stability on very short grids); a last step to σ = 0 is always the denoising step.

    **diffusers.** ``DPMSolverMultistepScheduler(solver_order=3)`` writes the same update
    with D₂ = h² d₂ but weights it by φ₃/h², half the exact integral's 2φ₃/h²
    (``tests/test_solvers.py::test_dpmpp_3m_curvature_term_vs_diffusers`` pins both); its
    curvature error is then O(h³) per step, the same order as its first-order start.
    """
    check_choice(warmup, "warmup", ("singlestep", "multistep"))
    g = lambda_grid(den, ts, "sample_dpmpp_3m")
    mid = _stages(den, g, 0.5) if warmup == "singlestep" else None
    steps = len(g.t) - 1
    hist = []  # (x̂0, λ) of earlier evaluations, newest last
    for i in range(steps):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        lam, x0 = g.logsnr[i], pred.x0
        h = g.logsnr[i + 1] - lam
        s_ratio, a_s = g.sigma[i + 1] / g.sigma[i], g.alpha[i + 1]
        if mid is not None and not hist:  # DPM-Solver++(2S), as in sample_dpmpp_2s
            u = (mid.sigma[i] / g.sigma[i]) * x - mid.alpha[i] * math.expm1(-h / 2) * x0
            x0_m = den(u, mid.t[i], cond, coefficients=mid.coefficients[i]).x0
            x = s_ratio * x - a_s * math.expm1(-h) * x0_m
            hist = [(x0, lam)]
            continue
        order = min(len(hist) + 1, 3, steps - i if lower_order_final else 3)
        phi_1 = -math.expm1(-h)
        phi_2 = h - phi_1
        x = s_ratio * x + (a_s * phi_1) * x0
        if order >= 2:
            (x0_1, lam_1), h_0 = hist[-1], lam - hist[-1][1]
            f01 = (x0 - x0_1) / h_0
            d1 = f01
            if order == 3:
                x0_2, lam_2 = hist[-2]
                f012 = (f01 - (x0_1 - x0_2) / (lam_1 - lam_2)) / (lam - lam_2)
                d1 = f01 + h_0 * f012
                x = x + (2 * a_s * (h * h / 2 - phi_2)) * f012
            x = x + (a_s * phi_2) * d1
        hist = [*hist[-1:], (x0, lam)]
    return _denoise(den, x, g, cond) if denoise_to_zero else x


@torch.no_grad()
def sample_dpmpp_2m_sde(
    den, x, ts, cond=None, *, generator=None, callback=None, denoise_to_zero=False
):
    r"""SDE-DPM-Solver++(2M) (Lu et al. 2022b, §5 and App. B; diffusers' sde-dpmsolver++).

    Exact in the linear part of the reverse SDE, with D as in :func:`sample_dpmpp_2m`:

    .. math:: x_s = \frac{σ_s}{σ_t} e^{−h} x_t + α_s (1 − e^{−2h}) D + σ_s \sqrt{1 − e^{−2h}}\, z.

    Its first-order step is DDPM's ancestral step with β̃ (≡ ``sample_ddim(eta=1)``).
    Strong order 1 (additive noise); 1 NFE per step; no noise on a step that ends at σ = 0.
    """
    g = lambda_grid(den, ts, "sample_dpmpp_2m_sde")
    x0_prev = h_prev = None
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * pred.x0
            continue
        h, x0 = g.logsnr[i + 1] - g.logsnr[i], pred.x0
        c = -g.alpha[i + 1] * math.expm1(-2 * h)
        x = (g.sigma[i + 1] / g.sigma[i] * math.exp(-h)) * x + c * x0
        if x0_prev is not None:
            x = x + (0.5 * c * h / h_prev) * (x0 - x0_prev)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + g.sigma[i + 1] * math.sqrt(-math.expm1(-2 * h)) * noise
        x0_prev, h_prev = x0, h
    return _denoise(den, x, g, cond) if denoise_to_zero else x
