"""Figures and measured numbers of lecture 2 (continuous time: SDE and probability-flow ODE).

Every panel is computed by visgen: schedules and their SDE coefficients (``visgen.schedules``),
exact Gaussian-mixture oracles and the closed-form Gaussian flow (``visgen.oracles``), the
ODE/SDE samplers and the PF-ODE likelihood (``visgen.sampling``), sample metrics
(``visgen.metrics``). No network is trained: the exact denoiser stands in for a perfect one.

Run: ``python -m visgen.course.slides --only 02 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.metrics import energy_distance, mode_coverage
from visgen.oracles import GaussianMixture, eight_gaussians, gaussian_pfode, reference_pfode
from visgen.sampling import (
    log_likelihood,
    sample_euler,
    sample_euler_maruyama,
    sample_heun,
    sample_pc,
    uniform,
)
from visgen.schedules import VE, Linear, VPCosine, VPLinear

book = FigureBook(__file__)
VP = VPLinear()  # Song et al. 2021: β from 0.1 to 20
N = 2000
BLUE, ORANGE, GREEN, PURPLE, GREY = "#1f5fa8", "#c2571a", "#2f7d32", "#5b4a8a", "#6b7280"
MIX1D = GaussianMixture([[-2.0], [0.3], [2.2]], stds=[0.35, 0.25, 0.4], weights=[0.3, 0.2, 0.5])


def _record(sampler, den, x, ts, **kw):
    """Run a sampler and return the states at every grid time (len(ts), *x.shape)."""
    states = []
    out = sampler(den, x, ts, callback=lambda i, t, xi, pred: states.append(xi.clone()), **kw)
    return torch.stack([*states, out])  # one callback per step, then the final state


def _square(ax, lim=3.2):
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _density2d(ax, gmm, t, schedule, lim=3.2, n=160):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    p = gmm.to(torch.float64).log_prob(pts, t, schedule).exp().reshape(n, n)
    ax.imshow(p.numpy(), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys")


@book.figure
def sde_coeffs(results):
    t = torch.linspace(0.002, 0.998, 500, dtype=torch.float64)
    sch = {
        "VP (linear β)": (VP, BLUE),
        "VP cosine": (VPCosine(), ORANGE),
        "VE (σ 0.01 → 50)": (VE(), PURPLE),
        "flow matching": (Linear(), GREEN),
    }
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 2.8))
    for label, (s, c) in sch.items():
        axes[0].plot(t, s.f(t), c=c, label=label)
        axes[1].semilogy(t, s.g(t) ** 2, c=c)
    axes[0].set_ylim(-25, 2)
    axes[0].set_title(r"drift $f(t) = \mathrm{d}\log\alpha_t/\mathrm{d}t$")
    axes[1].set_title(r"$g(t)^2 = \mathrm{d}\sigma_t^2/\mathrm{d}t - 2 f(t)\sigma_t^2$")
    for ax in axes:
        ax.set_xlabel("t")
    axes[0].legend(frameon=False, fontsize=11, loc="lower left")
    fig.tight_layout()
    tt = torch.tensor(0.5, dtype=torch.float64)
    results["fm_g2_half"] = num(float(Linear().g(tt) ** 2), 3)
    return fig


def _heat1d(ax, schedule, lim=4.0):
    ts = torch.linspace(0.002, 1.0, 300, dtype=torch.float64)
    xs = torch.linspace(-lim, lim, 300, dtype=torch.float64)
    mix = MIX1D.to(torch.float64)
    dens = torch.stack([mix.log_prob(xs[:, None], float(t), schedule).exp() for t in ts], 1)
    ax.imshow(
        dens.numpy(),
        extent=(0.002, 1.0, -lim, lim),
        origin="lower",
        aspect="auto",
        cmap="Blues",
        vmax=float(dens.max()) * 0.8,
    )
    ax.set_xlabel("t   (sampling runs right to left)")
    ax.set_xlim(0, 1)
    ax.set_ylim(-lim, lim)


@book.figure(fmt="png")
def trajectories_1d(results):
    mix = MIX1D.to(torch.float64)
    den = mix.denoiser(VP)
    ts = uniform(400, 1.0, 0.002)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(14, 1, generator=g, dtype=torch.float64) * float(VP.sigma(1.0))
    ode = _record(sample_heun, den, x1, ts)
    sde = _record(sample_euler_maruyama, den, x1, ts, generator=g)
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 3.1), sharey=True)
    for ax, traj, title in [(axes[0], ode, "probability-flow ODE"), (axes[1], sde, "reverse SDE")]:
        _heat1d(ax, VP)
        ax.plot(ts.numpy(), traj[:, :, 0].numpy(), c=ORANGE, lw=0.9)
        ax.set_title(f"{title}: 14 paths from the same $x_1$")
    axes[0].set_ylabel("x")
    fig.tight_layout()
    return fig


@book.figure
def marginals_1d(results):
    mix = MIX1D.to(torch.float64)
    den = mix.denoiser(VP)
    g = torch.Generator().manual_seed(1)
    M = 20000
    ts = uniform(200, 1.0, 0.0)
    x1 = torch.randn(M, 1, generator=g, dtype=torch.float64) * float(VP.sigma(1.0))
    ode = sample_heun(den, x1, ts)
    sde = sample_euler_maruyama(den, x1.clone(), ts, generator=g)
    ref = mix.sample(M, g)
    xs = torch.linspace(-4, 4, 400, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(5.0, 2.8))
    ax.plot(xs, mix.log_prob(xs[:, None], 1e-6, VP).exp(), c="k", lw=1.2, label="exact $p_0$")
    bins = np.linspace(-4, 4, 81)
    ax.hist(ode[:, 0].numpy(), bins, density=True, histtype="step", color=ORANGE, label="PF-ODE")
    ax.hist(
        sde[:, 0].numpy(),
        bins,
        density=True,
        histtype="step",
        color=BLUE,
        ls="--",
        label="reverse SDE",
    )
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    k = 4000  # energy distance on the first 4000 of each (it is quadratic in the sample size)
    results["m1d_ed_ode"] = num(energy_distance(ode[:k], ref[:k]))
    results["m1d_ed_sde"] = num(energy_distance(sde[:k], ref[:k]))
    results["m1d_floor"] = num(energy_distance(mix.sample(k, g), ref[:k]))
    return fig


@book.figure
def sampler_quality(results):
    gmm = eight_gaussians()
    den = gmm.denoiser(VP)
    g = torch.Generator().manual_seed(2)
    ref = gmm.sample(N, g)
    floors = torch.tensor([energy_distance(gmm.sample(N, g), ref) for _ in range(10)])
    floor, floor_sd = float(floors.mean()), float(floors.std())
    steps = [2, 4, 8, 16, 32, 64, 128, 256, 512]
    curves = {
        "Euler (ODE)": [],
        "Heun (ODE)": [],
        "Euler–Maruyama (SDE)": [],
        "PC (SDE + Langevin)": [],
    }
    for n in steps:
        ts = uniform(n, 1.0, 0.0)
        for name in curves:
            gs = torch.Generator().manual_seed(3)
            x = torch.randn(N, 2, generator=gs) * float(VP.sigma(1.0))
            den.nfe = 0
            if name.startswith("Euler ("):
                out = sample_euler(den, x, ts)
            elif name.startswith("Heun"):
                out = sample_heun(den, x, ts)
            elif name.startswith("Euler–"):
                out = sample_euler_maruyama(den, x, ts, generator=gs)
            else:
                out = sample_pc(den, x, ts, generator=gs)
            curves[name].append((den.nfe, energy_distance(out, ref)))
            if n == 512 and name.startswith("Euler–"):
                cov = mode_coverage(out, gmm.means, 0.3)
    fig, ax = plt.subplots(figsize=(6.0, 3.3))
    styles = {
        "Euler (ODE)": (BLUE, "o-"),
        "Heun (ODE)": (GREEN, "s-"),
        "Euler–Maruyama (SDE)": (ORANGE, "^--"),
        "PC (SDE + Langevin)": (PURPLE, "v--"),
    }
    for name, pts in curves.items():
        c, st = styles[name]
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], st, c=c, label=name, ms=4)
    ax.axhspan(
        floor - floor_sd,
        floor + floor_sd,
        color=GREY,
        alpha=0.25,
        lw=0,
        label="data vs data (±1 sd)",
    )
    ax.set_xlabel("NFE (network evaluations)")
    ax.set_ylabel("energy distance")
    ax.legend(frameon=False, fontsize=10)
    fig.tight_layout()
    results["sq_floor"] = num(floor)
    results["sq_floor_sd"] = num(floor_sd, 1)
    for name, key in [
        ("Euler (ODE)", "euler"),
        ("Heun (ODE)", "heun"),
        ("Euler–Maruyama (SDE)", "em"),
        ("PC (SDE + Langevin)", "pc"),
    ]:
        for (nfe, ed), n in zip(curves[name], steps):
            results[f"sq_{key}_{n}"] = num(ed)
            results[f"sq_{key}_{n}_nfe"] = str(nfe)
    results["sq_em_in_mode"] = num(cov.in_mode, 3)
    return fig


@book.figure(fmt="png")
def trajectories_2d(results):
    gmm = eight_gaussians().to(torch.float64)
    den = gmm.denoiser(VP)
    g = torch.Generator().manual_seed(4)
    x1 = torch.randn(6, 2, generator=g, dtype=torch.float64) * float(VP.sigma(1.0))
    ts = uniform(300, 1.0, 0.0)
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.3))
    runs = [
        ("PF-ODE (deterministic)", sample_heun, None),
        ("reverse SDE, noise seed 1", sample_euler_maruyama, 11),
        ("reverse SDE, noise seed 2", sample_euler_maruyama, 12),
    ]
    for ax, (title, sampler, seed) in zip(axes, runs):
        _density2d(ax, gmm, 1e-3, VP)
        kw = {} if seed is None else {"generator": torch.Generator().manual_seed(seed)}
        traj = _record(sampler, den, x1, ts, **kw)
        for j in range(x1.shape[0]):
            ax.plot(traj[:, j, 0], traj[:, j, 1], lw=0.6, c=plt.cm.tab10(j), alpha=0.8)
            ax.scatter(
                *traj[-1, j],
                c=[plt.cm.tab10(j)],
                s=60,
                marker="*",
                zorder=4,
                edgecolors="k",
                linewidths=0.5,
            )
        ax.scatter(*x1.T, c="k", s=12, zorder=3)
        ax.set_title(title, fontsize=13)
        _square(ax, 3.4)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def latent_partition(results):
    gmm = eight_gaussians().to(torch.float64)
    den = gmm.denoiser(VP)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(4000, 2, generator=g, dtype=torch.float64) * float(VP.sigma(1.0))
    x0 = sample_heun(den, z, uniform(100, 1.0, 0.0))
    mode = torch.cdist(x0, gmm.means).argmin(1)
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 3.2))
    colours = plt.cm.tab10(mode.numpy() % 10)
    axes[0].scatter(*z.T, c=colours, s=2, lw=0)
    axes[0].set_title("noise $x_1$, coloured by\nthe mode it flows to", fontsize=13)
    axes[1].scatter(*x0.T, c=colours, s=2, lw=0)
    axes[1].set_title("data $x_0$ = ODE$(x_1)$", fontsize=13)
    _square(axes[0], 3.4)
    _square(axes[1], 3.4)
    fig.tight_layout()
    # encode → decode round trip on fresh data, between t = 1e-3 and t = 1
    x = gmm.sample(200, g)
    x = x + float(VP.sigma(1e-3)) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    enc = reference_pfode(den, x, 1e-3, 1.0)
    dec = reference_pfode(den, enc, 1.0, 1e-3)
    results["rt_dop853"] = num(float((dec - x).abs().max()))
    dec_h = sample_heun(den, enc, uniform(200, 1.0, 1e-3))  # samplers only run towards data
    results["rt_heun200"] = num(float((dec_h - x).abs().max()))
    return fig


@book.figure
def convergence(results):
    """Euler (order 1) and Heun (order 2) against the closed-form Gaussian flow map."""
    mean, std = 1.0, 0.5
    gm = GaussianMixture([[mean, -mean]], stds=std).to(torch.float64)
    den = gm.denoiser(VP)
    g = torch.Generator().manual_seed(6)
    x1 = torch.randn(500, 2, generator=g, dtype=torch.float64) * float(VP.sigma(1.0))
    t_end = 1e-3
    exact = gaussian_pfode(x1, 1.0, t_end, VP, mean=torch.tensor([mean, -mean]), std=std)
    steps = [4, 8, 16, 32, 64, 128, 256]
    errs = {"Euler": [], "Heun": []}
    for n in steps:
        ts = uniform(n, 1.0, t_end)
        errs["Euler"].append(float((sample_euler(den, x1, ts) - exact).norm(dim=1).mean()))
        errs["Heun"].append(float((sample_heun(den, x1, ts) - exact).norm(dim=1).mean()))
    fig, ax = plt.subplots(figsize=(5.0, 3.1))
    for name, c, st in [("Euler", BLUE, "o-"), ("Heun", GREEN, "s-")]:
        nfe = [n if name == "Euler" else 2 * n for n in steps]
        ax.loglog(nfe, errs[name], st, c=c, label=name, ms=4)
        slope = np.polyfit(np.log(steps[-4:]), np.log(errs[name][-4:]), 1)[0]
        results[f"slope_{name.lower()}"] = num(slope, 2)
    ax.set_xlabel("NFE")
    ax.set_ylabel(r"mean $\|x_0 - \Psi_{1\to 0}(x_1)\|$")
    ax.legend(frameon=False)
    fig.tight_layout()
    results["conv_euler_64"] = num(errs["Euler"][steps.index(64)])
    results["conv_heun_32"] = num(errs["Heun"][steps.index(32)])
    return fig


@book.figure
def likelihood(results):
    """PF-ODE log-likelihood (exact divergence and Hutchinson) against the analytic log p_0."""
    gmm = eight_gaussians().to(torch.float64)
    fm = Linear()  # α_1 = 0: the prior at t = 1 is exactly N(0, I)
    den = gmm.denoiser(fm)
    g = torch.Generator().manual_seed(7)
    x = gmm.sample(150, g)
    t_min = 1e-4
    true = gmm.log_prob(x, t_min, fm)
    exact = log_likelihood(den, x, t_min=t_min)
    hutch = log_likelihood(den, x, t_min=t_min, exact=False, n_probes=1, generator=g)
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    lo, hi = float(true.min()) - 0.3, float(true.max()) + 0.3
    ax.plot([lo, hi], [lo, hi], c=GREY, lw=0.8)
    ax.scatter(true, hutch.nats, s=8, c=ORANGE, label="Hutchinson, 1 probe")
    ax.scatter(true, exact.nats, s=8, c=BLUE, label="exact divergence")
    ax.set_xlabel(r"analytic $\log p_0(x)$")
    ax.set_ylabel("PF-ODE estimate")
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    results["ll_exact_mae"] = num(float((exact.nats - true).abs().mean()))
    results["ll_hutch_mae"] = num(float((hutch.nats - true).abs().mean()))
    results["ll_hutch_bias"] = num(float((hutch.nats - true).mean()), 1)
    results["ll_hutch_se"] = num(float((hutch.nats - true).std() / math.sqrt(len(x))), 1)
    results["ll_mean"] = num(float(true.mean()), 3)
    results["ll_nfe"] = str(exact.nfe)
    return fig


if __name__ == "__main__":
    book.run()
