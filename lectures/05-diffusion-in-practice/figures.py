"""Figures and measured numbers of lecture 5 (diffusion in practice: DiT, latents, targets,
time sampling, REPA, guidance).

Every panel is computed by visgen: DiT patches, RoPE and adaLN-Zero (``visgen.nn``), the KL
autoencoder and latent data (``visgen.train.autoencoder``), time samplers and loss weights
(``visgen.objectives``), guidance (``visgen.sampling.guidance``), image and sample metrics
(``visgen.metrics``). Trained models come from the cache through the tour chapter L05's specs
(imported from the chapter, so ``visgen tour`` and the slides train each model once).

Run: ``python -m visgen.course.slides --only 05 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import norm

from visgen.course.chapters.l05_diffusion_in_practice import (
    GRID,
    REPA_LAYER,
    SHAPES_DIT,
    TOY_DIM,
    TOY_WIDTH,
    _repa_spec,
    _shapes_dit,
    _toy_spec,
)
from visgen.course.figurebook import FigureBook, num
from visgen.course.helpers import digits_row
from visgen.data import embedding_matrix, get_dataset
from visgen.metrics import energy_distance, mode_coverage, probe_accuracy
from visgen.metrics.images import data_floor, image_metrics
from visgen.nn import DiT
from visgen.nn.dit import apply_rope, patchify, rope_2d, unpatchify
from visgen.objectives import LogitNormal, Shifted, Uniform, resolution_shift, shift_time
from visgen.objectives.weighting import loss_weight, target_scale
from visgen.oracles import GaussianMixture, eight_gaussians
from visgen.sampling import sample_euler, sample_heun
from visgen.sampling.guidance import autoguidance, classifier_free_guidance
from visgen.schedules import Linear
from visgen.train import autoencoder, train_cached

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
STEPS = 1200  # the tour chapter L05's full budget for the shapes DiTs
CFG_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def _hide(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _show(ax, img):
    """An image (C, H, W) in [−1, 1] on an axis (grey for one channel)."""
    img = img.clamp(-1, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0], cmap="gray_r", vmin=-1, vmax=1)
    else:
        ax.imshow((img.permute(1, 2, 0) + 1) / 2)
    _hide(ax)


def _labels(n):
    return torch.arange(n) % 12


def _shapes_metrics(results, key, x, cond):
    m = image_metrics(x, "shapes16", cond=cond)
    results[f"{key}_fd"] = num(m["fd"], 2)
    results[f"{key}_fd16"] = num(m["fd_pca16"], 2)
    if "agreement" in m:
        results[f"{key}_class"] = num(m["agreement"], 2)
    results[f"{key}_conf"] = num(m["confidence"], 2)
    return m


@book.figure(fmt="png")
def patchify_tokens(results):
    """A 3×16×16 shape cut into 4×4 patches: 16 tokens of 48 values; exact round trip."""
    test = get_dataset("shapes16", "test")
    x = test.x[:8]
    tokens = patchify(x, 4)
    results["patch_roundtrip"] = num(float((unpatchify(tokens, 4, 3, 16) - x).abs().max()) or 0)
    big = int((test.x != -1).flatten(1).sum(1).argmax())  # the largest shape shows best
    img, tok = test.x[big], patchify(test.x[big : big + 1], 4)[0]
    fig = plt.figure(figsize=(10.4, 3.6))
    grid = fig.add_gridspec(2, 17, width_ratios=[5] + [1] * 16, height_ratios=[1, 2.2])
    ax = fig.add_subplot(grid[:, 0])
    _show(ax, img)
    for k in range(1, 4):
        ax.axhline(4 * k - 0.5, c="w", lw=1.5)
        ax.axvline(4 * k - 0.5, c="w", lw=1.5)
    for n in range(16):
        r, c = divmod(n, 4)
        ax.text(4 * c + 0.1, 4 * r + 1.3, str(n), color="w", fontsize=11, weight="bold")
    ax.set_title("image 3×16×16, p = 4", fontsize=13)
    for n in range(16):
        r, c = divmod(n, 4)
        a = fig.add_subplot(grid[0, n + 1])
        _show(a, img[:, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4])
        a.set_title(str(n), fontsize=10)
    ax = fig.add_subplot(grid[1, 1:])
    ax.imshow(tok.T, cmap="gray", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(16))
    ax.set_xlabel("token n: one column of p·p·C = 48 values (row, col, channel)")
    ax.set_yticks([])
    fig.tight_layout(w_pad=0.2, h_pad=0.3)
    # adaLN-Zero: a fresh DiT is the zero function and every block the identity
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    dit = DiT(3, 16, patch_size=4, dim=64, depth=4, num_classes=12)
    t = torch.rand(8, generator=g)
    with torch.no_grad():
        out, hidden = dit(x, t, _labels(8), return_hidden=(1, 2, 3, 4))
        embedded = dit.embed(tokens)
    results["zero_out"] = num(float(out.abs().max()) or 0)
    results["zero_blocks"] = num(
        max(float((h - embedded).abs().max()) for h in hidden.values()) or 0
    )
    results["dit_params"] = f"{sum(p.numel() for p in dit.parameters()):,}".replace(",", " ")
    return fig


@book.figure(fmt="png")
def rope(results):
    """2D RoPE: the query–key score depends on the offset only (head dim 16, 8×8 tokens)."""
    grid, head = 8, 16
    cos, sin = rope_2d(grid, head)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(head, generator=g), torch.randn(head, generator=g)
    qs = apply_rope(q.expand(1, 1, grid * grid, head), cos, sin)[0, 0]
    ks = apply_rope(k.expand(1, 1, grid * grid, head), cos, sin)[0, 0]
    scores = qs @ ks.T  # scores[m, n] = <R_m q, R_n k>
    by_offset: dict[tuple[int, int], list[float]] = {}
    for m in range(grid * grid):
        for n in range(grid * grid):
            off = (n // grid - m // grid, n % grid - m % grid)
            by_offset.setdefault(off, []).append(float(scores[m, n]))
    spread = max(max(v) - min(v) for v in by_offset.values())
    results["rope_spread"] = num(spread, 1)
    results["rope_range"] = num(float(scores.max() - scores.min()), 2)
    fig, axes = plt.subplots(
        1, 4, figsize=(10.4, 3.4), gridspec_kw={"width_ratios": [1, 1, 0.06, 1.3]}
    )
    lim = float(scores.abs().max())
    for ax, (r, c) in zip(axes[:2], ((2, 2), (5, 4))):
        im = ax.imshow(scores[r * grid + c].reshape(grid, grid), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.plot(c, r, "k*", ms=12)
        ax.set_title(f"query at ({r}, {c})", fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, cax=axes[2])
    axes = [*axes[:2], axes[3]]
    offsets = sorted(by_offset)
    xs = [i for i, off in enumerate(offsets) for _ in by_offset[off]]
    ys = [s for off in offsets for s in by_offset[off]]
    axes[2].scatter(xs, ys, s=2, c=BLUE)
    axes[2].set_xlabel("offset (Δrow, Δcol), 225 values")
    axes[2].set_ylabel("score of every pair")
    axes[2].set_xticks([])
    axes[2].set_title("all 4096 pairs, by offset", fontsize=13)
    fig.tight_layout(w_pad=1.5)
    return fig


@book.figure(fmt="png")
def vae(results):
    """The KL autoencoder of the shapes: reconstructions, latents, the scaling factor."""
    ae = autoencoder("vae_shapes16")
    test = get_dataset("shapes16", "test")
    train = get_dataset("shapes16")
    with torch.no_grad():
        z = ae.to_latent(test.x)
        rec = ae.from_latent(z).clamp(-1, 1)
        raw = ae.encode(train.x).mean
    psnr = 10 * torch.log10(4 / (rec - test.x).pow(2).flatten(1).mean(1))
    results["vae_psnr"] = num(float(psnr.mean()), 3)
    results["vae_psnr_min"] = num(float(psnr.min()), 3)
    results["vae_scale"] = num(float(ae.scale), 3)
    results["vae_raw_std"] = num(float(raw.std()), 3)
    results["vae_test_std"] = num(float(z.std()), 3)
    results["vae_lambda_shift"] = num(math.log(float(raw.std())), 2)  # λ = log(α c/σ)
    n = 8
    fig, axes = plt.subplots(3, n, figsize=(9.6, 3.7))
    lim = float(z[:n, 0].abs().max())
    for i in range(n):
        _show(axes[0, i], test.x[i])
        _show(axes[1, i], rec[i])
        axes[2, i].imshow(z[i, 0], cmap="RdBu_r", vmin=-lim, vmax=lim)
        _hide(axes[2, i])
    for row, label in enumerate(("image", "dec(enc(x))", "latent, ch. 1 of 4")):
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=14)
    fig.tight_layout(h_pad=0.2, w_pad=0.2)
    return fig


@book.figure(fmt="png")
def pixel_vs_latent(results):
    """The same DiT on pixels (patch 8) and on VAE latents (patch 4): 4 tokens, equal steps."""
    ae = autoencoder("vae_shapes16")
    n = 600
    y = _labels(n)
    g = torch.Generator().manual_seed(2)
    rows = []
    for space, shape in (("pixel", (3, 16, 16)), ("latent", (4, 8, 8))):
        trained = train_cached(_shapes_dit(space, STEPS), progress=False)
        den = classifier_free_guidance(trained.denoiser(), 3.0)
        x = sample_euler(den, torch.randn(n, *shape, generator=g), GRID, y)
        if space == "latent":
            x = ae.from_latent(x)
        x = x.clamp(-1, 1)
        _shapes_metrics(results, space, x, y)
        rows.append((f"{space} DiT", x))
    train = get_dataset("shapes16")
    with torch.no_grad():
        ceiling = ae.from_latent(ae.to_latent(train.x[:n])).clamp(-1, 1)
    _shapes_metrics(results, "ceiling", ceiling, train.labels[:n])
    floor = data_floor("shapes16", n, repeats=3)
    results["floor_fd"] = num(floor["fd"], 2)
    results["floor_fd16"] = num(floor["fd_pca16"], 2)
    results["shapes_steps"] = str(STEPS)
    results["shapes_n"] = str(n)
    results["shapes_dim"], results["shapes_depth"] = (
        str(SHAPES_DIT["dim"]),
        str(SHAPES_DIT["depth"]),
    )
    results["shapes_params"] = f"{sum(p.numel() for p in trained.model.parameters()):,}".replace(
        ",", " "
    )
    rows.append(("real shapes", train.x[:24]))
    fig, axes = plt.subplots(6, 12, figsize=(9.6, 5.0))
    for r, (label, x) in enumerate(rows):
        for i in range(24):
            _show(axes[2 * r + i // 12, i % 12], x[i])
        axes[2 * r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=15)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def guidance(results):
    """CFG scales, interval guidance and AutoGuidance on the latent DiT, same noise and labels."""
    ae = autoencoder("vae_shapes16")
    n = 480
    y = _labels(n)
    z = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    den = train_cached(_shapes_dit("latent", STEPS), progress=False).denoiser()
    weak_steps = STEPS // 5
    weak = train_cached(_shapes_dit("latent", weak_steps), progress=False).denoiser()
    results["weak_steps"] = str(weak_steps)
    results["guide_n"] = str(n)

    def draw(key, guided):
        x = ae.from_latent(sample_euler(guided, z, GRID, y)).clamp(-1, 1)
        _shapes_metrics(results, key, x, y)
        return x

    shown = {}
    for w in CFG_SCALES:
        x = draw(f"cfg{w:g}", classifier_free_guidance(den, w))
        if w in (1.0, 3.0, 6.0):
            shown[f"CFG w = {w:g}"] = x
    shown["CFG 3, t ∈ [0.2, 0.8]"] = draw(
        "interval", classifier_free_guidance(den, 3.0, interval=(0.2, 0.8))
    )
    for w in (1.5, 2.0):
        x = draw(f"ag{w:g}", autoguidance(den, weak, w))
        if w == 2.0:
            shown["AutoGuidance 2"] = x
    fig, axes = plt.subplots(len(shown), 12, figsize=(9.0, 4.8))
    for r, (label, x) in enumerate(shown.items()):
        for i in range(12):
            _show(axes[r, i], x[i])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=15)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def autoguidance_toy(results):
    """AutoGuidance with exact denoisers: a too-blurry main model guided by a blurrier one."""
    means = eight_gaussians().means.double()

    def model(std):
        return GaussianMixture(means, std).denoiser("linear")

    data_std, main_std, weak_std = 0.3, 0.45, 0.6
    g = torch.Generator().manual_seed(4)
    n = 4000
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    grid = torch.linspace(1, 0, 41, dtype=torch.float64)
    main = model(main_std)
    panels = {
        f"data (std {data_std})": GaussianMixture(means, data_std).sample(n, g),
        f"main model (std {main_std})": sample_heun(main, z, grid),
        "AutoGuidance w = 2": sample_heun(autoguidance(main, model(weak_std), 2.0), z, grid),
        "AutoGuidance w = 3": sample_heun(autoguidance(main, model(weak_std), 3.0), z, grid),
    }
    keys = ("data", "main", "ag2", "ag3")
    fig, axes = plt.subplots(1, 4, figsize=(10.4, 2.9))
    for ax, key, (title, x) in zip(axes, keys, panels.items()):
        spread = float(torch.cdist(x, means).min(1).values.pow(2).mean().sqrt())
        cov = mode_coverage(x.float(), means.float(), data_std)
        results[f"toy_{key}_spread"] = num(spread, 2)
        results[f"toy_{key}_core"] = num(cov.core, 2)
        results[f"toy_{key}_min_mode"] = num(cov.min_fraction, 2)
        ax.scatter(*x[:2000].T, s=1, c=GREY if key == "data" else BLUE, alpha=0.5)
        ax.set_xlim(-3.3, 3.3)
        ax.set_ylim(-3.3, 3.3)
        ax.set_aspect("equal")
        _hide(ax)
        ax.set_title(title, fontsize=15)
        ax.set_xlabel(f"spread {spread:.2f}", fontsize=14)
    results["toy_truth_spread"] = num(data_std * math.sqrt(2), 2)
    results["toy_core_expected"] = num(cov.core_expected, 2)
    fig.tight_layout(w_pad=0.3)
    return fig


@book.figure(fmt="png")
def jit_toy(results):
    """x- vs v- vs ε-prediction: 8 Gaussians on a plane of R^512, an MLP 64 wide."""
    p = embedding_matrix(TOY_DIM)
    test = get_dataset(f"embedded:eight_gaussians:{TOY_DIM}", "test").x[:2000]
    ref = get_dataset("eight_gaussians", "test").x[:2000]
    g = torch.Generator().manual_seed(5)
    t = 0.5
    xt = (1 - t) * test + t * torch.randn(test.shape, generator=g)
    results["jit_floor"] = num(
        float(eight_gaussians().posterior_variance(xt @ p, t, "linear").mean()), 2
    )
    # off-plane directions a width-W last layer cannot reach, times (dx̂0/dε̂)² or (dx̂0/dv̂)²
    results["jit_bound"] = num((TOY_DIM - 2 - TOY_WIDTH - 1) * (t / (1 - t)) ** 2, 3)
    results["jit_bound_v"] = num((TOY_DIM - 2 - TOY_WIDTH - 1) * t**2, 3)
    results["jit_dim"], results["jit_width"] = str(TOY_DIM), str(TOY_WIDTH)
    results["jit_steps"] = str(_toy_spec("x0")["train"]["steps"])
    z = 0.95 * torch.randn(2000, TOY_DIM, generator=g)
    gmm = eight_gaussians()
    clouds = {"data": ref}
    for pred, label in (("x0", "x (JiT)"), ("velocity", "v (flow matching)"), ("eps", "ε (DDPM)")):
        den = train_cached(_toy_spec(pred), progress=False).denoiser()
        with torch.no_grad():
            err = float((den.x0(xt, t) - test).pow(2).sum(1).mean())
        x = sample_euler(den, z, torch.linspace(0.95, 0.0, 41))
        u = clouds[f"predicts {label}"] = x @ p
        cov = mode_coverage(u, gmm.means, 0.3)
        results[f"jit_{pred}_err"] = num(err, 2)
        results[f"jit_{pred}_ed"] = num(energy_distance(u, ref), 2)
        results[f"jit_{pred}_in"] = num(cov.in_mode, 2)
        results[f"jit_{pred}_off"] = num(float((x - u @ p.T).norm(dim=1).mean()), 2)
    results["jit_data_in"] = num(mode_coverage(ref, gmm.means, 0.3).in_mode, 2)
    fig, axes = plt.subplots(1, 4, figsize=(10.4, 2.9))
    for ax, (title, u) in zip(axes, clouds.items()):
        ax.scatter(*u[:1000].T, s=0.8, c=GREY if title == "data" else BLUE, alpha=0.6)
        ax.scatter(*gmm.means.T, marker="x", s=25, c=ORANGE, lw=1.2)
        ax.set_xlim(-3.5, 3.5)
        ax.set_ylim(-3.5, 3.5)
        ax.set_aspect("equal")
        _hide(ax)
        ax.set_title(title, fontsize=15)
    fig.tight_layout(w_pad=0.3)
    return fig


def _logit_normal_density(t, m, s):
    """p(t) of t = sigmoid(m + s u), u ~ N(0, 1): the change of variables logit t = m + s u."""
    logit = np.log(t / (1 - t))
    return np.exp(-((logit - m) ** 2) / (2 * s**2)) / (s * math.sqrt(2 * math.pi) * t * (1 - t))


@book.figure
def time_sampling(results):
    """Training-time densities of visgen's samplers (histograms) against their closed forms."""
    g = torch.Generator().manual_seed(6)
    n = 200_000
    edges = np.linspace(0, 1, 51)
    mids = 0.5 * (edges[1:] + edges[:-1])
    tt = np.linspace(0.002, 0.998, 400)
    shift = 3.0

    def unshift(t):  # t' = s t/(1 + (s − 1) t)  ⇔  t = t'/(s − (s − 1) t')
        return t / (shift - (shift - 1) * t)

    def ln_cdf(t, m, s):
        with np.errstate(divide="ignore"):
            return norm.cdf((np.log(t) - np.log1p(-t) - m) / s)

    samplers = {
        "uniform": (Uniform(), BLUE, lambda t: t, lambda t: np.ones_like(t)),
        "logit-normal(0, 1) (SD3)": (
            LogitNormal(0.0, 1.0),
            ORANGE,
            lambda t: ln_cdf(t, 0.0, 1.0),
            lambda t: _logit_normal_density(t, 0.0, 1.0),
        ),
        "logit-normal(0.8, 0.8) (JiT)": (
            LogitNormal(0.8, 0.8),
            GREEN,
            lambda t: ln_cdf(t, 0.8, 0.8),
            lambda t: _logit_normal_density(t, 0.8, 0.8),
        ),
        f"logit-normal(0, 1), shift {shift:g}": (
            Shifted(LogitNormal(0.0, 1.0), shift),
            PURPLE,
            lambda t: ln_cdf(unshift(t), 0.0, 1.0),
            # dt/dt' = s/(s − (s − 1) t')²
            lambda t: (
                _logit_normal_density(unshift(t), 0.0, 1.0) * shift / (shift - (shift - 1) * t) ** 2
            ),
        ),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.5))
    worst = 0.0
    for label, (sampler, color, cdf, density) in samplers.items():
        t = sampler(n, g, torch.float64).numpy()
        counts, _ = np.histogram(t, edges)
        expected = n * np.diff(cdf(edges))
        ok = expected > 5
        worst = max(worst, float(np.max(np.abs(counts - expected)[ok] / np.sqrt(expected[ok]))))
        axes[0].plot(tt, density(tt), c=color, lw=1.8, label=label)
        axes[0].plot(mids, counts / (n * np.diff(edges)), "o", c=color, ms=2.5)
    results["density_worst_se"] = num(worst, 2)
    results["density_n"] = f"{n:,}".replace(",", " ")
    axes[0].set_xlabel("$t$   (0 data, 1 noise)")
    axes[0].set_ylabel("density $p(t)$")
    axes[0].legend(frameon=False, fontsize=11, loc="upper left")
    axes[0].set_ylim(0, 3.2)
    for s, color in ((1, BLUE), (2, ORANGE), (3, GREEN), (4, PURPLE)):
        axes[1].plot(tt, shift_time(torch.tensor(tt), s).numpy(), c=color, label=f"s = {s}")
    axes[1].set_xlabel("$t$")
    axes[1].set_ylabel(r"$t' = s t\,/\,(1 + (s - 1) t)$")
    axes[1].legend(frameon=False, fontsize=11)
    axes[1].set_title("resolution shift", fontsize=13)
    fig.tight_layout()
    results["shift_256_64"] = num(resolution_shift(256 * 256, 64 * 64), 2)
    results["shift_1024_256"] = num(resolution_shift(1024 * 1024, 256 * 256), 2)
    # the shifted sampler's SNR at t' equals the unshifted SNR at t divided by s²
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    sched = Linear()
    snr = (sched.alpha(t) / sched.sigma(t)) ** 2
    ts = shift_time(t, shift)
    snr_s = (sched.alpha(ts) / sched.sigma(ts)) ** 2
    results["shift_snr_err"] = num(float((snr_s * shift**2 / snr - 1).abs().max()), 1)
    return fig


