"""Figures and measured numbers of lecture 4 (fast solvers, time grids and guidance).

Every panel is computed by visgen: the solvers and time grids (``visgen.sampling``), guidance
(``visgen.sampling.guidance``), exact Gaussian-mixture denoisers and DOP853 reference solutions
(``visgen.oracles``), sample and image metrics (``visgen.metrics``) and the cached
class-conditional flow-matching model on 8×8 digits (``asset("fm_digits")``).

Run: ``python -m visgen.course.slides --only 04 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter

from visgen.course.figurebook import FigureBook, num
from visgen.metrics import energy_distance, mode_coverage
from visgen.metrics.images import data_floor, image_metrics
from visgen.oracles import GaussianMixture, eight_gaussians, reference_pfode
from visgen.sampling import (
    SOLVERS,
    grid_for_nfe,
    grids,
    sample,
    sample_ddim,
    sample_dpm_1,
    sample_dpm_2,
    sample_dpm_2m,
    sample_dpmpp_2m,
    sample_dpmpp_2s,
    sample_euler,
    sample_heun,
    sample_unipc,
)
from visgen.sampling.guidance import classifier_free_guidance
from visgen.sampling.tuning import grid_error, noise_start, optimize_grid
from visgen.schedules import VPLinear
from visgen.train import tuned_grid
from visgen.train.assets import asset

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
T_START, T_END = 1 - grids.T_EPS, grids.T_EPS  # flow matching: λ = ∓6.9 at the ends
INTERVAL = (0.1, 0.4)  # guidance interval (Kynkäänniemi et al. 2024) in flow-matching time
NFES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
# label: (name in visgen.sampling.SOLVERS, key for results.json)
SINGLESTEP = {
    "Euler = DDIM = DPM-1": ("euler", "euler"),
    "Heun": ("heun", "heun"),
    "DPM-Solver-2": ("dpm_2", "dpm2"),
    "DPM-Solver-3": ("dpm_3", "dpm3"),
    "DPM-Solver++(2S)": ("dpmpp_2s", "dpmpp2s"),
}
MULTISTEP = {
    "DPM-Solver-2M": ("dpm_2m", "dpm2m"),
    "DPM-Solver++(2M)": ("dpmpp_2m", "dpmpp2m"),
    "DPM-Solver++(3M)": ("dpmpp_3m", "dpmpp3m"),
    "UniPC": ("unipc", "unipc"),
}


def _rms(a, b) -> float:
    return float(((a - b) ** 2).flatten(1).sum(1).mean().sqrt())


def _slope(nfes, errors) -> float:
    x, y = np.log(np.asarray(nfes, float)), np.log(np.asarray(errors, float))
    return float(-np.polyfit(x, y, 1)[0])


def _gmm_problem(n=500, seed=0):
    """Exact flow-matching denoiser of the 8 Gaussians, start noise and the DOP853 solution."""
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ref = reference_pfode(den, x1, T_START, T_END, rtol=1e-10, atol=1e-10)
    return gmm, den, x1, ref


@book.figure
def orders(results):
    """Error against the exact PF-ODE solution at equal NFE, log-SNR grid."""
    _, den, x1, ref = _gmm_problem()
    curves = {}
    for name, (solver, key) in {**SINGLESTEP, **MULTISTEP}.items():
        solver, pts = SOLVERS[solver], []
        for nfe in NFES:
            with den.counting() as count:
                y = solver.fn(den, x1, grids.logsnr(nfe // solver.per_step, "linear"))
            pts.append((count.nfe, _rms(y, ref)))
        curves[name] = pts
        nfe, err = zip(*pts)
        results[f"ord_{key}_slope"] = num(_slope(nfe[-4:], err[-4:]), 2)
        for target in (8, 16, 32):
            results[f"ord_{key}_{target}"] = num(err[NFES.index(target)], 2)
    # DDIM and DPM-Solver-1 are Euler on the flow-matching path (same grid, same start)
    ts = grids.logsnr(10, "linear")
    euler = sample_euler(den, x1, ts)
    results["ddim_euler_diff"] = num(max(_rms(sample_ddim(den, x1, ts), euler), 1e-300), 1)
    results["dpm1_euler_diff"] = num(max(_rms(sample_dpm_1(den, x1, ts), euler), 1e-300), 1)
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4), sharey=True)
    euler = "Euler = DDIM = DPM-1"
    panels = [
        (axes[0], "singlestep (k NFE per step)", list(SINGLESTEP)),
        (axes[1], "multistep (1 NFE per step)", [euler, *MULTISTEP]),
    ]
    colours = [GREY, BLUE, ORANGE, GREEN, PURPLE]
    for ax, title, names in panels:
        for name, c in zip(names, colours):
            nfe, err = zip(*curves[name])
            ax.loglog(nfe, err, "o-", c=c, ms=3, lw=1.2, label=name)
        ax.set_ylim(1e-4, 5)
        ax.set_xlabel("NFE")
        ax.set_title(title, fontsize=13)
        ax.legend(frameon=False, fontsize=11, loc="lower left")
    axes[0].set_ylabel("RMS error vs exact ODE")
    fig.tight_layout()
    return fig


def _vp_mixture():
    return GaussianMixture([[-1.5], [0.4], [1.6]], stds=[0.25, 0.2, 0.3], weights=[0.3, 0.3, 0.4])


def _record(sampler, den, x, ts):
    states = []
    out = sampler(den, x, ts, callback=lambda i, t, xi, pred: states.append(xi.clone()))
    return torch.stack([*states, out])


@book.figure
def three_m_start(results):
    """DPM-Solver++(3M)'s start: slopes with a 2S first step vs orders 1 and 2 first."""
    g = torch.Generator().manual_seed(3)
    means = 1.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    stds = torch.tensor([0.2, 0.3, 0.5, 0.25, 0.4], dtype=torch.float64)
    den = GaussianMixture(means, stds).denoiser("linear")
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = reference_pfode(den, x, 0.6, 0.05, rtol=1e-13, atol=1e-13)
    steps = (16, 32, 64, 128, 256, 512, 1024)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, c in (("dpmpp_3m", BLUE), ("dpmpp_3m_lowstart", ORANGE), ("unipc", GREEN)):
        err = [
            _rms(SOLVERS[name].fn(den, x, grids.logsnr(n, "linear", 0.6, 0.05)), ref) for n in steps
        ]
        ax.loglog(steps, err, "o-", c=c, ms=3, lw=1.2, label=SOLVERS[name].label)
        results[f"start_{name}_slope"] = num(_slope(steps[-3:], err[-3:]), 2)
    ax.set_xlabel("steps")
    ax.set_ylabel("RMS error vs exact ODE")
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    return fig


