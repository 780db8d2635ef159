r"""Stochastic samplers: ancestral (DDPM), annealed Langevin (NCSN), reverse-SDE Euler–Maruyama
and predictor–corrector (Song et al. 2021).

All take a decreasing grid ``ts`` and an explicit ``generator``. Where a grid ends at t = 0
the last step adds no noise and returns the mean, as DDPM and score-SDE do.
"""

from __future__ import annotations

import math

import torch

from visgen._checks import check_choice, check_positive
from visgen.param import Denoiser
from visgen.sampling.grids import check_grid

__all__ = ["sample_ancestral", "sample_euler_maruyama", "sample_langevin", "sample_pc"]


def _noise(x: torch.Tensor, generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _coeffs(den: Denoiser, ts: torch.Tensor, dtype) -> dict[str, list[float]]:
    sch = den.schedule
    return {k: getattr(sch, k)(ts).to(dtype).tolist() for k in ("alpha", "sigma", "f", "g")}


@torch.no_grad()
def sample_ancestral(
    den: Denoiser, x, ts, cond=None, *, variance: str = "beta_tilde", generator=None, callback=None
):
    r"""Ancestral sampling with the DDPM posterior (Ho et al. 2020, Alg. 2), for any grid.

    From t to s < t, with α_{t|s} = α_t/α_s and σ²_{t|s} = σ_t² − α²_{t|s} σ_s²:

    .. math:: x_s = \frac{α_{t|s} σ_s^2}{σ_t^2} x_t + \frac{α_s σ_{t|s}^2}{σ_t^2} \hat x_0 + \sqrt{v}\, z

    with v = β̃ = σ²_{t|s} σ_s²/σ_t² (``variance="beta_tilde"``, the true posterior variance)
    or v = β = σ²_{t|s} (``variance="beta"``). On VPDiscrete with ``uniform(1000)`` this is
    DDPM's 1000-step sampler exactly; ε̂-form and x̂0-form updates are the same algebra.
    """
    check_choice(variance, "variance", ("beta_tilde", "beta"))
    ts = check_grid(ts)
    c = _coeffs(den, ts, x.dtype)
    n = len(ts) - 1
    for i in range(n):
        a_t, s_t, a_s, s_s = c["alpha"][i], c["sigma"][i], c["alpha"][i + 1], c["sigma"][i + 1]
        pred = den(x, ts[i].item(), cond)
        if callback is not None:
            callback(i, ts[i].item(), x, pred)
        a_ts = a_t / a_s
        var_ts = s_t**2 - a_ts**2 * s_s**2
        x = (a_ts * s_s**2 / s_t**2) * x + (a_s * var_ts / s_t**2) * pred.x0
        if s_s > 0:
            v = var_ts * s_s**2 / s_t**2 if variance == "beta_tilde" else var_ts
            x = x + math.sqrt(v) * _noise(x, generator)
    return x


@torch.no_grad()
def sample_euler_maruyama(den: Denoiser, x, ts, cond=None, *, generator=None, callback=None):
    r"""Euler–Maruyama on the reverse SDE dx = [f x − g² ∇log p_t] dt + g dw̄ (Song et al. 2021, eq. 6).

    With the signed step h = s − t < 0: x ← x + (f x − g² score) h + g √|h| z. Strong order
    1 here, because the noise is additive. ``ts[0]`` must avoid points where g is infinite
    (t = 1 for the ``linear`` and ``vp_cosine`` schedules).
    """
    ts = check_grid(ts)
    c = _coeffs(den, ts, x.dtype)
    if not all(math.isfinite(g) for g in c["g"][:-1]):
        raise ValueError(
            "ts starts where the SDE diffusion g(t) is infinite; start below t = 1 for this schedule"
        )
    for i in range(len(ts) - 1):
        t, h = ts[i].item(), (ts[i + 1] - ts[i]).item()
        pred = den(x, t, cond)
        if callback is not None:
            callback(i, t, x, pred)
        x = x + (c["f"][i] * x - c["g"][i] ** 2 * pred.score) * h
        if ts[i + 1] > 0:
            x = x + c["g"][i] * math.sqrt(-h) * _noise(x, generator)
    return x


@torch.no_grad()
def sample_langevin(
    den: Denoiser,
    x,
    ts,
    cond=None,
    *,
    n_steps: int = 100,
    step_size: float = 2e-5,
    denoise: bool = True,
    generator=None,
    callback=None,
):
    r"""Annealed Langevin dynamics (Song & Ermon 2019, arXiv 1907.05600, Alg. 1).

    For each noise level σ_i = σ(ts[i]) (decreasing): ``n_steps`` updates
    x ← x + (η_i/2) ∇log p + √η_i z with η_i = step_size · σ_i²/σ_L², σ_L the last level.
    ``denoise`` adds Tweedie's step x ← E[x0 | x] at the end (Jolicoeur-Martineau et al. 2021).
    NFE = len(ts) · n_steps (+1 with ``denoise``).
    """
    check_positive(n_steps, "n_steps", integer=True)
    check_positive(step_size, "step_size")
    ts = check_grid(ts)
    sigmas = den.schedule.sigma(ts).tolist()
    if sigmas[-1] <= 0:
        raise ValueError(
            "ts must end at a positive noise level for Langevin dynamics (sigma(ts[-1]) = 0)"
        )
    for i, (t, sigma) in enumerate(zip(ts.tolist(), sigmas)):
        eta = step_size * (sigma / sigmas[-1]) ** 2
        for _ in range(n_steps):
            pred = den(x, t, cond)
            x = x + 0.5 * eta * pred.score + math.sqrt(eta) * _noise(x, generator)
        if callback is not None:
            callback(i, t, x, pred)
    if denoise:
        x = den(x, ts[-1].item(), cond).x0
    return x


@torch.no_grad()
def sample_pc(
    den: Denoiser,
    x,
    ts,
    cond=None,
    *,
    n_corrector: int = 1,
    snr: float = 0.16,
    generator=None,
    callback=None,
):
    r"""Predictor–corrector sampling (Song et al. 2021, Alg. 2–3).

    Predictor: one reverse-SDE Euler–Maruyama step t → s. Corrector: ``n_corrector`` Langevin
    steps at s with step size ε = 2 a (r ‖z‖/‖∇log p‖)², r = ``snr`` and a = (α_s/α_t)²
    (1 for VE, 1 − β for VP), the norms averaged over the batch as in the paper's code (a
    per-sample ratio is heavy-tailed in low dimension). No corrector at s = 0.
    NFE = steps · (1 + n_corrector), minus n_corrector if the grid ends at 0.
    """
    if not isinstance(n_corrector, int) or n_corrector < 0:
        raise ValueError(f"n_corrector must be a non-negative int, got {n_corrector!r}")
    check_positive(snr, "snr")
    ts = check_grid(ts)
    c = _coeffs(den, ts, x.dtype)
    if not all(math.isfinite(g) for g in c["g"][:-1]):
        raise ValueError(
            "ts starts where the SDE diffusion g(t) is infinite; start below t = 1 for this schedule"
        )
    for i in range(len(ts) - 1):
        t, s, h = ts[i].item(), ts[i + 1].item(), (ts[i + 1] - ts[i]).item()
        pred = den(x, t, cond)
        if callback is not None:
            callback(i, t, x, pred)
        x = x + (c["f"][i] * x - c["g"][i] ** 2 * pred.score) * h
        if s == 0:
            break
        x = x + c["g"][i] * math.sqrt(-h) * _noise(x, generator)
        a = (c["alpha"][i + 1] / c["alpha"][i]) ** 2
        for _ in range(n_corrector):
            score = den(x, s, cond).score
            z = _noise(x, generator)
            ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean().clamp_min(
                1e-12
            )
            eps = 2 * a * (snr * ratio) ** 2
            x = x + eps * score + torch.sqrt(2 * eps) * z
    return x
