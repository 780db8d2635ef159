"""Figures and measured numbers of lecture 1 (DDPM and denoising score matching).

Every panel is computed by visgen: exact Gaussian-mixture oracles (``visgen.oracles``), the
DDPM schedule (``visgen.schedules``), the samplers (``visgen.sampling``), the losses
(``visgen.objectives``) and the sample metrics (``visgen.metrics``). No network is trained:
the exact denoiser is the optimum every network is trained towards.

Run: ``python -m visgen.course.slides --only 01 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.data import load_digits
from visgen.metrics import energy_distance, mode_coverage
from visgen.objectives import ddpm_loss, diffusion_loss, noisy_sample
from visgen.oracles import DiracMixture, GaussianMixture, eight_gaussians
from visgen.sampling import sample_ancestral, sample_heun, sample_langevin, uniform
from visgen.schedules import EDM, VE, Linear, VPCosine, VPDiscrete
from visgen.train.assets import asset

book = FigureBook(__file__)
DDPM = VPDiscrete()
N = 2000  # samples per distance (METHODS §2.1: energy-distance floor ≈ 0.004 at N = 2000)
BLUE, ORANGE, GREEN, GREY = "#1f5fa8", "#c2571a", "#2f7d32", "#6b7280"


def _density(ax, gmm, t, schedule, lim=3.2, n=160, cmap="Blues"):
    """Heat map of the exact log p_t on [−lim, lim]²."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    logp = gmm.to(torch.float64).log_prob(pts, t, schedule).reshape(n, n)
    ax.imshow(
        logp.exp().numpy(),
        extent=(-lim, lim, -lim, lim),
        origin="lower",
        cmap=cmap,
        interpolation="bilinear",
    )


def _square(ax, lim=3.2):
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


@book.figure
def divergences(results):
    """Best single Gaussian for a two-mode mixture under forward and reverse KL (1-D, quadrature)."""
    p = GaussianMixture([[-2.0], [2.0]], stds=0.5, weights=[0.5, 0.5]).to(torch.float64)
    x = torch.linspace(-7, 7, 4001, dtype=torch.float64)
    dx = float(x[1] - x[0])
    logp = p.log_prob(x[:, None], 0.0, "linear")
    # forward KL(p || q) over Gaussians q is minimised by moment matching
    w = logp.exp() * dx
    mu_f = float((w * x).sum())
    sd_f = float(((w * (x - mu_f) ** 2).sum()).sqrt())

    def log_q(mu, sd):
        return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))

    best = (math.inf, 0.0, 1.0)
    for mu in np.linspace(-3, 3, 121):
        for sd in np.linspace(0.2, 3, 113):
            lq = log_q(mu, sd)
            rev = float((lq.exp() * (lq - logp)).sum() * dx)  # KL(q || p)
            best = min(best, (rev, mu, sd))
    _, mu_r, sd_r = best
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ax.fill_between(x, logp.exp(), color=GREY, alpha=0.3, label="data $p$")
    ax.plot(
        x, log_q(mu_f, sd_f).exp(), c=BLUE, label=r"$\arg\min_q\,\mathrm{KL}(p\,\|\,q)$ (forward)"
    )
    ax.plot(
        x,
        log_q(mu_r, sd_r).exp(),
        c=ORANGE,
        ls="--",
        label=r"$\arg\min_q\,\mathrm{KL}(q\,\|\,p)$ (reverse)",
    )
    ax.set_yticks([])
    ax.set_xlim(-5, 5)
    ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9)
    fig.tight_layout()
    results["kl_fwd_sd"] = num(sd_f, 2)
    results["kl_rev_mu"] = num(abs(mu_r), 2)
    results["kl_rev_sd"] = num(sd_r, 2)
    return fig


