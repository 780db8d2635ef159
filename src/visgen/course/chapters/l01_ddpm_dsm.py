"""Tour chapter L01: DDPM and denoising score matching on 2D data and digits; the ideal
denoiser memorises its training set."""

from __future__ import annotations

import torch

from visgen.config import budget
from visgen.course import chapter
from visgen.course.helpers import (
    digits_floor_row,
    digits_row,
    gaussians_floor_row,
    gaussians_row,
    nearest_distance,
)
from visgen.data import get_dataset
from visgen.objectives import Discrete, Ladder, diffusion_loss
from visgen.oracles import DiracMixture, eight_gaussians
from visgen.sampling import sample_ancestral, sample_euler, sample_langevin, uniform
from visgen.schedules import VPDiscrete
from visgen.viz import figure, scatter

LANGEVIN = {"n_steps": 30, "step_size": 1e-4}  # per σ level; 10 levels → 300 NFE


def _forward_process(ctx, g):
    sch = VPDiscrete()
    ts = [0.0, 0.1, 0.25, 0.5, 1.0]
    pts = eight_gaussians().sample(1000, g)
    eps = torch.randn_like(pts)
    digit = get_dataset("digits", "test").x[0]
    deps = torch.randn(digit.shape, generator=g)
    fig, axes = figure(len(ts), 2, size=2.0)
    for i, t in enumerate(ts):
        a, s = float(sch.alpha(torch.tensor(t))), float(sch.sigma(torch.tensor(t)))
        scatter(axes[i], a * pts + s * eps, title=f"t = {t}   (α = {a:.2f}, σ = {abs(s):.2f})")
        axes[len(ts) + i].imshow(
            (a * digit + s * deps)[0].numpy(), cmap="gray", vmin=-1.5, vmax=1.5
        )
        axes[len(ts) + i].set_axis_off()
    ctx.figure(
        fig,
        "The forward process x_t = α_t x0 + σ_t ε of DDPM's linear-β schedule "
        "(T = 1000 steps, step k at t = (k + 1)/T). By t = 1 both the 8 Gaussians and the "
        "digit are indistinguishable from N(0, I); generation runs this backwards.",
    )


def _loss_floor(den, exact, x0, t, g) -> tuple[float, float]:
    noise = torch.randn(x0.shape, generator=g)
    model = diffusion_loss(den, x0, t=t, noise=noise, target="eps").item()
    best = diffusion_loss(exact, x0, t=t, noise=noise, target="eps").item()
    return model, best


