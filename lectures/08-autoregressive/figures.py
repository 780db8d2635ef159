"""Figures and measured numbers of lecture 8 (autoregressive visual generation: tokenizers,
raster AR, VAR, Switti, MAR, diffusion as spectral autoregression).

Every panel is computed by visgen: the tokenizer assets (``vq_digits_plain``, ``vq_digits``,
``fsq_digits``, ``vqgan_digits``, ``msvq_digits``), the generators of the tour chapter L08
through :func:`visgen.ar.generators.generate` (the same cached assets, so ``visgen tour`` and
the slides share the cache), the attention masks of :mod:`visgen.nn.attention`, MAR's
schedules and the spectra of :mod:`visgen.ar.spectral`, scored with ``visgen.metrics``.

Run: ``python -m visgen.course.slides --only 08 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from visgen.ar import (
    attention_pairs,
    cfg_scale,
    codebook_usage,
    cosine_mask_schedule,
    crossover_frequency,
    fit_power_law,
    generate_next_scale,
    generate_raster,
    perplexity,
    psnr,
    rapsd,
    scale_groups,
)
from visgen.ar.generators import SETTINGS, generate, sampler
from visgen.ar.training import tokenizer
from visgen.course.figurebook import FigureBook, num
from visgen.data import get_dataset
from visgen.metrics import data_floor, image_metrics
from visgen.nn.attention import group_mask
from visgen.timing import interleaved_medians
from visgen.train import asset

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
N = 1000  # samples per generator, labels cycling over the classes (the tour chapter's N)
TOKENIZERS = {
    "vq_digits_plain": ("VQ, plain", "vqplain"),
    "vq_digits": ("VQ + k-means, EMA, restarts", "vq"),
    "fsq_digits": ("FSQ (8 × 4 levels)", "fsq"),
    "vqgan_digits": ("VQGAN-style", "vqgan"),
    "msvq_digits": ("VAR multi-scale", "ms"),
    "msvq_digits_uncentered": (r"VAR, $\hat f_0 = 0$", "msu"),
}
GENERATORS = {
    "raster": ("raster AR", {}),
    "var": ("VAR", {}),
    "switti": ("Switti", {}),
    "switti_cfg_off": ("Switti, CFG off last", {}),
    "mar": ("MAR, 16 steps", {}),
}


def _digits(ax_row, images, label=None):
    for ax, img in zip(ax_row, images):
        ax.imshow(img[0].numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    if label:
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=11)


@book.figure(fmt="png")
def tokenizers(results):
    """Held-out digits and their reconstructions by each tokenizer; PSNR, usage, perplexity."""
    test = get_dataset("digits", "test").x
    rows = [("original", test[:10])]
    for name, (label, key) in TOKENIZERS.items():
        tok = tokenizer(name)
        indices = tok.tokenize(test)
        recon = tok.decode_tokens(indices)
        maps = indices if isinstance(indices, list) else [indices]
        results[f"{key}_psnr"] = num(psnr(recon, test), 3)
        results[f"{key}_usage"] = " / ".join(
            f"{codebook_usage(i, tok.num_codes):.0%}" for i in maps
        )
        results[f"{key}_ppl"] = " / ".join(num(perplexity(i, tok.num_codes), 2) for i in maps)
        results[f"{key}_codes"] = str(tok.num_codes)
        rows.append((label, recon[:10]))
        if key == "ms":
            latent = tok.encode(test)
            cumulative = tok.quantizer.reconstruct(indices)
            for k, f in enumerate(cumulative, 1):
                results[f"ms_cum{k}"] = num(float((tok.decode(f) - test).pow(2).mean()), 2)
                results[f"ms_lat{k}"] = num(float((f - latent).pow(2).mean()), 2)
            means = latent.mean((2, 3))
            results["ms_mean_std"] = num(float(means.std(0).mean()), 2)
            results["ms_latent_std"] = num(float(latent.std((0, 2, 3)).mean()), 2)
            unit = torch.nn.functional.normalize(means, dim=1)
            results["ms_mean_cos"] = num(float((unit @ unit.T).mean()), 2)
    results["digit_mean_std"] = num(float(test.mean((1, 2, 3)).std()), 2)
    results["digit_pixel_std"] = num(float(test.std()), 2)
    fig, axes = plt.subplots(len(rows), 10, figsize=(7.0, 0.72 * len(rows)))
    for ax_row, (label, images) in zip(axes, rows):
        _digits(ax_row, images, label)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure(fmt="png")
def scales(results):
    """VAR's tokenizer: token maps of growing side and the decoded cumulative reconstruction."""
    tok = tokenizer("msvq_digits")
    test = get_dataset("digits", "test").x[:8]
    maps = tok.tokenize(test)
    cumulative = tok.quantizer.reconstruct(maps)
    fig, axes = plt.subplots(len(cumulative) + 1, 8, figsize=(5.6, 4.4))
    for k, (ax_row, f) in enumerate(zip(axes, cumulative)):
        side = tok.quantizer.scales[k]
        _digits(ax_row, tok.decode(f), f"scales ≤ {side}×{side}")
    _digits(axes[-1], test, "original")
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    results["ms_scales"] = " · ".join(f"{s}×{s}" for s in tok.quantizer.scales)
    return fig


