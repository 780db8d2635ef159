r"""Distribution Matching Distillation: DMD (Yin et al. 2024, arXiv 2311.18828), DMD2 (Yin et
al. 2024, arXiv 2405.14867) and score distillation sampling as the collapsing baseline.

The generator G_θ is trained to minimise KL(p_fake ‖ p_real) between its output distribution
and the teacher's, measured at every noise level. With x = G_θ(z), t ~ U[t_min, t_max] and
x_t = α_t x + σ_t ε, the gradient (DMD eq. 7–8) is

.. math::
    ∇_θ \mathrm{KL} ≈ E\big[w_t α_t (s_\text{fake}(x_t) − s_\text{real}(x_t))\, ∂G_θ/∂θ\big]
    \;∝\; E\Big[\frac{μ_\text{fake}(x_t) − μ_\text{real}(x_t)}{\operatorname{mean}|x − μ_\text{real}(x_t)|}
    \,∂G_θ/∂θ\Big],

since s_fake − s_real = α_t (μ_real − μ_fake)/σ_t² for x0-predictors μ and DMD's weight
w_t = σ_t²/α_t / mean|x − μ_real| cancels the rest. μ_real is the frozen teacher; μ_fake is
a diffusion model trained online on the generator's samples (denoising loss, same
parametrisation as the teacher). It is applied through the surrogate ½‖x − sg(x − g)‖².

* **DMD** (``dmd``): one-step G, plus the regression loss ‖G(z) − y‖² on pairs (z, y) of
  the teacher's deterministic ODE (eq. 9; LPIPS in the paper, L2 here).
* **DMD2** (``dmd2``): no regression; two-time-scale update (several fake-score updates per
  generator update, §4.2); a GAN term — a classifier head on the fake network's features
  tells noised real data from noised samples, non-saturating loss (§4.3, eq. 3); and a
  multi-step generator at t ∈ {1, ¾, ½, ¼} trained on its own *backward-simulated* inputs,
  i.e. produced by running itself from noise as at inference (§4.5).
* **SDS-only** (``sds``): the fake score replaced by the conditional score of x_t given x,
  i.e. μ_fake ≡ x (Poole et al. 2022, arXiv 2209.14988): pure mode seeking, it collapses
  onto high-density points (lecture 7).

CPU-sized simplifications: small MLP / U-Net networks, an L2 regression loss instead of LPIPS, small
discriminator heads on the fake network's hidden layers, conditioned on the student level a
sample comes from (see :class:`~visgen.fewstep.features.Discriminator`: at toy scale only
per-level distributions, not single samples, look fake; measured on ``8gauss_fm`` after 400
updates, energy distance at 2 / 4 NFE 0.028 / 0.027 without, 0.009 / 0.020 with it).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from visgen._checks import check_positive
from visgen.fewstep.base import FewStepGenerator, Task, register_method
from visgen.fewstep.features import Discriminator, FeatureTap
from visgen.fewstep.student import (
    STUDENT_LEVELS,
    Stopwatch,
    as_generator,
    check_steps,
    seeded_init,
    student_from_teacher,
    student_grid,
)
from visgen.objectives import diffusion_loss, noisy_sample
from visgen.param import Denoiser
from visgen.sampling import sample_heun, uniform

__all__ = ["distribution_matching_loss", "simulate_inputs", "train_dmd"]


def distribution_matching_loss(
    x: torch.Tensor,
    teacher: Denoiser,
    fake: Denoiser | None,
    t: torch.Tensor,
    noise: torch.Tensor,
    cond=None,
) -> torch.Tensor:
    """The DMD surrogate ½ mean‖x − sg(x − g)‖² whose gradient is the KL gradient above.

    ``fake=None`` is SDS: μ_fake ≡ x. Teacher and fake are evaluated without gradient.
    """
    with torch.no_grad():
        xt = noisy_sample(x.detach(), t, teacher.schedule, noise)
        mu_real = teacher(xt, t, cond).x0
        mu_fake = x.detach() if fake is None else fake(xt, t, cond).x0
        scale = (x.detach() - mu_real).abs().flatten(1).mean(1).clamp_min(1e-5)
        g = (mu_fake - mu_real) / scale.reshape(-1, *[1] * (x.dim() - 1))
    return 0.5 * F.mse_loss(x, (x - g).detach())


@torch.no_grad()
def simulate_inputs(student: Denoiser, z: torch.Tensor, nfe: int, steps: torch.Tensor, cond, gen):
    """Backward simulation (DMD2 §4.5): the inputs (x_{t_k}, t_k) the student meets at step k.

    Runs the ``nfe``-step consistency sampler from the noise z and keeps, for sample b, the
    state before its step ``steps[b]`` — the generator's own intermediate samples, not
    forward-noised data, so training sees what inference sees.
    """
    grid = student_grid(nfe).to(z.dtype)
    a, s = student.schedule.alpha(grid), student.schedule.sigma(grid)
    x, out = z, z.clone()
    for k in range(int(steps.max())):
        x0 = student(x, grid[k], cond).x0
        x = a[k + 1] * x0 + s[k + 1] * torch.randn(z.shape, generator=gen, dtype=z.dtype)
        out[steps == k + 1] = x[steps == k + 1]
    return out, grid[steps]


def _regression_pairs(task: Task, n: int, gen) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, y, cond): teacher ODE samples y from noise z (Heun, 25 steps = 49 NFE)."""
    z = torch.randn((n, *task.shape), generator=gen)
    cond = None if not task.num_classes else torch.randint(task.num_classes, (n,), generator=gen)
    return z, sample_heun(task.teacher, z, uniform(25), cond), cond


