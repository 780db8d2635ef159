r"""MeanFlow: learn the average velocity of every jump t → r from the MeanFlow identity.

Geng, Deng, Bai, Kolter & He 2025 (arXiv 2505.13447). With u(x_t, t, r) = (1/(t − r))
∫_r^t v(x_τ, τ) dτ (the course's (t, r) is the paper's (t, r) with the roles kept: t the
start, r < t the end), differentiating (t − r) u = ∫_r^t v dτ in t gives the **MeanFlow
identity** (eq. 6)

.. math:: u(x_t, t, r) = v(x_t, t) − (t − r)\, \frac{d}{dt} u(x_t, t, r), \qquad
          \frac{d}{dt} u = v\, ∂_x u + ∂_t u,

the total derivative along the trajectory: a Jacobian-vector product with tangent
(v, 1, 0) in (x, t, r) (eq. 8). The loss (eq. 9–10) regresses u_θ on the stop-gradient of
the right-hand side, with the adaptive weight w = 1/(‖Δ‖² + c)^p, p = 1, c = 10⁻³ (§4.3):

.. math:: \mathcal L = E\big[\mathrm{sg}(w)\, \|u_θ(x_t, t, r) − \mathrm{sg}(v − (t − r)
          \tfrac{d}{dt} u_θ)\|^2\big].

From data, v is the conditional velocity α'_t x0 + σ'_t ε (ε − x0 for flow matching); in
distillation it is the teacher's velocity. Times (Table 1a–b): t, r logit-normal(−0.4, 1)
sorted so r ≤ t, and r = t (plain flow matching) for 75 % of the batch. One-step sampling is
x0 = ε − u_θ(ε, 1, 0) (Alg. 2); n steps chain the map over a uniform grid.

**Finite-difference variant** (homework 4, no JVP): d/dt u ≈ (u_θ(x_t, t, r) −
u_θ(x_{t−h}, t − h, r))/h, with x_{t−h} = x_t − h v one Euler step along the same velocity
(for flow matching with the teacher's velocity this is the teacher's DDIM step), evaluated
under stop-gradient. Homework 4 also fixes r to K segment boundaries (``segments``). Its
step is 1 of 1000 DDPM steps; here h = 0.01: with h = 10⁻³ the difference of the network's
sinusoidal time features, amplified by (t − r)/h, made the target too noisy on the toy
(1-NFE energy distance 0.20 against 0.03 with h = 0.01, 1500 steps, measured).
CPU-sized simplification: MLP students, no classifier-free guidance in the target.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_positive, expand_to
from visgen.fewstep.base import FewStepGenerator, Task, register_method
from visgen.fewstep.consistency import segment_start
from visgen.fewstep.flowmap import FlowMap, flowmap_student, sample_flowmap
from visgen.fewstep.training import optimize
from visgen.nn.embeddings import drop_labels
from visgen.objectives import LogitNormal
from visgen.objectives.losses import noisy_sample
from visgen.param import from_x0_eps
from visgen.sampling.grids import uniform

__all__ = [
    "average_velocity_derivative",
    "meanflow_loss",
    "meanflow_times",
    "train_meanflow",
    "train_meanflow_fd",
]


def average_velocity_derivative(
    fm: FlowMap, x, t, r, v, cond=None, *, method: str = "jvp", h: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """(u_θ(x, t, r), d/dt u_θ along dx/dt = v) per sample.

    ``jvp``: one forward-mode pass, ``torch.func.jvp`` with tangent (v, 1, 0); u carries the
    gradient. ``fd``: backward difference with step min(h, t − r) along x − h v (no gradient
    through the derivative; 0 where t = r, where it is multiplied by t − r = 0 anyway).
    """
    check_choice(method, "method", ("jvp", "fd"))
    if method == "jvp":
        return torch.func.jvp(
            lambda x_, t_, r_: fm.net(x_, t_, r_, cond),
            (x, t, r),
            (v, torch.ones_like(t), torch.zeros_like(r)),
        )
    check_positive(h, "h")
    u = fm.net(x, t, r, cond)
    with torch.no_grad():
        step = torch.clamp(t - r, max=h)
        moving = step > 0
        safe = torch.where(moving, step, torch.ones_like(step))
        u_back = fm.net(x - expand_to(step, x) * v, t - step, r, cond)
        dudt = torch.where(expand_to(moving, x), (u.detach() - u_back) / expand_to(safe, x), 0.0)
    return u, dudt


def meanflow_loss(
    fm: FlowMap,
    x_t: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    v: torch.Tensor,
    cond=None,
    *,
    derivative: str = "jvp",
    h: float = 1e-2,
    p: float = 1.0,
    c: float = 1e-3,
) -> torch.Tensor:
    """Per-sample MeanFlow loss sg(w) ‖u_θ − sg(v − (t − r) du/dt)‖², w = 1/(‖Δ‖² + c)^p.

    ``v`` is the velocity at (x_t, t): conditional (from data) or the teacher's. ``p = 0``
    is the plain squared error.
    """
    if p < 0:
        raise ValueError(f"p must be >= 0, got {p}")
    check_positive(c, "c")
    fm._times(x_t, t, r)
    u, dudt = average_velocity_derivative(fm, x_t, t, r, v, cond, method=derivative, h=h)
    target = (v - expand_to(t - r, x_t) * dudt).detach()
    err2 = (u - target).flatten(1).pow(2).sum(1)
    return err2 / (err2.detach() + c) ** p


def meanflow_times(
    n: int, generator=None, *, ratio: float = 0.25, mean: float = -0.4, std: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, r) with r ≤ t: two logit-normal draws sorted, and r = t for a fraction 1 − ratio."""
    if not 0 <= ratio <= 1:
        raise ValueError(f"ratio must be in [0, 1], got {ratio}")
    draw = LogitNormal(mean, std)
    a, b = draw(n, generator), draw(n, generator)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    equal = torch.rand(n, generator=generator) >= ratio
    return t, torch.where(equal, t, r)


