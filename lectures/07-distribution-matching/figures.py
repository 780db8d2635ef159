"""Figures and measured numbers of lecture 7 (distribution matching: SDS, DMD/DMD2, ADD/LADD,
MMD distillation, SwD, Drifting).

Every panel is computed by visgen: the DMD surrogate loss on particles with exact real and fake
scores (``fewstep.distribution_matching_loss``, ``oracles``), the kernel MMD² estimator
(``metrics.kernels``) against its closed form for Gaussians, the drift field
(``fewstep.drift_field``) and the cached few-step students of the tour chapter L07
(``fewstep.trained`` with the tour's 600 generator updates, so ``visgen tour`` and the slides
share the cache), scored with ``visgen.metrics``.

Run: ``python -m visgen.course.slides --only 07 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.fewstep import distribution_matching_loss, drift_field, get_task, trained
from visgen.fewstep.swd import resize, scale_schedule
from visgen.metrics import energy_distance, mode_coverage
from visgen.metrics.images import data_floor, image_metrics
from visgen.metrics.kernels import gaussian_kernel, mmd2
from visgen.oracles import DiracMixture, eight_gaussians
from visgen.sampling import sample_euler, uniform

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
STEPS = 600  # generator updates: the tour chapter L07's full budget (same cache entries)
# registry name: (label, key) in the order of the lecture
METHODS = {
    "sds": ("SDS only", "sds"),
    "dmd": ("DMD (+ regression)", "dmd"),
    "dmd2": ("DMD2 (TTUR + GAN)", "dmd2"),
    "add": ("ADD (GAN + distill.)", "add"),
    "ladd": ("LADD (GAN)", "ladd"),
    "mmd": ("MMD (RBF)", "mmd"),
    "drifting": ("Drifting", "drift"),
}
# on digits DMD2 stands for the DMD family: DMD's 2048 teacher ODE pairs and TTUR make it the
# slowest student to train on a CPU, and the tour chapter L07 shows it
DIGITS_METHODS = [m for m in METHODS if m != "dmd"]


def _hide(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _points(ax, x, color, ref=None):
    _hide(ax)
    ax.set_xlim(-3.3, 3.3)
    ax.set_ylim(-3.3, 3.3)
    ax.set_aspect("equal")
    if ref is not None:
        ax.scatter(*ref[:1000].T, s=1.0, c="#c9ccd1", alpha=0.6)
    ax.scatter(*x[:1000].T, s=1.2, c=color, alpha=0.6)


def _scores(x, data, gmm, results, key):
    mc = mode_coverage(x, gmm.means, 0.3)
    ed = energy_distance(x, data)
    results[f"{key}_ed"] = num(ed, 2)
    results[f"{key}_in"] = num(mc.in_mode, 2)
    results[f"{key}_min"] = num(mc.min_fraction, 2)
    return ed


@book.figure(fmt="png")
def particles(results):
    """500 free particles moved by the DMD gradient: SDS (no fake score) vs exact fake score."""
    gmm = eight_gaussians()
    teacher = gmm.denoiser("linear")
    g = torch.Generator().manual_seed(0)
    data = gmm.sample(N, g)
    start = 0.5 * torch.randn(500, 2, generator=g)
    iters = 800
    runs = [
        ("SDS, $t \\sim U[0.02, 0.98]$", "p_sds", False, (0.02, 0.98)),
        ("SDS, $t \\sim U[0.02, 0.3]$", "p_sdslow", False, (0.02, 0.3)),
        ("DMD, exact fake score", "p_dmd", True, (0.02, 0.98)),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(11.0, 3.0))
    _points(axes[0], start, GREY, data)
    axes[0].set_title("start", fontsize=16)
    for ax, (title, key, with_fake, (lo, hi)) in zip(axes[1:], runs):
        x = start.clone().requires_grad_(True)
        for it in range(iters):
            t = lo + (hi - lo) * torch.rand(500, generator=g)
            noise = torch.randn(500, 2, generator=g)
            # the fake score of a particle cloud is exact: the ideal denoiser of the particles
            fake = DiracMixture(x.detach()).denoiser("linear") if with_fake else None
            x.grad = None
            distribution_matching_loss(x, teacher, fake, t, noise).backward()
            lr = 0.03 * (1 - it / iters) + 0.002  # decaying steps: the cloud settles
            with torch.no_grad():
                x -= lr * x.numel() * x.grad  # the surrogate is a mean over N·D entries
        x = x.detach()
        ed = _scores(x, data, gmm, results, key)
        results[f"{key}_spread"] = num(float(x.std(0).mean()), 2)
        _points(ax, x, RED if not with_fake else BLUE, data)
        ax.set_title(title, fontsize=16)
        ax.set_xlabel(f"ED {ed:.3f}", fontsize=15, labelpad=1)
    results["p_iters"] = str(iters)
    results["data_spread"] = num(float(data.std(0).mean()), 2)
    fig.tight_layout(w_pad=0.3)
    return fig


@book.figure
def mmd_estimators(results):
    """Unbiased (U) vs biased (V) RBF-MMD² for two Gaussian sets, against the closed form."""
    d, s, h, n, reps = 4, 1.0, 2.0, 16, 2000
    c = (h**2 / (h**2 + 2 * s**2)) ** (d / 2)  # E k(x, x') for x, x' ~ N(μ, s² I)

    def exact(delta):  # MMD² between N(0, s² I) and N(δ e1, s² I)
        return 2 * c * (1 - math.exp(-(delta**2) / (2 * (h**2 + 2 * s**2))))

    def v_statistic(x, y):  # all pairs, self-pairs included (the biased estimator)
        kxx, kyy, kxy = (gaussian_kernel(a, b, h) for a, b in ((x, x), (y, y), (x, y)))
        return kxx.mean((-1, -2)) + kyy.mean((-1, -2)) - 2 * kxy.mean((-1, -2))

    g = torch.Generator().manual_seed(4)
    deltas = np.linspace(0.0, 2.0, 9)
    shift = torch.zeros(d, dtype=torch.float64)
    u_mean, v_mean, u_se = [], [], []
    for delta in deltas:
        shift[0] = delta
        x = s * torch.randn(reps, n, d, generator=g, dtype=torch.float64)
        y = s * torch.randn(reps, n, d, generator=g, dtype=torch.float64) + shift
        u, v = mmd2(x, y, "rbf", h), v_statistic(x, y)
        u_mean.append(float(u.mean()))
        u_se.append(float(u.std() / math.sqrt(reps)))
        v_mean.append(float(v.mean()))
        if delta == 0:
            u0, v0 = u, v
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    bins = np.linspace(float(u0.min()), float(v0.max()), 50)
    axes[0].hist(u0, bins, color=BLUE, alpha=0.6, label="unbiased (U)")
    axes[0].hist(v0, bins, color=ORANGE, alpha=0.6, label="biased (V)")
    axes[0].axvline(0, c="k", lw=1)
    axes[0].set_xlabel("estimate of MMD² when $p = q$")
    axes[0].set_yticks([])
    axes[0].legend(frameon=False)
    fine = np.linspace(0, 2, 100)
    axes[1].plot(fine, [exact(dl) for dl in fine], c="k", lw=1.5, label="exact MMD²")
    axes[1].errorbar(deltas, u_mean, yerr=2 * np.array(u_se), fmt="o", c=BLUE, ms=4,
                     label="unbiased (U), mean ± 2 s.e.")  # fmt: skip
    axes[1].plot(deltas, v_mean, "s", c=ORANGE, ms=4, label="biased (V), mean")
    axes[1].set_xlabel("mean shift $\\delta$")
    axes[1].legend(frameon=False, fontsize=11)
    fig.tight_layout()
    bias = 2 * (1 - c) / n  # E[V] − MMD² for sets of n: the self-pairs k(x, x) = 1
    results["mmd_n"], results["mmd_d"], results["mmd_reps"] = str(n), str(d), str(reps)
    results["mmd_u0"] = num(float(u0.mean()), 2)
    results["mmd_u0_se"] = num(float(u0.std() / math.sqrt(reps)), 2)
    results["mmd_v0"] = num(float(v0.mean()), 3)
    results["mmd_v0_se"] = num(float(v0.std() / math.sqrt(reps)), 2)
    results["mmd_bias"] = num(bias, 3)
    results["mmd_u_maxz"] = num(
        max(abs(m - exact(dl)) / e for m, e, dl in zip(u_mean, u_se, deltas)), 2
    )
    # the linear kernel's V-statistic, pair by pair, is ‖x̄ − ȳ‖² (the closed form mmd2 uses)
    pairs = (x @ x.mT).mean((-1, -2)) + (y @ y.mT).mean((-1, -2)) - 2 * (x @ y.mT).mean((-1, -2))
    results["mmd_linear_err"] = num(float((mmd2(x, y, "linear") - pairs).abs().max()), 1)
    return fig


@book.figure(fmt="png")
def drift(results):
    """The drift field at generated points: paper kernel, and Gaussian kernel = two denoisers."""
    g = torch.Generator().manual_seed(1)
    data = eight_gaussians().sample(400, g)
    gen = 0.6 * torch.randn(60, 2, generator=g) + torch.tensor([1.0, 0.5])
    fields = [
        (drift_field(gen, data, temperature=0.1), "paper: $e^{-\\|x-y\\|/\\tau}$, joint norm."),
        (
            drift_field(gen, data, temperature=0.3, kernel="gaussian", coupling="row"),
            "Gaussian kernel: $D^*_p(x) - D^*_q(x)$",
        ),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.9))
    for ax, (v, title) in zip(axes, fields):
        ax.scatter(*data.T, s=3, c="#9aa3ae")
        ax.scatter(*gen.T, s=12, c=ORANGE)
        ax.quiver(gen[:, 0], gen[:, 1], v[:, 0], v[:, 1], angles="xy", scale_units="xy",
                  scale=1, width=0.004, color="k")  # fmt: skip
        ax.set_aspect("equal")
        ax.set_xlim(-3, 3.2)
        ax.set_ylim(-3, 3)
        _hide(ax)
        ax.set_title(title, fontsize=17)
    fig.tight_layout()
    # the identity behind the right panel (float64): with per-coordinate distances ‖·‖/√D,
    # temperature τ is the ideal denoiser of the linear path at t/(1 − t) = τ√D
    x64, p64, tau = gen.double(), data.double(), 0.3
    v = drift_field(x64, p64, temperature=tau, kernel="gaussian", coupling="row")
    h = tau * math.sqrt(2)
    t = h / (1 + h)
    d_p = DiracMixture(p64).posterior_mean((1 - t) * x64, t, "linear")
    d_q = torch.stack(
        [
            DiracMixture(torch.cat([x64[:i], x64[i + 1 :]])).posterior_mean(
                (1 - t) * x64[i : i + 1], t, "linear"
            )[0]
            for i in range(len(x64))
        ]
    )
    results["drift_identity"] = num(float((v - (d_p - d_q)).abs().max()), 1)
    same = drift_field(p64, p64, p64, temperature=tau, kernel="gaussian", coupling="row")
    results["drift_equal"] = num(float(same.abs().max()), 1)
    return fig


@book.figure(fmt="png")
def students(results):
    """Every lecture-7 student of the 8-Gaussian flow-matching teacher at 1, 2, 4 NFE."""
    task = get_task("8gauss_fm")
    gmm = eight_gaussians()
    g = torch.Generator().manual_seed(1)
    data, floor = gmm.sample(N, g), gmm.sample(N, g)
    z = torch.randn(N, 2, generator=g)
    results["floor"] = num(energy_distance(floor, data), 2)
    results["steps"] = str(STEPS)
    rows = [("teacher (Euler)", "teacher", None)] + [
        (label, key, name) for name, (label, key) in METHODS.items()
    ]
    fig, axes = plt.subplots(3, len(rows), figsize=(1.6 * len(rows), 5.4))
    for i, (label, key, name) in enumerate(rows):
        if name is None:
            sample = {k: sample_euler(task.teacher, z, uniform(k)) for k in (1, 2, 4, TEACHER_NFE)}
        else:
            student = trained(name, task, STEPS)
            gen = torch.Generator().manual_seed(10)
            sample = {k: student.sample(z, k, None, gen) for k in student.nfes}
            results[f"{key}_train_s"] = num(student.info["wall_s"], 2)
        eds = {k: _scores(sample[k], data, gmm, results, f"{key}_{k}") for k in sample}
        for j, k in enumerate((1, 2, 4)):
            ax = axes[j, i]
            _hide(ax)
            if j == 0:
                ax.set_title(label.replace(" (", "\n("), fontsize=14)
            if i == 0:
                ax.set_ylabel(f"{k} NFE", fontsize=15)
            if k not in sample:
                ax.text(0.5, 0.5, "one-step\ngenerator", ha="center", va="center",
                        color=GREY, fontsize=13, transform=ax.transAxes)  # fmt: skip
                continue
            _points(ax, sample[k], GREY if name is None else BLUE)
            ax.set_xlabel(f"ED {eds[k]:.3f}", fontsize=14, labelpad=1)
    fig.tight_layout(h_pad=0.3, w_pad=0.1)
    return fig


def _digit_rows(axes, rows):
    for i, (label, x) in enumerate(rows):
        for c in range(10):
            axes[i, c].imshow(x[c, 0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
            _hide(axes[i, c])
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=16)


def _digit_metrics(results, key, x, labels):
    m = image_metrics(x, "digits", cond=labels)
    results[f"{key}_fd"] = num(m["fd"], 3)
    results[f"{key}_agree"] = num(m["agreement"], 3)


@book.figure(fmt="png")
def digits(results):
    """Class-conditional digits (MLP teacher): every lecture-7 student at 1 and 4 NFE."""
    task = get_task("digits")
    n = 1000
    g = torch.Generator().manual_seed(3)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *task.shape, generator=g)
    with torch.no_grad():
        teacher = sample_euler(task.teacher, noise, uniform(TEACHER_NFE), labels)
    _digit_metrics(results, "dig_teacher", teacher, labels)
    results["dig_floor_fd"] = num(data_floor("digits", n)["fd"], 3)
    rows = [(f"teacher, {TEACHER_NFE} NFE", teacher)]
    for name in DIGITS_METHODS:
        label, key = METHODS[name]
        student = trained(name, task, STEPS)
        results[f"dig_{key}_train_s"] = num(student.info["wall_s"], 2)
        samples = {
            k: student.sample(noise, k, labels, torch.Generator().manual_seed(20 + k))
            for k in (1, 4)
            if k in student.nfes
        }
        for k, x in samples.items():
            _digit_metrics(results, f"dig_{key}{k}", x, labels)
        best = max(samples)
        rows.append((f"{label.split(' (')[0]}, {best} NFE", samples[best]))
    fig, axes = plt.subplots(len(rows), 10, figsize=(6.4, 0.62 * len(rows) + 0.2))
    _digit_rows(axes, rows)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def scalewise(results):
    """SwD on the convolutional digits teacher: the scales and the samples, next to patch MMD."""
    task = get_task("digits_unet")
    n = 1000
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *task.shape, generator=g)
    real, _ = task.data(10, g)  # any ten digits, to show what each scale keeps
    sizes = scale_schedule(4, task.shape[-1])
    rows = [
        (f"real at {s}×{s}", resize(resize(real, s), task.shape[-1])) for s in sorted(set(sizes))
    ]
    with torch.no_grad():
        teacher = sample_euler(task.teacher, noise, uniform(TEACHER_NFE), labels)
    _digit_metrics(results, "unet_teacher", teacher, labels)
    rows.append((f"teacher, {TEACHER_NFE} NFE", teacher))
    mmd = trained("mmd", task, STEPS)
    swd = trained("swd", task, STEPS)
    for name, student, key in (("patch MMD", mmd, "unet_mmd"), ("SwD", swd, "unet_swd")):
        results[f"{key}_train_s"] = num(student.info["wall_s"], 2)
        for k in (1, 2, 4):
            x = student.sample(noise, k, labels, torch.Generator().manual_seed(30 + k))
            _digit_metrics(results, f"{key}{k}", x, labels)
            if k in (2, 4) and (name == "SwD" or k == 4):
                rows.append((f"{name}, {k} NFE", x))
    for k in (1, 2, 4):
        sz = scale_schedule(k, task.shape[-1])
        results[f"swd_sizes{k}"] = " → ".join(str(s) for s in sz)
        results[f"swd_pixels{k}"] = f"{sum(s * s for s in sz) / (k * 64):.0%}"
    fig, axes = plt.subplots(len(rows), 10, figsize=(6.4, 0.62 * len(rows) + 0.2))
    _digit_rows(axes, rows)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


if __name__ == "__main__":
    book.run()
