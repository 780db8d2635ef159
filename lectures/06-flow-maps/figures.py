"""Figures and measured numbers of lecture 6 (flow maps: consistency models and MeanFlow).

Every panel is computed by visgen: flow maps, consistency and MeanFlow losses and the cached
few-step students (``visgen.fewstep``, trained on first use through ``fewstep.trained`` with
the tour's settings, so ``visgen tour`` and the slides share the cache), exact Gaussian
flow maps and DOP853 reference solutions (``visgen.oracles``), samplers and guidance
(``visgen.sampling``), sample and image metrics (``visgen.metrics``).

Run: ``python -m visgen.course.slides --only 06 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.fewstep import (
    FlowMap,
    average_velocity_derivative,
    consistency_distillation_loss,
    consistency_levels,
    get_task,
    ict_num_intervals,
    lognormal_interval_weights,
    meanflow_loss,
    trained,
)
from visgen.metrics import energy_distance, mode_coverage
from visgen.metrics.images import data_floor, image_metrics
from visgen.oracles import GaussianMixture, eight_gaussians, gaussian_pfode, reference_pfode
from visgen.sampling import sample_euler, uniform
from visgen.sampling.guidance import classifier_free_guidance

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
N = 2000
TEACHER_NFE = 50
# registry name: (label, key, training steps) — the tour chapter L06's full budgets
METHODS = {
    "consistency_distillation": ("consistency distillation", "cd", 3000),
    "consistency_training": ("consistency training (iCT)", "ct", 8000),
    "multiboundary_cd": ("multi-boundary CD, K = 4", "mb", 3000),
    "meanflow": ("MeanFlow (JVP, from data)", "mf", 3000),
    "meanflow_fd": ("MeanFlow (finite diff., distilled)", "mffd", 3000),
}
DIGITS_GUIDANCE, DIGITS_STEPS = 2.0, 2000
MIX1D = GaussianMixture([[-1.5], [0.4], [1.6]], stds=[0.25, 0.2, 0.3], weights=[0.3, 0.3, 0.4])


def _hide(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


@book.figure
def flow_map(results):
    """A PF-ODE trajectory, its velocity v and the average velocity u of a jump; exact identities."""
    den = MIX1D.to(torch.float64).denoiser("linear")
    fine = torch.linspace(1.0, 1e-3, 401, dtype=torch.float64)  # the velocity is singular at 0
    x1 = torch.linspace(-2.2, 2.2, 15, dtype=torch.float64)[:, None]
    paths = reference_pfode(den, x1, 1.0, 1e-3, t_eval=fine)[..., 0]
    fig, ax = plt.subplots(figsize=(6.4, 3.7))
    for j in range(x1.shape[0]):
        ax.plot(fine, paths[:, j], c=GREY, lw=0.8)
    j, t, r = 4, 0.75, 0.25
    it, ir = int(round((1 - t) * 400)), int(round((1 - r) * 400))
    xt, xr = float(paths[it, j]), float(paths[ir, j])
    v = float(den.velocity(paths[it, j].reshape(1, 1), t))
    ax.plot(fine, paths[:, j], c=BLUE, lw=2)
    ax.plot([t, t - 0.25], [xt, xt - 0.25 * v], c=ORANGE, lw=2.2, label="velocity $v(x_t, t)$")
    ax.plot([t, r], [xt, xr], "--", c=GREEN, lw=2.2, label="jump: slope $u(x_t, t, r)$")
    ax.plot([t, r], [xt, xr], "o", c="k", ms=5)
    ax.annotate("$x_t$", (t, xt), (t + 0.02, xt + 0.15), fontsize=14)
    ax.annotate(r"$x_r = \Psi_{t\to r}(x_t)$", (r, xr), (r - 0.02, xr + 0.35), fontsize=14)
    ax.invert_xaxis()
    ax.set_xlabel("$t$  (noise → data)")
    ax.set_ylabel("$x$")
    ax.legend(frameon=False, fontsize=12, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    fig.tight_layout()
    # exact identities for Gaussian data N(μ, c² I) (closed-form Ψ of visgen.oracles)
    mean, std = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4
    teacher = GaussianMixture(mean[None], std).denoiser("linear")

    def exact_u(x, t, r, cond=None):
        gap = (t - r)[:, None]
        jump = (x - gaussian_pfode(x, t, r, "linear", mean, std)) / torch.where(gap > 0, gap, 1.0)
        return torch.where(gap > 0, jump, teacher.velocity(x, t))

    fm = FlowMap(exact_u)
    g = torch.Generator().manual_seed(0)
    n = 512
    x = 2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=torch.float64)
    s = t * torch.rand(n, generator=g, dtype=torch.float64)
    r = s * torch.rand(n, generator=g, dtype=torch.float64)
    zero = torch.zeros_like(t)
    vel = teacher.velocity(x, t)
    u, dudt = average_velocity_derivative(fm, x, t, r, vel)
    results["id_consistency"] = num(
        float((fm(x, t, zero) - fm(fm(x, t, s), s, zero)).abs().max()), 1
    )
    results["id_semigroup"] = num(float((fm(fm(x, t, s), s, r) - fm(x, t, r)).abs().max()), 1)
    results["id_meanflow"] = num(float((u - (vel - (t - r)[:, None] * dudt)).abs().max()), 1)
    x0 = mean + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)

    def exact_step(den, x, t, r, cond):
        return gaussian_pfode(x, t, r, "linear", mean, std)

    cd_exact = consistency_distillation_loss(
        fm, teacher, x0, t, r, noise, solver=exact_step, metric="l2"
    )
    cd_heun = consistency_distillation_loss(fm, teacher, x0, t, r, noise, metric="l2")
    results["loss_cd_exact"] = num(float(cd_exact.max()), 1)
    results["loss_cd_heun"] = num(float(cd_heun.mean()), 2)
    results["loss_mf"] = num(float(meanflow_loss(fm, x, t, r, vel, p=0.0).max()), 1)
    return fig


@book.figure
def ict_curriculum(results):
    """iCT's discretisation curriculum and its lognormal choice of intervals (no training)."""
    steps = 4000
    ks = np.arange(steps)
    counts = [ict_num_intervals(int(k), steps) for k in ks]
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.3))
    axes[0].step(ks, counts, c=BLUE, where="post")
    axes[0].set_yscale("log", base=2)
    axes[0].set_xlabel("training step $k$ (of 4000)")
    axes[0].set_title("number of intervals $N(k)$", fontsize=13)
    for n, c in ((10, ORANGE), (80, GREEN), (1280, PURPLE)):
        levels = consistency_levels(n, "linear")
        w = lognormal_interval_weights(levels, "linear")
        mids = 0.5 * (levels[1:] + levels[:-1])
        axes[1].plot(mids, w / (levels[1:] - levels[:-1]), c=c, lw=1.5, label=f"N = {n}")
    axes[1].set_xlabel("$t$")
    axes[1].set_title("density of the chosen interval's $t$", fontsize=13)
    axes[1].legend(frameon=False)
    fig.tight_layout()
    results["ict_first"] = str(counts[0])
    results["ict_last"] = str(counts[-1])
    results["ict_stages"] = str(len(set(counts)))
    return fig