@book.figure(fmt="png")
def forward_process(results):
    gmm = eight_gaussians()
    g = torch.Generator().manual_seed(0)
    x0 = gmm.sample(600, g)
    eps = torch.randn(x0.shape, generator=g)
    times = [0.0, 0.1, 0.25, 0.4, 0.6, 1.0]
    fig, axes = plt.subplots(1, len(times), figsize=(9.9, 2.2))
    for ax, t in zip(axes, times):
        tt = torch.full((x0.shape[0],), t)
        xt = noisy_sample(x0, tt, DDPM, eps)
        _density(ax, gmm, max(t, 1e-3), DDPM)
        ax.scatter(*xt.T, s=2, c=ORANGE, alpha=0.6, lw=0)
        a = float(DDPM.alpha(t))
        s = abs(float(DDPM.sigma(t)))
        ax.set_title(f"t = {t:g}\n" + rf"$\alpha$ = {a:.2f}, $\sigma$ = {s:.2f}", fontsize=11)
        _square(ax)
    results["abar_T"] = num(float(DDPM.alphas_cumprod[-1]))
    results["alpha_T"] = num(float(DDPM.alpha(1.0)))
    return fig


@book.figure
def schedules(results):
    t = torch.linspace(1e-3, 1 - 1e-3, 400, dtype=torch.float64)
    sch = {
        "DDPM (linear β)": (DDPM, BLUE),
        "cosine": (VPCosine(), ORANGE),
        "flow matching": (Linear(), GREEN),
    }
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 2.7))
    for label, (s, c) in sch.items():
        axes[0].plot(t, s.alpha(t), c=c, label=label)
        axes[1].plot(t, s.sigma(t), c=c)
        axes[2].plot(t, s.logsnr(t), c=c)
    axes[0].set_title(r"signal $\alpha_t$")
    axes[1].set_title(r"noise $\sigma_t$")
    axes[2].set_title(r"log-SNR $\lambda_t = \log(\alpha_t/\sigma_t)$")
    axes[2].set_ylim(-10, 10)
    for ax in axes:
        ax.set_xlabel("t  (0 = data, 1 = noise)")
    axes[1].legend(*axes[0].get_legend_handles_labels(), frameon=False, loc="lower right")
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def score_field(results):
    gmm = eight_gaussians().to(torch.float64)
    times = [0.05, 0.25, 0.5]
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.2))
    g = torch.linspace(-3, 3, 17, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
    for ax, t in zip(axes, times):
        _density(ax, gmm, t, DDPM)
        sigma = float(DDPM.sigma(t))
        u = sigma * gmm.score(pts, t, DDPM)  # σ ∇log p_t = −ε̂: bounded, same direction
        ax.quiver(*pts.T, *u.T, color=ORANGE, angles="xy", scale=26, width=0.005)
        ax.set_title(rf"$t$ = {t:g}:  $\sigma_t\nabla\log p_t = -\hat\varepsilon$")
        _square(ax)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def ancestral(results):
    gmm = eight_gaussians()
    den = gmm.denoiser(DDPM)
    g = torch.Generator().manual_seed(1)
    ref = gmm.sample(N, g)
    floor = energy_distance(gmm.sample(N, g), ref)
    steps = [1, 2, 5, 10, 20, 50, 100, 1000]
    eds = {"beta_tilde": [], "beta": []}
    samples = None
    for variance in eds:
        for n in steps:
            gs = torch.Generator().manual_seed(2)
            x = sample_ancestral(
                den, torch.randn(N, 2, generator=gs), uniform(n), variance=variance, generator=gs
            )
            eds[variance].append(energy_distance(x, ref))
            if variance == "beta_tilde" and n == 1000:
                samples = x
                cov = mode_coverage(x, gmm.means, 0.3)
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 3.1), gridspec_kw={"width_ratios": [1, 2]})
    _density(axes[0], gmm, 1e-3, DDPM, cmap="Greys")
    axes[0].scatter(*samples.T, s=2, c=ORANGE, lw=0, alpha=0.7)
    axes[0].set_title("1000 ancestral steps, exact $\\hat x_0$")
    _square(axes[0])
    axes[1].loglog(steps, eds["beta_tilde"], "o-", c=BLUE, label=r"variance $\tilde\beta$")
    axes[1].loglog(steps, eds["beta"], "s--", c=ORANGE, label=r"variance $\beta$")
    axes[1].axhline(floor, c=GREY, ls=":", label="data vs data (floor)")
    axes[1].set_xlabel("number of ancestral steps (= NFE)")
    axes[1].set_ylabel("energy distance to data")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    results["anc_floor"] = num(floor)
    for n, e_t, e_b in zip(steps, eds["beta_tilde"], eds["beta"]):
        results[f"anc_ed_{n}"] = num(e_t)
        results[f"anc_ed_beta_{n}"] = num(e_b)
    results["anc_in_mode"] = num(cov.in_mode, 3)
    results["anc_min_frac"] = num(cov.min_fraction, 2)
    return fig