@book.figure
def loss_weights(results):
    """What each loss weights, on the x0 scale, against the log-SNR λ of the FM path."""
    sched = Linear()
    t = torch.linspace(0.01, 0.99, 400, dtype=torch.float64)
    lam = torch.log((1 - t) / t).numpy()  # λ = log(α/σ)
    curves = {
        "x0-loss": (target_scale("x0", t, sched), GREY, "--"),
        "ε-loss = SNR": (target_scale("eps", t, sched), BLUE, "-"),
        "v-loss (velocity)": (target_scale("velocity", t, sched), ORANGE, "-"),
        "min-SNR-5 (x0 scale)": (loss_weight("min_snr", t, sched, "x0", gamma=5.0), GREEN, "-"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 3.5))
    for label, (w, color, style) in curves.items():
        axes[0].plot(lam, w.numpy(), style, c=color, lw=1.8, label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel(r"log-SNR $\lambda = \log(\alpha_t/\sigma_t)$  (noise ← → data)")
    axes[0].set_ylabel(r"weight on $\|\hat x_0 - x_0\|^2$")
    axes[0].legend(frameon=False, fontsize=12)
    axes[0].set_ylim(1e-2, 1e5)
    # the weight per unit λ that training really applies: w(λ) p(λ), normalised
    dt_dlam = (t * (1 - t)).numpy()  # |dt/dλ| on the FM path
    ln = _logit_normal_density(t.numpy(), 0.0, 1.0)
    v = target_scale("velocity", t, sched).numpy()
    for label, dens, color in (
        ("v-loss, uniform t", np.ones_like(ln), BLUE),
        ("v-loss, logit-normal(0, 1)", ln, ORANGE),
    ):
        eff = v * dens * dt_dlam
        axes[1].plot(lam, eff / abs(np.trapezoid(eff, lam)), c=color, lw=1.8, label=label)
    mid = np.exp(-0.5 * lam**2) / math.sqrt(2 * math.pi)
    axes[1].plot(lam, mid, ":", c=GREY, lw=1.5, label=r"$N(0, 1)$ in $\lambda$")
    axes[1].set_xlabel(r"$\lambda$")
    axes[1].set_ylabel("effective weight density")
    axes[1].legend(frameon=False, fontsize=12)
    fig.tight_layout()
    # identities of the slides, checked on visgen's weights
    tt = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9], dtype=torch.float64)
    dev_v = (target_scale("velocity", tt, sched) - 1 / tt**2).abs().max()
    dev_e = (target_scale("eps", tt, sched) - ((1 - tt) / tt) ** 2).abs().max()
    snr = ((1 - tt) / tt) ** 2
    dev_m = (loss_weight("min_snr", tt, sched, "eps") - torch.clamp(5 / snr, max=1.0)).abs().max()
    results["weights_dev"] = num(float(max(dev_v, dev_e, dev_m)) or 0)
    return fig