def _scores(x, data, gmm):
    mc = mode_coverage(x, gmm.means, 0.3)
    return energy_distance(x, data), mc.in_mode, mc.min_fraction


@book.figure(fmt="png")
def students(results):
    """Every flow-map student of the 8-Gaussian teacher at 1, 2, 4 NFE, same noise."""
    task = get_task("8gauss")
    gmm = eight_gaussians()
    g = torch.Generator().manual_seed(1)
    data, floor = gmm.sample(N, g), gmm.sample(N, g)
    z = torch.randn(N, 2, generator=g)
    results["floor"] = num(energy_distance(floor, data), 2)
    rows = [("teacher (Euler)", "teacher", None)] + [
        (label, key, name) for name, (label, key, _) in METHODS.items()
    ]
    fig, axes = plt.subplots(3, len(rows), figsize=(2.0 * len(rows), 6.3))
    for i, (label, key, name) in enumerate(rows):
        if name is None:
            sample = {k: sample_euler(task.teacher, z, uniform(k)) for k in (1, 2, 4, TEACHER_NFE)}
        else:
            student = trained(name, task, METHODS[name][2])
            gen = torch.Generator().manual_seed(10)
            sample = {k: student.sample(z, k, None, gen) for k in student.nfes}
            results[f"{key}_train_s"] = num(student.info["wall_s"], 2)
        eds = {}
        for k in sample:
            ed, in_mode, min_mode = _scores(sample[k], data, gmm)
            eds[k] = ed
            results[f"{key}_{k}_ed"] = num(ed, 2)
            results[f"{key}_{k}_in"] = num(in_mode, 2)
            results[f"{key}_{k}_min"] = num(min_mode, 2)
        for j, k in enumerate((1, 2, 4)):
            ax = axes[j, i]
            _hide(ax)
            ax.set_xlim(-3.3, 3.3)
            ax.set_ylim(-3.3, 3.3)
            ax.set_aspect("equal")
            if j == 0:
                ax.set_title(label.replace(" (", "\n("), fontsize=12)
            if i == 0:
                ax.set_ylabel(f"{k} NFE", fontsize=13)
            if k not in sample:
                continue
            ax.scatter(*sample[k][:1000].T, s=1.2, c=BLUE if name else GREY, alpha=0.5)
            ax.set_xlabel(f"ED {eds[k]:.3f}", fontsize=11, labelpad=1)
    fig.tight_layout(h_pad=0.4, w_pad=0.2)
    return fig


