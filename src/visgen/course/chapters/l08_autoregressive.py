"""Tour chapter L08: autoregressive visual generation — tokenizers, next-token vs next-scale AR,
Switti's shortcuts, MAR over continuous tokens, and diffusion as spectral autoregression."""

from __future__ import annotations

import torch
from matplotlib import colormaps

from visgen import budget
from visgen.ar import codebook_usage, crossover_frequency, perplexity, psnr, rapsd
from visgen.ar.generators import SETTINGS, generate
from visgen.ar.training import tokenizer
from visgen.course import chapter
from visgen.data import get_dataset
from visgen.metrics import data_floor, image_metrics
from visgen.viz import figure

SIGMAS = (0.1, 0.2, 0.4, 0.8, 1.6)  # noise levels σ/α of the spectra figure
MAR_STEPS = (1, 4, 16)


def _labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


def _row(label: str, images, cond, stats=None, **extra) -> dict:
    m = image_metrics(images, "digits", cond=cond)
    row = {
        "samples": label,
        **extra,
        "FD (classifier)": m["fd"],
        "FD (PCA-16)": m["fd_pca16"],
        "confidence": m["confidence"],
        "right class": m.get("agreement", float("nan")),
    }
    if stats is not None:
        row.update({"passes": stats.passes, "token evals / sample": stats.token_evals / len(cond)})
    return row


def _tokenizer_section(ctx) -> None:
    train, test = get_dataset("digits"), get_dataset("digits", "test")
    rows, grids = [], [test.x[:12]]
    for name, label in (("vq_digits", "VQ-VAE (k-means, EMA, restarts)"),
                        ("msvq_digits", "VAR multi-scale VQ, scales 1-2-3-4")):  # fmt: skip
        tok = tokenizer(name)
        indices = tok.tokenize(test.x)
        recon = tok.decode_tokens(indices)
        grids.append(recon[:12])
        maps = indices if isinstance(indices, list) else [indices]
        usage = [codebook_usage(i, tok.num_codes) for i in maps]
        ppl = [perplexity(i, tok.num_codes) for i in maps]
        rows.append({
            "tokenizer": label,
            "tokens": sum(i[0].numel() for i in maps),
            "MSE": float((recon - test.x).pow(2).mean()),
            "PSNR (dB)": psnr(recon, test.x),
            "usage per scale": " / ".join(f"{u:.0%}" for u in usage),
            "perplexity per scale": " / ".join(f"{p:.1f}" for p in ppl),
        })  # fmt: skip
        ctx.metric(f"{name}.psnr", rows[-1]["PSNR (dB)"])
        ctx.metric(f"{name}.perplexity", ppl)
        ctx.metric(f"{name}.usage", usage)
        if tok.multiscale:
            cumulative = [tok.decode(f) for f in tok.quantizer.reconstruct(indices)]
            errors = [float((c - test.x).pow(2).mean()) for c in cumulative]
            ctx.metric(f"{name}.cumulative_mse", errors)
            ctx.images(torch.cat([c[:12] for c in cumulative] + [test.x[:12]]),
                       "VAR's tokenizer scale by scale: the decoded cumulative reconstruction "
                       "f̂_k after scales 1, 1-2, 1-2-3 and all four (rows), then the originals. "
                       "MSE per row: " + ", ".join(f"{e:.3f}" for e in errors) + ".",
                       nrow=12)  # fmt: skip
    ctx.images(torch.cat(grids), "Held-out digits (top), their VQ-VAE reconstructions from 4×4 "
               "codes of a 32-entry codebook, and the multi-scale tokenizer's (30 codes).",
               nrow=12)  # fmt: skip
    floor = float((train.x[: len(test)] - test.x).pow(2).mean())
    rows.append({"tokenizer": "different real digits (no information)", "tokens": "",
                 "MSE": floor, "PSNR (dB)": psnr(train.x[: len(test)], test.x),
                 "usage per scale": "", "perplexity per scale": "", "_floor": True})  # fmt: skip
    ctx.table(rows, "Tokenizers on the 397 held-out digits: reconstruction error, and how many "
              "of the K = 32 codes are used (usage) and how evenly (perplexity, 32 at most), "
              "per scale for VAR's tokenizer. It starts from the running mean latent (f̂₀ = μ; "
              "VAR: 0): the 1×1 scale then codes how a digit's mean differs from the average "
              "one, which with f̂₀ = 0 is nearly constant and takes 2 of the 32 codes.")  # fmt: skip