@book.figure
def repa(results):
    """Linear-probe accuracy of each block's pooled tokens, with and without alignment."""
    variants = {"none": "no alignment", "REPA (MLP)": "REPA (MLP)", "iREPA": "iREPA"}
    keys = {"none": "none", "REPA (MLP)": "mlp", "iREPA": "irepa"}
    n = len(get_dataset("digits", "test"))
    g = torch.Generator().manual_seed(7)
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for v, label in variants.items():
        trained = train_cached(_repa_spec(v), progress=False)
        depth = trained.model.cfg.depth
        blocks = list(range(1, depth + 1))
        acc = probe_accuracy(trained.model, "digits", blocks, 0.5)
        ax.plot(blocks, [acc[b] for b in blocks], marker="o", label=label)
        key = keys[v]
        for b in blocks:
            results[f"repa_{key}_b{b}"] = num(acc[b], 2)
        low = probe_accuracy(trained.model, "digits", REPA_LAYER, 0.25)[REPA_LAYER]
        results[f"repa_{key}_t025"] = num(low, 2)
        x = sample_euler(trained.denoiser(), torch.randn(n, 1, 8, 8, generator=g), GRID)
        row = digits_row(label, x.clamp(-1, 1))
        results[f"repa_{key}_fd"] = num(row["FD (classifier)"], 2)
        results[f"repa_{key}_fd16"] = num(row["FD (PCA-16)"], 2)
    floor = data_floor("digits", n)
    results["repa_floor_fd"] = num(floor["fd"], 2)
    results["repa_floor_fd16"] = num(floor["fd_pca16"], 2)
    results["repa_steps"] = str(_repa_spec("none")["train"]["steps"])
    results["repa_n"] = str(n)
    ax.axvline(REPA_LAYER, color=GREY, lw=0.8, ls=":")
    ax.set_xlabel("block")
    ax.set_ylabel("probe accuracy, $t = 0.5$")
    ax.set_xticks(blocks)
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    book.run()
