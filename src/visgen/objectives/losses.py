r"""Diffusion and flow-matching training losses over a :class:`~visgen.param.Denoiser`.

One general loss, :func:`diffusion_loss`: draw t and ε, form x_t = α_t x0 + σ_t ε, evaluate the
network once and regress any parametrisation of its output onto the matching target
(conversions by :mod:`visgen.param`). The classical objectives are instances of it:

* :func:`ddpm_loss` — Ho et al. 2020, eq. 14 (L_simple): ε-MSE at a uniform discrete step;
* :func:`dsm_loss` — Song & Ermon 2019, eq. 5/6: ‖σ s_θ(x + σε, σ) + ε‖² over a σ ladder;
* :func:`flow_matching_loss` — Lipman et al. 2023, eq. 23: ‖v_θ − (ε − x0)‖², with the
  JiT variant (Li & He 2025, arXiv 2511.13720): an x-predicting network trained with the
  v-loss, v̂ = (x_t − x̂0)/max(t, t_eps).
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_tensor, expand_to
from visgen.objectives.timesteps import Discrete, Ladder, Uniform
from visgen.objectives.weighting import loss_weight
from visgen.param import PREDICTIONS, Denoiser, from_x0_eps
from visgen.schedules import EDM, VE, Linear, VPDiscrete

__all__ = ["ddpm_loss", "diffusion_loss", "dsm_loss", "flow_matching_loss", "noisy_sample"]


def noisy_sample(x0: torch.Tensor, t: torch.Tensor, schedule, noise: torch.Tensor) -> torch.Tensor:
    """x_t = α_t x0 + σ_t ε (the forward process at times t (B,))."""
    return expand_to(schedule.alpha(t), x0) * x0 + expand_to(schedule.sigma(t), x0) * noise


def _prepare(den: Denoiser, x0, t, noise, t_sampler, generator):
    check_tensor(x0, "x0", min_dim=2)
    if t is None:
        t = (t_sampler or Uniform())(x0.shape[0], generator, x0.dtype)
    t = torch.as_tensor(t, dtype=x0.dtype)
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape ({x0.shape[0]},), got {tuple(t.shape)}")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    elif noise.shape != x0.shape:
        raise ValueError(
            f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}"
        )
    return t, noise, noisy_sample(x0, t, den.schedule, noise)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    check_choice(reduction, "reduction", ("mean", "none"))
    return per_sample.mean() if reduction == "mean" else per_sample


def diffusion_loss(
    den: Denoiser,
    x0: torch.Tensor,
    *,
    t=None,
    target: str | None = None,
    weighting: str = "none",
    cond=None,
    noise=None,
    t_sampler=None,
    generator=None,
    reduction: str = "mean",
    **weight_kwargs,
) -> torch.Tensor:
    """E_t,ε [ w(t) ‖ target_θ(x_t, t) − target(x0, ε) ‖² ] (mean over non-batch dims).

    Args:
        den: the model's Denoiser; its prediction type is what the network outputs.
        target: the quantity regressed (default: the network's own prediction type).
        weighting: ``none | snr | min_snr | edm`` (see :mod:`visgen.objectives.weighting`).
        t: explicit times (B,), else drawn by ``t_sampler`` (default U[0, 1]).
    """
    target = den.prediction if target is None else check_choice(target, "target", PREDICTIONS)
    t, noise, xt = _prepare(den, x0, t, noise, t_sampler, generator)
    pred = getattr(den(xt, t, cond), target)
    true = from_x0_eps(x0, noise, target, xt, t, den.schedule)
    per_sample = (pred - true).pow(2).flatten(1).mean(1)
    return _reduce(
        per_sample * loss_weight(weighting, t, den.schedule, target, **weight_kwargs), reduction
    )


def ddpm_loss(den: Denoiser, x0, *, cond=None, generator=None, reduction="mean") -> torch.Tensor:
    """DDPM's L_simple: k ~ U{0..T−1}, ‖ε − ε_θ(√ᾱ_k x0 + √(1 − ᾱ_k) ε, k)‖²."""
    if not isinstance(den.schedule, VPDiscrete):
        raise TypeError(f"ddpm_loss needs a VPDiscrete schedule, got {type(den.schedule).__name__}")
    return diffusion_loss(
        den,
        x0,
        target="eps",
        cond=cond,
        t_sampler=Discrete(den.schedule),
        generator=generator,
        reduction=reduction,
    )


def dsm_loss(den: Denoiser, x0, *, levels: int = 10, cond=None, generator=None, reduction="mean"):
    """NCSN denoising score matching over L levels σ_1 > … > σ_L of a ``VE``/``EDM`` schedule.

    λ(σ) ‖s_θ(x̃, σ) + ε/σ‖² with λ = σ² (Song & Ermon 2019, eq. 6) is the ε-MSE, so this is
    ``diffusion_loss(target="eps")`` at ladder times.
    """
    if not isinstance(den.schedule, (VE, EDM)):
        raise TypeError(f"dsm_loss needs a VE or EDM schedule, got {type(den.schedule).__name__}")
    return diffusion_loss(
        den,
        x0,
        target="eps",
        cond=cond,
        t_sampler=Ladder(levels),
        generator=generator,
        reduction=reduction,
    )


def flow_matching_loss(
    den: Denoiser,
    x0,
    *,
    t=None,
    t_sampler=None,
    t_eps: float = 0.0,
    cond=None,
    noise=None,
    generator=None,
    reduction="mean",
) -> torch.Tensor:
    """Conditional flow matching on x_t = (1 − t) x0 + t ε: ‖v̂ − (ε − x0)‖².

    The network may predict any parametrisation; its velocity v̂ is what is regressed (the
    "v-loss"). JiT (Li & He 2025, §3, Table 1) compares the predictions under this loss: an
    ``x0`` network gives v̂ = (x_t − x̂0)/max(t, t_eps) and an ``eps`` network
    v̂ = (ε̂ − x_t)/max(1 − t, t_eps); ``t_eps`` = 0.05 in the paper keeps the division
    finite at the singular end (t = 0 for x0, t = 1 for ε). ``velocity``, ``v`` and ``score``
    networks convert exactly.
    """
    if not isinstance(den.schedule, Linear):
        raise TypeError(
            f"flow_matching_loss needs the Linear schedule, got {type(den.schedule).__name__}"
        )
    if not 0 <= t_eps < 1:
        raise ValueError(f"t_eps must be in [0, 1), got {t_eps}")
    t, noise, xt = _prepare(den, x0, t, noise, t_sampler, generator)
    pred = den(xt, t, cond)
    if t_eps > 0 and den.prediction == "x0":
        v_hat = (xt - pred.x0) / expand_to(t.clamp_min(t_eps), x0)
    elif t_eps > 0 and den.prediction == "eps":
        v_hat = (pred.eps - xt) / expand_to((1 - t).clamp_min(t_eps), x0)
    else:
        v_hat = pred.velocity
    return _reduce((v_hat - (noise - x0)).pow(2).flatten(1).mean(1), reduction)