@book.figure(fmt="png")
def tweedie(results):
    gmm = eight_gaussians().to(torch.float64)
    g = torch.Generator().manual_seed(3)
    x0 = gmm.sample(60, g)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    times = [0.15, 0.3, 0.5]
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.2))
    for ax, t in zip(axes, times):
        tt = torch.full((x0.shape[0],), t, dtype=torch.float64)
        xt = noisy_sample(x0, tt, DDPM, eps)
        a, s = DDPM.alpha(tt)[:, None], DDPM.sigma(tt)[:, None]
        x0hat = (xt + s**2 * gmm.score(xt, tt, DDPM)) / a  # Tweedie
        _density(ax, gmm, 1e-3, DDPM, cmap="Greys")
        ax.scatter(*xt.T, s=9, c=BLUE, lw=0, label=r"$x_t$")
        for p, q in zip(xt, x0hat):
            ax.annotate(
                "",
                q.tolist(),
                p.tolist(),
                arrowprops={"arrowstyle": "->", "color": ORANGE, "lw": 0.7},
            )
        ax.scatter(*x0hat.T, s=9, c=ORANGE, lw=0, label=r"$E[x_0|x_t]$")
        ax.set_title(f"t = {t:g}")
        _square(ax, 3.6)
    axes[0].legend(loc="lower left", frameon=True, fontsize=10)
    fig.tight_layout()
    # Tweedie from the score equals the oracle's posterior mean
    tt = torch.full((x0.shape[0],), 0.3, dtype=torch.float64)
    xt = noisy_sample(x0, tt, DDPM, eps)
    via_score = (xt + DDPM.sigma(tt)[:, None] ** 2 * gmm.score(xt, tt, DDPM)) / DDPM.alpha(tt)[
        :, None
    ]
    err = (via_score - gmm.posterior_mean(xt, tt, DDPM)).abs().max()
    results["tweedie_err"] = num(max(float(err), 1e-300))
    return fig