@book.figure
def masks(results):
    """Who attends to whom: raster (token-causal), VAR (block-causal), Switti (block-diagonal)."""
    groups = scale_groups((1, 2, 3, 4))
    tokens = torch.arange(16)
    panels = [
        ("raster AR, 16 tokens", group_mask(tokens, tokens, "causal")),
        ("VAR: block-causal", group_mask(groups, groups, "causal")),
        ("Switti: block-diagonal", group_mask(groups, groups, "diagonal")),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.3))
    for ax, (title, mask) in zip(axes, panels):
        ax.imshow(mask.numpy(), cmap="Blues", vmin=0, vmax=1.4)
        ax.set_title(f"{title}\n{int(mask.sum())} query–key pairs", fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    results["pairs_raster"] = str(int(panels[0][1].sum()))
    results["pairs_var"] = str(attention_pairs((1, 2, 3, 4), "causal"))
    results["pairs_switti"] = str(attention_pairs((1, 2, 3, 4), "diagonal"))
    results["pairs_ratio"] = num(attention_pairs((1, 2, 3, 4), "diagonal") / 627, 2)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def samples(results):
    """Class-conditional samples of every generator, and the comparison numbers."""
    cond = torch.arange(N) % 10
    floor = data_floor("digits", n=N)
    results["floor_fd"] = num(floor["fd"], 3)
    results["n"] = str(N)
    samplers = {name: sampler(name, **options) for name, (_, options) in GENERATORS.items()}
    rows = []
    for name, sample in samplers.items():
        x, stats = sample(cond, torch.Generator().manual_seed(0))
        m = image_metrics(x, "digits", cond=cond)
        key = name.replace("_", "")
        results[f"{key}_fd"] = num(m["fd"], 3)
        results[f"{key}_conf"] = num(m["confidence"], 2)
        results[f"{key}_agree"] = num(m["agreement"], 2)
        results[f"{key}_passes"] = str(stats.passes)
        results[f"{key}_evals"] = num(stats.token_evals / N, 3)
        rows.append((GENERATORS[name][0], x[:10]))

    def job(sample, c):
        return lambda: sample(c, torch.Generator().manual_seed(0))

    # CPU seconds of the one thread (wall-clock would time the machine's other jobs), medians
    # of rounds interleaved over the generators: all N samples per call (3 rounds), and one
    # sample per call (50 rounds: each pass is short, so the count of sequential passes decides)
    full = interleaved_medians({n: job(s, cond) for n, s in samplers.items()}, 3)
    for name, timing in full.items():
        results[f"{name.replace('_', '')}_s"] = num(timing.cpu, 2)
    results["speedup"] = num(full["raster"].cpu / full["var"].cpu, 2)
    latency = interleaved_medians(
        {n: job(samplers[n], cond[:1]) for n in ("raster", "var", "switti")}, 50
    )
    for name in ("var", "switti"):
        results[f"{name}_latency_speedup"] = num(latency["raster"].cpu / latency[name].cpu, 2)
    results["cfgoff_saved"] = (
        f"{1 - float(results['switticfgoff_evals']) / float(results['switti_evals']):.0%}"
    )
    results["cfg"] = num(SETTINGS["var"]["cfg"], 2)
    for name in ("vq_digits", "msvq_digits"):
        recon = tokenizer(name).reconstruct(get_dataset("digits").x[:N]).clamp(-1, 1)
        results[f"{name}_recon_fd"] = num(image_metrics(recon, "digits")["fd"], 3)
    fig, axes = plt.subplots(len(rows), 10, figsize=(7.0, 0.72 * len(rows)))
    for ax_row, (label, images) in zip(axes, rows):
        _digits(ax_row, images, label)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure
def kv_cache(results):
    """Cached decoding equals the masked full forward: the largest logit difference."""
    cond = torch.arange(20) % 10
    raster = asset("ar_digits", progress=False).model
    out = generate_raster(raster, cond, generator=torch.Generator().manual_seed(0))
    raster_err = float((raster(out.tokens, cond) - out.logits).abs().max())
    var = asset("var_digits", progress=False).model
    q = tokenizer("msvq_digits").quantizer
    out = generate_next_scale(var, q, cond, generator=torch.Generator().manual_seed(0))
    var_err = float((var(q.next_scale_inputs(out.tokens), cond) - out.logits).abs().max())
    results["kv_raster"] = num(raster_err, 2)
    results["kv_var"] = num(var_err, 2)
    lengths = np.arange(1, 17)
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.plot(lengths, lengths * (lengths + 1) / 2, color=RED, label="no cache: recompute the prefix")
    ax.plot(lengths, lengths, color=BLUE, label="KV cache: one new token per pass")
    ax.set_xlabel("tokens generated")
    ax.set_ylabel("token evaluations")
    ax.legend(frameon=False, fontsize=11)
    fig.tight_layout()
    return fig


@book.figure(fmt="png")
def mar_steps(results):
    """MAR with 1, 4 and 16 AR steps: samples and FD."""
    cond = torch.arange(N) % 10
    rows = []
    for steps in (1, 2, 4, 8, 16):
        x, stats = generate("mar", cond, torch.Generator().manual_seed(0), steps=steps)
        m = image_metrics(x, "digits", cond=cond)
        results[f"mar{steps}_fd"] = num(m["fd"], 3)
        results[f"mar{steps}_conf"] = num(m["confidence"], 2)
        if steps in (1, 4, 16):
            rows.append((f"{steps} step{'s' if steps > 1 else ''}", x[:10]))
    results["mar_head_steps"] = str(SETTINGS["mar"]["head_steps"])
    results["mar_cfg"] = num(SETTINGS["mar"]["cfg"], 2)
    fig, axes = plt.subplots(len(rows), 10, figsize=(7.0, 0.72 * len(rows)))
    for ax_row, (label, images) in zip(axes, rows):
        _digits(ax_row, images, label)
    fig.tight_layout(h_pad=0.1, w_pad=0.1)
    return fig


@book.figure
def mar_schedules(results):
    """MAR's cosine schedule (tokens revealed per step) and the three CFG schedules."""
    n, w = 16, 3.0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.4))
    for steps, color in ((4, BLUE), (8, GREEN), (16, ORANGE)):
        counts = cosine_mask_schedule(n, steps)
        ax1.plot(range(1, steps + 1), np.cumsum(counts), "o-", color=color, ms=4,
                 label=f"{steps} steps: {counts}" if steps < 16 else "16 steps")  # fmt: skip
    ax1.set_xlabel("AR step")
    ax1.set_ylabel("tokens known after the step")
    ax1.legend(frameon=False, fontsize=9)
    steps = 8
    counts = cosine_mask_schedule(n, steps)
    after = [n - sum(counts[: s + 1]) for s in range(steps)]
    for kind, color, extra in (("constant", GREY, {}), ("linear", BLUE, {}),
                               ("interval", ORANGE, {"start": 3})):  # fmt: skip
        ws = [cfg_scale(kind, w, s, steps, a, n, **extra) for s, a in enumerate(after)]
        ax2.step(range(1, steps + 1), ws, where="mid", color=color, label=kind)
    ax2.set_xlabel("AR step (8 steps, 16 tokens)")
    ax2.set_ylabel("guidance scale $w_s$")
    ax2.legend(frameon=False, fontsize=11)
    results["cos4"] = str(cosine_mask_schedule(16, 4))
    results["cos16_256"] = str(cosine_mask_schedule(256, 8))
    fig.tight_layout()
    return fig


