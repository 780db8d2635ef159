r"""Consistency models: distillation (CD), training (iCT recipe) and multi-boundary CD.

A consistency function maps every point of a PF-ODE trajectory to the trajectory's start,
f(x_t, t) = Ψ_{t→0}(x_t) (Song et al. 2023, arXiv 2303.01469, eq. 3–4). Here f is the
flow map to r = 0 of a :class:`~visgen.fewstep.flowmap.FlowMap`, f(x, t) = x − t u_θ(x, t, 0),
so f(x, 0) = x holds by construction. The loss compares two times r < t of one trajectory:

.. math:: \mathcal L = E\big[λ\, d\big(f_θ(x_t, t),\ \mathrm{sg}\, f_{θ^-}(\hat x_r, r)\big)\big],
          \qquad d(a, b) = \sqrt{\|a − b\|^2 + c^2} − c

with the pseudo-Huber metric d of iCT (Song & Dhariwal 2023, arXiv 2310.14189, §3.3,
c = 0.00054 √dim) and

* **CD** (Alg. 2): x_t = α_t x0 + σ_t ε from data, \hat x_r = one step of the teacher's
  PF-ODE solver (Heun in the paper, DDIM in homework 4; classifier-free guidance goes
  *inside* the teacher step), λ = 1, θ⁻ = EMA of θ with μ = 0.95 (the paper; homework 4
  uses μ = 0, i.e. sg(θ), which was unstable on the toy at lr 10⁻³). The paper draws
  t from N = 18 Karras levels; here t ~ U[Δ, 1], r = t − Δ with a fixed interval Δ = 0.02
  (homework 4's 20 of 1000 steps), because a small network with sinusoidal time features
  does not interpolate between 18 fixed levels and the multistep sampler evaluates it there;
* **CT** (Alg. 3 with iCT's recipe): \hat x_r = α_r x0 + σ_r ε with the *same* ε (no
  teacher), θ⁻ = sg(θ) (no EMA target, iCT §3.2), levels t_0 < … < t_N whose number N
  doubles from s0 = 10 to s1 = 1280 over training (iCT eq. 6), the interval drawn with
  lognormal weights on σ (P_mean = −1.1, P_std = 2, iCT eq. 7) and iCT's weight
  λ = 1/(σ_{i+1} − σ_i) in EDM's σ = σ_t/α_t (x_t/α_t = x0 + σ ε: the pair and f are
  the same in both parametrisations, so only the weight is carried over). Weighting by
  1/(t − r) instead over-weights high noise by dσ/dt = 1/(1 − t)² on the linear path, and
  trains far slower: digits FD 150 instead of 57 at 4 NFE after 3000 updates
  (BENCHMARKS.md);
* **ECT** (``train_ct(schedule="ect")``, Easy Consistency Tuning, Geng et al. 2024, arXiv
  2406.14548, §3–4): CT started from the pretrained diffusion model (here the teacher's
  weights, ``init_from_teacher=True``) with a continuous interval that shrinks in stages:
  log σ_t ~ N(P_mean, P_std), σ_r = max(0, σ_t (1 − n(σ_t)/q^a)), n(σ) = 1 + k·sigmoid(−b σ)
  (k = 8, b = 1, q = 2), a the stage (``stages`` equal stages over training). Stage 0 has
  r = 0, i.e. the loss is plain denoising (the diffusion model it starts from); the interval
  then halves each stage towards the consistency condition. λ = 1/(σ_t − σ_r) as in CT
  (ECT's 1/(t − r) with EDM's t = σ);
* **multi-boundary CD** (multistep consistency models, Heek et al. 2024, arXiv 2403.06807;
  homework 4): K segments [k/K, (k+1)/K]; a point maps to the start s of the segment of r,
  f(x, t) = Ψ_{t→s}(x), trained by the CD loss (at r = s the target is \hat x_r itself) and
  sampled deterministically in K jumps (a plain K-step DDIM with the student's velocity).

The CT levels are Karras et al.'s ρ = 7 spacing of σ = σ_t/α_t between σ_min = 0.002 and
σ_max = 80 mapped to the schedule's t, with the top level moved to t = 1 (pure noise, where
one-step sampling starts; σ_max stands for "pure noise" in the VE parametrisation, and is
the σ the weight λ uses there).
CPU-sized simplification: small MLP / U-Net students, no dropout (iCT uses 0.3 on CIFAR-10).
"""

