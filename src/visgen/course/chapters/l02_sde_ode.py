"""Tour chapter L02: the reverse SDE and the probability-flow ODE share their marginals but
not their paths; exact likelihood through the PF-ODE."""

from __future__ import annotations

import torch

from visgen.config import budget
from visgen.course import chapter
from visgen.course.helpers import gaussians_floor_row, gaussians_row
from visgen.oracles import eight_gaussians
from visgen.sampling import log_likelihood, sample_euler_maruyama, sample_heun, sample_pc, uniform
from visgen.schedules import Linear, VPDiscrete
from visgen.viz import LIMITS_2D, figure, scatter


def _trajectory(sampler, den, x, ts, **kw) -> torch.Tensor:
    """States (steps + 1, B, D) of a sampler run, recorded through its callback."""
    states = []
    out = sampler(den, x, ts, callback=lambda i, t, xi, pred: states.append(xi.clone()), **kw)
    return torch.stack([*states, out])


def _density_grid(den, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    lin = torch.linspace(*LIMITS_2D, k, dtype=torch.float64)
    xx, yy = torch.meshgrid(lin, lin, indexing="xy")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    return pts, log_likelihood(den, pts, t_min=1e-4, rtol=1e-5, atol=1e-5).nats.reshape(k, k)


@chapter(
    "L02",
    "Continuous time: reverse SDE and probability-flow ODE",
    lecture=2,
    summary="Same marginals, different paths; sampler quality vs the exact score; "
    "exact log-likelihood through the PF-ODE.",
    slides="lectures/02-sde-pf-ode/slides.pdf",
    code=[
        "visgen.sampling.sample_euler_maruyama",
        "visgen.sampling.sample_pc",
        "visgen.sampling.sample_heun",
        "visgen.sampling.log_likelihood",
        "visgen.schedules.VPDiscrete",
    ],
)
def run(ctx):
    g = ctx.generator()
    gmm = eight_gaussians()
    n = budget(full=2000, fast=500)
    ddpm = ctx.asset("ddpm_2d")
    den = ddpm.denoiser()
    exact = gmm.denoiser(VPDiscrete())
    ctx.text(
        "In continuous time DDPM's forward process is the SDE dx = f(t) x dt + g(t) dw (Song et "
        "al. 2021). It has two reverses with the same marginals p_t: the reverse SDE "
        "dx = [f x − g² ∇log p_t] dt + g dw̄, and the probability-flow ODE dx = [f x − ½ g² "
        "∇log p_t] dt, a deterministic map from noise to data. Both only need the score, which "
        "the trained ε-network gives (score = −ε̂/σ). Here the network is the 2D DDPM model of "
        "L01, used unchanged by every sampler.",
    )
    k = 16
    x1 = torch.randn(k, 2, generator=g)
    sde = _trajectory(sample_euler_maruyama, den, x1, uniform(500), generator=g)
    ode = _trajectory(sample_heun, den, x1, uniform(50))
    data = gmm.sample(n, g)
    fig, axes = figure(3, size=3.2)
    shown = 5  # random walks over 500 steps: a few are readable, sixteen are not
    for ax, path, title in (
        (axes[0], sde[:, :shown], "reverse SDE (Euler–Maruyama, 500 steps)"),
        (axes[1], ode, "PF-ODE (Heun, 50 steps)"),
    ):
        scatter(ax, data, title=title, color="0.75")
        for j in range(path.shape[1]):
            ax.plot(path[:, j, 0].numpy(), path[:, j, 1].numpy(), lw=0.8, color=f"C{j % 10}")
        ax.scatter(*path[0].T.numpy(), s=12, c="k", marker="x", label="start, t = 1")
        ax.scatter(*path[-1].T.numpy(), s=12, c="k", marker="o", label="end, t = 0")
    axes[0].legend(loc="lower left", fontsize=7)
    for j in range(4):
        axes[2].plot(uniform(500).numpy(), sde[:, j, 0].numpy(), lw=0.7, color=f"C{j}")
        axes[2].plot(uniform(50).numpy(), ode[:, j, 0].numpy(), lw=1.6, ls="--", color=f"C{j}")
    axes[2].set_xlabel("t (1 = noise, 0 = data)")
    axes[2].set_ylabel("first coordinate")
    axes[2].invert_xaxis()
    axes[2].set_title("x₁ over time: SDE (solid) vs ODE (dashed)", fontsize=9)
    ctx.figure(
        fig,
        f"Noise points x_1 (crosses) taken to data (dots) by the reverse SDE (the "
        f"first {shown}) and by the PF-ODE (all {k}, the same starting points). The SDE keeps injecting noise, so its paths wander and a "
        "start point does not determine the end point; the ODE paths are smooth and the map "
        "noise → data is a bijection. The right panel follows one coordinate of four "
        "points through time.",
    )

    ref = gmm.sample(n, g)
    rows = []
    samplers = [
        ("reverse SDE, Euler–Maruyama", sample_euler_maruyama, uniform(500), {"generator": g}),
        ("predictor–corrector (1 Langevin step)", sample_pc, uniform(250), {"generator": g}),
        ("PF-ODE, Heun", sample_heun, uniform(50), {}),
    ]
    for label, fn, ts, kw in samplers:
        for who, d in (("network", den), ("exact score", exact)):
            d.nfe = 0
            x = fn(d, torch.randn(n, 2, generator=g), ts, **kw)
            row = gaussians_row(f"{label} — {who}", x, ref, NFE=d.nfe)
            rows.append({**row, "_floor": who == "exact score"})
            if who == "network":
                ctx.metric(f"2d.{fn.__name__}.energy_distance", row["energy distance"])
    rows.append(gaussians_floor_row(ref, g, NFE=0))
    ctx.table(
        rows,
        f"Every sampler with the trained network and with the exact score of the "
        f"8-Gaussian mixture (shaded), N = {n}. With the exact score all samplers reach the "
        "data floor, so any gap in the network rows is the network's error, not the sampler's.",
    )

    # --- likelihood -----------------------------------------------------------------------
    fm = ctx.asset("fm_2d")
    fden = fm.method.denoiser(fm.model.double())  # log_likelihood integrates in float64
    ctx.text(
        "The PF-ODE also gives exact likelihoods: along an ODE path, d log p_t(x_t)/dt = −∇·v, "
        "so log p_0(x) = log N(x_1; 0, I) + ∫₀¹ ∇·v(x_t, t) dt, integrated here with DOP853 and "
        "the exact 2×2 divergence (`log_likelihood`). We use the flow-matching model of L03 "
        "(its prior at t = 1 is exactly N(0, I)) and compare with the true density of the "
        "mixture.",
    )
    m = budget(full=500, fast=100)
    x_test = gmm.sample(m, g)
    true = gmm.log_prob(x_test.double(), 0.0, Linear())
    model_ll = log_likelihood(fden, x_test.double(), t_min=1e-4, rtol=1e-5, atol=1e-5)
    oracle_ll = log_likelihood(
        gmm.denoiser("linear"), x_test.double(), t_min=1e-4, rtol=1e-5, atol=1e-5
    )
    k = budget(full=40, fast=16)
    pts, model_grid = _density_grid(fden, k)
    true_grid = gmm.log_prob(pts, 0.0, Linear()).reshape(k, k)
    fig, axes = figure(3, size=3.2)
    vmax = float(true_grid.exp().max())
    extent = (*LIMITS_2D, *LIMITS_2D)
    for ax, grid, title in (
        (axes[0], true_grid, "true density p₀"),
        (axes[1], model_grid, "model density, via the PF-ODE"),
    ):
        ax.imshow(
            grid.exp().numpy(), origin="lower", extent=extent, vmin=0, vmax=vmax, cmap="magma"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2].scatter(true.numpy(), model_ll.nats.numpy(), s=4)
    lo, hi = float(true.min()), float(true.max())
    axes[2].plot([lo, hi], [lo, hi], "k--", lw=0.8)
    axes[2].set_xlabel("true log p₀(x)")
    axes[2].set_ylabel("model log p(x)")
    axes[2].set_title(f"{m} held-out points", fontsize=9)
    ctx.figure(
        fig,
        f"Left and middle: density on a {k}×{k} grid, exp of the log-likelihood "
        "computed point by point through the PF-ODE of the trained network. Right: per-point "
        "log-likelihood of held-out data, model vs truth (dashed: equality).",
    )
    rows = [
        {
            "density": "trained FM network, PF-ODE",
            "mean log-likelihood (nats)": model_ll.nats.mean().item(),
            "bits/dim": model_ll.bits_per_dim.mean().item(),
            "NFE per solve": model_ll.nfe,
        },
        {
            "density": "exact velocity, PF-ODE (checks the integrator)",
            "mean log-likelihood (nats)": oracle_ll.nats.mean().item(),
            "bits/dim": oracle_ll.bits_per_dim.mean().item(),
            "NFE per solve": oracle_ll.nfe,
            "_floor": True,
        },
        {
            "density": "true log p₀ (closed form)",
            "mean log-likelihood (nats)": true.mean().item(),
            "bits/dim": (-true.mean() / (2 * torch.log(torch.tensor(2.0)))).item(),
            "NFE per solve": 0,
            "_floor": True,
        },
    ]
    ctx.table(
        rows,
        f"Average log-likelihood of {m} held-out points (higher is better; the true "
        "density is the best any model can do on average, up to sampling noise of the test "
        "points, which is the same for all rows).",
    )
    ctx.metric("likelihood.model_nats", model_ll.nats.mean().item())
    ctx.metric("likelihood.true_nats", true.mean().item())