def train_meanflow(
    task: Task,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    derivative: str = "jvp",
    velocity: str = "data",
    h: float = 1e-2,
    segments: int | None = None,
    ratio: float = 0.25,
    time_mean: float = -0.4,
    time_std: float = 1.0,
    p: float = 1.0,
    batch_size: int = 512,
    lr: float = 1e-3,
    label_dropout: float = 0.1,
    network: dict | None = None,
    progress: bool = False,
) -> FewStepGenerator:
    """MeanFlow on ``task``: from data with the JVP (the paper) by default.

    ``velocity="teacher"`` distils the teacher's velocity instead of the conditional one;
    ``derivative="fd"`` is the finite-difference variant; ``segments = K`` fixes r to the
    segment start below t − h (homework 4; sampled in K jumps). The student starts from
    random weights from data, and from the teacher's weights (u_θ = v) when it distils the
    teacher, as homework 4 does. Sampling: flow-map jumps over a uniform grid, NFE 1, 2, 4
    (K if segmented).
    """
    check_choice(velocity, "velocity", ("data", "teacher"))
    check_choice(derivative, "derivative", ("jvp", "fd"))
    if segments is not None:
        check_positive(segments, "segments", integer=True)
    fm = flowmap_student(
        task, network, init_from_teacher=velocity == "teacher", generator=generator
    )
    schedule = fm.schedule

    def loss_fn(step):
        x0, y = task.data(batch_size, generator)
        cond = None
        if task.num_classes and y is not None:
            cond = drop_labels(y, label_dropout, generator) if label_dropout > 0 else y
        t, r = meanflow_times(batch_size, generator, ratio=ratio, mean=time_mean, std=time_std)
        t, r = t.to(x0.dtype), r.to(x0.dtype)
        if segments is not None:
            r = segment_start(torch.clamp(t - h, min=0), segments)
        noise = torch.randn(x0.shape, generator=generator)
        x_t = noisy_sample(x0, t, schedule, noise)
        if velocity == "data":
            v = from_x0_eps(x0, noise, "velocity", x_t, t, schedule)
        else:
            with torch.no_grad():
                v = task.teacher(x_t, t, cond).velocity
        return meanflow_loss(fm, x_t, t, r, v, cond, derivative=derivative, h=h, p=p).mean()

    net, history = optimize(fm.net, loss_fn, steps, lr=lr, progress=progress, desc="meanflow")
    student = FlowMap(net, schedule)
    info = {"loss": history, "derivative": derivative, "velocity": velocity, "segments": segments}
    name = "MeanFlow" + (" (finite difference)" if derivative == "fd" else "")
    if segments is not None:
        return FewStepGenerator(
            name,
            net,
            lambda z, nfe, cond, g: sample_flowmap(student, z, uniform(segments), cond),
            nfes=(segments,),
            info=info,
        )
    return FewStepGenerator(
        name, net, lambda z, nfe, cond, g: sample_flowmap(student, z, uniform(nfe), cond), info=info
    )


def train_meanflow_fd(task: Task, steps: int, generator=None, **options) -> FewStepGenerator:
    """MeanFlow distilled from the teacher's velocity with the finite-difference d/dt u
    (homework 4's variant, without the JVP), sampled at any NFE like MeanFlow."""
    options.setdefault("derivative", "fd")
    options.setdefault("velocity", "teacher")
    return train_meanflow(task, steps, generator, **options)


register_method("meanflow", lecture=6)(train_meanflow)
register_method("meanflow_fd", lecture=6)(train_meanflow_fd)
