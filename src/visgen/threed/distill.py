r"""Score distillation of a 2D diffusion prior into a 3D scene: SDS (DreamFusion) and VSD
(ProlificDreamer).

**SDS** (Poole et al. 2022, arXiv 2209.14988, eq. 3). A scene θ is rendered from a random camera,
x = g(θ, c); the rendering is noised, x_t = α_t x + σ_t ε, and the frozen prior's prediction is
used as a gradient, skipping the prior's Jacobian:

.. math::
    ∇_θ L_\text{SDS} = E_{t, ε, c}\Big[w(t)\, \big(ε̂(x_t; y, t) − ε\big)\, \frac{∂x}{∂θ}\Big]
    = E\Big[w(t) \frac{α_t}{σ_t} \big(x − x̂_0(x_t; y, t)\big) \frac{∂x}{∂θ}\Big],

since ε̂ − ε = α_t (x − x̂0)/σ_t for x_t = α_t x + σ_t ε. It is the gradient of the surrogate
½‖x − sg(x − g)‖² with g ∝ x − x̂0: a positive weight times "move the render towards the
prior's denoised guess". With classifier-free guidance (DreamFusion uses w = 100) x̂0 is the
guided prediction, which over-saturates colours.

**VSD** (Wang et al. 2023, arXiv 2305.16213, eq. 9–10) treats θ as a distribution (particles
θ_1 … θ_K) and replaces the noise ε by the score of the *rendered particles'* distribution,
estimated online by a LoRA copy of the prior (camera-conditioned) trained with the diffusion
loss on the renders:

.. math::
    ∇_θ L_\text{VSD} = E\big[w(t) \big(ε̂_\text{prior}(x_t; y, t) − ε̂_\text{LoRA}(x_t; y, c, t)\big) ∂x/∂θ\big]
    ∝ E\big[(x̂_0^\text{LoRA} − x̂_0^\text{prior})\, ∂x/∂θ\big].

Both are the distribution-matching gradient of lecture 7 with θ in place of a generator's
weights, so this module calls :func:`visgen.fewstep.distribution_matching_loss` (``fake=None`` is
SDS, whose "fake" denoiser is the identity x̂0 = x; a LoRA denoiser is VSD). Its weighting is
DMD's normalised one, w(t) α_t/σ_t = 1/mean|x − x̂0|, a positive per-render weight (the update
direction of SDS is unchanged; the step size is Adam's anyway).

CPU-sized simplifications: 16 px renders of a few hundred splats, a 4-block DiT prior, t ~
U[0.02, 0.98] without annealing, one LoRA update per particle update.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from visgen._checks import check_positive
from visgen.fewstep import distribution_matching_loss
from visgen.nn.lora import add_lora, lora_parameters
from visgen.objectives import flow_matching_loss
from visgen.param import Denoiser
from visgen.threed.cameras import Cameras
from visgen.threed.render import render
from visgen.threed.splats import SplatField

__all__ = ["Distilled", "lora_fake", "score_distillation"]

CameraSampler = Callable[[int, torch.Generator], tuple[Cameras, object]]


@dataclass
class Distilled:
    """The optimised particles and the loss of every step."""

    fields: list[SplatField]
    history: list[float] = field(default_factory=list)


def lora_fake(prior: Denoiser, rank: int = 4) -> Denoiser:
    """VSD's particle score: a copy of the prior with LoRA adapters (rank ``rank``, B = 0, so it
    starts equal to the prior) on every linear layer; only the adapters train."""
    model = copy.deepcopy(prior.model)
    add_lora(model, rank)
    return Denoiser(model, prior.schedule, prior.prediction)


def score_distillation(
    fields,
    teacher: Denoiser,
    cameras: CameraSampler,
    steps: int,
    generator: torch.Generator,
    *,
    views: int = 4,
    lr: float = 0.05,
    t_range: tuple[float, float] = (0.02, 0.98),
    fake: Denoiser | None = None,
    fake_lr: float = 1e-3,
    t_eps: float = 0.05,
    reference: tuple[torch.Tensor, Cameras] | None = None,
    reference_weight: float = 1.0,
    background: float = 0.0,
) -> Distilled:
    """Optimise the splats of ``fields`` (one SplatField or a list of particles) by SDS, or by
    VSD when ``fake`` (e.g. :func:`lora_fake`) is given.

    Args:
        teacher: the frozen 2D prior (wrap it in :func:`visgen.sampling.classifier_free_guidance`
            for guided SDS).
        cameras: ``cameras(n, generator) -> (Cameras, cond)``: n random cameras and the
            teacher's condition for them (azimuth labels, or input view + cameras).
        views: renders per particle and step.
        fake: VSD's particle-score denoiser, trained here with the flow-matching loss (``t_eps``
            as the teacher's) on the detached renders, one update per step.
        reference: an input view (1, C, H, W) and its camera: adds ``reference_weight`` × the
            L2 error of that view's render (as single-image 3D reconstruction with a novel-view
            prior does).
    """
    fields = [fields] if isinstance(fields, SplatField) else list(fields)
    if not fields or not all(isinstance(f, SplatField) for f in fields):
        raise TypeError("fields must be a SplatField or a list of SplatFields")
    if not isinstance(teacher, Denoiser):
        raise TypeError(f"teacher must be a Denoiser, got {type(teacher).__name__}")
    check_positive(views, "views", integer=True)
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    lo, hi = t_range
    if not 0 < lo < hi < 1:
        raise ValueError(f"t_range must satisfy 0 < t_lo < t_hi < 1, got {t_range}")
    params = [p for f in fields for p in f.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the fields have no learnable parameters (SplatField learn=...)")
    opt = torch.optim.Adam(params, lr=lr)
    fake_opt = torch.optim.Adam(lora_parameters(fake.model), lr=fake_lr) if fake else None
    out = Distilled(fields)
    for _ in range(steps):
        renders, conds = [], []
        for f in fields:
            cams, cond = cameras(views, generator)
            renders.append(render(f.splats(), cams, background=background).image)
            conds.append(cond)
        x = torch.cat(renders)
        cond = _cat(conds)
        t = lo + (hi - lo) * torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        loss = distribution_matching_loss(x, teacher, fake, t, noise, cond)
        if reference is not None:
            image, cam = reference
            for f in fields:
                own = render(f.splats(), cam, background=background).image
                loss = loss + reference_weight * (own - image).pow(2).mean() / len(fields)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out.history.append(float(loss.detach()))
        if fake_opt is not None:
            t = lo + (hi - lo) * torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            fake_loss = flow_matching_loss(
                fake, x.detach(), t=t, noise=noise, t_eps=t_eps, cond=cond
            )
            fake_opt.zero_grad(set_to_none=True)
            fake_loss.backward()
            fake_opt.step()
    return out


def _cat(conds):
    first = conds[0]
    if first is None:
        return None
    if isinstance(first, dict):
        return {k: torch.cat([c[k] for c in conds]) for k in first}
    return torch.cat(conds)