@book.figure
def tuned_grids(results):
    """LD3 grids (visgen.sampling.tuning) vs the λ-uniform grid, 8 Gaussians and digits."""
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    start = noise_start(den.schedule)
    draw = lambda seed, n: torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)  # fmt: skip
    x, xc = draw(0, 1000), draw(1, 256)
    ref, refc = (reference_pfode(den, y, start, 1e-7, rtol=1e-10, atol=1e-10) for y in (x, xc))

    def plain(nfe, solver, schedule):  # λ-uniform between the clips, first step from `start`
        ts = grid_for_nfe(nfe, solver, schedule)
        ts[0] = start
        return ts

    nfes = (4, 5, 6, 8, 10, 20)
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.2))
    for name, c in (("unipc", BLUE), ("dpmpp_2m", ORANGE)):
        solver = SOLVERS[name]
        base = [grid_error(den, solver, plain(k, name, den.schedule), x, ref) for k in nfes]
        ld3 = [grid_error(den, solver, optimize_grid(den, name, k, xc, reference=refc), x, ref) for k in nfes]  # fmt: skip
        axes[0].loglog(nfes, base, "o--", c=c, ms=3, lw=1, label=f"{solver.label}, λ-uniform")
        axes[0].loglog(nfes, ld3, "s-", c=c, ms=4, lw=1.6, label=f"{solver.label}, LD3")
        for k, b, t in zip(nfes, base, ld3):
            results[f"ld3_{name}_{k}"] = num(t, 2)
            results[f"ld3_{name}_{k}_uniform"] = num(b, 2)
    axes[0].set_xticks(nfes, [str(k) for k in nfes])
    axes[0].xaxis.set_minor_formatter(NullFormatter())
    axes[0].set_xlabel("NFE")
    axes[0].set_ylabel("RMS error vs exact ODE")
    axes[0].set_title("8 Gaussians, exact denoiser", fontsize=13)
    axes[0].legend(frameon=False, fontsize=10)
    trained = asset("fm_digits")
    den = trained.denoiser()
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(1000) % 10
    noise = torch.randn(1000, *trained.model.shape, generator=g)
    fine = grid_for_nfe(400, "unipc", den.schedule, t_start=start)
    converged = sample(den, noise, 400, "unipc", fine, labels)
    results["ld3_dig_conv_fd"] = num(image_metrics(converged, "digits")["fd"], 3)
    for nfe in (5, 10):
        ts_plain, ts_ld3 = plain(nfe, "unipc", den.schedule), tuned_grid("fm_digits", "unipc", nfe)
        for key, ts in (("uniform", ts_plain), ("ld3", ts_ld3)):
            out = sample(den, noise, nfe, "unipc", ts, labels)
            results[f"ld3_dig_{key}_{nfe}_err"] = num(_rms(out, converged), 2)
            results[f"ld3_dig_{key}_{nfe}_fd"] = num(image_metrics(out, "digits")["fd"], 3)
        if nfe == 10:
            results["ld3_dig_last_10"] = num(ts_ld3[-2].item(), 2)
            axes[1].plot(range(11), ts_plain.tolist(), "o--", c=GREY, ms=3, label="λ-uniform")
            axes[1].plot(range(11), ts_ld3.tolist(), "s-", c=BLUE, ms=4, label="LD3, digits MLP")
    axes[1].set_xlabel("grid point $i$")
    axes[1].set_ylabel("$t_i$")
    axes[1].set_title("UniPC, 10 NFE, digits MLP", fontsize=13)
    axes[1].legend(frameon=False, fontsize=11)
    fig.tight_layout()
    return fig


