"""Tour chapter L07: distribution matching for few-step generators (lecture 7), and the table
of every few-step method of lectures 6 and 7 on the same teachers."""

from __future__ import annotations

import torch

from visgen import budget
from visgen.course import chapter, helpers
from visgen.data import get_dataset
from visgen.fewstep import METHODS, UnsupportedTeacher, drift_field, get_task, recipe, trained
from visgen.oracles import eight_gaussians
from visgen.sampling import sample_euler, uniform
from visgen.viz import figure, scatter

NFES = (1, 2, 4)
STEPS = 600  # generator updates per method (the benchmark: 1000); FAST: see _steps()
UNET_STUDENTS = {  # the students shown on the convolutional digits teacher: (full, FAST) updates
    "drifting": (300, 40),  # the cheapest good one-step student of benchmarks/fewstep.py
    "multiboundary_cd": (100, 20),  # the best four-step one, at a third of its benchmark budget
}  # ≈ 60 + 37 CPU-s: the cost of the 600-update MMD + SwD students they replace (BENCHMARKS.md)
TITLES = {
    "dmd": "DMD (regression + distribution matching)",
    "dmd2": "DMD2 (TTUR, GAN term, backward simulation)",
    "sds": "SDS only (no fake score)",
    "ladd": "LADD (GAN on teacher features)",
    "add": "ADD (GAN + score distillation)",
    "mmd": "MMD distillation",
    "swd": "SwD (scale-wise, patch MMD)",
    "drifting": "Drifting model",
}


def _steps() -> int:
    return budget(full=STEPS, fast=100)


def unet_steps(method: str) -> int:
    full, fast = UNET_STUDENTS[method]
    return budget(full=full, fast=fast)


def _methods(lecture: int | None = None) -> list[str]:
    names = sorted(METHODS, key=lambda m: (METHODS[m][0], m))
    return [m for m in names if lecture is None or METHODS[m][0] == lecture]


def _student(method: str, task, steps: int | None = None):
    try:
        return trained(method, task, steps or _steps(), **recipe(method, task.name))
    except UnsupportedTeacher:  # e.g. SwD needs a convolutional teacher: not in this table
        return None


def trained_students() -> list[tuple[str, str, object]]:
    """(method, teacher label, student) for every student this chapter trains: every method on
    the digits MLP, :data:`UNET_STUDENTS` on the digits U-Net (lecture 10 compares them all)."""
    students = []
    task = get_task("digits")
    for method in _methods():
        student = _student(method, task)
        if student is not None:
            students.append((method, "MLP", student))
    task = get_task("digits_unet")
    for method in UNET_STUDENTS:
        students.append((method, "U-Net", _student(method, task, unet_steps(method))))
    return students


def _drift_section(ctx) -> None:
    g = ctx.generator(1)
    data = eight_gaussians().sample(400, g)
    gen = 0.6 * torch.randn(60, 2, generator=g) + torch.tensor([1.0, 0.5])
    v = drift_field(gen, data, temperature=0.1)
    v_gauss = drift_field(gen, data, temperature=0.3, kernel="gaussian", coupling="row")
    fig, axes = figure(2, size=3.4)
    for ax, field, title in (
        (axes[0], v, "paper kernel exp(−‖x−y‖/τ), joint normalisation"),
        (axes[1], v_gauss, "Gaussian kernel: D*_data(x) − D*_gen(x)"),
    ):
        scatter(ax, data, color="tab:blue", s=3)
        scatter(ax, gen, title=title, color="tab:orange", s=10, alpha=0.9)
        ax.quiver(gen[:, 0], gen[:, 1], field[:, 0], field[:, 1], angles="xy", scale_units="xy",
                  scale=1, width=0.004, color="k")  # fmt: skip
    ctx.figure(
        fig,
        "The drift field at 60 generated points (orange) for the data (blue). Left: the "
        "paper's field, attraction to the data minus repulsion from the other generated "
        "points. Right: with a Gaussian kernel and separate normalisation each arrow ends "
        "at D*_data(x) − D*_gen(x) + x, a difference of two ideal denoisers.",
    )


def _points_section(ctx) -> None:
    task = get_task("8gauss_fm")
    n = budget(full=2000, fast=500)
    g = ctx.generator(2)
    z, ref = torch.randn(n, 2, generator=g), eight_gaussians().sample(n, g)
    teacher = sample_euler(task.teacher, z, uniform(50))
    rows = [
        helpers.gaussians_floor_row(ref, g, method="", NFE=""),
        {**helpers.gaussians_row("teacher", teacher, ref, method="Euler", NFE=50), "_floor": True},
    ]
    for method in _methods():
        gen = _student(method, task)
        if gen is None:
            continue
        fig, axes = figure(4, size=2.4)
        scatter(axes[0], teacher, title="teacher, 50 NFE", color="tab:gray")
        for ax, nfe in zip(axes[1:], NFES):
            if nfe not in gen.nfes:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"{nfe} NFE: one-step method", ha="center", fontsize=8,
                        transform=ax.transAxes)  # fmt: skip
                continue
            x = gen.sample(z, nfe, generator=ctx.generator(10 + nfe))
            row = helpers.gaussians_row(f"L{METHODS[method][0]}", x, ref, method=method, NFE=nfe)
            rows.append(row)
            scatter(ax, x, title=f"{nfe} NFE: ED {row['energy distance']:.3f}")
            ctx.metric(f"8gauss.{method}.ed_nfe{nfe}", row["energy distance"])
        ctx.figure(fig, f"{TITLES.get(method, method)} (lecture {METHODS[method][0]}) on the "
                        f"8-Gaussian flow-matching teacher after {_steps()} generator updates "
                        f"({gen.info.get('wall_s', float('nan')):.0f} s of training).")  # fmt: skip
    ctx.table(rows, f"Every few-step method of lectures 6 and 7 on the same teacher and budget "
              f"({_steps()} generator updates), N = {n}: energy distance to the target, share of "
              "samples within 3σ of a mode, smallest mode share (ideal 0.125). Shaded: the data "
              "floor and the teacher at 50 NFE.",
              ["method", "samples", "NFE", "energy distance", "in a mode", "smallest mode"])  # fmt: skip


