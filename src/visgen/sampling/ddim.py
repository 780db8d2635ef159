r"""DDIM (Song, Meng & Ermon 2021, arXiv 2010.02502), for any schedule, with DDPM as η = 1."""

from __future__ import annotations

import math

import torch

from visgen.param import Denoiser
from visgen.sampling._common import denoise_to_zero as _denoise
from visgen.sampling.grids import schedule_on_grid

__all__ = ["sample_ddim"]


@torch.no_grad()
def sample_ddim(
    den: Denoiser,
    x: torch.Tensor,
    ts,
    cond=None,
    *,
    eta: float = 0.0,
    generator=None,
    callback=None,
    denoise_to_zero: bool = False,
) -> torch.Tensor:
    r"""DDIM (Song et al. 2021, eq. 12 and 16) on an arbitrary grid and schedule.

    From t to s < t, with x̂0, ε̂ the prediction at (x_t, t):

    .. math:: x_s = α_s \hat x_0 + \sqrt{σ_s^2 − c^2}\, \hat ε + c z, \qquad
              c = η \frac{σ_s}{σ_t} \sqrt{σ_t^2 − (α_t/α_s)^2 σ_s^2}

    (eq. 16 with ᾱ = α², 1 − ᾱ = σ²). η = 0 is the deterministic DDIM, the first-order
    exponential integrator of the PF-ODE (≡ DPM-Solver-1; ≡ Euler for flow matching); η = 1
    is DDPM's ancestral sampler with the posterior variance β̃ (≡
    ``sample_ancestral(variance="beta_tilde")``, same noise draws). n steps = n NFE.
    An ε-model cannot give x̂0 where α_t = 0: start such a schedule below t = 1.
    """
    if not (isinstance(eta, (int, float)) and eta >= 0):
        raise ValueError(f"eta must be a non-negative float, got {eta!r}")
    g = schedule_on_grid(den.schedule, ts, derivatives=den.prediction == "velocity")
    for i in range(len(g.t) - 1):
        pred = den(x, g.t[i], cond, coefficients=g.coefficients[i])
        if callback is not None:
            callback(i, g.t[i], x, pred)
        a_t, s_t, a_s, s_s = g.alpha[i], g.sigma[i], g.alpha[i + 1], g.sigma[i + 1]
        c = eta * s_s / s_t * math.sqrt(max(s_t**2 - (a_t / a_s * s_s) ** 2, 0.0))
        x = torch.add(a_s * pred.x0, pred.eps, alpha=math.sqrt(max(s_s**2 - c**2, 0.0)))
        if c > 0:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = x + c * noise
    return _denoise(den, x, g, cond) if denoise_to_zero else x