@book.figure
def right_variables(results):
    """VP schedule, 1D mixture: Euler in t vs DDIM, in (t, x) and in (σ/α, x/α)."""
    vp = VPLinear()
    den = _vp_mixture().to(torch.float64).denoiser(vp)
    t0, t1 = 0.5, 1e-3  # σ/α from 3.4 down to 0.01
    x_start = torch.linspace(-2.2, 2.2, 9, dtype=torch.float64)[:, None] * float(vp.sigma(t0))
    fine = torch.linspace(t0, t1, 400, dtype=torch.float64)
    exact = reference_pfode(den, x_start, t0, t1, t_eval=fine)[..., 0]
    ts = grids.uniform(4, t0, t1)
    runs = {
        "Euler in $t$": (_record(sample_euler, den, x_start, ts)[..., 0], "o--", ORANGE),
        "DDIM": (_record(sample_ddim, den, x_start, ts)[..., 0], "s-", BLUE),
    }
    a_f, s_f = vp.alpha(fine), vp.sigma(fine)
    a_g, s_g = vp.alpha(ts), vp.sigma(ts)
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.9))
    for j in range(x_start.shape[0]):
        axes[0].plot(fine, exact[:, j], c=GREY, lw=1.2, label="exact" if j == 0 else None)
        axes[1].plot(s_f / a_f, exact[:, j] / a_f, c=GREY, lw=1.2)
        for name, (path, style, c) in runs.items():
            label = f"{name}, 4 steps" if j == 0 else None
            axes[0].plot(ts, path[:, j], style, c=c, ms=3, lw=1, label=label)
            axes[1].plot(s_g / a_g, path[:, j] / a_g, style, c=c, ms=3, lw=1)
    axes[0].set_xlabel("$t$  (noise → data)")
    axes[0].set_ylabel("$x_t$")
    axes[0].set_title("VP (linear β) in $(t, x)$", fontsize=13)
    axes[1].set_xlabel(r"$\bar\sigma = \sigma_t/\alpha_t$")
    axes[1].set_ylabel(r"$\bar x = x_t/\alpha_t$")
    axes[1].set_title(
        r"in $(\bar\sigma, \bar x)$: DDIM is Euler, paths nearly straight", fontsize=13
    )
    for ax in axes:
        ax.invert_xaxis()
    fig.legend(frameon=False, fontsize=11, loc="lower center", ncol=3, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    # accuracy at t1 from 2000 draws of p_t0 (not just the plotted starts)
    g = torch.Generator().manual_seed(2)
    x0 = _vp_mixture().to(torch.float64).sample(2000, g)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    xt = float(vp.alpha(t0)) * x0 + float(vp.sigma(t0)) * noise
    ref = reference_pfode(den, xt, t0, t1)
    for k in (4, 16):
        ts = grids.uniform(k, t0, t1)
        results[f"rv_euler_{k}"] = num(_rms(sample_euler(den, xt, ts), ref), 2)
        results[f"rv_ddim_{k}"] = num(_rms(sample_ddim(den, xt, ts), ref), 2)
    # one data point: straight paths in (σ̄, x̄), so one DDIM step is exact
    dirac = GaussianMixture([[0.7]], stds=0.0).to(torch.float64).denoiser(vp)
    one = grids.uniform(1, t0, t1)
    ref1 = reference_pfode(dirac, xt, t0, t1)
    results["rv_dirac_ddim"] = num(max(_rms(sample_ddim(dirac, xt, one), ref1), 1e-300), 1)
    results["rv_dirac_euler"] = num(_rms(sample_euler(dirac, xt, one), ref1), 2)
    return fig


def _euler_grids(n: int) -> dict[str, torch.Tensor]:
    """Every grid of visgen.sampling.grids between the same ends (flow matching)."""
    shift = 3.0
    unshift = lambda t: t / (shift - (shift - 1) * t)  # inverse of the SD3 shift
    return {
        "uniform in $t$": grids.uniform(n, T_START, T_END),
        "log-SNR": grids.logsnr(n, "linear"),
        "EDM $\\rho = 7$": grids.edm(n, "linear"),
        "SD3 shift 3": grids.sd3(n, shift, unshift(T_START), unshift(T_END)),
        "quadratic": grids.quadratic(n, T_START, T_END),
    }


@book.figure
def time_grids(results):
    """The five grids at 10 steps (in t and in λ) and Euler's error on each."""
    _, den, x1, ref = _gmm_problem()
    steps = (4, 8, 16, 32, 64)
    colours = [GREY, BLUE, GREEN, ORANGE, PURPLE]
    keys = ["uniform", "logsnr", "edm", "sd3", "quadratic"]
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 4.0), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for row, ts in enumerate(_euler_grids(10).values()):
        lam = den.schedule.logsnr(ts)
        axes[0].plot(ts, np.full(len(ts), row), "|", c=colours[row], ms=14, mew=2)
        axes[1].plot(lam, np.full(len(ts), row), "|", c=colours[row], ms=14, mew=2)
    for ax in axes[:2]:
        ax.set_yticks(range(5), list(_euler_grids(10)))
        ax.set_ylim(4.6, -0.6)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    axes[1].set_yticklabels([])
    axes[0].set_xlabel("$t$  (10 steps)")
    axes[1].set_xlabel(r"$\lambda_t = \log((1-t)/t)$")
    for k, name in enumerate(_euler_grids(4)):
        errs = [_rms(sample_euler(den, x1, _euler_grids(n)[name]), ref) for n in steps]
        axes[2].loglog(steps, errs, "o-", c=colours[k], ms=4, lw=1.2, label=name)
        for n, e in zip(steps, errs):
            results[f"grid_{keys[k]}_{n}"] = num(e, 2)
    axes[2].set_xticks(steps, [str(n) for n in steps])
    axes[2].yaxis.set_minor_formatter(NullFormatter())
    axes[2].xaxis.set_minor_formatter(NullFormatter())
    axes[2].set_xlabel("Euler steps (= NFE)")
    axes[2].set_ylabel("RMS error vs exact ODE")
    axes[2].legend(frameon=False, fontsize=10)
    fig.tight_layout()
    results["sd3_t_half"] = num(float(grids.sd3(2, 3.0)[1]), 2)
    return fig


