"""Tour chapter L06: flow maps — consistency models and MeanFlow (lecture 6)."""

from __future__ import annotations

import math

import torch

from visgen import budget
from visgen.course import chapter, helpers
from visgen.course.chapters import l07_distribution_matching as l07
from visgen.data import get_dataset
from visgen.fewstep import (
    FlowMap,
    average_velocity_derivative,
    consistency_distillation_loss,
    get_task,
    meanflow_loss,
    recipe,
    trained,
)
from visgen.oracles import GaussianMixture, eight_gaussians, gaussian_pfode
from visgen.sampling import sample_euler, uniform
from visgen.sampling.guidance import classifier_free_guidance
from visgen.viz import figure, scatter

# registry name: (label, training steps (full, fast), options of the training function)
METHODS_2D = {
    "consistency_distillation": ("consistency distillation", (3000, 1500), {}),
    "multiboundary_cd": ("multi-boundary CD, K = 4", (3000, 1500), {}),
    "consistency_training": ("consistency training (iCT)", (8000, 1500), {}),
    "meanflow": ("MeanFlow (JVP, from data)", (3000, 1500), {}),
    "meanflow_fd": ("MeanFlow (finite difference, distilled)", (3000, 1500), {}),
}
TEACHER_NFE = 50
DIGITS_GUIDANCE = 2.0
DIGITS_STEPS = (2000, 800)  # CD starts from the teacher's weights
UNET_ECT_STEPS = (300, 40)  # ECT on the U-Net teacher: benchmarks/fewstep.py's 300 updates


def _steps(pair) -> int:
    return budget(full=pair[0], fast=pair[1])


def _oracle_section(ctx) -> None:
    mean, std = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4
    gauss = GaussianMixture(mean[None], std)
    teacher = gauss.denoiser("linear")

    def exact_u(x, t, r, cond=None):
        gap = (t - r)[:, None]
        jump = (x - gaussian_pfode(x, t, r, "linear", mean, std)) / torch.where(gap > 0, gap, 1.0)
        return torch.where(gap > 0, jump, teacher.velocity(x, t))

    fm = FlowMap(exact_u)
    g = ctx.generator(0)
    n = 512
    x = 2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=torch.float64)
    s = t * torch.rand(n, generator=g, dtype=torch.float64)
    r = s * torch.rand(n, generator=g, dtype=torch.float64)
    zero = torch.zeros_like(t)
    v = teacher.velocity(x, t)
    u, dudt = average_velocity_derivative(fm, x, t, r, v)
    x0 = mean + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
    exact_step = lambda den, x, t, r, cond: gaussian_pfode(x, t, r, "linear", mean, std)
    residuals = {
        "consistency: f(x_t, t, 0) − f(x_s, s, 0)": fm(x, t, zero) - fm(fm(x, t, s), s, zero),
        "semigroup: Ψ_{s→r}(Ψ_{t→s}(x)) − Ψ_{t→r}(x)": fm(fm(x, t, s), s, r) - fm(x, t, r),
        "MeanFlow identity: u − (v − (t − r) du/dt)": u - (v - (t - r)[:, None] * dudt),
    }
    rows = [{"identity": k, "max |residual|": d.abs().max().item()} for k, d in residuals.items()]
    losses = {
        "CD loss, exact teacher step": consistency_distillation_loss(
            fm, teacher, x0, t, r, noise, solver=exact_step, metric="l2"
        ),
        "CD loss, Heun teacher step": consistency_distillation_loss(
            fm, teacher, x0, t, r, noise, metric="l2"
        ),
        "MeanFlow loss, true velocity": meanflow_loss(fm, x, t, r, v, p=0.0),
    }
    rows += [{"identity": k, "max |residual|": d.max().item()} for k, d in losses.items()]
    rows.append({"identity": "float64 machine epsilon", "max |residual|": 2.0**-52, "_floor": True})
    ctx.text(
        "**The object every method of this lecture learns.** The probability-flow ODE "
        "dx/dt = v(x, t) carries noise at t = 1 to data at t = 0. Its *flow map* jumps along "
        "a trajectory, Ψ_{t→r}(x_t) = x_r, and can be written with the *average velocity* "
        "u(x_t, t, r) = (x_t − x_r)/(t − r). The library's `FlowMap` parametrises "
        "f(x, t, r) = x − (t − r) u_θ(x, t, r), so f(x, t, t) = x holds for any network: the "
        "boundary condition that keeps consistency models from the trivial solution f ≡ const.",
        "A consistency model learns the jumps to r = 0, a multi-boundary one the jumps to the "
        "start of a segment, MeanFlow every jump. For Gaussian data the ODE is linear and Ψ is "
        "closed-form, so the identities these methods are trained on can be checked exactly: "
        "every point of a trajectory maps to the same data point (consistency), two jumps "
        "make one (semigroup), and u = v − (t − r) du/dt, where du/dt = v·∂ₓu + ∂ₜu is one "
        "Jacobian-vector product (`torch.func.jvp`, MeanFlow identity). The library's losses "
        "vanish on the exact map; with the teacher's Heun step instead of the exact jump the "
        "CD loss is the solver's local error.",
    )
    ctx.table(rows, f"Closed-form flow map of N(μ, {std}² I), {n} random (x, t, s, r); float64.")
    for row in rows[:-1]:
        ctx.metric(f"oracle.{row['identity'].split(':')[0]}", row["max |residual|"])