@book.figure
def loss_floor(results):
    """Irreducible ε-loss E tr Cov(ε|x_t)/D versus t, and the DDPM loss of the exact predictor."""
    gmm = eight_gaussians().to(torch.float64)
    den = gmm.denoiser(DDPM)
    g = torch.Generator().manual_seed(4)
    M = 4000
    times = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    floor_eps, floor_x0 = [], []
    for t in times:
        x0 = gmm.sample(M, g)
        tt = torch.full((M,), float(t), dtype=torch.float64)
        xt = noisy_sample(x0, tt, DDPM, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        cov = gmm.posterior_variance(xt, tt, DDPM) / gmm.dim  # tr Cov(x0|x_t) per dim
        snr = float(DDPM.alpha(t) / DDPM.sigma(t)) ** 2
        floor_x0.append(float(cov.mean()))
        floor_eps.append(float(cov.mean()) * snr)
    check_t = torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8], dtype=torch.float64)
    check = []
    for t in check_t:
        x0 = gmm.sample(M, g)
        per = diffusion_loss(
            den,
            x0,
            t=torch.full((M,), float(t), dtype=torch.float64),
            target="eps",
            generator=g,
            reduction="none",
        )
        check.append((float(per.mean()), float(per.std() / math.sqrt(M))))
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 2.8))
    axes[0].plot(
        times, floor_eps, c=BLUE, label=r"$E\,\mathrm{tr\,Cov}(\varepsilon|x_t)/D$ (oracle)"
    )
    axes[0].errorbar(
        check_t,
        [c[0] for c in check],
        yerr=[2 * c[1] for c in check],
        fmt="o",
        c=ORANGE,
        label=r"MC: $\|\varepsilon-\hat\varepsilon^*\|^2/D$",
        ms=4,
    )
    axes[0].set_xlabel("t")
    axes[0].set_title(r"irreducible $\varepsilon$-loss")
    axes[0].legend(frameon=False, fontsize=10)
    axes[1].plot(times, floor_x0, c=GREEN)
    axes[1].set_xlabel("t")
    axes[1].set_title(r"irreducible $x_0$-loss $E\,\mathrm{tr\,Cov}(x_0|x_t)/D$")
    fig.tight_layout()
    # L_simple (uniform discrete k) of the exact predictor vs the averaged oracle floor
    Mk = 40000
    x0 = gmm.sample(Mk, g)
    per = ddpm_loss(den, x0, generator=g, reduction="none")
    k = torch.randint(0, DDPM.T, (Mk,), generator=g)
    tk = DDPM.t_of_index(k)
    xt = noisy_sample(x0, tk, DDPM, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    fl = gmm.posterior_variance(xt, tk, DDPM) / gmm.dim * (DDPM.alpha(tk) / DDPM.sigma(tk)) ** 2
    results["lsimple_exact"] = num(float(per.mean()), 3)
    results["lsimple_exact_se"] = num(float(per.std() / math.sqrt(Mk)), 1)
    results["lsimple_floor"] = num(float(fl.mean()), 3)
    results["lsimple_floor_se"] = num(float(fl.std() / math.sqrt(Mk)), 1)
    return fig


def _digits():
    """visgen's fixed split of scikit-learn's 8×8 digits, (N, 8, 8) in [−1, 1]."""
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    return x_train[:, 0].double(), y_train, x_test[:, 0].double(), y_test


def _image_axes(axes):
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)


@book.figure(fmt="png")
def ideal_denoiser(results):
    x_train, y_train, x_test, y_test = _digits()
    train = DiracMixture(x_train, labels=y_train)
    edm = EDM(sigma_min=0.002, sigma_max=80.0)
    sigmas = [0.2, 0.5, 1.0, 2.0, 5.0, 50.0]
    g = torch.Generator().manual_seed(5)
    idx = int(torch.nonzero(y_test == 3)[0])  # the first held-out "3"
    probe, label = x_test[idx : idx + 1], y_test[idx : idx + 1]
    noise = torch.randn(probe.shape, generator=g, dtype=torch.float64)
    fig, axes = plt.subplots(3, len(sigmas) + 1, figsize=(7.0, 3.3))
    axes[0, 0].imshow(probe[0], cmap="gray_r", vmin=-1, vmax=1)
    axes[0, 0].set_title("held-out $x_0$", fontsize=11)
    axes[1, 0].axis("off")
    axes[2, 0].axis("off")
    for j, s in enumerate(sigmas, start=1):
        t = edm.t_from_sigma(torch.tensor(s, dtype=torch.float64))
        xs = probe + s * noise
        d_unc = train.posterior_mean(xs, t, edm)
        d_cls = train.posterior_mean(xs, t, edm, cond=label)
        for row, img in enumerate([xs, d_unc, d_cls]):
            axes[row, j].imshow(
                img[0], cmap="gray_r", vmin=-1 if row else None, vmax=1 if row else None
            )
        axes[0, j].set_title(f"σ = {s:g}", fontsize=11)
    _image_axes(axes)
    axes[0, 1].set_ylabel("$x_0 + \\sigma\\varepsilon$", fontsize=11)
    axes[1, 1].set_ylabel("$D^*(x;\\sigma)$", fontsize=11)
    axes[2, 1].set_ylabel("$D^*(x;\\sigma\\,|\\,y)$", fontsize=11)
    fig.tight_layout(h_pad=0.3, w_pad=0.2)
    # limits, measured on every held-out probe: σ → 0 nearest training image, σ → ∞ the mean
    probes = x_test
    small = 0.05
    xs = probes + small * torch.randn(probes.shape, generator=g, dtype=torch.float64)
    d_small = train.posterior_mean(
        xs, edm.t_from_sigma(torch.tensor(small, dtype=torch.float64)), edm
    )
    nn = torch.cdist(xs.flatten(1), train.means).argmin(1)
    err = (d_small.flatten(1) - train.means[nn]).abs().amax(1)
    results["ideal_nn_hits"] = str(int((err < 1e-3).sum()))
    results["ideal_n_probes"] = str(len(probes))
    big = 50.0
    xs = probes + big * torch.randn(probes.shape, generator=g, dtype=torch.float64)
    d_big = train.posterior_mean(xs, edm.t_from_sigma(torch.tensor(big, dtype=torch.float64)), edm)
    results["ideal_mean_err"] = num(float((d_big.flatten(1) - train.means.mean(0)).abs().max()))
    results["ideal_n_train"] = str(len(x_train))
    return fig


