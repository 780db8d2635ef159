r"""UniPC (Zhao et al. 2023, arXiv 2302.04867): a unified predictor–corrector, B(h) = e^{−h} − 1 (bh2).

Data-prediction form, order 2 (diffusers' default ``UniPCMultistepScheduler``).
"""

from __future__ import annotations

import math

import torch

from visgen.param import Denoiser
from visgen.sampling._common import denoise_to_zero as _denoise
from visgen.sampling._common import lambda_grid

__all__ = ["sample_unipc"]


def _unic(step, x0_new):
    r"""UniC (Zhao et al. 2023, §3.1) for the step t → s just predicted.

    ``step`` = (base, α_s, B, h, x̂0_t, x̂0_prev, r) with base the first-order update and
    r = (λ_prev − λ_t)/h. The coefficients ρ solve Σ_k ρ_k r_k^{j−1} = (j − 1)! g_j / B for
    j = 1..p, with g_1 = B/(−h) − 1, g_2 = g_1/(−h) − ½ (the φ-functions of −h).
    """
    base, a_s, B, h, x0, x0_prev, r = step
    g1 = -B / h - 1
    b1, b2 = g1 / B, 2 * (-g1 / h - 0.5) / B
    if r is None:  # order 1 history: ρ = ½, the trapezoid rule in λ
        return base - (a_s * B * 0.5) * (x0_new - x0)
    rho_prev = (b1 - b2) / (1 - r)
    rho_new = b1 - rho_prev
    return base - (a_s * B) * ((rho_prev / r) * (x0_prev - x0) + rho_new * (x0_new - x0))


@torch.no_grad()
def sample_unipc(
    den: Denoiser, x: torch.Tensor, ts, cond=None, *, callback=None, denoise_to_zero=False
) -> torch.Tensor:
    r"""UniPC-2 with B(h) = e^{−h} − 1 (Zhao et al. 2023, §3), x̂0 form.

    Predictor UniP-2 (with ρ = ½ it is DPM-Solver++(2M)):
    x̃_s = (σ_s/σ_t) x_t − α_s B x̂0_t − α_s B · ½ (x̂0_{prev} − x̂0_t)/r, r = (λ_prev − λ_t)/h.
    The model is then evaluated at x̃_s, and that evaluation, needed for the next step
    anyway, feeds the corrector UniC (:func:`_unic`), which raises the order by one:
    order 3 for 1 NFE per step. The first step predicts with order 1; the final state is
    not corrected (no evaluation after it); a step to σ = 0 is the denoising step.
    """
    g = lambda_grid(den, ts, "sample_unipc")
    x0_prev = lam_prev = step = None
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        x0, lam = pred.x0, g.logsnr[i]
        if step is not None:
            x = _unic(step, x0)
        if g.sigma[i + 1] == 0:
            x = g.alpha[i + 1] * x0
            continue
        a_s, h = g.alpha[i + 1], g.logsnr[i + 1] - lam
        B = math.expm1(-h)
        base = (g.sigma[i + 1] / g.sigma[i]) * x - (a_s * B) * x0
        r = None if x0_prev is None else (lam_prev - lam) / h
        x = base if r is None else base - (a_s * B * 0.5 / r) * (x0_prev - x0)
        step = (base, a_s, B, h, x0, x0_prev, r)
        x0_prev, lam_prev = x0, lam
    return _denoise(den, x, g, cond) if denoise_to_zero else x