def _gmm_section(ctx) -> None:
    task = get_task("8gauss")
    n = budget(full=2000, fast=1000)
    g = ctx.generator(1)
    ref = eight_gaussians().sample(n, g)
    z = torch.randn(n, 2, generator=g)
    teacher = sample_euler(task.teacher, z, uniform(TEACHER_NFE))
    ctx.text(
        "**Five flow-map students of one teacher.** The teacher is the exact flow-matching "
        "denoiser of the eight-Gaussian mixture; one Euler step of it lands on the mixture's "
        "mean, 4 steps are still blurred, 50 reach the data. Every student is an MLP "
        "u_θ(x, t, r) trained from the same data and teacher, and sampled from the same noise:",
        "*consistency distillation* (CD: teacher Heun step t → t − 0.02, pseudo-Huber loss, "
        "EMA target) sampled by the multistep consistency sampler (predict x0, re-noise to the "
        "next time); *multi-boundary CD* with 4 segments, sampled by 4 deterministic jumps; "
        "*consistency training* (iCT: no teacher, the same noise at both times, the number of "
        "levels doubling from 10 to 1280); *MeanFlow* from data with the JVP; and MeanFlow "
        "distilled from the teacher's velocity with a finite-difference du/dt (homework 4's "
        "variant, no JVP), both sampled by chaining jumps over a uniform grid.",
    )
    rows = [helpers.gaussians_floor_row(ref, g, NFE=math.nan)]
    rows.append(helpers.gaussians_row("teacher, Euler", teacher, ref, NFE=TEACHER_NFE))
    for nfe in (1, 2, 4):
        x = sample_euler(task.teacher, z, uniform(nfe))
        rows.append(helpers.gaussians_row("teacher, Euler", x, ref, NFE=nfe))
    for name, (label, steps, options) in METHODS_2D.items():
        student = trained(name, task, _steps(steps), **options)
        fig, axes = figure(1 + len(student.nfes), size=2.2)
        scatter(axes[0], teacher, title=f"teacher, {TEACHER_NFE} NFE")
        for ax, nfe in zip(axes[1:], student.nfes):
            x = student.sample(z, nfe, None, ctx.generator(10 + nfe))
            scatter(ax, x, title=f"{nfe} NFE")
            row = helpers.gaussians_row(label, x, ref, NFE=nfe)
            row["train s"] = student.info.get("wall_s", math.nan)
            rows.append(row)
            ctx.metric(f"gmm.{name}.nfe{nfe}.energy_distance", row["energy distance"])
        ctx.figure(fig, f"{label} ({_steps(steps)} steps): samples next to the teacher.")
    ctx.table(
        rows,
        f"8 Gaussians, {n} samples: energy distance, share within 3σ of a mode and the "
        "smallest mode's share (ideal 0.125). Training time from the run that filled the cache "
        "(2-core machine, shared).",
        columns=["samples", "NFE", "energy distance", "in a mode", "smallest mode", "train s"],
    )


def _digits_section(ctx) -> None:
    task = get_task("digits")
    labels = get_dataset("digits", "test").labels  # the floor row's labels
    noise = torch.randn(len(labels), *task.shape, generator=ctx.generator(2))
    guided = classifier_free_guidance(task.teacher, DIGITS_GUIDANCE)
    teacher = sample_euler(guided, noise, uniform(TEACHER_NFE), labels)
    student = trained(
        "consistency_distillation", task, _steps(DIGITS_STEPS), guidance=DIGITS_GUIDANCE
    )
    ctx.text(
        "**Guidance distilled into the student.** On the class-conditional flow-matching MLP of "
        f"8×8 digits (`fm_digits`), consistency distillation runs the teacher step with "
        f"classifier-free guidance w = {DIGITS_GUIDANCE:g} inside it (homework 4's recipe): "
        "the student learns the guided trajectories and needs one network evaluation per step "
        "where the guided teacher runs the network on a doubled batch (condition and null "
        "label). It starts from the teacher's weights (u_θ = v: at step 0 it is the teacher's "
        f"one-step denoiser). Rows: the guided teacher with {TEACHER_NFE} Euler steps, then "
        "the student at 1, 2 and 4 NFE; columns: the first ten requested digits."
    )
    rows = [helpers.digits_floor_row(NFE=math.nan)]
    rows.append(
        helpers.digits_row(f"teacher, CFG w = {DIGITS_GUIDANCE:g}", teacher, labels, NFE=50)
    )
    shown = [teacher[:10]]
    for nfe in (1, 2, 4):
        x = student.sample(noise, nfe, labels, ctx.generator(20 + nfe)).clamp(-1, 1)
        shown.append(x[:10])
        rows.append(helpers.digits_row("CD student", x, labels, NFE=nfe))
        ctx.metric(f"digits.cd.nfe{nfe}.fd", rows[-1]["FD (classifier)"])
    ctx.images(torch.cat(shown), "Guided teacher (top), CD student at 1, 2, 4 NFE.", nrow=10)
    ctx.table(
        rows,
        f"Digits, the {len(labels)} labels of the test split: Fréchet distances, classifier "
        "confidence and the share classified as the requested digit (shaded: real digits).",
    )