@book.figure(fmt="png")
def memorisation(results):
    x_train, y_train, _, _ = _digits()
    train = DiracMixture(x_train, labels=y_train)
    den = train.denoiser("linear")
    g = torch.Generator().manual_seed(6)
    n = 10
    out = sample_heun(den, torch.randn(n, 8, 8, generator=g, dtype=torch.float64), uniform(40))
    d = torch.cdist(out.flatten(1), train.means)
    dist, nn = d.min(1)
    fig, axes = plt.subplots(2, n, figsize=(9.9, 2.1))
    for j in range(n):
        axes[0, j].imshow(out[j], cmap="gray_r", vmin=-1, vmax=1)
        axes[1, j].imshow(train.means[nn[j]].reshape(8, 8), cmap="gray_r", vmin=-1, vmax=1)
    _image_axes(axes)
    axes[0, 0].set_ylabel("sample", fontsize=10)
    axes[1, 0].set_ylabel("nearest\ntrain", fontsize=10)
    fig.tight_layout(h_pad=0.2, w_pad=0.2)
    # on a larger batch: every sample is a training image
    big = sample_heun(den, torch.randn(200, 8, 8, generator=g, dtype=torch.float64), uniform(40))
    results["memo_max_dist"] = num(
        float(torch.cdist(big.flatten(1), train.means).min(1).values.max())
    )
    results["memo_n"] = "200"
    return fig


@book.figure(fmt="png")
def langevin(results):
    """Single-level vs annealed Langevin on a mixture with weights 0.8 / 0.2 (Song & Ermon 2019)."""
    gmm = GaussianMixture([[-4.0, -4.0], [4.0, 4.0]], stds=1.0, weights=[0.2, 0.8]).to(
        torch.float64
    )
    ve = VE(sigma_min=0.05, sigma_max=20.0)
    den = gmm.denoiser(ve)
    g = torch.Generator().manual_seed(7)
    x_init = torch.rand(N, 2, generator=g, dtype=torch.float64) * 16 - 8
    t_lo = float(ve.t_from_sigma(torch.tensor(0.05)))
    single = sample_langevin(
        den,
        x_init.clone(),
        torch.tensor([t_lo + 1e-3, t_lo]),
        n_steps=2000,
        step_size=2e-3,
        generator=g,
    )
    annealed = sample_langevin(
        den, x_init.clone(), uniform(10, 1.0, t_lo), n_steps=100, step_size=2e-3, generator=g
    )
    fig, axes = plt.subplots(1, 3, figsize=(9.9, 3.0))
    titles = ["data (weights 0.2 / 0.8)", "Langevin at one small σ", "annealed Langevin, 11 σ's"]
    pts = [gmm.sample(N, g), single, annealed]
    share = []
    for ax, title, p in zip(axes, titles, pts):
        ax.scatter(*p.T, s=2, c=BLUE, lw=0, alpha=0.6)
        frac = float((p.sum(1) > 0).double().mean())
        share.append(frac)
        ax.set_title(f"{title}\nshare in upper mode: {frac:.2f}", fontsize=11)
        _square(ax, 8.5)
    fig.tight_layout()
    results["lang_single"] = num(share[1], 2)
    results["lang_annealed"] = num(share[2], 2)
    results["lang_data"] = num(share[0], 2)
    return fig