@chapter(
    "L01",
    "DDPM and denoising score matching",
    lecture=1,
    summary="ε-prediction, ancestral sampling and annealed Langevin on 8 Gaussians and digits; "
    "the ideal denoiser memorises.",
    slides="lectures/01-ddpm-dsm/slides.pdf",
    code=[
        "visgen.objectives.ddpm_loss",
        "visgen.objectives.dsm_loss",
        "visgen.sampling.sample_ancestral",
        "visgen.sampling.sample_langevin",
        "visgen.oracles.DiracMixture",
        "visgen.train.Trainer",
    ],
)
def run(ctx):
    n = budget(full=2000, fast=500)
    g = ctx.generator()
    gmm = eight_gaussians()
    ctx.text(
        "DDPM (Ho et al. 2020) trains a network ε_θ(x_t, t) to predict the noise that was added, "
        "with the plain MSE `ddpm_loss`; sampling walks the 1000 steps back with the posterior "
        "q(x_{t−1} | x_t, x̂0) (`sample_ancestral`). Denoising score matching (Song & Ermon "
        "2019) learns the score ∇log p_σ = −ε/σ on a ladder of noise levels σ_1 > … > σ_10 and "
        "samples by annealed Langevin dynamics. Both are the same regression — predict ε from a "
        "noisy sample — with different noise schedules and samplers.",
        "Everything below is compared with an oracle: the 8-Gaussian data have a closed-form "
        "score, so we know the exact denoiser, the lowest reachable loss and what two independent "
        "draws of the data look like (the *floor*).",
    )
    _forward_process(ctx, g)

    # --- 2D: DDPM and DSM ------------------------------------------------------------------
    ddpm, dsm = ctx.asset("ddpm_2d"), ctx.asset("dsm_2d")
    ref = gmm.sample(n, g)
    x_ddpm = sample_ancestral(
        ddpm.denoiser(), torch.randn(n, 2, generator=g), uniform(1000), generator=g
    )
    dsm_den = dsm.denoiser()
    ladder = torch.linspace(1, 0, dsm.config["method"]["levels"], dtype=torch.float64)
    sigma_max = float(dsm_den.schedule.sigma(torch.tensor(1.0)))
    x_dsm = sample_langevin(
        dsm_den, sigma_max * torch.randn(n, 2, generator=g), ladder, generator=g, **LANGEVIN
    )
    exact = gmm.denoiser(VPDiscrete())
    x_exact = sample_ancestral(exact, torch.randn(n, 2, generator=g), uniform(1000), generator=g)
    fig, axes = figure(4, size=2.6)
    scatter(axes[0], ref, title="data")
    scatter(axes[1], x_ddpm, title="DDPM, ancestral, 1000 NFE")
    scatter(axes[2], x_dsm, title="DSM, annealed Langevin, 300 NFE")
    scatter(axes[3], x_exact, title="exact score, ancestral, 1000 NFE")
    ctx.figure(
        fig,
        f"{n} samples each. Same 3×128 MLP for DDPM and DSM (trained "
        f"{ddpm.config['train']['steps']} steps); the last panel uses the closed-form "
        "posterior mean instead of a network — what a perfect model would give.",
    )
    rows = [
        gaussians_row("DDPM (ε-MLP), ancestral", x_ddpm, ref, NFE=1000),
        gaussians_row("DSM (ε-MLP, σ ladder), annealed Langevin", x_dsm, ref, NFE=300),
        {
            **gaussians_row("exact score, ancestral (oracle)", x_exact, ref, NFE=1000),
            "_floor": True,
        },
        gaussians_floor_row(ref, g, NFE=0),
    ]
    ctx.table(
        rows,
        f"8 Gaussians, N = {n}. Energy distance (lower is better) is only "
        "meaningful next to the data-vs-data floor; 'in a mode' = share within 3σ of a centre, "
        "'smallest mode' = share of the emptiest of the 8 modes (ideal 0.125).",
    )
    for r in rows[:2]:
        ctx.metric(f"2d.{r['samples'].split(' ')[0].lower()}.energy_distance", r["energy distance"])

    x0 = gmm.sample(20_000, g)
    t_ddpm = Discrete(VPDiscrete())(len(x0), g)
    t_dsm = Ladder(dsm.config["method"]["levels"])(len(x0), g)
    loss_rows = []
    for label, den, ex, t in (
        ("DDPM, k ~ U{0..999}", ddpm.denoiser(), exact, t_ddpm),
        ("DSM, σ ladder", dsm_den, gmm.denoiser(dsm_den.schedule), t_dsm),
    ):
        model, best = _loss_floor(den, ex, x0, t, g)
        loss_rows.append(
            {
                "objective": label,
                "held-out loss": model,
                "irreducible loss (exact ε̂)": best,
                "excess": model / best - 1,
            }
        )
        ctx.metric(f"2d.{label.split(',')[0].lower()}.excess_loss", model / best - 1)
    ctx.table(
        loss_rows,
        "The ε-MSE never reaches 0: even the exact posterior mean ε̂ = E[ε | x_t] "
        "leaves E‖ε − ε̂‖² (the irreducible loss, computed from the oracle on the same 20 000 "
        "held-out (x0, t, ε)). 'excess' is how far the network is above it.",
    )

    # --- digits: DDPM ------------------------------------------------------------------------
    digits = ctx.asset("ddpm_digits")
    test = get_dataset("digits", "test")
    steps = budget(full=1000, fast=200)
    den = digits.denoiser()
    x_dig = sample_ancestral(
        den, torch.randn(len(test), 1, 8, 8, generator=g), uniform(steps), test.labels, generator=g
    )
    grid_cond = torch.arange(10).repeat_interleave(10)
    x_grid = sample_ancestral(
        den, torch.randn(100, 1, 8, 8, generator=g), uniform(steps), grid_cond, generator=g
    )
    ctx.images(
        x_grid,
        f"Class-conditional DDPM on scikit-learn's 8×8 digits: one row per class "
        f"0–9, ancestral sampling with {steps} steps. Same MLP as above (3×256), trained "
        f"{digits.config['train']['steps']} steps with 10 % label dropout.",
        nrow=10,
        scale=5,
    )
    rows = [
        digits_row(f"DDPM, ancestral {steps} steps", x_dig, test.labels, NFE=steps),
        digits_floor_row(NFE=0),
    ]
    ctx.table(
        rows,
        f"Digits, N = {len(test)} samples (the test split's labels) vs the {len(test)} "
        "test images. FD = Fréchet distance on the features of a small CNN trained by visgen "
        "(classifier) or on 16 PCA coordinates of the pixels; 'right class' = share the "
        "classifier assigns to the requested digit. The floor row is real training digits.",
    )
    ctx.metric("digits.ddpm", {k: v for k, v in rows[0].items() if k != "samples"})

    # --- the ideal denoiser ------------------------------------------------------------------
    train = get_dataset("digits")
    ideal = DiracMixture(train.x, train.labels).denoiser("linear")
    x0, label = test.x[:1], test.labels[:1]
    noise = torch.randn(x0.shape, generator=g)
    ts = [0.05, 0.3, 0.6, 0.8, 0.9, 0.97, 0.995]
    xt = torch.cat([(1 - t) * x0 + t * noise for t in ts])
    tt = torch.tensor(ts)
    d_uncond = ideal.x0(xt, tt)
    d_cond = ideal.x0(xt, tt, label.repeat(len(ts)))
    ctx.text(
        "The *ideal denoiser* is the best possible x0-predictor for a finite training set: "
        "D*(x_t) = Σ_j softmax_j(−‖x_t − α_t x_j‖²/2σ_t²) x_j, a weighted average of training "
        "images (`DiracMixture`). At small noise it snaps to the nearest training image; at "
        "large noise it returns the mean of all images (or of the class).",
    )
    ctx.images(
        torch.cat([xt, d_uncond, d_cond]),
        f"Top: a held-out test '{label.item()}' noised to "
        f"t = {', '.join(map(str, ts))} (flow-matching path x_t = (1 − t) x0 + t ε). Middle: "
        "the ideal denoiser D*(x_t): a training image at small t, the dataset mean at large t. "
        "Bottom: the class-conditional ideal denoiser, which averages only images of that class.",
        nrow=len(ts),
        scale=6,
    )
    n_ideal = budget(full=397, fast=50)
    x_ideal = sample_euler(ideal, torch.randn(n_ideal, 1, 8, 8, generator=g), uniform(100))
    nearest = torch.cdist(x_ideal.flatten(1), train.x.flatten(1)).argmin(1)
    ctx.images(
        torch.cat([x_ideal[:10], train.x[nearest[:10]]]),
        "Sampling with the ideal denoiser "
        "(PF-ODE, 100 Euler steps) — top — and each sample's nearest training image — bottom: "
        "they are the same pictures. A perfect fit of the training set only reproduces it.",
        nrow=10,
        scale=5,
    )
    rows = [
        {
            "samples": "ideal denoiser, PF-ODE",
            "RMS distance to nearest training image": nearest_distance(x_ideal, train.x)
            .mean()
            .item(),
        },
        {
            "samples": "DDPM network",
            "RMS distance to nearest training image": nearest_distance(x_dig, train.x)
            .mean()
            .item(),
        },
        {
            "samples": "held-out real digits (reference)",
            "RMS distance to nearest training image": nearest_distance(test.x, train.x)
            .mean()
            .item(),
            "_floor": True,
        },
    ]
    ctx.table(
        rows,
        "Memorisation, per-pixel RMS distance in [−1, 1] units. The ideal denoiser "
        "copies (≈ 0); the network does not: its samples are at least as far from the "
        "training set as genuinely new digits are (the reference row). Why a network that minimises the "
        "same loss does not copy is an open question (Kadkhodaie et al. 2024).",
    )
    ctx.metric(
        "memorisation", {r["samples"]: r["RMS distance to nearest training image"] for r in rows}
    )