def _unet_section(ctx) -> None:
    task = get_task("digits_unet")
    cond = get_dataset("digits", "test").labels
    z = torch.randn((len(cond), *task.shape), generator=ctx.generator(3))
    first = torch.cat([torch.nonzero(cond == k)[0] for k in range(10)])  # one of each class
    rows = [helpers.digits_floor_row(NFE="")]
    for nfe in (TEACHER_NFE, 4):
        x = sample_euler(task.teacher, z, uniform(nfe), cond)
        rows.append({**helpers.digits_row("teacher, Euler", x, cond, NFE=nfe), "_floor": True})
    mb_steps = l07.unet_steps("multiboundary_cd")  # L07's student: one cache entry for both
    ect_steps = _steps(UNET_ECT_STEPS)
    students = [
        ("ECT start (0 updates)", "ect_start",
         trained("consistency_training", task, 0, **recipe("consistency_training", task.name))),
        (f"ECT, {ect_steps} updates", "ect",
         trained("consistency_training", task, ect_steps,
                 **recipe("consistency_training", task.name))),
        (f"multi-boundary CD, {mb_steps} updates", "multiboundary_cd",
         trained("multiboundary_cd", task, mb_steps, **recipe("multiboundary_cd", task.name))),
    ]  # fmt: skip
    shown = []
    for label, key, student in students:
        for nfe in student.nfes:
            x = student.sample(z, nfe, cond, ctx.generator(20 + nfe)).clamp(-1, 1)
            rows.append(helpers.digits_row(label, x, cond, NFE=nfe))
            ctx.metric(f"digits_unet.{key}.nfe{nfe}.fd", rows[-1]["FD (classifier)"])
            if key == "ect":
                shown.append(x[first])
    ctx.text(
        "**Consistency training on a convolutional teacher.** ECT (Geng et al. 2024) starts "
        "consistency *training* from a pretrained diffusion model — here the U-Net teacher's "
        "weights — and shrinks the interval r < t in stages; the teacher never enters the "
        "loss. What made it work is iCT's weight λ = 1/(σ_t − σ_r) in EDM's σ = t/(1 − t): "
        "written as 1/(t − r) on the flow-matching path it over-weights high noise by "
        "1/(1 − t)², and the same 300 updates end at 4-NFE FD 22–30 instead of 14 "
        "(BENCHMARKS.md). The first student rows are the untrained start (the teacher's weights): "
        "credit training only with what it adds to that. Multi-boundary CD (4 segments, 4 "
        "deterministic jumps) is the distilled comparison, the student of chapter L07.",
    )
    ctx.images(torch.cat(shown), f"ECT after {ect_steps} updates at 1, 2, 4 NFE; classes 0–9.",
               nrow=10)  # fmt: skip
    ctx.table(
        rows,
        f"Digits with the U-Net teacher, the {len(cond)} labels of the test split (shaded: "
        "held-out real digits and the teacher at 50 and 4 Euler steps, what a 4-NFE student "
        "must beat). Every U-Net method with its training cost: BENCHMARKS.md "
        "(`benchmarks/fewstep.py --tasks digits_unet`).",
    )


@chapter(
    "L06",
    "Flow maps: consistency models and MeanFlow",
    lecture=6,
    summary="Consistency distillation and training (iCT, ECT), multi-boundary CD and MeanFlow at "
    "1, 2, 4 NFE, on MLP and U-Net teachers.",
    slides="lectures/06-flow-maps/slides.pdf",
    code=[
        "visgen.fewstep.flowmap.FlowMap",
        "visgen.fewstep.consistency.train_cd",
        "visgen.fewstep.consistency.train_ct",
        "visgen.fewstep.meanflow.train_meanflow",
        "visgen.fewstep.flowmap.sample_flowmap",
        "visgen.fewstep.sampling.sample_consistency",
    ],
)
def run(ctx) -> None:
    _oracle_section(ctx)
    _gmm_section(ctx)
    _digits_section(ctx)
    _unet_section(ctx)