from __future__ import annotations

import copy
import math

import torch

from visgen._checks import batch_time, check_choice, check_positive, check_tensor, expand_to
from visgen.fewstep.base import FewStepGenerator, Task, register_method
from visgen.fewstep.flowmap import FlowMap, flowmap_student, sample_flowmap
from visgen.fewstep.sampling import sample_consistency
from visgen.fewstep.student import seeded_init
from visgen.fewstep.training import optimize
from visgen.nn import add_lora
from visgen.nn.embeddings import drop_labels
from visgen.objectives.losses import noisy_sample
from visgen.param import Denoiser
from visgen.sampling.grids import uniform
from visgen.sampling.guidance import classifier_free_guidance
from visgen.schedules import Schedule, get_schedule

__all__ = [
    "consistency_distillation_loss",
    "consistency_levels",
    "consistency_loss",
    "consistency_training_loss",
    "ect_interval",
    "ict_num_intervals",
    "lognormal_interval_weights",
    "pseudo_huber",
    "segment_start",
    "teacher_step",
    "train_cd",
    "train_ct",
    "train_multiboundary_cd",
]


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """d(a, b) = sqrt(‖a − b‖² + c²) − c per sample (B,); c = 0.00054 √dim by default (iCT §3.3).

    ≈ ‖a − b‖²/(2c) for small errors, ≈ ‖a − b‖ for large ones: robust to outliers without
    LPIPS' bias.
    """
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    d2 = (a - b).flatten(1).pow(2).sum(1)
    if c is None:
        c = 0.00054 * math.sqrt(a[0].numel())
    check_positive(c, "c")
    return d2 / (torch.sqrt(d2 + c * c) + c)  # = sqrt(d² + c²) − c without cancellation


SIGMA_MAX = 80.0  # Karras et al.'s σ_max: the σ of the top CT level t = 1 (pure noise)


def consistency_levels(
    n: int,
    schedule: Schedule | str = "linear",
    *,
    sigma_min: float = 0.002,
    sigma_max: float = SIGMA_MAX,
    rho: float = 7.0,
) -> torch.Tensor:
    """n + 1 increasing times t_0 < … < t_n = 1: Karras' ρ-spacing of σ = σ_t/α_t (float64).

    σ_i = (σ_min^{1/ρ} + i/n (σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ (Karras et al. 2022, eq. 5, as
    used by CM and iCT), t_i = t(λ = −log σ_i), and the top level is t = 1 (pure noise).
    """
    check_positive(n, "n", integer=True)
    check_positive(rho, "rho")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    schedule = get_schedule(schedule)
    ramp = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    a, b = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (a + ramp * (b - a)) ** rho
    ts = schedule.t_from_logsnr(-torch.log(sigmas)).to(torch.float64)
    ts[-1] = 1.0
    if not (ts[1:] > ts[:-1]).all():
        raise ValueError(
            f"sigma range [{sigma_min}, {sigma_max}] does not give {n + 1} distinct times on "
            f"{schedule!r}; lower n or sigma_max"
        )
    return ts