def _generator_section(ctx) -> None:
    n = budget(full=1000, fast=300)
    cond = _labels(n)
    first = torch.arange(20)
    floor = data_floor("digits", n=n)
    rows = [{"samples": "real digits (floor)", "method": "", "FD (classifier)": floor["fd"],
             "FD (PCA-16)": floor["fd_pca16"], "confidence": floor["confidence"],
             "right class": float("nan"), "passes": "", "token evals / sample": "",
             "_floor": True}]  # fmt: skip
    for name in ("vq_digits", "msvq_digits"):
        x = get_dataset("digits").x[:n]
        recon = tokenizer(name).reconstruct(x)
        row = _row(f"{name} reconstructions", recon.clamp(-1, 1), None, method="tokenizer")
        rows.append({**row, "passes": "", "token evals / sample": "", "_floor": True})
    grids = []
    runs = [
        ("raster", "raster AR (LlamaGen-style)", {}),
        ("var", "VAR", {}),
        ("switti", "Switti", {}),
        ("switti_cfg_off", "Switti, CFG off on the last scale", {}),
    ]
    runs += [("mar", f"MAR, {k} AR steps", {"steps": k}) for k in MAR_STEPS]  # fmt: skip
    for i, (name, label, options) in enumerate(runs):
        x, stats = generate(name, cond, ctx.generator(i), **options)
        row = _row(label, x, cond, stats, method=name)
        rows.append(row)
        key = name if not options else f"{name}{options['steps']}"
        ctx.metric(f"{key}.fd", row["FD (classifier)"])
        ctx.metric(f"{key}.confidence", row["confidence"])
        ctx.metric(f"{key}.passes", stats.passes)
        ctx.metric(f"{key}.token_evals", stats.token_evals)
        grids.append(x[first])
    ctx.images(torch.cat(grids), "Class-conditional samples, two of each class per row: raster "
               "AR, VAR, Switti, Switti with CFG off on its last scale, MAR with 1, 4 and 16 AR "
               "steps.", nrow=20)  # fmt: skip
    cfgs = ", ".join(
        f"{k} w = {v['cfg']}" + (" (linear schedule)" if v.get("cfg_schedule") == "linear" else "")
        for k, v in SETTINGS.items()
        if "cfg_off_from" not in v
    )
    ctx.table(rows, f"The four generators on the same digits, N = {n} samples with labels "
              "cycling over the classes: Fréchet distance (evaluation classifier's features, "
              "PCA-16 pixels), classifier confidence, agreement with the requested class, "
              "sequential forward passes and token evaluations per sample (CFG's unconditional "
              f"rows included). Guidance: {cfgs}. Shaded: real digits and the tokenizers' own "
              "reconstructions — no token model can beat its tokenizer.")  # fmt: skip


def _spectral_section(ctx) -> None:
    x = get_dataset("digits16", "test").x
    f, p = rapsd(x)
    fig, (ax1, ax2) = figure(2, size=3.6)
    ax1.loglog(f, p, "k-", lw=2, label="digits (16×16)")
    colours = colormaps["viridis"](torch.linspace(0, 0.85, len(SIGMAS)).numpy())
    for s, colour in zip(SIGMAS, colours):
        ax1.axhline(s**2, lw=0.8, ls="--", color=colour)
        ax1.loglog(f, p + s**2, color=colour, lw=1.2, label=f"noised, σ/α = {s}")
    ax1.set_xticks([0.0625, 0.125, 0.25, 0.5], ["1/16", "1/8", "1/4", "1/2"])
    ax1.minorticks_off()
    ax1.set_xlabel("frequency (cycles / pixel)")
    ax1.set_ylabel("radially averaged power")
    ax1.legend(fontsize=6, loc="lower left")
    sigmas = torch.logspace(-1.5, 0.5, 40)
    cross = [crossover_frequency(f, p, float(s) ** 2) for s in sigmas]
    ax2.semilogx(sigmas, cross, "k-")
    ax2.set_xlabel("noise level σ_t / α_t")
    ax2.set_ylabel("crossover frequency f*")
    ax2.set_title("noise hides f > f*", fontsize=9)
    ctx.figure(fig, "Left: the radially averaged power spectrum of digits falls with frequency; "
               "white noise of level σ is flat at σ², so the noised image's spectrum is "
               "P(f) + σ² and every frequency above the crossover is drowned. Right: the "
               "crossover falls as the noise grows — denoising reveals the image coarse to "
               "fine, a next-scale prediction in frequency space.")  # fmt: skip
    ctx.metric("spectra.crossover", {f"{s}": crossover_frequency(f, p, s**2) for s in SIGMAS})


@chapter(
    "L08",
    "Autoregressive generation: tokenizers, VAR, Switti, MAR",
    lecture=8,
    summary="VQ tokenizers; raster vs next-scale AR at equal tokens; Switti's block-diagonal "
    "scales and CFG-off; MAR's per-token flow head; diffusion as spectral autoregression.",
    slides="lectures/08-autoregressive/slides.pdf",
    code=[
        "visgen.ar.quantize.VectorQuantizer",
        "visgen.ar.multiscale.MultiScaleQuantizer",
        "visgen.ar.raster.generate_raster",
        "visgen.ar.var.generate_next_scale",
        "visgen.ar.mar.sample_tokens",
        "visgen.ar.heads.TokenHead",
        "visgen.ar.spectral.rapsd",
    ],
)
def run(ctx) -> None:
    ctx.text(
        "A tokenizer turns an 8×8 digit into a 4×4 map of codes from a codebook of 32 vectors "
        "(**VQ-VAE**: nearest code, straight-through gradient, codebook and commitment losses; "
        "k-means initialisation, an EMA codebook and dead-code restarts keep every code in "
        "use). A **raster** transformer then predicts the 16 codes one by one: 16 sequential "
        "passes, each reading the keys and values of the earlier tokens from a KV cache.",
        "**VAR** quantises the latent residually at growing scales 1, 2, 3, 4 with one shared "
        "codebook and predicts a whole scale per pass: 4 passes for 30 tokens, with a "
        "block-causal mask. **Switti** lets each scale attend only to itself (no KV cache, "
        "fewer attention pairs) and switches classifier-free guidance off on the last scale, "
        "which removes the unconditional half of that scale's token evaluations. **MAR** needs "
        "no codebook: a bidirectional transformer predicts a condition for every masked 2×2 "
        "patch and a small flow-matching head samples the patch's four pixel values.",
    )
    _tokenizer_section(ctx)
    _generator_section(ctx)
    _spectral_section(ctx)
