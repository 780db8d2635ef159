"""Figures and measured numbers of lecture 3 (flow matching and its link to diffusion).

Every panel is computed by visgen: the flow-matching path and other schedules
(``visgen.schedules``), the flow-matching loss, weightings and time samplers
(``visgen.objectives``), exact Gaussian-mixture velocities (``visgen.oracles``), the samplers
(``visgen.sampling``) and the sample metrics (``visgen.metrics``). No network is trained.

Run: ``python -m visgen.course.slides --only 03 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.data import load_digits
from visgen.metrics import energy_distance, mode_coverage
from visgen.objectives import (
    LogitNormal,
    Shifted,
    Uniform,
    flow_matching_loss,
    noisy_sample,
    resolution_shift,
    target_scale,
)
from visgen.oracles import eight_gaussians, reference_pfode
from visgen.param import Denoiser
from visgen.sampling import sample_euler, sample_heun, uniform
from visgen.schedules import EDM, Linear, VPCosine, VPLinear
from visgen.train.assets import asset

book = FigureBook(__file__)
FM = Linear()
N = 2000
BLUE, ORANGE, GREEN, PURPLE, GREY = "#1f5fa8", "#c2571a", "#2f7d32", "#5b4a8a", "#6b7280"


def _square(ax, lim=3.2):
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _density(ax, gmm, t, lim=3.2, n=160, cmap="Greys"):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    p = gmm.to(torch.float64).log_prob(pts, t, FM).exp().reshape(n, n)
    ax.imshow(p.numpy(), extent=(-lim, lim, -lim, lim), origin="lower", cmap=cmap)


def _record(sampler, den, x, ts):
    states = []
    out = sampler(den, x, ts, callback=lambda i, t, xi, pred: states.append(xi.clone()))
    return torch.stack([*states, out])


@book.figure(fmt="png")
def paths(results):
    gmm = eight_gaussians().to(torch.float64)
    den = gmm.denoiser(FM)
    g = torch.Generator().manual_seed(0)
    n = 40
    x0 = gmm.sample(n, g)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.6))
    _density(axes[0], gmm, 1e-3)
    for a, b in zip(x0, eps):
        axes[0].plot([a[0], b[0]], [a[1], b[1]], c=ORANGE, lw=0.7, alpha=0.8)
    axes[0].scatter(*eps.T, s=8, c="k", zorder=3)
    axes[0].set_title(
        "conditional paths $(1-t)\\,x_0 + t\\,\\varepsilon$\n(straight, they cross)", fontsize=13
    )
    traj = _record(sample_heun, den, eps, uniform(200))
    _density(axes[1], gmm, 1e-3)
    for j in range(n):
        axes[1].plot(traj[:, j, 0], traj[:, j, 1], c=BLUE, lw=0.7, alpha=0.8)
    axes[1].scatter(*eps.T, s=8, c="k", zorder=3)
    axes[1].set_title(
        "marginal PF-ODE paths $\\mathrm{d}x/\\mathrm{d}t = v(x, t)$\n(curved, never cross)",
        fontsize=13,
    )
    for ax in axes:
        _square(ax, 3.5)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def velocity_field(results):
    gmm = eight_gaussians().to(torch.float64)
    den = gmm.denoiser(FM)
    times = [0.9, 0.5, 0.15]
    g = torch.linspace(-3, 3, 17, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.3))
    for ax, t in zip(axes, times):
        _density(ax, gmm, t, cmap="Blues")
        v = den.velocity(pts, t)
        ax.quiver(*pts.T, *(-v).T, color=ORANGE, angles="xy", scale=40, width=0.005)
        ax.set_title(f"t = {t:g}:  $-v(x, t)$")
        _square(ax)
    fig.tight_layout()
    return fig


@book.figure
def cfm_vs_fm(results):
    """CFM and marginal-FM losses of the family v_θ = θ v* differ by a constant: equal gradients."""
    gmm = eight_gaussians().to(torch.float64)
    exact = gmm.denoiser(FM)
    g = torch.Generator().manual_seed(1)
    M = 40000
    x0 = gmm.sample(M, g)
    t = torch.rand(M, generator=g, dtype=torch.float64).clamp(1e-3, 1 - 1e-3)
    eps = torch.randn(M, 2, generator=g, dtype=torch.float64)
    xt = noisy_sample(x0, t, FM, eps)
    v_star = exact.velocity(xt, t)
    thetas = np.linspace(0.0, 2.0, 21)
    cfm, mfm = [], []
    for th in thetas:
        scaled = Denoiser(lambda x, tt, cond, th=th: th * exact.velocity(x, tt), FM, "velocity")
        cfm.append(float(flow_matching_loss(scaled, x0, t=t, noise=eps)))
        mfm.append(float(((th * v_star - v_star) ** 2).mean()))
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ax.plot(thetas, cfm, "o-", c=BLUE, ms=3, label=r"CFM: $\|v_\theta - (\varepsilon - x_0)\|^2$")
    ax.plot(thetas, mfm, "s-", c=ORANGE, ms=3, label=r"FM: $\|v_\theta - v^*\|^2$")
    ax.plot(thetas, np.array(cfm) - np.array(mfm), ":", c=GREY, label="difference")
    ax.set_xlabel(r"$\theta$ in $v_\theta = \theta\, v^*$")
    ax.set_ylabel("loss (per dimension)")
    ax.set_ylim(top=1.45 * max(cfm))  # room for the legend above the curves
    ax.legend(frameon=False, fontsize=10, loc="upper center", ncol=2)
    fig.tight_layout()
    # gradients at θ = 0.5 through autograd, with Monte-Carlo standard errors
    th = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    model = Denoiser(lambda x, tt, cond: th * exact.velocity(x, tt), FM, "velocity")
    per = flow_matching_loss(model, x0, t=t, noise=eps, reduction="none")
    (g_cfm,) = torch.autograd.grad(per.mean(), th)
    per_grad = 2 * ((th.detach() * v_star - (eps - x0)) * v_star).mean(1)  # d/dθ per sample
    per_grad_fm = 2 * ((th.detach() - 1) * v_star * v_star).mean(1)
    diff = np.array(cfm) - np.array(mfm)
    results["cfm_grad"] = num(float(g_cfm), 3)
    results["cfm_grad_se"] = num(float(per_grad.std() / math.sqrt(M)), 1)
    results["fm_grad"] = num(float(per_grad_fm.mean()), 3)
    results["cfm_gap"] = num(float(diff.mean()), 3)
    results["cfm_gap_range"] = num(float(diff.max() - diff.min()), 1)
    results["cfm_min_theta"] = num(float(thetas[int(np.argmin(cfm))]), 2)
    return fig


def _euler_ed(den, x1, n, ts, ref):
    return energy_distance(sample_euler(den, x1, ts), ref)


@book.figure
def euler_schedules(results):
    """Euler on the PF-ODE of the same data under different paths (exact denoiser each time)."""
    gmm = eight_gaussians()
    g = torch.Generator().manual_seed(2)
    ref = gmm.sample(N, g)
    floor = energy_distance(gmm.sample(N, g), ref)
    z = torch.randn(N, 2, generator=g)
    steps = [1, 2, 4, 8, 16, 32, 64, 100]
    paths = {
        "flow matching": (FM, 1.0, GREEN),
        "VP linear β": (VPLinear(), 1.0, BLUE),
        "VP cosine": (VPCosine(), 0.995, ORANGE),
        "EDM (ρ = 7)": (EDM(), 1.0, PURPLE),
    }
    eds = {}
    for name, (sch, t1, _) in paths.items():
        den = gmm.denoiser(sch)
        x1 = z * float(sch.sigma(t1))
        eds[name] = [_euler_ed(den, x1, n, uniform(n, t1, 0.0), ref) for n in steps]
    fig, ax = plt.subplots(figsize=(5.6, 3.3))
    for name, (_, _, c) in paths.items():
        ax.loglog(steps, eds[name], "o-", c=c, ms=4, label=name)
    ax.axhline(floor, c=GREY, ls=":", label="data vs data")
    ax.set_xlabel("Euler steps (= NFE), grid uniform in t")
    ax.set_ylabel("energy distance")
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    for n, e in zip(steps, eds["flow matching"]):
        results[f"eu_fm_{n}"] = num(e)
    for key, name in [("vpl", "VP linear β"), ("cos", "VP cosine"), ("edm", "EDM (ρ = 7)")]:
        for n in (4, 16):
            results[f"eu_{key}_{n}"] = num(eds[name][steps.index(n)])
    results["eu_floor"] = num(floor)
    den = gmm.denoiser(FM)
    cov = mode_coverage(sample_euler(den, z, uniform(100)), gmm.means, 0.3)
    results["eu_fm_100_in_mode"] = num(cov.in_mode, 3)
    return fig


@book.figure(fmt="png")
def straightness(results):
    gmm = eight_gaussians().to(torch.float64)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(300, 2, generator=g, dtype=torch.float64)
    runs = [
        ("flow matching", FM, 1.0),
        ("VP cosine", VPCosine(), 0.995),
        ("VP linear β", VPLinear(), 1.0),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.3))
    for ax, (name, sch, t1) in zip(axes, runs):
        traj = _record(
            sample_heun, gmm.denoiser(sch), z * float(sch.sigma(t1)), uniform(400, t1, 0.0)
        )
        seg = (traj[1:] - traj[:-1]).norm(dim=2).sum(0)
        chord = (traj[-1] - traj[0]).norm(dim=1)
        ratio = float(seg.mean() / chord.mean())  # mean path length over mean displacement
        _density(ax, gmm, 1e-3)
        for j in range(14):
            ax.plot(traj[:, j, 0], traj[:, j, 1], c=ORANGE, lw=1.0)
        ax.scatter(*traj[0, :14].T, s=10, c="k", zorder=3)
        ax.set_title(f"{name}: length / chord = {ratio:.3f}", fontsize=13)
        _square(ax, 3.4)
        key = {"flow matching": "fm", "VP cosine": "cos", "VP linear β": "vpl"}[name]
        results[f"straight_{key}"] = num(ratio, 3)
    fig.tight_layout()
    return fig


@book.figure
def conversions(results):
    """Every Gaussian path is the flow-matching path after x ↦ x/(α + σ), t ↦ σ/(α + σ)."""
    gmm = eight_gaussians().to(torch.float64)
    t = torch.linspace(1e-3, 1 - 1e-3, 400, dtype=torch.float64)
    sch = {
        "flow matching": (FM, GREEN),
        "VP linear β": (VPLinear(), BLUE),
        "VP cosine": (VPCosine(), ORANGE),
        "EDM": (EDM(), PURPLE),
    }
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 4.0), gridspec_kw={"width_ratios": [1.15, 1]})
    for name, (s, c) in sch.items():
        axes[0].plot(t, s.logsnr(t), c=c, label=name)
    axes[0].set_ylim(-12, 12)
    axes[0].set_xlabel("t")
    axes[0].set_title(r"$\lambda_t = \log(\alpha_t/\sigma_t)$")
    axes[0].legend(frameon=False, fontsize=11)
    # a VP-cosine PF-ODE path, rescaled, against the FM PF-ODE path from the mapped start
    vp = VPCosine()
    g = torch.Generator().manual_seed(4)
    t_a, t_b = 0.98, 0.02
    x_a = torch.randn(8, 2, generator=g, dtype=torch.float64) * float(vp.sigma(t_a)) * 0.6
    ts_vp = torch.linspace(t_a, t_b, 60, dtype=torch.float64)
    path_vp = reference_pfode(gmm.denoiser(vp), x_a, t_a, t_b, t_eval=ts_vp)
    a, s = vp.alpha(ts_vp), vp.sigma(ts_vp)
    mapped = path_vp / (a + s)[:, None, None]
    t_fm = s / (a + s)
    path_fm = reference_pfode(
        gmm.denoiser(FM), mapped[0], float(t_fm[0]), float(t_fm[-1]), t_eval=t_fm
    )
    _density(axes[1], gmm, 1e-3)
    for j in range(x_a.shape[0]):
        axes[1].plot(path_fm[:, j, 0], path_fm[:, j, 1], c=GREEN, lw=3, alpha=0.5)
        axes[1].plot(mapped[:, j, 0], mapped[:, j, 1], c=ORANGE, lw=1, ls="--")
    axes[1].set_title("green: FM; dashed: VP cosine / (α + σ)", fontsize=12)
    _square(axes[1], 2.9)
    fig.tight_layout()
    results["conv_max_dev"] = num(float((path_fm - mapped).abs().max()))
    lam_vp, lam_fm = vp.logsnr(ts_vp), FM.logsnr(t_fm)
    results["conv_lam_dev"] = num(max(float((lam_vp - lam_fm).abs().max()), 1e-300))
    return fig


@book.figure
def loss_weights(results):
    t = torch.linspace(0.01, 0.99, 300, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 2.9))
    for target, c, label in [
        ("x0", GREY, r"$x_0$-MSE"),
        ("eps", BLUE, r"$\varepsilon$-MSE"),
        ("velocity", GREEN, r"velocity-MSE (FM)"),
        ("v", ORANGE, r"$v$-MSE (Salimans & Ho)"),
    ]:
        axes[0].semilogy(t, target_scale(target, t, FM), c=c, label=label)
    axes[0].set_title(r"weight on $\|\hat x_0 - x_0\|^2$ (flow-matching path)")
    axes[0].set_xlabel("t")
    axes[0].legend(frameon=False, fontsize=10)
    gen = torch.Generator().manual_seed(5)
    bins = np.linspace(0, 1, 51)
    samplers = [
        ("uniform", Uniform(), GREY),
        ("logit-normal(0, 1) (SD3)", LogitNormal(0.0, 1.0), BLUE),
        ("logit-normal(0.8, 0.8) (JiT)", LogitNormal(0.8, 0.8), GREEN),
        ("uniform, shift 3 (SD3)", Shifted(Uniform(), 3.0), ORANGE),
    ]
    for name, sampler, c in samplers:
        axes[1].hist(
            sampler(200000, gen, torch.float64).numpy(),
            bins,
            density=True,
            histtype="step",
            color=c,
            label=name,
            lw=1.4,
        )
    axes[1].set_title("training-time densities of t")
    axes[1].set_xlabel("t  (1 = noise)")
    axes[1].legend(frameon=False, fontsize=10)
    fig.tight_layout()
    results["shift_1024"] = num(resolution_shift(1024 * 1024, 256 * 256), 2)
    return fig


@book.figure
def trained_fm(results):
    """visgen's cached flow-matching MLP on the 8 Gaussians against the exact velocity."""
    trained = asset("fm_2d", progress=False)
    den = trained.denoiser()
    gmm = eight_gaussians()
    exact = gmm.to(torch.float64).denoiser(FM)
    g = torch.Generator().manual_seed(6)
    times = torch.linspace(0.05, 0.95, 19)
    rel = []
    for t in times:
        x0 = gmm.sample(4000, g)
        xt = noisy_sample(x0, torch.full((4000,), float(t)), FM, torch.randn(x0.shape, generator=g))
        with torch.no_grad():
            v_hat = den.velocity(xt, float(t)).double()
        v_star = exact.velocity(xt.double(), float(t))
        rel.append(float((v_hat - v_star).norm() / v_star.norm()))
    ref = gmm.sample(N, g)
    z = torch.randn(N, 2, generator=g)
    steps = [1, 2, 4, 8, 16, 100]
    ed_trained = [energy_distance(sample_euler(den, z, uniform(n)), ref) for n in steps]
    ed_exact = [energy_distance(sample_euler(gmm.denoiser(FM), z, uniform(n)), ref) for n in steps]
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 3.0))
    axes[0].plot(times, rel, "o-", c=ORANGE, ms=4)
    axes[0].set_xlabel("t")
    axes[0].set_title(r"$\|v_\theta - v^*\| \,/\, \|v^*\|$ on fresh $x_t$")
    axes[1].loglog(steps, ed_exact, "s--", c=GREEN, ms=4, label="exact $v^*$")
    axes[1].loglog(steps, ed_trained, "o-", c=ORANGE, ms=4, label=r"trained $v_\theta$")
    axes[1].set_xlabel("Euler steps")
    axes[1].set_title("energy distance to data")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    results["tfm_rel_max"] = num(max(rel), 2)
    results["tfm_rel_mid"] = num(rel[len(rel) // 2], 2)
    for n, a, b in zip(steps, ed_trained, ed_exact):
        results[f"tfm_ed_{n}"] = num(a)
        results[f"tfm_exact_{n}"] = num(b)
    results["tfm_steps"] = str(trained.config["train"]["steps"])
    return fig


@book.figure(fmt="png")
def digits_fm(results):
    """Samples of visgen's class-conditional flow-matching MLP on 8×8 digits (50 Euler steps)."""
    trained = asset("fm_digits", progress=False)
    den = trained.denoiser()
    g = torch.Generator().manual_seed(7)
    per_class = 8
    labels = torch.arange(10).repeat_interleave(per_class)
    with torch.no_grad():
        x = sample_euler(den, torch.randn(len(labels), 1, 8, 8, generator=g), uniform(50), labels)
    fig, axes = plt.subplots(per_class, 10, figsize=(5.6, 4.6))
    for i in range(len(labels)):
        ax = axes[i % per_class, i // per_class]
        ax.imshow(x[i, 0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    # novelty: distance of samples to the nearest training image, against held-out test digits
    train, _ = load_digits("train")
    test, _ = load_digits("test")
    with torch.no_grad():
        many = sample_euler(
            den, torch.randn(400, 1, 8, 8, generator=g), uniform(50), torch.arange(400) % 10
        )
    d_samples = torch.cdist(many.flatten(1), train.flatten(1)).min(1).values
    d_test = torch.cdist(test.flatten(1), train.flatten(1)).min(1).values
    results["dig_nn_samples"] = num(float(d_samples.median()), 2)
    results["dig_nn_test"] = num(float(d_test.median()), 2)
    results["dig_steps"] = str(trained.config["train"]["steps"])
    results["dig_min_nn"] = num(float(d_samples.min()), 2)
    return fig


if __name__ == "__main__":
    book.run()