def ict_num_intervals(step: int, steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's discretisation curriculum (eq. 6): N(k) = min(s0 · 2^⌊k/K'⌋, s1) intervals,
    K' = ⌊K / (⌊log2(s1/s0)⌋ + 1)⌋, so N doubles in equal stages from s0 to s1."""
    check_positive(s0, "s0", integer=True)
    check_positive(s1, "s1", integer=True)
    if s1 < s0:
        raise ValueError(f"need s1 >= s0, got s0={s0}, s1={s1}")
    stage = max(1, steps // (int(math.log2(s1 // s0)) + 1))
    return min(s0 * 2 ** (step // stage), s1)


def ect_interval(
    t: torch.Tensor, stage: int, schedule: Schedule | str = "linear", *, q=2.0, k=8.0, b=1.0
) -> torch.Tensor:
    """ECT's r(t) at ``stage`` a (arXiv 2406.14548, §4): σ_r = max(0, σ_t (1 − n(σ_t)/q^a)),
    n(σ) = 1 + k·sigmoid(−b σ), σ = e^{−λ(t)}; returned as times of ``schedule`` (r < t)."""
    if not isinstance(stage, int) or stage < 0:
        raise ValueError(f"stage must be an int >= 0, got {stage!r}")
    if q <= 1:
        raise ValueError(f"q must be > 1, got {q}")
    schedule = get_schedule(schedule)
    sigma_t = torch.exp(-schedule.logsnr(t).to(torch.float64))
    ratio = (1 + k * torch.sigmoid(-b * sigma_t)) / q**stage
    sigma_r = sigma_t * (1 - ratio)
    r = torch.zeros_like(sigma_t)
    pos = sigma_r > 0
    r[pos] = schedule.t_from_logsnr(-torch.log(sigma_r[pos])).to(torch.float64)
    return r.to(t.dtype)


def lognormal_interval_weights(
    levels: torch.Tensor, schedule: Schedule | str = "linear", p_mean=-1.1, p_std=2.0
) -> torch.Tensor:
    """p(i) ∝ erf((log σ_{i+1} − P_mean)/(√2 P_std)) − erf((log σ_i − P_mean)/(√2 P_std))
    over the intervals [t_i, t_{i+1}] of ``levels`` (iCT eq. 7), σ = e^{−λ(t)}.

    log σ = logit(t) for flow matching, so this is logit-normal t, discretised.
    """
    check_positive(p_std, "p_std")
    log_sigma = -get_schedule(schedule).logsnr(levels)
    cdf = torch.erf((log_sigma - p_mean) / (math.sqrt(2) * p_std))
    weights = cdf[1:] - cdf[:-1]
    return weights / weights.sum()


def segment_start(t: torch.Tensor, segments: int) -> torch.Tensor:
    """The boundary s(t) = ⌊K t⌋/K below t of K equal segments (a boundary maps to itself)."""
    check_positive(segments, "segments", integer=True)
    return torch.floor(t * segments + 1e-9).clamp(max=segments - 1) / segments


def teacher_step(
    den: Denoiser, x: torch.Tensor, t: torch.Tensor, r: torch.Tensor, cond=None, *, solver="heun"
) -> torch.Tensor:
    """One step of the teacher's PF-ODE from t to r < t, each sample with its own (t, r).

    * ``ddim``: x_r = α_r x̂0 + σ_r ε̂ (DDIM with η = 0, Song et al. 2021, arXiv 2010.02502,
      eq. 12; ≡ Euler x_t + (r − t) v for flow matching) — homework 4's teacher step;
    * ``heun``: that step as predictor, then the trapezoid x_t + (r − t)(v_t + v_r)/2 (Karras
      et al. 2022, Alg. 1; the CM paper's CD solver); DDIM where r = 0, as EDM does;
    * a function ``solver(den, x, t, r, cond) -> x_r`` (e.g. an exact flow map).

    The samplers of :mod:`visgen.sampling` run one grid for the whole batch; CD draws a time
    per sample, so its one-step updates are written here over the same Denoiser (1 or 2 NFE).
    """
    if callable(solver):
        return solver(den, x, t, r, cond)
    check_choice(solver, "solver", ("ddim", "heun"))
    if not (t > r).all():
        raise ValueError("teacher_step needs t > r for every sample")
    pred = den(x, t, cond)
    a_r, s_r = expand_to(den.schedule.alpha(r), x), expand_to(den.schedule.sigma(r), x)
    x_ddim = a_r * pred.x0 + s_r * pred.eps
    if solver == "ddim":
        return x_ddim
    v_r = den(x_ddim, r, cond).velocity
    x_heun = x + expand_to(r - t, x) * 0.5 * (pred.velocity + v_r)
    return torch.where(expand_to(r > 0, x), x_heun, x_ddim)


def consistency_loss(
    student: FlowMap,
    x_t: torch.Tensor,
    t: torch.Tensor,
    x_r: torch.Tensor,
    r: torch.Tensor,
    cond=None,
    *,
    boundary=0.0,
    target: FlowMap | None = None,
    metric: str = "pseudo_huber",
    c: float | None = None,
) -> torch.Tensor:
    """d(f_θ(x_t, t → s), sg f_θ⁻(x_r, r → s)) per sample (B,), s = ``boundary`` ≤ r < t.

    ``target`` is the θ⁻ map (an EMA copy); default the student itself under stop-gradient.
    ``metric``: ``pseudo_huber`` (iCT) or ``l2`` (squared, CM's d).
    """
    check_choice(metric, "metric", ("pseudo_huber", "l2"))
    check_tensor(x_t, "x_t", min_dim=2)
    if not (batch_time(r, x_t, "r") < batch_time(t, x_t, "t")).all():
        raise ValueError("a consistency pair needs r < t for every sample (x_r is nearer the data)")
    pred = student(x_t, t, boundary, cond)
    with torch.no_grad():
        goal = (target or student)(x_r, r, boundary, cond)
    if metric == "l2":
        return (pred - goal).flatten(1).pow(2).sum(1)
    return pseudo_huber(pred, goal, c)


def consistency_distillation_loss(
    student: FlowMap,
    teacher: Denoiser,
    x0: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    noise: torch.Tensor,
    cond=None,
    *,
    boundary=0.0,
    solver="heun",
    target: FlowMap | None = None,
    metric: str = "pseudo_huber",
    c: float | None = None,
) -> torch.Tensor:
    """CD (Song et al. 2023, Alg. 2) per sample: x_t = α_t x0 + σ_t ε, x_r = the teacher's
    solver step t → r, then :func:`consistency_loss` towards ``boundary``."""
    x_t = noisy_sample(x0, t, student.schedule, noise)
    x_r = teacher_step(teacher, x_t, t, r, cond, solver=solver)
    return consistency_loss(
        student, x_t, t, x_r, r, cond, boundary=boundary, target=target, metric=metric, c=c
    )


def consistency_training_loss(
    student: FlowMap,
    x0: torch.Tensor,
    t: torch.Tensor,
    r: torch.Tensor,
    noise: torch.Tensor,
    cond=None,
    *,
    metric: str = "pseudo_huber",
    c: float | None = None,
    weighting: str = "sigma",
) -> torch.Tensor:
    """CT (Song et al. 2023, Alg. 3; iCT) per sample: the pair x_t, x_r shares ONE noise ε,
    no teacher, stop-gradient target, weight λ = 1/(σ_t − σ_r) with σ = σ_t/α_t (iCT's
    1/(σ_{i+1} − σ_i); the top level t = 1 counts as σ_max = 80, see the module docstring).

    ``weighting="time"``: λ = 1/(t − r) instead, the ablation of BENCHMARKS.md (the paper's
    weight written in the course's time without the change of variables).
    """
    check_choice(weighting, "weighting", ("sigma", "time"))
    schedule = student.schedule
    x_t, x_r = noisy_sample(x0, t, schedule, noise), noisy_sample(x0, r, schedule, noise)
    d = consistency_loss(student, x_t, t, x_r, r, cond, metric=metric, c=c)
    t, r = batch_time(t, x0), batch_time(r, x0, "r")
    gap = t - r if weighting == "time" else _sigma(t, schedule) - _sigma(r, schedule)
    return d / gap.to(d.dtype)


def _sigma(t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """σ = e^{−λ(t)} = σ_t/α_t in float64; pure noise (σ = ∞) counts as :data:`SIGMA_MAX`."""
    sigma = torch.exp(-schedule.logsnr(t.to(torch.float64)))
    return torch.where(torch.isfinite(sigma), sigma, torch.full_like(sigma, SIGMA_MAX))


# --- training --------------------------------------------------------------------------------


def _labels(task: Task, y, p: float, generator):
    if not task.num_classes or y is None:
        return None
    return drop_labels(y, p, generator) if p > 0 else y


def _guided(den: Denoiser, scale: float) -> Denoiser:
    return den if scale == 1.0 else classifier_free_guidance(den, scale)


def train_cd(
    task: Task,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    interval: float = 0.02,
    segments: int = 1,
    solver: str = "heun",
    guidance: float = 1.0,
    metric: str = "pseudo_huber",
    target_ema: float = 0.95,
    batch_size: int = 512,
    lr: float = 1e-3,
    label_dropout: float = 0.1,
    network: dict | None = None,
    lora: int = 0,
    progress: bool = False,
) -> FewStepGenerator:
    """Consistency distillation of ``task.teacher`` (``segments`` > 1: multi-boundary CD).

    t ~ U[Δ, 1] and r = t − Δ with Δ = ``interval`` (homework 4's 20 of 1000 steps).
    ``guidance`` w ≠ 1 distils the classifier-free-guided teacher (needs a class-conditional
    task). ``target_ema`` μ: the target θ⁻ is an EMA of the student (μ = 0.95, the CM
    paper); μ = 0 is the stop-gradient student of iCT and homework 4. Sampling:
    ``segments = 1`` — the multistep consistency sampler on a uniform grid, NFE 1, 2, 4;
    ``segments = K`` — K deterministic flow-map jumps (NFE K). ``lora`` = r > 0 trains rank-r
    LoRA adapters on the teacher-initialised network (:func:`visgen.nn.add_lora`, homework 4's
    students) plus the new gap embedding, the rest frozen.
    """
    check_positive(segments, "segments", integer=True)
    if not 0 < interval < 1:
        raise ValueError(f"interval must be in (0, 1), got {interval}")
    if not 0 <= target_ema < 1:
        raise ValueError(f"target_ema must be in [0, 1), got {target_ema}")
    if guidance != 1.0 and not task.num_classes:
        raise ValueError("guidance != 1 needs a class-conditional task (num_classes > 0)")
    fm = flowmap_student(task, network, generator=generator)
    if lora:
        check_positive(lora, "lora", integer=True)
        with seeded_init(generator):
            add_lora(fm.net, lora, include=lambda name, m: not name.startswith("net.embed.gap"))
        fm.net.net.embed.gap.requires_grad_(True)
    schedule = fm.schedule
    teacher = _guided(task.teacher, guidance)
    target = None
    if target_ema > 0:
        target = FlowMap(copy.deepcopy(fm.net).requires_grad_(False), schedule)

    def loss_fn(step):
        x0, y = task.data(batch_size, generator)
        cond = _labels(task, y, label_dropout, generator)
        t = interval + (1 - interval) * torch.rand(batch_size, generator=generator, dtype=x0.dtype)
        r = t - interval
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
        s = segment_start(r, segments)
        return consistency_distillation_loss(
            fm,
            teacher,
            x0,
            t,
            r,
            noise,
            cond,
            boundary=s,
            solver=solver,
            target=target,
            metric=metric,
        ).mean()

    def update_target(step):
        with torch.no_grad():
            for e, p in zip(target.net.parameters(), fm.net.parameters()):
                e.lerp_(p, 1 - target_ema)

    net, history = optimize(
        fm.net,
        loss_fn,
        steps,
        lr=lr,
        after_step=update_target if target is not None else None,
        progress=progress,
        desc="cd",
    )
    student = FlowMap(net, schedule)
    info = {"loss": history, "interval": interval, "segments": segments, "guidance": guidance}
    if segments > 1:
        return FewStepGenerator(
            f"multi-boundary CD (K={segments})",
            net,
            lambda z, nfe, cond, g: sample_flowmap(student, z, uniform(segments), cond),
            nfes=(segments,),
            info=info,
        )
    den = student.denoiser()
    return FewStepGenerator(
        "consistency distillation",
        net,
        lambda z, nfe, cond, g: sample_consistency(den, z, uniform(nfe), cond, generator=g),
        info=info,
    )


def train_multiboundary_cd(task: Task, steps: int, generator=None, **options) -> FewStepGenerator:
    """Multi-boundary consistency distillation with K = 4 segments, sampled in 4 jumps."""
    options.setdefault("segments", 4)
    return train_cd(task, steps, generator, **options)


def train_ct(
    task: Task,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    schedule: str = "ict",
    s0: int = 10,
    s1: int = 1280,
    stages: int = 6,
    p_mean: float = -1.1,
    p_std: float = 2.0,
    init_from_teacher: bool = False,
    metric: str = "pseudo_huber",
    weighting: str = "sigma",
    batch_size: int = 512,
    lr: float = 3e-4,
    label_dropout: float = 0.1,
    network: dict | None = None,
    progress: bool = False,
) -> FewStepGenerator:
    """Consistency training from data alone (no teacher in the loss, no EMA target).

    ``schedule``: ``ict`` — iCT's levels, N doubling from ``s0`` to ``s1``, lognormal
    interval weights; ``ect`` — ECT's shrinking continuous interval in ``stages`` equal
    stages. ``init_from_teacher``: start from the teacher's weights (ECT's "tuning" of a
    pretrained diffusion model; the teacher is used for nothing else); else random weights.
    ``weighting``: of :func:`consistency_training_loss` (``"time"`` only as an ablation).
    Sampling: the multistep consistency sampler on a uniform grid, NFE 1, 2, 4.
    """
    check_choice(schedule, "schedule", ("ict", "ect"))
    check_choice(weighting, "weighting", ("sigma", "time"))
    check_positive(stages, "stages", integer=True)
    fm = flowmap_student(task, network, init_from_teacher=init_from_teacher, generator=generator)
    times = fm.schedule
    grids: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    stage_len = max(1, -(-steps // stages))

    def loss_fn(step):
        if schedule == "ect":
            x0, y = task.data(batch_size, generator)
            cond = _labels(task, y, label_dropout, generator)
            lam = -(p_mean + p_std * torch.randn(batch_size, generator=generator))
            t = times.t_from_logsnr(lam).to(x0.dtype).clamp(1e-4, 1.0)
            r = ect_interval(t, step // stage_len, times)
            noise = torch.randn(x0.shape, generator=generator)
            return consistency_training_loss(
                fm, x0, t, r, noise, cond, metric=metric, weighting=weighting
            ).mean()
        n = ict_num_intervals(step, steps, s0, s1)
        if n not in grids:
            ts = consistency_levels(n, times)
            grids[n] = ts, lognormal_interval_weights(ts, times, p_mean, p_std)
        ts, weights = grids[n]
        x0, y = task.data(batch_size, generator)
        cond = _labels(task, y, label_dropout, generator)
        i = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        t, r = ts[i + 1].to(x0.dtype), ts[i].to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator)
        return consistency_training_loss(
            fm, x0, t, r, noise, cond, metric=metric, weighting=weighting
        ).mean()

    net, history = optimize(fm.net, loss_fn, steps, lr=lr, progress=progress, desc="ct")
    den = FlowMap(net, times).denoiser()
    return FewStepGenerator(
        "consistency training",
        net,
        lambda z, nfe, cond, g: sample_consistency(den, z, uniform(nfe), cond, generator=g),
        info={
            "loss": history,
            "schedule": schedule,
            "final_intervals": ict_num_intervals(steps - 1, steps, s0, s1) if steps else s0,
        },
    )


register_method("consistency_distillation", lecture=6)(train_cd)
register_method("multiboundary_cd", lecture=6)(train_multiboundary_cd)
register_method("consistency_training", lecture=6, revision=2)(train_ct)
