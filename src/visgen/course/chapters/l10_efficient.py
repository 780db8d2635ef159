"""Tour chapter L10: efficient diffusion — caching, quantisation, sparse attention, and one
speed–quality map of every lever of the course (lecture 10).

Trained models come from the cache only: the teachers ``fm_digits`` (MLP), ``fm_digits_unet``
and ``fm_digits_dit`` and the few-step students of chapter L07 (the same cache entries); the
chapter itself trains nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from visgen import budget
from visgen.course import chapter, helpers
from visgen.course.chapters import l07_distribution_matching as l07
from visgen.data import get_dataset
from visgen.efficient import (
    CachedDenoiser,
    QuantLinear,
    calibrate_teacache,
    compare_at_matched_skips,
    deepcache,
    density,
    fora,
    key_offset_problem,
    masked_attention,
    outlier_problem,
    profile_heads,
    relative_error,
    sage_attention,
    sliding_tile_mask,
    smoothing_factors,
    spatial_mask,
    teacache,
    temporal_mask,
    uniform_cache,
    video_heads_problem,
)
from visgen.efficient.fora import FORAConfig, FORAHook
from visgen.efficient.frontier import REFERENCE_STEPS, levers, measure
from visgen.fewstep import get_task
from visgen.metrics import psnr
from visgen.param import Denoiser
from visgen.sampling import sample_euler, uniform
from visgen.sampling.guidance import classifier_free_guidance
from visgen.viz import figure

STEPS = REFERENCE_STEPS
W4A4 = {"w_bits": 4, "a_bits": 4, "w_granularity": "group", "a_granularity": "group"}
FAMILIES = {
    "teacher": ("k", "*"),
    "solver (L4)": ("tab:blue", "o"),
    "few-step (L6–7)": ("tab:green", "^"),
    "caching (L10)": ("tab:orange", "s"),
    "quantisation (L10)": ("tab:red", "D"),
}


def _batch(ctx, n: int, salt: int):
    """n noises and labels cycling over the ten classes."""
    return torch.randn(n, 1, 8, 8, generator=ctx.generator(salt)), torch.arange(n) % 10


def _euler(den, z, y):
    return sample_euler(den, z, uniform(STEPS), y)


def _similarity_section(ctx, unet, dit, z, y) -> None:
    curves = {}
    for label, cached, key in (
        ("U-Net deep feature (DeepCache)", deepcache(unet, steps=STEPS, interval=1), "deep"),
        ("DiT block-stack residual (TeaCache)", uniform_cache(dit, steps=STEPS, interval=1),
         "residual"),
        ("DiT block-2 attention (FORA)", fora(dit, steps=STEPS, interval=1), (1, "attn")),
    ):  # fmt: skip
        previous, cosines = [], []

        def record(i, t, x, pred, cached=cached, key=key, previous=previous, cosines=cosines):
            feature = next(iter(cached.states.values())).store[key].flatten(1)
            if previous:
                cosines.append(float(torch.cosine_similarity(feature, previous[0], 1).mean()))
            previous[:] = [feature.clone()]

        sample_euler(cached, z, uniform(STEPS), y, callback=record)
        curves[label] = cosines
        ctx.metric(f"similarity.{key if isinstance(key, str) else 'attn'}.share_above_0.9",
                   sum(c > 0.9 for c in cosines) / len(cosines))  # fmt: skip
    fig, (ax,) = figure(size=4.2)
    for label, cosines in curves.items():
        ax.plot(range(1, STEPS), cosines, label=label)
    ax.set_xlabel("Euler step (t from 1 to 0)")
    ax.set_ylabel("cosine similarity to the previous step")
    ax.legend(fontsize=7)
    ctx.figure(fig, "Why caching works: what each cache stores barely changes from one Euler step "
               "to the next (cosine similarity, mean over the batch) — least in the first steps "
               "from noise and the last steps near the data, which every cache therefore "
               "computes.")  # fmt: skip


def _sweep(plain, makers, z, y) -> list[dict]:
    rows = []
    for (method, setting), make in makers.items():
        cached = make()
        x = _euler(cached, z, y)
        s = cached.stats
        rows.append({"method": method, "setting": setting, "computed calls": s["computed"],
                     "FLOP fraction": s["fraction"], "PSNR (dB)": float(psnr(x, plain).mean())})  # fmt: skip
    return rows


def _caching_section(ctx, unet, dit, z, y):
    plain_unet, plain_dit = _euler(unet, z, y), _euler(dit, z, y)
    runs = [_batch(ctx, 16, 100 + i) for i in range(budget(full=8, fast=3))]
    fit = calibrate_teacache(dit, runs, sample_euler, uniform(STEPS))
    intervals = budget(full=(2, 3, 4), fast=(2, 3))
    unet_rows = _sweep(plain_unet, {
        **{("DeepCache", f"N = {n}"): (lambda n=n: deepcache(unet, steps=STEPS, interval=n))
           for n in intervals},
        ("DeepCache, skip 1", "N = 3"): lambda: deepcache(unet, steps=STEPS, interval=3, branch=1),
    }, z, y)  # fmt: skip
    dit_rows = _sweep(plain_dit, {
        **{("FORA", f"N = {n}"): (lambda n=n: fora(dit, steps=STEPS, interval=n)) for n in intervals},
        **{("uniform residual cache", f"N = {n}"): (lambda n=n: uniform_cache(
            dit, steps=STEPS, interval=n)) for n in intervals},
        **{("TeaCache", f"δ = {d:g}"): (lambda d=d: teacache(
            dit, steps=STEPS, threshold=d, coefficients=fit.coefficients))
           for d in budget(full=(0.1, 0.2, 0.4), fast=(0.2,))},
    }, z, y)  # fmt: skip
    matched = compare_at_matched_skips(dit, fit.coefficients, z, y, sample_euler, uniform(STEPS),
                                       plain=plain_dit)  # fmt: skip
    dit_rows.append({"method": "TeaCache at uniform N = 2's compute",
                     "setting": f"δ = {matched.threshold:.3g}",
                     "computed calls": matched.teacache_computed,
                     "FLOP fraction": matched.teacache_fraction,
                     "PSNR (dB)": matched.teacache_psnr})  # fmt: skip
    gain, delta = matched.gain, matched.threshold
    ctx.metric("teacache.matched_gain_db", gain)
    ctx.metric("teacache.fit_r2", fit.r2)
    fig, axes = figure(3, size=3.4)
    axes[0].scatter(fit.x, fit.y, s=4, alpha=0.4, label="calibration pairs")
    grid = np.linspace(0, fit.x.max(), 100)
    axes[0].plot(
        grid, np.polyval(fit.coefficients, grid), "k", label=f"degree 4, R² = {fit.r2:.2f}"
    )
    axes[0].set_xlabel("input change (rel. L1)")
    axes[0].set_ylabel("output change (rel. L1)")
    axes[0].legend(fontsize=7)
    for ax, rows, title in (
        (axes[1], unet_rows, "U-Net teacher"),
        (axes[2], dit_rows, "DiT teacher"),
    ):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [r for r in rows if r["method"] == method]
            ax.plot([r["FLOP fraction"] for r in pts], [r["PSNR (dB)"] for r in pts],
                    "o-" if len(pts) > 1 else "*", label=method, ms=5 if len(pts) > 1 else 10)  # fmt: skip
        ax.set_xlabel("fraction of the FLOPs")
        ax.set_ylabel("PSNR vs uncached (dB)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6)
    ctx.figure(fig, "Left: TeaCache's calibration on the DiT — the change of the output against "
               "the change of the timestep-modulated input between steps, and the polynomial "
               "np.polyfit gives. Middle and right: FLOPs kept against PSNR to the uncached "
               "samples from the same noise.")  # fmt: skip
    ctx.table(unet_rows + dit_rows, f"Caching sweeps ({len(z)} digits, 50 Euler steps, first and "
              "last calls always computed). TeaCache against the uniform cache at the same "
              f"number of full calls on this batch (efficient.compare_at_matched_skips): "
              f"{gain:+.2f} dB. On this uniform grid every step changes the output by about as "
              "much, TeaCache's schedule is nearly uniform and the gain depends on the batch: "
              "+0.5 to +1.7 dB (mean +1.35) over 3 noise × 2 calibration seeds on 256 digits, "
              "+0.35 to +1.54 (mean +1.00) on 64; on SD3's shifted grid, where steps differ, "
              "+5.4 to +6.2 dB (benchmarks/teacache_matched.py, BENCHMARKS.md).")  # fmt: skip
    return fit, delta


class _TwoPassCFG:
    """CFG as separate conditional and unconditional calls (as diffusers pipelines do)."""

    def __init__(self, den, scale: float):
        self.den, self.scale = den, scale

    def __call__(self, x, t, cond):
        c = self.den(x, t, cond).velocity
        u = self.den(x, t, torch.full_like(cond, -1)).velocity
        return u + self.scale * (c - u)


def _cfg_section(ctx, dit, z, y) -> None:
    exact = _euler(classifier_free_guidance(dit, 2.0), z, y)
    rows = []
    for label, per_branch in (("one cache per CFG branch", True), ("one shared cache", False)):
        cached = CachedDenoiser(dit, FORAHook(FORAConfig(STEPS, 2)), per_branch=per_branch)
        x = _euler(Denoiser(_TwoPassCFG(cached, 2.0), dit.schedule, "velocity"), z, y)
        rows.append({"FORA N = 2, CFG w = 2, two calls per step": label,
                     "cache entries": len(cached.states),
                     "PSNR vs uncached CFG (dB)": float(psnr(x, exact).mean())})  # fmt: skip
    ctx.table(rows, "A cache keyed by the condition keeps the conditional and unconditional "
              "features apart; one global cache hands the unconditional pass the conditional "
              "features.")  # fmt: skip
    key = "PSNR vs uncached CFG (dB)"
    ctx.metric("cfg.shared_cache_loss_db", rows[0][key] - rows[1][key])


def _quant_section(ctx) -> None:
    x, layer = outlier_problem(generator=ctx.generator(4))
    y = layer(x).detach()
    bits = list(range(2, 9))
    fig, axes = figure(3, size=3.4)
    for granularity in ("tensor", "channel", "group"):
        w = [relative_error(QuantLinear(layer, w_bits=b, a_bits=16, w_granularity=granularity)(x), y)
             for b in bits]  # fmt: skip
        a = [relative_error(QuantLinear(layer, w_bits=16, a_bits=b, a_granularity=granularity)(x), y)
             for b in bits]  # fmt: skip
        axes[0].semilogy(bits, w, "o-", label=f"per {granularity}", ms=4)
        axes[1].semilogy(bits, a, "o-", label=f"per {granularity}", ms=4)
        ctx.metric(f"quant.w4.{granularity}", w[2])
        ctx.metric(f"quant.a4.{granularity}", a[2])
    for ax, title in ((axes[0], "weights only (A16)"), (axes[1], "activations only (W16)")):
        ax.set_xlabel("bits")
        ax.set_ylabel("relative output error")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    s = smoothing_factors(x.abs().amax(0), layer.weight, 0.5)
    ranks = [0, 8, 16, 32, 64]
    naive = relative_error(QuantLinear(layer, **W4A4)(x), y)
    svdq = [relative_error(QuantLinear(layer, **W4A4, smooth=s, rank=r)(x), y) for r in ranks]
    low = [relative_error(QuantLinear(layer, **W4A4, rank=r)(x), y) for r in ranks]
    axes[2].axhline(naive, color="k", ls="--", label="naive W4A4")
    axes[2].plot(ranks, low, "o-", label="low-rank branch only", ms=4)
    axes[2].plot(ranks, svdq, "o-", label="SVDQuant (rank 0: SmoothQuant)", ms=4)
    axes[2].set_xlabel("rank of the 16-bit branch")
    axes[2].set_ylabel("relative output error, W4A4")
    axes[2].legend(fontsize=7)
    ctx.figure(fig, "Quantisation error against bits on a layer with the outliers of real DiTs "
               "(1 % of input channels 20× larger, 0.1 % of weights 10×): per channel / token or "
               "per group — the granularities integer kernels use — activations are the hard "
               "part (one scale per tensor is ruined by a few outlier weights too); SmoothQuant "
               "moves the activation outliers into the weights and SVDQuant's 16-bit low-rank "
               "branch absorbs them there.")  # fmt: skip
    ctx.metric("quant.svdquant32_over_naive", svdq[ranks.index(32)] / naive)
    ctx.metric("quant.svdquant32_over_smoothing", svdq[ranks.index(32)] / svdq[0])
    q, k, v = key_offset_problem(generator=ctx.generator(5))
    exact = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
    rows = []
    for b in (4, 6, 8):
        plain = relative_error(sage_attention(q, k, v, bits=b, smooth_k=False), exact)
        smooth = relative_error(sage_attention(q, k, v, bits=b), exact)
        rows.append({"QKᵀ bits": b, "error, plain K": plain, "error, K − mean(K)": smooth,
                     "reduction": plain / smooth})  # fmt: skip
        ctx.metric(f"sage.int{b}.reduction", plain / smooth)
    ctx.table(rows, "SageAttention: integer QKᵀ (blocks of 64 tokens) on keys with a shared 5σ "
              "channel offset; relative error of the attention output. Subtracting the mean key "
              "leaves softmax(QKᵀ) unchanged and frees the integer range for what tells the keys "
              "apart.")  # fmt: skip


def _sparse_section(ctx) -> None:
    frames, height, width = 8, 4, 4
    kinds = ("spatial", "temporal") * 4
    masks = {"spatial": spatial_mask(frames, height, width),
             "temporal": temporal_mask(frames, height, width)}  # fmt: skip
    tiles = sliding_tile_mask(frames, height, width, (2, 2, 2), (3, 3, 3))
    rows, correct = [], []
    for seed in range(budget(full=3, fast=1)):
        g = ctx.generator(60 + seed)
        q, k, v = video_heads_problem(frames, height, width, kinds, generator=g)
        names, _ = profile_heads(q, k, v, masks, queries=32, generator=g)
        correct.append(sum(a == b for a, b in zip(names, kinds)) / len(kinds))
        exact = masked_attention(q, k, v)
        for label, mask in (("profiled spatial / temporal heads",
                             torch.stack([masks[n] for n in names])),
                            ("sliding tiles 2×2×2, window 3×3×3", tiles),
                            ("every head spatial", masks["spatial"])):  # fmt: skip
            rows.append({"mask": label, "seed": seed, "density": density(mask),
                         "output error": relative_error(masked_attention(q, k, v, mask), exact)})  # fmt: skip
    accuracy = sum(correct) / len(correct)
    ctx.table(rows, f"Sparse VideoGen on a synthetic clip ({frames} frames of {height}×{width} "
              "tokens, 8 heads built half spatial, half temporal): profiling 32 sampled queries "
              f"names {100 * accuracy:.0f} % of the head types right. Density = the share of "
              "query–key pairs kept = the share of attention FLOPs a block-sparse kernel runs "
              "(a masked SDPA on a CPU computes them all). Sliding tiles assume locality, which "
              "these heads do not have.")  # fmt: skip
    ctx.metric("sparse.profiling_accuracy", accuracy)


def _frontier_section(ctx, teachers, fit, delta) -> None:
    test = get_dataset("digits", "test")
    y = test.labels[: budget(full=len(test), fast=100)]
    z = torch.randn(len(y), 1, 8, 8, generator=ctx.generator(7))
    students = l07.trained_students()
    rows, refs = [], {}
    for lever in levers(teachers, students=students, solver_nfes=(5, 10),
                        deepcache_intervals=(3,), fora_intervals=(2,),
                        teacache_settings=[(delta, fit.coefficients)],
                        quantisation=("W8A8, real INT8",)):  # fmt: skip
        ref, ref_flops = refs.get(lever.teacher, (None, None))
        row = measure(lambda lever=lever: lever.generate(z, y), ref, y, reference_flops=ref_flops,
                      technique=lever.technique, family=lever.family, teacher=lever.teacher,
                      NFE=lever.nfe)  # fmt: skip
        x = row.pop("_samples")
        if lever.family == "teacher":
            refs[lever.teacher] = (x, row["flops"])
            row["fraction"], row["psnr"] = 1.0, float("inf")
        rows.append(row)
    floor = helpers.digits_floor_row()
    fig, axes = figure(2, size=4.6)
    for ax, key, label in ((axes[0], "flops", "FLOPs per digit"),
                           (axes[1], "cpu_s", f"CPU seconds for {len(y)} digits")):  # fmt: skip
        for family, (colour, marker) in FAMILIES.items():
            pts = [r for r in rows if r["family"] == family]
            ax.scatter([r[key] for r in pts], [r["fd"] for r in pts], c=colour, marker=marker,
                       s=40 if marker == "*" else 16, label=family)  # fmt: skip
        ax.axhline(floor["FD (classifier)"], color="gray", ls=":", label="real digits (floor)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("FD (classifier features)")
    axes[0].legend(fontsize=7)
    ctx.figure(fig, f"The speed–quality map of the course: every lever on the same {len(y)} test "
               "labels and noises, from three teachers (MLP, U-Net, DiT). Left: FLOPs per digit "
               "(counted); right: CPU time of the batch on one thread (the real INT8 layers change "
               "what a FLOP costs, not how many there are; fake quantisation and 4-bit rows: "
               "lecture 10's slides and BENCHMARKS.md). Lower left is better; dotted: the data "
               "floor.")  # fmt: skip
    columns = ["technique", "family", "teacher", "NFE", "flops", "fraction", "cpu_s", "psnr", "fd",
               "confidence", "right class"]  # fmt: skip
    floor_row = {"technique": "real digits (floor)", "fd": floor["FD (classifier)"],
                 "confidence": floor["confidence"], "right class": floor["right class"],
                 "_floor": True}  # fmt: skip
    ctx.table([floor_row, *rows], "Every lever on the same axes: FLOPs per digit and their "
              "fraction of the teacher's 50-step sampler, CPU seconds for the batch, PSNR against "
              "that teacher's samples from the same noise, FD / confidence / right class against "
              "the test split.", columns)  # fmt: skip
    for r in rows:
        ctx.metric(f"frontier.{r['teacher']}.{r['technique']}.fd", r["fd"])
        ctx.metric(f"frontier.{r['teacher']}.{r['technique']}.fraction", r["fraction"])


@chapter(
    "L10",
    "Efficient diffusion: caching, quantisation, sparse attention",
    lecture=10,
    summary="DeepCache, FORA and TeaCache on the U-Net and DiT teachers; integer grids, "
    "SmoothQuant, SVDQuant, SageAttention, a real INT8 layer; Sparse VideoGen's head "
    "profiling; one speed–quality map with the solvers and the few-step students.",
    slides="lectures/10-efficient/slides.pdf",
    code=[
        "visgen.efficient.cache.CachedDenoiser",
        "visgen.efficient.deepcache.deepcache",
        "visgen.efficient.fora.fora",
        "visgen.efficient.teacache.teacache",
        "visgen.efficient.quant.QuantLinear",
        "visgen.efficient.int8.Int8Linear",
        "visgen.efficient.sage.sage_attention",
        "visgen.efficient.sparse.profile_heads",
        "visgen.efficient.frontier.levers",
    ],
)
def run(ctx) -> None:
    teachers = {
        "MLP": get_task("digits").teacher,
        "U-Net": ctx.asset("fm_digits_unet").denoiser(),
        "DiT": ctx.asset("fm_digits_dit").denoiser(),
    }
    ctx.text(
        "A sample costs *calls × cost per call*. Lectures 4, 6 and 7 made fewer calls; this "
        "chapter makes each call cheaper, on the same digits teachers: a U-Net "
        "(`fm_digits_unet`) and a DiT with 16 tokens (`fm_digits_dit`). **Caching** reuses "
        "features that barely changed since the last step: DeepCache keeps the U-Net's deep "
        "feature and recomputes only its shallow branch, FORA keeps every DiT block's attention "
        "and MLP output, TeaCache skips the whole block stack while the accumulated change of "
        "the timestep-modulated input — rescaled by a polynomial fitted on calibration runs — "
        "stays below a threshold. Compute is *counted* (FLOPs of every matmul and attention), "
        "never timed here.",
        "**Quantisation** computes on integer grids: errors against bits, SmoothQuant and "
        "SVDQuant on a layer with realistic outliers, SageAttention's smoothed keys, and the "
        "DiT with fake-quantised and real INT8 (`torch._int_mm`) linear layers. **Sparse "
        "attention** for video keeps only the query–key pairs a head needs; Sparse VideoGen "
        "decides online whether a head is spatial or temporal. The last section puts every "
        "lever of the course — solvers, few-step students, caches, integers — on one map.",
    )
    z, y = _batch(ctx, budget(full=32, fast=16), 2)
    _similarity_section(ctx, teachers["U-Net"], teachers["DiT"], z, y)
    fit, delta = _caching_section(ctx, teachers["U-Net"], teachers["DiT"], z, y)
    _cfg_section(ctx, teachers["DiT"], z, y)
    _quant_section(ctx)
    _sparse_section(ctx)
    _frontier_section(ctx, teachers, fit, delta)