@book.figure
def spectra(results):
    """RAPSD of digits and of noised digits; the crossover frequency against the noise level."""
    x = get_dataset("digits16", "test").x
    f, p = rapsd(x)
    sigmas = (0.1, 0.3, 1.0)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.5))
    ax1.loglog(f, p, color="k", lw=2.2, label="digits (16 × 16)")
    for s, color in zip(sigmas, (BLUE, GREEN, ORANGE)):
        ax1.loglog(f, p + s**2, color=color, lw=1.4, label=f"noised, $\\sigma/\\alpha$ = {s}")
        ax1.axhline(s**2, color=color, lw=0.8, ls="--")
    ax1.set_xlabel("frequency $f$ (cycles / pixel)")
    ax1.set_ylabel("power $P(f)$")
    ax1.legend(frameon=False, fontsize=10, loc="lower left")
    grid = np.logspace(-1.5, 0.5, 60)
    ax2.semilogx(grid, [crossover_frequency(f, p, s**2) for s in grid], color="k")
    ax2.set_xlabel("noise level $\\sigma_t/\\alpha_t$")
    ax2.set_ylabel("crossover $f^*$")
    results["slope"] = num(fit_power_law(f, p), 2)
    for s, key in zip(sigmas, ("cross01", "cross03", "cross10")):
        results[key] = num(crossover_frequency(f, p, s**2), 2)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    book.run()
