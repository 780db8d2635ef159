r"""Adversarial distillation: LADD (Sauer et al. 2024, arXiv 2403.12015) and ADD (Sauer et al.
2023, arXiv 2311.17042).

The student G_θ, initialised from the teacher, predicts x̂0 = G_θ(x_s, s) at the levels
s ∈ {1, ¾, ½, ¼}, with x_s = α_s x0 + σ_s ε formed from **real data** x0 (pure noise at
s = 1; ADD §3.1). A discriminator tells real data from student samples after both are noised
identically to a level t̂ ~ U[t̂_min, t̂_max] (homework 5: t̂ ∈ [0, 0.2]); it is a set of
small trainable heads on the **frozen teacher's own features** of the noised input, taken by
forward hooks (:mod:`visgen.fewstep.features`), one head per level of the network (LADD's
multi-level heads). Non-saturating GAN losses (Goodfellow et al.
2014):

.. math::
    L_D = E[\operatorname{softplus}(−D(\mathrm{real}_{t̂}))] + E[\operatorname{softplus}(D(\hat x_{t̂}))]
    \;(+\, \tfrac{γ}{2} E‖∇ D(\mathrm{real}_{t̂})‖² \text{ with R1}), \qquad
    L_G = E[\operatorname{softplus}(−D(\hat x_{t̂}))],

with ``d_steps`` discriminator updates per generator update (homework 5: 2).

* **LADD** (``ladd``): L_G only — the teacher acts only through its features.
* **ADD** (``add``): L_G + λ L_distill, λ = 2.5, with the score-distillation term
  L_distill = E_t[α_t² ‖x̂0 − sg(μ_teacher(α_t x̂0 + σ_t ε, t))‖²] (ADD eq. 4–5 with the
  "exponential" weighting c(t) = ᾱ_t, DDPM's cumulative signal power, i.e. α_t² here).

The heads also see which student level produced a sample (real samples get the level of the
fakes they are compared with): on 2D points a single sample never looks fake, only a level's
distribution does, and an unconditional discriminator let the levels' errors cancel in the
mixture (measured on ``8gauss_fm``, LADD 800 updates: 4-NFE energy distance 0.0055–0.049 over
seeds without it, 0.0021 with it).

CPU-sized simplifications: ADD's discriminator reads a pretrained image encoder (DINOv2) on
clean images; here both methods use the teacher's features of noised inputs (no download).
Both use the non-saturating loss (ADD used the hinge loss); λ = 2.5 is the value the course
notes give for ADD. The returned student is an EMA of the weights (decay 0.99).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from visgen._checks import check_positive
from visgen.fewstep.base import FewStepGenerator, Task, UnsupportedTeacher, register_method
from visgen.fewstep.features import Discriminator, FeatureTap, multi_level_layers
from visgen.fewstep.student import (
    STUDENT_LEVELS,
    Stopwatch,
    as_generator,
    check_steps,
    draw_levels,
    seeded_init,
    student_from_teacher,
)
from visgen.objectives import noisy_sample
from visgen.param import Denoiser
from visgen.train.trainer import ema_update, warmed_decay

__all__ = ["discriminator_loss", "generator_loss", "train_adversarial"]


def discriminator_loss(
    disc, real_t, fake_t, t, cond=None, r1: float = 0.0, level=None
) -> torch.Tensor:
    """Non-saturating D loss on identically noised real and fake inputs, + optional R1 on real."""
    if r1 > 0:
        real_t = real_t.detach().requires_grad_(True)
    d_real = disc(real_t, t, cond, level)
    loss = F.softplus(-d_real).mean() + F.softplus(disc(fake_t.detach(), t, cond, level)).mean()
    if r1 > 0:
        (grad,) = torch.autograd.grad(d_real.sum(), real_t, create_graph=True)
        loss = loss + 0.5 * r1 * grad.pow(2).flatten(1).sum(1).mean()
    return loss


def generator_loss(disc, fake_t, t, cond=None, level=None) -> torch.Tensor:
    """Non-saturating G loss E[softplus(−D(x̂_t̂))] (gradients reach x̂ through the frozen features)."""
    return F.softplus(-disc(fake_t, t, cond, level)).mean()


def train_adversarial(
    task: Task,
    steps: int,
    generator: torch.Generator,
    *,
    name: str = "ladd",
    distill: float = 0.0,
    d_steps: int = 2,
    r1: float = 0.0,
    disc_t: tuple[float, float] = (0.0, 0.2),
    batch_size: int = 256,
    lr: float = 1e-4,
    d_lr: float = 1e-3,
    layers=None,
    ema: float = 0.99,
) -> FewStepGenerator:
    """Train an ADD/LADD student for ``steps`` generator updates (see the module docstring).

    Args:
        distill: weight λ of ADD's score-distillation term (0: LADD).
        d_steps: discriminator updates per generator update.
        r1: R1 penalty weight γ (0: off).
        disc_t: range of the discriminator's noise level t̂.
        layers: the teacher layers the heads read (default, LADD's multi-level heads: every
            hidden layer of an MLP; every encoder resolution and the middle block of a UNet,
            :func:`~visgen.fewstep.features.multi_level_layers`).
        ema: decay of the exponential moving average of the student's weights, which is
            the returned generator (GAN iterates oscillate; the average does not).
    """
    check_steps(steps)
    check_positive(d_steps, "d_steps", integer=True)
    if not isinstance(task.teacher.model, nn.Module):
        raise UnsupportedTeacher(
            f"{name} puts its discriminator on the teacher network's features; task "
            f"{task.name!r} has an analytic teacher (use a trained one, e.g. '8gauss_fm')"
        )
    if not 0 <= disc_t[0] < disc_t[1] <= 1:
        raise ValueError(f"disc_t must satisfy 0 <= lo < hi <= 1, got {disc_t}")
    teacher = task.teacher
    probe, _ = task.data(2, generator)
    layers = multi_level_layers(teacher.model) if layers is None else layers
    with seeded_init(generator):
        student = student_from_teacher(task)
        disc = Discriminator(
            FeatureTap(teacher.model, layers), probe, task.num_classes or 0, len(STUDENT_LEVELS)
        )
    averaged = Denoiser(copy.deepcopy(student.model), student.schedule, student.prediction)
    opt = torch.optim.Adam(student.model.parameters(), lr=lr, betas=(0.5, 0.999), foreach=True)
    d_opt = torch.optim.Adam(disc.parameters(), lr=d_lr, betas=(0.5, 0.999), foreach=True)
    levels = torch.tensor(STUDENT_LEVELS)
    watch = Stopwatch(
        distill=distill, d_steps=d_steps, r1=r1, disc_t=list(disc_t), batch_size=batch_size,
        lr=lr, d_lr=d_lr, ema=ema,
    )  # fmt: skip

    def student_samples(with_grad: bool):
        x0, cond = task.data(batch_size, generator)
        k = draw_levels(batch_size, (1, 2, 4), generator)
        s = levels[k].to(x0.dtype)
        xs = noisy_sample(x0, s, teacher.schedule, torch.randn(x0.shape, generator=generator))
        with torch.set_grad_enabled(with_grad):
            return x0, student(xs, s, cond).x0, cond, k

    def noised(x, t):
        return noisy_sample(x, t, teacher.schedule, torch.randn(x.shape, generator=generator))

    def draw_t(n):
        return disc_t[0] + (disc_t[1] - disc_t[0]) * torch.rand(n, generator=generator)

    for step in range(steps):
        for _ in range(d_steps):
            real, fake, cond, k = student_samples(with_grad=False)
            t = draw_t(batch_size)
            d_loss = discriminator_loss(disc, noised(real, t), noised(fake, t), t, cond, r1, k)
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()
        _, fake, cond, k = student_samples(with_grad=True)
        t = draw_t(batch_size)
        disc.requires_grad_(False)
        loss = generator_loss(disc, noised(fake, t), t, cond, k)
        disc.requires_grad_(True)
        logs = {"d": float(d_loss.detach()), "g": float(loss.detach())}
        if distill > 0:
            tt = torch.rand(batch_size, generator=generator)
            with torch.no_grad():
                target = teacher(noised(fake.detach(), tt), tt, cond).x0
            c = teacher.schedule.alpha(tt).pow(2).reshape(-1, *[1] * (fake.dim() - 1))
            dist = (c * (fake - target).pow(2)).flatten(1).mean(1).mean()
            loss = loss + distill * dist
            logs["distill"] = float(dist.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(averaged.model, student.model, warmed_decay(step, ema))
        watch.log(**logs)
    return as_generator(name, averaged, (1, 2, 4), watch.info())


@register_method("ladd", lecture=7)
def train_ladd(task: Task, steps: int, generator: torch.Generator, **kw) -> FewStepGenerator:
    """LADD: adversarial loss on frozen teacher features only."""
    return train_adversarial(task, steps, generator, **{"name": "ladd", **kw})


@register_method("add", lecture=7)
def train_add(task: Task, steps: int, generator: torch.Generator, **kw) -> FewStepGenerator:
    """ADD: adversarial loss + score distillation (λ = 2.5)."""
    return train_adversarial(task, steps, generator, **{"name": "add", "distill": 2.5, **kw})
