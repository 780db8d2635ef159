"""Tour chapter L03: flow matching vs DDPM on the same data and network; straight paths; the
learned velocity against the exact one."""

from __future__ import annotations

import torch

from visgen.config import budget
from visgen.course import chapter
from visgen.course.helpers import digits_floor_row, digits_row, gaussians_row
from visgen.data import get_dataset
from visgen.metrics import energy_distance
from visgen.objectives import noisy_sample
from visgen.oracles import eight_gaussians
from visgen.sampling import sample_ancestral, sample_euler, uniform
from visgen.schedules import Linear, VPDiscrete
from visgen.viz import figure, scatter

NFES = (1, 2, 4, 8, 16, 32, 100)


def _path(den, x, steps):
    states = []
    out = sample_euler(den, x, uniform(steps), callback=lambda i, t, xi, p: states.append(xi))
    return torch.stack([*states, out])


def _straightness(path: torch.Tensor) -> tuple[float, float]:
    """(median of path length / end-to-end distance, normalised straightness S) of trajectories
    (steps + 1, B, D) on a uniform grid from t = 1 to 0.

    S = E ∫₀¹ ‖ẋ_t − (x_0 − x_1)‖² dt / E‖x_0 − x_1‖² (Liu et al. 2023, arXiv 2209.03003,
    Def. 2.4, normalised): 0 exactly when every path is a straight line run at constant speed,
    the case one Euler step integrates exactly.
    """
    steps = path.shape[0] - 1
    step = path[1:] - path[:-1]
    chord = path[-1] - path[0]
    ratio = step.norm(dim=-1).sum(0) / chord.norm(dim=-1)
    s = (step * steps - chord).pow(2).sum(-1).mean() / chord.pow(2).sum(-1).mean()
    return float(ratio.median()), float(s)


