"""Tour chapter L04: fast ODE solvers, time grids and guidance (lecture 4)."""

from __future__ import annotations

import math

import torch

from visgen import budget
from visgen.course import chapter
from visgen.metrics.images import data_floor, image_metrics
from visgen.oracles import eight_gaussians, reference_pfode
from visgen.sampling import (
    SOLVERS,
    grid_for_nfe,
    grids,
    sample,
    sample_ddim,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
    sample_unipc,
)
from visgen.sampling.guidance import classifier_free_guidance
from visgen.sampling.tuning import grid_error, noise_start, optimize_grid
from visgen.train import tuned_grid
from visgen.viz import figure

# the x̂0-form solvers go in the second panel of the error plot
DATA_FORM = ("dpmpp_2s", "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_lowstart", "unipc")
NFES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
GRID_NFES = (4, 8, 16, 32, 64, 128)  # Euler on the five grids
T_START, T_END = 1 - grids.T_EPS, grids.T_EPS  # flow matching: λ = ∓6.9 at the ends


def _rms(a, b) -> float:
    return ((a - b) ** 2).flatten(1).sum(1).mean().sqrt().item()


def _slope(nfes, errors) -> float:
    x, y = torch.log(torch.tensor(nfes, dtype=torch.float64)), torch.log(torch.tensor(errors))
    return (-((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()).item()


def _nfe_axis(ax) -> None:
    ax.set_xticks(NFES[::2], [str(n) for n in NFES[::2]])
    ax.minorticks_off()
    ax.set_xlabel("NFE")
    ax.set_ylabel("RMS error vs exact ODE")


def _euler_grids(n: int) -> dict[str, torch.Tensor]:
    """Every grid of visgen.sampling.grids between the same ends (flow matching)."""
    shift = 3.0
    unshift = lambda t: t / (shift - (shift - 1) * t)  # inverse of the SD3 shift
    return {
        "uniform": grids.uniform(n, T_START, T_END),
        "log-SNR": grids.logsnr(n, "linear"),
        "EDM ρ = 7": grids.edm(n, "linear"),
        "SD3 shift 3": grids.sd3(n, shift, unshift(T_START), unshift(T_END)),
        "quadratic": grids.quadratic(n, T_START, T_END),
    }


def _gmm_section(ctx) -> None:
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    n = budget(full=1000, fast=300)
    x1 = torch.randn(n, 2, generator=ctx.generator(1), dtype=torch.float64)
    ref = reference_pfode(den, x1, T_START, T_END, rtol=1e-10, atol=1e-10)
    few = x1[:64]  # the reference's own accuracy, from a tighter solve of a subset
    floor = _rms(reference_pfode(den, few, T_START, T_END, rtol=1e-12, atol=1e-12), ref[:64])
    errors = {}
    for solver in SOLVERS.values():
        errors[solver.label] = []
        for nfe in NFES:
            steps = max(nfe // solver.per_step, 1)
            with den.counting() as count:
                y = solver.fn(den, x1, grids.logsnr(steps, "linear"))
            errors[solver.label].append((count.nfe, _rms(y, ref)))
    ctx.text(
        "**Why 10–20 steps suffice.** The probability-flow ODE from noise to data can be "
        "integrated by any ODE solver; what matters is the error at a given number of network "
        "evaluations (NFE). Here the network is the *exact* denoiser of the eight-Gaussian "
        "mixture under flow matching, so the only error is the solver's, measured against a "
        "DOP853 solution of the same ODE from the same noise.",
        "DDIM, DPM-Solver-1 and Euler are the same first-order step on this schedule (their "
        "curves coincide). Exponential integrators in the log-SNR λ (DPM-Solver, DPM-Solver++, "
        "UniPC) solve the linear part exactly; the multistep ones (2M, 3M, UniPC) reuse earlier "
        "evaluations and cost one NFE per step, the singlestep ones (DPM-Solver-2/3, 2S) two or "
        "three. Slopes on the log–log plot approach the orders 1, 2 and 3 as the steps shrink "
        "(the tests fit them at 128–512 steps). DPM-Solver++(3M) spends one extra NFE on a "
        "second-order first step, which keeps it of order 3 over the whole grid; started at "
        "orders 1 and 2 (diffusers' and k-diffusion's choice) its first step's O(h²) error "
        "survives and it is of order 2 in the end. At few NFE high order is not enough: "
        "singlestep DPM-Solver-3 takes one or two huge steps and overshoots.",
    )
    fig, axes = figure(2, size=3.6)
    titles = ("DDIM, Euler, Heun and DPM-Solver (ε form)", "DPM-Solver++ (x̂0 form) and UniPC")
    markers = "osv^<>DPX*h"
    for k, solver in enumerate(SOLVERS.values()):
        panel = int(solver.name in DATA_FORM)
        for p in {panel, 1} if solver.name == "euler" else {panel}:
            nfe, err = zip(*errors[solver.label])
            axes[p].loglog(
                nfe, err, marker=markers[k % len(markers)], ms=3, lw=1, label=solver.label
            )
    for p, ax in enumerate(axes):
        for order, style in ((1, ":"), (2, "--"), (3, "-.")):
            ax.loglog([8, 32], [3e-3 * 4**order, 3e-3], "k" + style, lw=0.7)
            ax.annotate(f"slope {order}", (8, 3e-3 * 4**order), fontsize=7, ha="right")
        _nfe_axis(ax)
        ax.set_ylim(1e-4, 5)
        ax.set_title(titles[p], fontsize=9)
        ax.legend(fontsize=6)
    ctx.figure(
        fig,
        "Error of every solver against the exact PF-ODE solution, log-SNR grid, 8 Gaussians "
        "(exact denoiser). DDIM and DPM-Solver-1 lie on Euler's curve. Black lines: slopes "
        "1, 2, 3. Singlestep DPM-Solver-2/3 below 8 NFE leave the plot (one or two steps "
        "over λ ∈ [−6.9, 6.9]).",
    )
    # errs[i] is the error of the budget NFES[i] (singlestep solvers use ≤ 2 NFE less)
    shown = [i for i, nfe in enumerate(NFES) if nfe in (8, 16, 32) or i == len(NFES) - 1]
    slope_label = f"slope (NFE {NFES[-4]}–{NFES[-1]})"
    rows = []
    for name, errs in errors.items():
        row = {"solver": name, **{f"NFE {NFES[i]}": errs[i][1] for i in shown}}
        row[slope_label] = _slope(*zip(*errs[-4:]))
        rows.append(row)
    rows.append(
        {
            "solver": "reference: DOP853 rtol 1e-10 vs 1e-12",
            f"NFE {NFES[-1]}": floor,
            "_floor": True,
        }
    )
    ctx.table(rows, "RMS error at equal NFE (singlestep solvers: up to 2 NFE fewer).")
    for name, errs in errors.items():
        ctx.metric(f"gmm.{name}.error_nfe16", errs[NFES.index(16)][1])

    ctx.text(
        "**The time grid matters most for Euler.** Euler's error depends on where its steps "
        "go. The same first-order solver on five grids between the same ends: uniform in t, "
        "uniform in log-SNR, Karras et al.'s ρ = 7 schedule mapped to flow-matching time "
        "(t = σ/(1 + σ)), SD3's shift s = 3 (more steps near noise) and a quadratic grid (more "
        "steps near data)."
    )
    fig, (ax,) = figure(1, size=3.8)
    grid_rows = {}
    for name in _euler_grids(4):
        errs = [_rms(sample_euler(den, x1, _euler_grids(k)[name]), ref) for k in GRID_NFES]
        ax.loglog(GRID_NFES, errs, marker="o", ms=3, lw=1, label=name)
        grid_rows[name] = errs
    _nfe_axis(ax)
    ax.legend(fontsize=7)
    ctx.figure(fig, "Euler on five time grids (8 Gaussians, exact denoiser).")
    ctx.table(
        [
            {"grid": g, **{f"NFE {k}": e for k, e in zip(GRID_NFES, errs)}}
            for g, errs in grid_rows.items()
        ],
        "Euler's RMS error by time grid.",
    )


def _tuned_section(ctx) -> None:
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser("linear")
    start = noise_start(den.schedule)
    nfes = budget(full=(4, 6, 10, 20), fast=(5, 10))
    n = budget(full=1000, fast=300)
    x, xc = (torch.randn(k, 2, generator=ctx.generator(s), dtype=torch.float64) for s, k in ((3, n), (4, 256)))  # fmt: skip
    ref, refc = (reference_pfode(den, y, start, 1e-7, rtol=1e-10, atol=1e-10) for y in (x, xc))

    def uniform_lambda(nfe, solver):  # the λ-uniform grid between the clips, from t_start
        ts = grid_for_nfe(nfe, solver, den.schedule)
        ts[0] = start
        return ts

    ctx.text(
        "**Grids tuned for the budget (LD3).** At 5–10 NFE the solver matters less than *where* "
        "it evaluates the model. LD3 (Tong et al. 2025) treats the k grid points as parameters "
        "and minimises the distance between the few-step solve and a converged solve from the "
        "same noises on a small calibration set; the grid then belongs to one model, one solver "
        "and one budget. visgen fits it without gradients (`visgen.sampling.tuning."
        "optimize_grid`: a three-parameter warp of the λ-uniform grid, then every point, by "
        "Nelder–Mead) and caches it beside a trained teacher (`visgen.train.tuned_grid`). "
        "Errors below are on held-out noise, from pure noise (t = 1 − 10⁻⁵) to clean data.",
    )
    fig, (ax, ax_grid) = figure(2, size=3.6)
    rows, fitted = [], {}
    for name in ("unipc", "dpmpp_2m"):
        solver = SOLVERS[name]
        plain = [grid_error(den, solver, uniform_lambda(k, name), x, ref) for k in nfes]
        for k in nfes:
            fitted[name, k] = optimize_grid(den, name, k, xc, reference=refc)
        tuned = [grid_error(den, solver, fitted[name, k], x, ref) for k in nfes]
        ax.loglog(nfes, plain, marker="o", ms=3, lw=1, label=f"{solver.label}, λ-uniform")
        ax.loglog(nfes, tuned, marker="s", ms=3, lw=1.5, label=f"{solver.label}, LD3")
        for k, p, t in zip(nfes, plain, tuned):
            rows.append(
                {"solver": solver.label, "NFE": k, "λ-uniform": p, "LD3": t, "ratio": t / p}
            )
            ctx.metric(f"gmm.ld3.{name}.nfe{k}", t)
    _nfe_axis(ax)
    ax.set_xticks(nfes, [str(k) for k in nfes])
    ax.set_xlim(nfes[0] / 1.15, nfes[-1] * 1.15)
    ax.legend(fontsize=7)
    ax.set_title("8 Gaussians, exact denoiser", fontsize=9)
    ten = [uniform_lambda(10, "unipc"), fitted["unipc", 10]]  # 10 NFE is in nfes at both budgets
    teacher_grid = tuned_grid("fm_digits", "unipc", 10)
    for ts, label, mark in zip([*ten, teacher_grid], ("λ-uniform", "LD3, 8 Gaussians", "LD3, digits MLP"), "o^s"):  # fmt: skip
        ax_grid.plot(range(len(ts)), ts.tolist(), marker=mark, ms=3, lw=1, label=label)
    ax_grid.set_xlabel("grid point i")
    ax_grid.set_ylabel("t_i")
    ax_grid.set_title("UniPC grids for 10 NFE", fontsize=9)
    ax_grid.legend(fontsize=7)
    ctx.figure(
        fig,
        "Left: error vs NFE on the λ-uniform grid and on the LD3 grid (fitted on 256 other "
        "noises). Right: where the three 10-NFE grids put their points; the last point before "
        "t = 0 decides where the final denoising step starts.",
    )
    ctx.table(
        rows, "RMS error to the exact PF-ODE solution, held-out noise (ratio = LD3 / λ-uniform)."
    )

    trained = ctx.asset("fm_digits")
    den = trained.denoiser()
    m = budget(full=1000, fast=300)
    g = ctx.generator(5)
    labels = torch.arange(m) % 10
    noise = torch.randn(m, *trained.model.shape, generator=g)
    fine = grid_for_nfe(400, "unipc", den.schedule, t_start=start)
    converged = sample(den, noise, 400, "unipc", fine, labels)
    rows, show = [], []
    for nfe in (5, 10):
        plain = grid_for_nfe(nfe, "unipc", den.schedule)
        plain[0] = start
        for label, ts in (("λ-uniform", plain), ("LD3", tuned_grid("fm_digits", "unipc", nfe))):
            out = sample(den, noise, nfe, "unipc", ts, labels)
            metrics = image_metrics(out, "digits")
            rows.append({"UniPC grid": label, "NFE": nfe, "ODE error": _rms(out, converged),
                         "FD": metrics["fd"], "confidence": metrics["confidence"]})  # fmt: skip
            ctx.metric(f"digits.ld3.{label}.nfe{nfe}.fd", metrics["fd"])
            show.append(out[:10])
    floor = image_metrics(converged, "digits")
    rows.append({"UniPC grid": "converged (400 NFE)", "NFE": 400, "ODE error": 0.0,
                 "FD": floor["fd"], "confidence": floor["confidence"], "_floor": True})  # fmt: skip
    ctx.images(
        torch.cat(show),
        "UniPC on the digits MLP, rows: 5 NFE λ-uniform, 5 NFE LD3, 10 NFE λ-uniform, 10 NFE LD3.",
        nrow=10,
    )
    ctx.table(rows, f"Digits MLP (`fm_digits`), {m} samples from the same noise; LD3 grids from "
              "`visgen.train.tuned_grid` (256 calibration noises).")  # fmt: skip


def _digit_section(ctx) -> None:
    trained = ctx.asset("fm_digits")
    den = trained.denoiser()
    n = budget(full=1000, fast=300)
    g = ctx.generator(2)
    labels = torch.arange(n) % 10
    noise = torch.randn(n, *trained.model.shape, generator=g)
    den.nfe = 0
    converged = sample_heun(den, noise, grids.logsnr(100, den.schedule), labels)
    ref_nfe = den.nfe
    ref_metrics = image_metrics(converged, "digits")
    samplers = {
        "Euler (uniform grid)": lambda nfe, x: sample_euler(
            den, x, grids.uniform(nfe, T_START, T_END), labels[: len(x)]
        ),
        "DDIM (log-SNR)": lambda nfe, x: sample_ddim(
            den, x, grids.logsnr(nfe, den.schedule), labels[: len(x)]
        ),
        "DPM-Solver++(2M) (log-SNR)": lambda nfe, x: sample_dpmpp_2m(
            den, x, grids.logsnr(nfe, den.schedule), labels[: len(x)]
        ),
        "UniPC (log-SNR)": lambda nfe, x: sample_unipc(
            den, x, grids.logsnr(nfe, den.schedule), labels[: len(x)]
        ),
    }
    ctx.text(
        "**A trained network.** The same solvers on the cached class-conditional flow-matching "
        "MLP on 8×8 digits (`fm_digits`). Rows: Euler, DDIM, DPM-Solver++(2M), UniPC and, at "
        "the bottom, Heun with 200 NFE (the converged ODE solution); columns: digits 0–9; "
        "every row starts from the same noise, so differences are the solvers' alone. "
        "‘ODE error’ is the RMS distance to that converged solution; FD (Fréchet distance on "
        "the features of visgen's digit classifier) and confidence compare with held-out data. "
        "DDIM is Euler on this schedule, so its row against Euler's is the effect of the grid "
        "again. The ODE error is the sharper measure: at a few hundred samples the FD's "
        "finite-sample bias is as large as the differences between good samplers."
    )
    floor = data_floor("digits", n)
    rows = [
        {
            "sampler": "held-out digits (floor)",
            "NFE": math.nan,
            "ODE error": math.nan,
            "FD": floor["fd"],
            "confidence": floor["confidence"],
            "_floor": True,
        },
        {
            "sampler": "Heun, log-SNR (converged)",
            "NFE": ref_nfe,
            "ODE error": 0.0,
            "FD": ref_metrics["fd"],
            "confidence": ref_metrics["confidence"],
        },
    ]
    for nfe in (5, 10, 20):
        show = [fn(nfe, noise[:10]) for fn in samplers.values()]
        ctx.images(
            torch.cat([*show, converged[:10]]),
            f"{nfe} NFE. Rows: " + ", ".join(samplers) + f", converged ODE (Heun, {ref_nfe} NFE).",
            nrow=10,
        )
        for name, fn in samplers.items():
            x = fn(nfe, noise)
            m = image_metrics(x, "digits")
            rows.append(
                {
                    "sampler": name,
                    "NFE": nfe,
                    "ODE error": _rms(x, converged),
                    "FD": m["fd"],
                    "confidence": m["confidence"],
                }
            )
            ctx.metric(f"digits.{name}.nfe{nfe}.fd", m["fd"])
    ctx.table(rows, f"Digits, {n} samples per row (shaded: held-out data vs training data).")

    ctx.text(
        "**Classifier-free guidance.** The digits model was trained with 10 % of its labels "
        "replaced by the null label, so it is also an unconditional model. The guided "
        "prediction u + w (c − u) comes from one forward pass on the concatenated batch "
        "[cond; null]; w = 0 is unconditional, w = 1 conditional, w > 1 trades diversity for "
        "agreement with the requested class (DPM-Solver++(2M), 10 steps)."
    )
    rows, show = [], []
    for w in (0.0, 1.0, 2.0, 4.0):
        guided = classifier_free_guidance(den, w)
        x = sample_dpmpp_2m(guided, noise, grids.logsnr(10, den.schedule), labels)
        m = image_metrics(x, "digits", cond=labels)
        rows.append(
            {
                "guidance w": w,
                "agreement with label": m["agreement"],
                "confidence": m["confidence"],
                "FD": m["fd"],
            }
        )
        show.append(x[:10])
        ctx.metric(f"digits.cfg{w:g}.agreement", m["agreement"])
    rows.append(
        {
            "guidance w": "held-out digits",
            "agreement with label": math.nan,
            "confidence": floor["confidence"],
            "FD": floor["fd"],
            "_floor": True,
        }
    )
    ctx.images(torch.cat(show), "Rows: w = 0, 1, 2, 4; columns: requested digits 0–9.", nrow=10)
    ctx.table(rows, "Classifier-free guidance on digits (agreement: classifier's label = request).")


@chapter(
    "L04",
    "Fast solvers, time grids and guidance",
    lecture=4,
    summary="Every solver's error vs NFE on an exact oracle, time grids for Euler, LD3 grids "
    "tuned for the budget, and DDIM / DPM-Solver / UniPC / CFG on a trained digits model.",
    slides="lectures/04-fast-solvers/slides.pdf",
    code=[
        "visgen.sampling.sample_ddim",
        "visgen.sampling.sample_dpm_3",
        "visgen.sampling.sample_dpmpp_2m",
        "visgen.sampling.sample_unipc",
        "visgen.sampling.grids.logsnr",
        "visgen.sampling.solvers.sample",
        "visgen.sampling.tuning.optimize_grid",
        "visgen.train.tuned_grid",
        "visgen.sampling.guidance.classifier_free_guidance",
    ],
)
def run(ctx) -> None:
    _gmm_section(ctx)
    _tuned_section(ctx)
    _digit_section(ctx)