@book.figure(fmt="png")
def trained_ddpm(results):
    """visgen's cached DDPM MLP on the 8 Gaussians against the exact oracle."""
    trained = asset("ddpm_2d", progress=False)
    den = trained.denoiser()
    gmm = eight_gaussians()
    g = torch.Generator().manual_seed(8)
    ref = gmm.sample(N, g)
    x = sample_ancestral(den, torch.randn(N, 2, generator=g), uniform(1000), generator=g)
    cov = mode_coverage(x, gmm.means, 0.3)
    times = torch.linspace(0.02, 0.98, 25, dtype=torch.float64)
    oracle = gmm.to(torch.float64)
    M = 4000
    learned, floor = [], []
    for t in times:
        x0 = oracle.sample(M, g)
        tt = torch.full((M,), float(t), dtype=torch.float64)
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            per = diffusion_loss(
                den, x0.float(), t=tt.float(), noise=noise.float(), reduction="none"
            )
        learned.append(float(per.mean()))
        xt = noisy_sample(x0, tt, DDPM, noise)
        cov_t = oracle.posterior_variance(xt, tt, DDPM) / oracle.dim
        floor.append(float((cov_t * (DDPM.alpha(tt) / DDPM.sigma(tt)) ** 2).mean()))
    fig, axes = plt.subplots(1, 2, figsize=(9.9, 3.1), gridspec_kw={"width_ratios": [1, 1.7]})
    _density(axes[0], gmm, 1e-3, DDPM, cmap="Greys")
    axes[0].scatter(*x.T, s=2, c=ORANGE, lw=0, alpha=0.7)
    axes[0].set_title("trained MLP, 1000 ancestral steps")
    _square(axes[0])
    axes[1].plot(times, floor, c=BLUE, label="irreducible (oracle)")
    axes[1].plot(times, learned, "o", c=ORANGE, ms=4, label="trained network")
    axes[1].set_xlabel("t")
    axes[1].set_title(r"held-out $\varepsilon$-loss per dimension")
    axes[1].legend(frameon=False)
    fig.tight_layout()
    # L_simple on fresh data, trained vs the oracle floor (same draws)
    Mk = 40000
    x0 = oracle.sample(Mk, g)
    k = torch.randint(0, DDPM.T, (Mk,), generator=g)
    tk = DDPM.t_of_index(k)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        per = diffusion_loss(den, x0.float(), t=tk.float(), noise=noise.float(), reduction="none")
    xt = noisy_sample(x0, tk, DDPM, noise)
    fl = (
        oracle.posterior_variance(xt, tk, DDPM)
        / oracle.dim
        * (DDPM.alpha(tk) / DDPM.sigma(tk)) ** 2
    )
    results["tr_ed"] = num(energy_distance(x, ref))
    results["tr_in_mode"] = num(cov.in_mode, 3)
    results["tr_min_frac"] = num(cov.min_fraction, 2)
    results["tr_loss"] = num(float(per.mean()), 3)
    results["tr_floor"] = num(float(fl.mean()), 3)
    results["tr_ratio"] = num(float(per.mean() / fl.mean()), 3)
    results["tr_ratio_se"] = num(float((per.double() - fl).std() / math.sqrt(Mk) / fl.mean()), 1)
    results["tr_steps"] = str(trained.config["train"]["steps"])
    results["tr_width"] = str(trained.config["model"]["width"])
    results["tr_depth"] = str(trained.config["model"]["depth"])
    return fig


if __name__ == "__main__":
    book.run()