@chapter(
    "L03",
    "Flow matching and its link to diffusion",
    lecture=3,
    summary="Flow matching vs DDPM with the same network and budget: quality per NFE, "
    "straight conditional paths vs the marginal flow, learned vs exact velocity.",
    slides="lectures/03-flow-matching/slides.pdf",
    code=[
        "visgen.objectives.flow_matching_loss",
        "visgen.schedules.Linear",
        "visgen.sampling.sample_euler",
        "visgen.oracles.GaussianMixture",
    ],
)
def run(ctx):
    g = ctx.generator()
    gmm = eight_gaussians()
    n = budget(full=2000, fast=500)
    fm, ddpm = ctx.asset("fm_2d"), ctx.asset("ddpm_2d")
    dens = {
        "flow matching (network)": fm.denoiser(),
        "DDPM, PF-ODE (network)": ddpm.denoiser(),
        "flow matching (exact velocity)": gmm.denoiser(Linear()),
        "DDPM, PF-ODE (exact score)": gmm.denoiser(VPDiscrete()),
    }
    ctx.text(
        "Flow matching (Lipman et al. 2023; rectified flow, Liu et al. 2023) draws x_t = (1 − t) "
        "x0 + t ε on a straight line between a data point and a noise sample and regresses the "
        "network onto that line's velocity ε − x0 (`flow_matching_loss`). The minimiser is the "
        "marginal velocity v*(x, t) = E[ε − x0 | x_t = x], and integrating dx/dt = v* from t = 1 to "
        "0 carries N(0, I) to the data. It is diffusion with the schedule α_t = 1 − t, σ_t = t and "
        "the velocity parametrisation: v = (x_t − x̂0)/t, so the same network could be read as a "
        "score or a denoiser (`visgen.param`).",
        "Below, the flow-matching and the DDPM models share everything — data, 3×128 MLP, batch, "
        f"steps ({fm.config['train']['steps']}), optimiser — except the schedule and the "
        "regression target. Both are sampled with the deterministic PF-ODE and plain Euler steps.",
    )

    # --- quality per NFE ----------------------------------------------------------------------
    ref = gmm.sample(n, g)
    noise = torch.randn(n, 2, generator=g)
    samples = {
        name: {k: sample_euler(d, noise, uniform(k)) for k in NFES} for name, d in dens.items()
    }
    curves = {name: [energy_distance(xs[k], ref) for k in NFES] for name, xs in samples.items()}
    floor = energy_distance(gmm.sample(n, g), ref)
    fig, axes = figure(2, size=3.6)
    for (name, ys), style in zip(curves.items(), ("C0-o", "C1-o", "C0--", "C1--")):
        axes[0].loglog(NFES, ys, style, label=name, ms=3)
    axes[0].axhline(floor, color="k", lw=0.8, ls=":", label="data vs data (floor)")
    axes[0].set_xlabel("NFE (Euler steps)")
    axes[0].set_ylabel("energy distance")
    axes[0].legend(fontsize=7)
    scatter(axes[1], ref, color="0.8", title="4 Euler steps: flow matching (blue), DDPM (orange)")
    scatter(axes[1], samples["flow matching (network)"][4][:1000], color="C0", s=3)
    scatter(axes[1], samples["DDPM, PF-ODE (network)"][4][:1000], color="C1", s=3)
    ctx.figure(
        fig,
        "Left: energy distance to the data vs the number of Euler steps (uniform in t); "
        "solid = trained networks, dashed = the exact fields of the 8-Gaussian mixture, so "
        "dashed vs floor is the discretisation error alone and solid vs dashed the network's "
        "error. Right: 4-step samples of both networks (grey: data).",
    )
    rows = []
    for name, xs in samples.items():
        row = gaussians_row(name, xs[4], ref)
        rows.append(
            {
                "PF-ODE field": name,
                "ED, 1 NFE": curves[name][0],
                "ED, 4 NFE": row["energy distance"],
                "in a mode, 4 NFE": row["in a mode"],
                "ED, 16 NFE": curves[name][NFES.index(16)],
                "ED, 100 NFE": curves[name][-1],
                "_floor": "exact" in name,
            }
        )
    rows.append(
        {
            "PF-ODE field": "data vs data (floor)",
            "ED, 1 NFE": floor,
            "ED, 4 NFE": floor,
            "in a mode, 4 NFE": gaussians_row("", gmm.sample(n, g), ref)["in a mode"],
            "ED, 16 NFE": floor,
            "ED, 100 NFE": floor,
            "_floor": True,
        }
    )
    ctx.table(
        rows,
        f"Euler sampling of each PF-ODE, N = {n}. One step of flow matching returns "
        "E[x0 | x_1] — everything collapses towards the data mean (large ED) — while one step "
        "of the DDPM ODE barely leaves the noise (a blob: small ED but few points in a mode; "
        "energy distance alone is forgiving to blur). With many steps each network approaches "
        "its exact field; the remaining gap is the network's error.",
    )
    for name, ys in curves.items():
        if "network" in name:
            ctx.metric(
                f"2d.{'fm' if 'flow' in name else 'ddpm'}.ed_by_nfe", dict(zip(map(str, NFES), ys))
            )

    # --- straightness ------------------------------------------------------------------------
    m = budget(full=500, fast=100)
    start = torch.randn(m, 2, generator=g)
    paths = {name: _path(d, start, 200) for name, d in dens.items()}
    fig, axes = figure(3, size=3.2)
    x0 = gmm.sample(24, g)
    scatter(axes[0], ref, color="0.8", title="conditional paths (what FM regresses on)")
    for j in range(24):
        axes[0].plot(*torch.stack([start[j], x0[j]]).T.numpy(), lw=0.8, color=f"C{j % 10}")
    axes[0].scatter(*start[:24].T.numpy(), s=8, c="k", marker="x")
    for ax, name in zip(axes[1:], ("flow matching (network)", "DDPM, PF-ODE (network)")):
        scatter(ax, ref, color="0.8", title=f"PF-ODE: {name.split(' (')[0].split(',')[0]}")
        for j in range(24):
            ax.plot(
                paths[name][:, j, 0].numpy(),
                paths[name][:, j, 1].numpy(),
                lw=0.8,
                color=f"C{j % 10}",
            )
        ax.scatter(*start[:24].T.numpy(), s=8, c="k", marker="x")
    ctx.figure(
        fig,
        "Left: the straight conditional paths x_t = (1 − t) x0 + t ε between random "
        "pairs (noise ε = crosses). Middle and right: the PF-ODE trajectories of the trained "
        "models from the same 24 noise points. The marginal velocity averages all the "
        "straight lines through a point, so the learned paths do not cross: they fan out "
        "radially, and bend (or loop) where it is still undecided which mode a point goes to.",
    )
    rows = []
    for name, p in paths.items():
        median, s_norm = _straightness(p)
        rows.append(
            {
                "PF-ODE field": name,
                "median length / end-to-end": median,
                "straightness S (0 = straight, constant speed)": s_norm,
                "_floor": "exact" in name,
            }
        )
    ctx.table(
        rows,
        f"Straightness over {m} trajectories (200 Euler steps each). On this target — "
        "modes farther out than typical noise — neither marginal flow is straight, and flow "
        "matching is not straighter than DDPM: straight conditional paths do not make a "
        "straight marginal flow. Straightening the flow itself is what rectified flow's "
        "reflow and the flow-map models of lecture 6 do.",
    )
    ctx.metric(
        "straightness",
        {r["PF-ODE field"]: r["straightness S (0 = straight, constant speed)"] for r in rows},
    )

    # --- learned velocity vs the exact one ---------------------------------------------------------
    den, exact = dens["flow matching (network)"], dens["flow matching (exact velocity)"]
    ts = torch.linspace(0.05, 0.95, 19)
    err, mag = [], []
    for t in ts.tolist():
        x0 = gmm.sample(4000, g)
        xt = noisy_sample(x0, torch.full((4000,), t), Linear(), torch.randn(4000, 2, generator=g))
        v_star = exact.velocity(xt, t)
        err.append((den.velocity(xt, t) - v_star).pow(2).sum(1).mean().sqrt().item())
        mag.append(v_star.pow(2).sum(1).mean().sqrt().item())
    err_t, mag_t = torch.tensor(err), torch.tensor(mag)
    pooled = float((err_t.pow(2).sum() / mag_t.pow(2).sum()).sqrt())
    fig, (ax,) = figure(size=3.6)
    ax.plot(ts.numpy(), mag_t.numpy(), "k-", label="RMS ‖v*‖ (exact)")
    ax.plot(ts.numpy(), err_t.numpy(), "C0-o", ms=3, label="RMS ‖v_θ − v*‖ (network error)")
    ax.set_xlabel("t")
    ax.legend(fontsize=7)
    ctx.figure(
        fig,
        "How far the trained velocity is from the exact marginal velocity of the mixture, "
        "at x_t drawn from p_t. Near t ≈ 0.7 the exact field itself is small (ε and −x0 cancel "
        "on average), so the error is judged against the field's overall size: "
        f"pooled relative L2 error over t ∈ [0.05, 0.95] = {pooled:.3f}.",
    )
    ctx.metric("2d.fm.velocity_relative_l2", pooled)

    # --- digits -----------------------------------------------------------------------------
    test = get_dataset("digits", "test")
    fmd, ddpmd = ctx.asset("fm_digits"), ctx.asset("ddpm_digits")
    z = torch.randn(len(test), 1, 8, 8, generator=g)
    rows = []
    for k in (1, 2, 4, 10, 50):
        x = sample_euler(fmd.denoiser(), z, uniform(k), test.labels)
        rows.append(digits_row(f"flow matching, Euler {k}", x, test.labels, NFE=k))
        ctx.metric(f"digits.fm.euler{k}", {c: v for c, v in rows[-1].items() if c != "samples"})
    for k in (10, 50):
        rows.append(
            digits_row(
                f"DDPM, PF-ODE Euler {k}",
                sample_euler(ddpmd.denoiser(), z, uniform(k), test.labels),
                test.labels,
                NFE=k,
            )
        )
    k = budget(full=1000, fast=200)
    rows.append(
        digits_row(
            f"DDPM, ancestral {k}",
            sample_ancestral(ddpmd.denoiser(), z, uniform(k), test.labels, generator=g),
            test.labels,
            NFE=k,
        )
    )
    rows.append(digits_floor_row(NFE=0))
    ctx.table(
        rows,
        f"Class-conditional digits (N = {len(test)}, the test labels), same 3×256 MLP and "
        f"budget ({fmd.config['train']['steps']} steps) for both models. Lower FD is better; "
        "compare with the floor row (real training digits vs the test split).",
    )
    ode_fd = next(r["FD (PCA-16)"] for r in rows if r["samples"] == "DDPM, PF-ODE Euler 50")
    if ode_fd > 3 * rows[-1]["FD (PCA-16)"]:
        ctx.text(
            "Note the DDPM rows: its ε-network samples well with the stochastic ancestral sampler "
            "but its PF-ODE drifts off the data. Near t = 1 DDPM's α_t is tiny (α_1 ≈ 0.006), and "
            "the ODE velocity (d log α/dt)(x − σ ε̂) + σ' ε̂ multiplies the network's ε error by "
            "|d log α/dt| ≈ 10 there; the ODE never corrects what it drifts, while the ancestral "
            "sampler's fresh noise does. Flow matching's velocity target ε − x0 has the same "
            "scale at every t, so its ODE is well conditioned — one of the practical reasons it "
            "replaced ε-prediction.",
        )
    cond = torch.arange(10).repeat_interleave(10)
    z = torch.randn(100, 1, 8, 8, generator=g)
    ctx.images(
        sample_euler(fmd.denoiser(), z, uniform(50), cond),
        "Flow matching, 50 Euler steps, one row per class.",
        nrow=10,
        scale=5,
    )
    steps = torch.cat(
        [sample_euler(fmd.denoiser(), z[::10], uniform(k), cond[::10]) for k in (1, 2, 4, 10, 50)]
    )
    ctx.images(
        steps,
        "The same noise and labels after 1, 2, 4, 10 and 50 Euler steps (rows): one step "
        "gives the blurry conditional mean E[x0 | class] — the straight-line prediction from "
        "pure noise — and a few more steps commit to one digit.",
        nrow=10,
        scale=5,
    )