@book.figure
def meanflow_error(results):
    """Relative error of the learned average velocity u_θ(x_t, t, r) against the exact one."""
    task = get_task("8gauss")
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    ts = [round(1.0 - 0.1 * i, 1) for i in range(10)]  # starts t: 1.0 … 0.1
    ends = [*ts[1:], 1e-3]  # ends r: 0.9 … 0.1 and 0.001 (the velocity is singular at 0)
    g = torch.Generator().manual_seed(2)
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for ax, name in zip(axes, ("meanflow", "meanflow_fd")):
        label, key, steps = METHODS[name]
        student = trained(name, task, steps)
        err = np.full((len(ts), len(ends)), np.nan)
        for i, t in enumerate(ts):
            x0 = gmm.sample(400, g)
            xt = (1 - t) * x0 + t * torch.randn(x0.shape, generator=g, dtype=torch.float64)
            rs = ends[i:]  # r < t
            jumps = reference_pfode(den, xt, t, 1e-3, t_eval=[t, *rs])[1:]
            for j, (r, x_r) in enumerate(zip(rs, jumps)):
                u_true = (xt - x_r) / (t - r)
                with torch.no_grad():
                    u = student.model(
                        xt.float(), torch.full((400,), t), torch.full((400,), r)
                    ).double()
                err[i, i + j] = float((u - u_true).norm() / u_true.norm())
        im = ax.imshow(err, cmap="viridis", vmin=0, vmax=1.0, origin="upper")
        ax.set_xticks(range(len(ends)), [f"{r:.1f}" for r in ends[:-1]] + ["0"], fontsize=9)
        ax.set_yticks(range(len(ts)), [f"{t:.1f}" for t in ts], fontsize=9)
        ax.set_xlabel("end $r$")
        ax.set_ylabel("start $t$")
        ax.set_title(label, fontsize=12)
        fig.colorbar(im, ax=ax, fraction=0.046)
        results[f"{key}_uerr_1to0"] = num(err[0, -1], 2)
        results[f"{key}_uerr_median"] = num(float(np.nanmedian(err)), 2)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def digits_cd(results):
    """Consistency distillation of the guided digits teacher (CFG inside the teacher step)."""
    task = get_task("digits")
    n = 1000
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *task.shape, generator=g)
    guided = classifier_free_guidance(task.teacher, DIGITS_GUIDANCE)
    with torch.no_grad():
        teacher = sample_euler(guided, noise, uniform(TEACHER_NFE), labels)
    student = trained("consistency_distillation", task, DIGITS_STEPS, guidance=DIGITS_GUIDANCE)
    rows = [("teacher, 50 NFE", teacher)]
    m = image_metrics(teacher, "digits", cond=labels)
    results["dig_teacher_fd"] = num(m["fd"], 3)
    results["dig_teacher_agree"] = num(m["agreement"], 3)
    for k in (1, 2, 4):
        x = student.sample(noise, k, labels, torch.Generator().manual_seed(20 + k))
        rows.append((f"CD, {k} NFE", x))
        m = image_metrics(x, "digits", cond=labels)
        results[f"dig_cd{k}_fd"] = num(m["fd"], 3)
        results[f"dig_cd{k}_agree"] = num(m["agreement"], 3)
    results["dig_floor_fd"] = num(data_floor("digits", n)["fd"], 3)
    results["dig_train_s"] = num(student.info["wall_s"], 2)
    fig, axes = plt.subplots(len(rows), 10, figsize=(6.6, 3.1))
    for i, (label, x) in enumerate(rows):
        for c in range(10):
            axes[i, c].imshow(x[c, 0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
            _hide(axes[i, c])
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=12)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


if __name__ == "__main__":
    book.run()