def _digits_section(ctx, task_name: str, methods: list[str], caption: str, steps=None) -> None:
    """``steps(method)``: the generator updates of each student (default: the chapter's)."""
    task = get_task(task_name)
    test = get_dataset("digits", "test")
    cond = test.labels
    z = torch.randn((len(cond), *task.shape), generator=ctx.generator(3))
    teacher = sample_euler(task.teacher, z, uniform(50), cond)
    few = sample_euler(task.teacher, z, uniform(4), cond)  # what a 4-NFE student must beat
    rows = [
        helpers.digits_floor_row(method="", NFE=""),
        {**helpers.digits_row("teacher", teacher, cond, method="Euler", NFE=50), "_floor": True},
        {**helpers.digits_row("teacher", few, cond, method="Euler", NFE=4), "_floor": True},
    ]
    first = torch.cat([torch.nonzero(cond == k)[0] for k in range(10)])  # one of each class
    for method in methods:
        gen = _student(method, task, None if steps is None else steps(method))
        if gen is None:
            continue
        grids = [teacher[first]]
        for nfe in NFES:
            if nfe not in gen.nfes:
                continue
            x = gen.sample(z, nfe, cond, ctx.generator(20 + nfe)).clamp(-1, 1)
            row = helpers.digits_row(f"L{METHODS[method][0]}", x, cond, method=method, NFE=nfe)
            rows.append(row)
            ctx.metric(f"{task_name}.{method}.fd_nfe{nfe}", row["FD (classifier)"])
            grids.append(x[first])
        nfes = ", ".join(str(k) for k in NFES if k in gen.nfes)
        ctx.images(torch.cat(grids), f"{TITLES.get(method, method)} on {task_name}: first row "
                   f"the teacher (50 NFE), then the student at {nfes} NFE; classes 0–9.",
                   nrow=10)  # fmt: skip
    ctx.table(rows, caption, ["method", "samples", "NFE", "FD (classifier)", "FD (PCA-16)",
                              "confidence", "right class"])  # fmt: skip


@chapter(
    "L07",
    "Distribution matching: DMD, ADD/LADD, MMD, SwD, Drifting",
    lecture=7,
    summary="Few-step generators that match distributions, not trajectories; every "
    "lecture 6–7 method side by side at 1, 2 and 4 NFE.",
    slides="lectures/07-distribution-matching/slides.pdf",
    code=[
        "visgen.fewstep.dmd.train_dmd",
        "visgen.fewstep.add.train_adversarial",
        "visgen.fewstep.mmd.train_mmd",
        "visgen.fewstep.swd.train_swd",
        "visgen.fewstep.drifting.train_drifting",
        "visgen.metrics.kernels.mmd2",
    ],
)
def run(ctx) -> None:
    ctx.text(
        "Lecture 6 distils the teacher's *trajectories*; lecture 7 asks only that the "
        "student's samples have the teacher's *distribution*. **DMD** follows the gradient of "
        "KL(p_student ‖ p_teacher) at every noise level: the difference between a diffusion "
        "model trained online on the student's samples (the fake score) and the teacher "
        "(the real score). Without the fake score it is **SDS**, which collapses onto "
        "high-density points. **DMD2** updates the fake score 5 times per student update, adds "
        "a GAN term and trains multi-step students on their own intermediate samples.",
        "**ADD/LADD** train the student with a discriminator made of small heads on the frozen "
        "teacher's features of noised samples (forward hooks). **MMD distillation** needs no "
        "second network: it matches the teacher-feature distributions of student and real "
        "samples with a kernel two-sample statistic, patch by patch for images. **SwD** "
        "generates at growing resolution, so early steps are cheap. **Drifting models** move "
        "each generated sample by a kernel mean shift towards the data and away from the other "
        "samples; with a Gaussian kernel that is the difference of two ideal denoisers.",
    )
    _drift_section(ctx)
    _points_section(ctx)
    _digits_section(
        ctx, "digits", _methods(),
        "Class-conditional digits (MLP teacher), sampled with the 397 labels of the test split: "
        "Fréchet distances (evaluation classifier's features, PCA-16 pixels), the classifier's "
        "confidence and agreement with the requested class. Shaded: held-out real digits and "
        "the teacher at 50 and at 4 NFE (what a 4-NFE student must beat).",
    )  # fmt: skip
    _digits_section(
        ctx, "digits_unet", list(UNET_STUDENTS),
        "Digits with a convolutional teacher (U-Net), students copied from it: a Drifting "
        f"generator after {unet_steps('drifting')} updates and multi-boundary CD (4 segments, 4 "
        f"deterministic jumps) after {unet_steps('multiboundary_cd')}. The multi-boundary "
        "student starts as the teacher's 4 Euler steps (shaded row) and has barely left them "
        "at this budget (FD 11.1 after 300 updates). Every lecture 6–7 method on this "
        "teacher, with its training cost: BENCHMARKS.md (`benchmarks/fewstep.py`).",
        unet_steps,
    )  # fmt: skip