@book.figure
def guided_stability(results):
    """ε-form vs x̂0-form solvers on a guided ODE (exact class-conditional GMM, CFG)."""
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    n = 500
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    cond = torch.arange(n) % 8
    solvers = {
        "DDIM": (sample_ddim, 1, "ddim", GREY),
        "DPM-Solver-2 ($\\varepsilon$)": (sample_dpm_2, 2, "dpm2", ORANGE),
        "DPM-Solver++(2S) ($\\hat x_0$)": (sample_dpmpp_2s, 2, "dpmpp2s", BLUE),
        "DPM-Solver-2M ($\\varepsilon$)": (sample_dpm_2m, 1, "dpm2m", RED),
        "DPM-Solver++(2M) ($\\hat x_0$)": (sample_dpmpp_2m, 1, "dpmpp2m", GREEN),
    }
    scales = (1.0, 2.0, 3.0, 4.0, 6.0)
    nfe = 10
    errs = {name: [] for name in solvers}
    for w in scales:
        guided = classifier_free_guidance(den, w)
        ref = reference_pfode(guided, x1, T_START, T_END, cond, rtol=1e-10, atol=1e-10)
        for name, (fn, per, key, _) in solvers.items():
            e = _rms(fn(guided, x1, grids.logsnr(nfe // per, "linear"), cond), ref)
            errs[name].append(e)
            if w in (1.0, 3.0):
                results[f"gs_{key}_w{int(w)}"] = num(e, 2)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for name, (_, _, _, c) in solvers.items():
        ax.semilogy(scales, errs[name], "o-", c=c, ms=4, label=name)
    ax.set_ylim(None, 1e3)
    ax.set_xlabel("guidance scale $w$")
    ax.set_ylabel("RMS error vs exact guided ODE")
    ax.set_title(f"{nfe} NFE, log-SNR grid", fontsize=13)
    ax.legend(frameon=False, fontsize=10, loc="upper left", ncol=2)
    fig.tight_layout()
    return fig


def _cfg_toy():
    """The 8 Gaussians with two classes: 0 = three neighbouring modes, 1 = the other five."""
    base = eight_gaussians(dtype=torch.float64)
    return GaussianMixture(base.means, 0.3, labels=torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]))


@book.figure(fmt="png")
def cfg_interval(results):
    """CFG on the exact class-conditional mixture, everywhere vs only for t in INTERVAL."""
    gmm = _cfg_toy()
    den = gmm.denoiser("linear")
    n = 4000
    g = torch.Generator().manual_seed(4)
    x1 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    cond = torch.zeros(n, dtype=torch.long)
    ref = gmm.conditional(0).sample(n, g)
    runs = [
        ("$w = 0$ (unconditional)", 0.0, (0.0, 1.0), "w0"),
        ("$w = 1$ (conditional)", 1.0, (0.0, 1.0), "w1"),
        ("$w = 4$", 4.0, (0.0, 1.0), "w4"),
        ("$w = 4$ only for $0.1 \\leq t \\leq 0.4$", 4.0, INTERVAL, "w4i"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12.4, 3.4))
    ts = grids.uniform(50, T_START, T_END)
    for ax, (title, w, interval, key) in zip(axes, runs):
        y = sample_heun(classifier_free_guidance(den, w, interval=interval), x1, ts, cond)
        cov = mode_coverage(y, gmm.means, 0.3)
        lim = 3.2
        grid = torch.linspace(-lim, lim, 160, dtype=torch.float64)
        X, Y = torch.meshgrid(grid, grid, indexing="xy")
        pts = torch.stack([X.reshape(-1), Y.reshape(-1)], 1)
        dens = gmm.log_prob(pts, 1e-3, "linear").exp().reshape(160, 160)
        ax.imshow(dens.numpy(), extent=(-lim, lim, -lim, lim), origin="lower", cmap="Greys")
        ax.scatter(*y[:1500].T, s=1.5, c=ORANGE, alpha=0.6)
        shares = cov.fractions[:3] / cov.fractions.sum()
        ax.set_title(title, fontsize=13)
        ax.text(0, -3.0, " / ".join(f"{float(s):.2f}" for s in shares), ha="center", fontsize=11)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        results[f"cfg_{key}_ed"] = num(energy_distance(y, ref), 2)
        results[f"cfg_{key}_class"] = num(float(cov.fractions[:3].sum()), 3)
        for m in range(3):
            results[f"cfg_{key}_m{m}"] = num(float(shares[m]), 2)
    results["cfg_floor"] = num(energy_distance(gmm.conditional(0).sample(n, g), ref), 2)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def digits_solvers(results):
    """Solvers on the cached class-conditional flow-matching MLP on 8×8 digits."""
    trained = asset("fm_digits", progress=False)
    den = trained.denoiser()
    n = 1000
    g = torch.Generator().manual_seed(5)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *trained.model.shape, generator=g)
    with torch.no_grad():
        converged = sample_heun(den, noise, grids.logsnr(100, den.schedule), labels)
    samplers = {
        "Euler (uniform)": (
            "euler",
            lambda k, x: sample_euler(den, x, grids.uniform(k, T_START, T_END), labels[: len(x)]),
        ),
        "DDIM (log-SNR)": (
            "ddim",
            lambda k, x: sample_ddim(den, x, grids.logsnr(k, den.schedule), labels[: len(x)]),
        ),
        "DPM-Solver++(2M) (log-SNR)": (
            "dpmpp2m",
            lambda k, x: sample_dpmpp_2m(den, x, grids.logsnr(k, den.schedule), labels[: len(x)]),
        ),
        "UniPC (log-SNR)": (
            "unipc",
            lambda k, x: sample_unipc(den, x, grids.logsnr(k, den.schedule), labels[: len(x)]),
        ),
    }
    floor = data_floor("digits", n)
    results["dig_floor_fd"] = num(floor["fd"], 3)
    ref_m = image_metrics(converged, "digits")
    results["dig_conv_fd"] = num(ref_m["fd"], 3)
    results["dig_steps"] = str(trained.config["train"]["steps"])
    show = []
    with torch.no_grad():
        for key, fn in samplers.values():
            for k in (5, 10, 20):
                x = fn(k, noise)
                results[f"dig_{key}_{k}_err"] = num(_rms(x, converged), 2)
                results[f"dig_{key}_{k}_fd"] = num(image_metrics(x, "digits")["fd"], 3)
                if k == 5:
                    show.append(x[:10])
    show.append(converged[:10])
    rows = ["Euler", "DDIM", "DPM++(2M)", "UniPC", "converged"]
    fig, axes = plt.subplots(len(rows), 10, figsize=(7.6, 4.3))
    for r, imgs in enumerate(show):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(imgs[c, 0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        axes[r, 0].set_ylabel(rows[r], rotation=0, ha="right", va="center", fontsize=13)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def cfg_digits(results):
    """Classifier-free guidance on the digits model: w = 0, 1, 2, 4, and 4 only for t in INTERVAL."""
    trained = asset("fm_digits", progress=False)
    den = trained.denoiser()
    n = 1000
    g = torch.Generator().manual_seed(6)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *trained.model.shape, generator=g)
    runs = [
        ("$w = 0$", 0.0, (0.0, 1.0), "w0"),
        ("$w = 1$", 1.0, (0.0, 1.0), "w1"),
        ("$w = 2$", 2.0, (0.0, 1.0), "w2"),
        ("$w = 4$", 4.0, (0.0, 1.0), "w4"),
        ("$w = 4$,\n$t \\in [0.1, 0.4]$", 4.0, INTERVAL, "w4i"),
    ]
    show = []
    with torch.no_grad():
        for _, w, interval, key in runs:
            guided = classifier_free_guidance(den, w, interval=interval)
            x = sample_dpmpp_2m(guided, noise, grids.logsnr(10, den.schedule), labels)
            m = image_metrics(x, "digits", cond=labels)
            results[f"cfgd_{key}_agree"] = num(m["agreement"], 3)
            results[f"cfgd_{key}_fd"] = num(m["fd"], 3)
            show.append(x[:10])
    fig, axes = plt.subplots(len(runs), 10, figsize=(6.4, 3.9))
    for r, imgs in enumerate(show):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(imgs[c, 0].clamp(-1, 1), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        axes[r, 0].set_ylabel(runs[r][0], rotation=0, ha="right", va="center", fontsize=13)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


if __name__ == "__main__":
    book.run()