def train_dmd(
    task: Task,
    steps: int,
    generator: torch.Generator,
    *,
    name: str = "dmd",
    nfes=(1,),
    fake_updates: int = 5,
    regression: float = 0.0,
    gan: float = 0.0,
    sds: bool = False,
    batch_size: int = 256,
    lr: float = 1e-3,
    fake_lr: float = 2e-3,
    t_range: tuple[float, float] = (0.02, 0.98),
    reference_pairs: int = 2048,
) -> FewStepGenerator:
    """Train a DMD-family generator for ``steps`` generator updates (see the module docstring).

    Args:
        nfes: NFEs the student must serve; > 1 trains levels {1, ¾, ½, ¼} with backward
            simulation.
        fake_updates: fake-score (and discriminator) updates per generator update (TTUR).
        regression: weight of DMD's regression loss on teacher ODE pairs (0 = off).
        gan: weight of the generator's non-saturating GAN loss (0 = no discriminator).
        sds: drop the fake score (μ_fake ≡ x): score distillation sampling.
    """
    check_steps(steps)
    check_positive(fake_updates, "fake_updates", integer=True)
    nfes = tuple(nfes)
    for k in nfes:
        student_grid(k)  # validates k
    with seeded_init(generator):
        student = student_from_teacher(task)
        fake = None if sds else student_from_teacher(task)
    opt = torch.optim.Adam(student.model.parameters(), lr=lr, foreach=True)
    params = [] if fake is None else list(fake.model.parameters())
    disc = None
    if gan > 0:
        if fake is None:
            raise ValueError("the GAN term reads the fake score's features: it needs sds=False")
        probe, _ = task.data(2, generator)
        with seeded_init(generator):
            disc = Discriminator(
                FeatureTap(fake.model), probe, task.num_classes or 0, len(STUDENT_LEVELS)
            )
        params += list(disc.parameters())
    fake_opt = torch.optim.Adam(params, lr=fake_lr, foreach=True) if params else None
    pairs = _regression_pairs(task, reference_pairs, generator) if regression and steps else None
    t_lo, t_hi = t_range
    levels = torch.tensor(STUDENT_LEVELS)
    watch = Stopwatch(
        nfes=list(nfes), fake_updates=fake_updates, regression=regression, gan=gan, sds=sds,
        batch_size=batch_size, lr=lr, fake_lr=fake_lr, t_range=list(t_range),
    )  # fmt: skip

    def generate(with_grad: bool):
        real, cond = task.data(batch_size, generator)
        nfe = nfes[int(torch.randint(len(nfes), (1,), generator=generator))]
        z = torch.randn((batch_size, *task.shape), generator=generator)
        k = torch.randint(nfe, (batch_size,), generator=generator)
        x_in, t_in = simulate_inputs(student, z, nfe, k, cond, generator)
        level = (levels[None] == t_in[:, None]).int().argmax(1)  # index into STUDENT_LEVELS
        with torch.set_grad_enabled(with_grad):
            return student(x_in, t_in, cond).x0, real, cond, level

    def draw_t(n):
        return t_lo + (t_hi - t_lo) * torch.rand(n, generator=generator)

    for _ in range(steps):
        for _ in range(fake_updates if fake_opt is not None else 0):
            x, real, cond, level = generate(with_grad=False)
            t = draw_t(batch_size)
            noise = torch.randn(x.shape, generator=generator)
            loss = diffusion_loss(fake, x, t=t, noise=noise, target="x0", cond=cond)
            if disc is not None:
                d_fake = disc(noisy_sample(x, t, fake.schedule, noise), t, cond, level)
                noise_r = torch.randn(real.shape, generator=generator)
                d_real = disc(noisy_sample(real, t, fake.schedule, noise_r), t, cond, level)
                loss = loss + gan * (F.softplus(d_fake).mean() + F.softplus(-d_real).mean())
            fake_opt.zero_grad(set_to_none=True)
            loss.backward()
            fake_opt.step()
        x, _, cond, level = generate(with_grad=True)
        t = draw_t(batch_size)
        noise = torch.randn(x.shape, generator=generator)
        loss = distribution_matching_loss(x, task.teacher, fake, t, noise, cond)
        logs = {"dm": float(loss.detach())}
        if disc is not None:
            for p in params:
                p.requires_grad_(False)
            g_gan = F.softplus(-disc(noisy_sample(x, t, fake.schedule, noise), t, cond, level))
            for p in params:
                p.requires_grad_(True)
            loss = loss + gan * g_gan.mean()
            logs["gan"] = float(g_gan.mean().detach())
        if pairs is not None:
            idx = torch.randint(reference_pairs, (batch_size,), generator=generator)
            z_ref, y_ref = pairs[0][idx], pairs[1][idx]
            c_ref = None if pairs[2] is None else pairs[2][idx]
            reg = (student(z_ref, 1.0, c_ref).x0 - y_ref).pow(2).flatten(1).mean(1).mean()
            loss = loss + regression * reg
            logs["regression"] = float(reg.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        watch.log(**logs)
    return as_generator(name, student, nfes, watch.info())


@register_method("dmd", lecture=7)
def train_dmd_one_step(task: Task, steps: int, generator: torch.Generator, **kw):
    """DMD: one-step generator, distribution matching + regression on teacher ODE pairs."""
    return train_dmd(task, steps, generator, **{"name": "dmd", "regression": 0.25, **kw})


@register_method("dmd2", lecture=7)
def train_dmd2(task: Task, steps: int, generator: torch.Generator, **kw):
    """DMD2: 1/2/4-step generator, TTUR (5 fake updates), GAN term, backward simulation."""
    return train_dmd(
        task, steps, generator, **{"name": "dmd2", "nfes": (1, 2, 4), "gan": 0.05, **kw}
    )


@register_method("sds", lecture=7)
def train_sds(task: Task, steps: int, generator: torch.Generator, **kw):
    """Score distillation only (no fake score): the baseline that collapses."""
    return train_dmd(task, steps, generator, **{"name": "sds", "sds": True, **kw})
