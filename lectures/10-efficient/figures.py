"""Figures and measured numbers of lecture 10 (efficient diffusion: caching, sparse attention,
quantisation, and the speed–quality map of the course).

Every number is computed by visgen on the cached teachers ``fm_digits`` (MLP),
``fm_digits_unet`` and ``fm_digits_dit`` and the few-step students of tour chapter L07
(``fewstep.trained`` with the tour's 600 generator updates, so ``visgen tour`` and the slides
share the cache): caches from :mod:`visgen.efficient` (DeepCache, FORA, TeaCache with its
calibration, the uniform residual cache), fake and real quantisation, SageAttention, the
sparse masks of Sparse VideoGen on synthetic heads, FLOPs from ``efficient.flop_table``,
quality from ``visgen.metrics``.

Run: ``python -m visgen.course.slides --only 10 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import functools
import math
import os
import statistics

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter, ScalarFormatter
from torch import nn

import visgen.fewstep  # noqa: F401  (registers fm_digits_unet)
from visgen.config import is_fast
from visgen.course import helpers
from visgen.course.chapters import l07_distribution_matching as l07
from visgen.course.figurebook import FigureBook, num
from visgen.data import get_dataset
from visgen.efficient import (
    CachedDenoiser,
    Int8Linear,
    QuantLinear,
    block_density,
    calibrate_teacache,
    compare_at_matched_skips,
    deepcache,
    density,
    flop_table,
    fora,
    key_offset_problem,
    masked_attention,
    outlier_problem,
    position_major,
    profile_heads,
    relative_error,
    sage_attention,
    sliding_tile_mask,
    smooth_keys,
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
STEPS = REFERENCE_STEPS
N_PSNR = 64  # samples for the PSNR curves
INTERVALS = (2, 3, 4, 6)
W4A4 = {"w_bits": 4, "a_bits": 4, "w_granularity": "group", "a_granularity": "group"}
FAMILIES = {
    "teacher": ("k", "*", "teachers, 50 Euler steps"),
    "solver (L4)": (BLUE, "o", "solvers (lecture 4)"),
    "few-step (L6–7)": (GREEN, "^", "few-step students (L6–7)"),
    "caching (L10)": (ORANGE, "s", "caching"),
    "quantisation (L10)": (RED, "D", "quantisation"),
}


@functools.cache
def teachers() -> dict:
    return {
        "MLP": get_task("digits").teacher,
        "U-Net": asset("fm_digits_unet", progress=False).denoiser(),
        "DiT": asset("fm_digits_dit", progress=False).denoiser(),
    }


def _batch(n: int, seed: int):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)), torch.arange(
        n
    ) % 10


def _euler(den, z, y):
    return sample_euler(den, z, uniform(STEPS), y)


@functools.cache
def teacache_fit():
    runs = [_batch(16, 100 + i) for i in range(16)]
    return calibrate_teacache(teachers()["DiT"], runs, sample_euler, uniform(STEPS))


@functools.cache
def matched_teacache():
    """TeaCache against the uniform cache N = 2 at the same number of full calls on the PSNR
    batch (``efficient.compare_at_matched_skips``, the course's one matching rule)."""
    z, y = _batch(N_PSNR, 2)
    return compare_at_matched_skips(teachers()["DiT"], teacache_fit().coefficients, z, y,
                                    sample_euler, uniform(STEPS))  # fmt: skip


def _share(x: float) -> str:
    return f"{100 * x:.0f} %"


def _change(x: float, ref: float) -> str:
    return f"{'+' if x >= ref else '−'}{abs(100 * (x / ref - 1)):.1f} %"


@book.figure
def similarity(results):
    """Cosine similarity of the cached features between consecutive Euler steps."""
    # the slides warn when their numbers come from the FAST smoke-test teachers
    results["budget"] = "FAST" if is_fast() else "full"
    t = teachers()
    for name, key in (("MLP", "mlp"), ("U-Net", "unet"), ("DiT", "dit")):
        args = torch.zeros(1, 1, 8, 8), torch.full((1,), 0.5), torch.tensor([1])
        table = flop_table(t[name].model, *args)
        results[f"{key}_mflops"] = num(table[""] / 1e6, 2)
        if key == "dit":
            results["dit_sample_gflops"] = num(STEPS * table[""] / 1e9, 2)
        if key == "unet":
            cached = deepcache(t[name], steps=STEPS, interval=3)
            cached.hook.table = table
            cached.hook.bind(t[name].model)
            results["unet_rho"] = num(cached.hook.partial_flops() / table[""], 2)
    z, y = _batch(N_PSNR, 1)
    results["sim_n"] = str(N_PSNR)
    fig, ax = plt.subplots(figsize=(6.2, 4.0))
    for label, key, cached, store, colour in (
        ("U-Net deep feature (DeepCache)", "unet", deepcache(t["U-Net"], steps=STEPS, interval=1),
         "deep", BLUE),
        ("DiT block-stack residual (TeaCache)", "dit", uniform_cache(t["DiT"], steps=STEPS,
                                                                     interval=1), "residual", ORANGE),
        ("DiT block-2 attention output (FORA)", "fora", fora(t["DiT"], steps=STEPS, interval=1),
         (1, "attn"), GREEN),
    ):  # fmt: skip
        previous, cosines = [], []

        def record(i, t_, x, pred, cached=cached, store=store, previous=previous, cosines=cosines):
            feature = next(iter(cached.states.values())).store[store].flatten(1)
            if previous:
                cosines.append(float(torch.cosine_similarity(feature, previous[0], 1).mean()))
            previous[:] = [feature.clone()]

        sample_euler(cached, z, uniform(STEPS), y, callback=record)
        results[f"sim_{key}_share"] = _share(sum(c > 0.9 for c in cosines) / len(cosines))
        ax.plot(range(1, STEPS), cosines, color=colour, label=label)
    ax.set_xlabel("Euler step (t from 1 to 0)")
    ax.set_ylabel("cosine to the previous step")
    ax.legend(fontsize=11, loc="lower center")
    return fig


def _sweep(plain, makers, z, y):
    rows = []
    for (method, setting), make in makers.items():
        cached = make()
        x = _euler(cached, z, y)
        rows.append((method, setting, cached.stats["computed"], cached.stats["fraction"],
                     float(psnr(x, plain).mean())))  # fmt: skip
    return rows


def _cfg_numbers(results):
    """Two-pass CFG through FORA N = 2: one cache per branch vs one shared cache."""
    dit = teachers()["DiT"]
    z, y = _batch(N_PSNR, 3)

    class TwoPass:
        def __init__(self, den):
            self.den = den

        def __call__(self, x, t, cond):
            c = self.den(x, t, cond).velocity
            u = self.den(x, t, torch.full_like(cond, -1)).velocity
            return u + 2.0 * (c - u)

    exact = _euler(classifier_free_guidance(dit, 2.0), z, y)
    for key, per_branch in (("cfg_branch_psnr", True), ("cfg_shared_psnr", False)):
        cached = CachedDenoiser(dit, FORAHook(FORAConfig(STEPS, 2)), per_branch=per_branch)
        x = _euler(Denoiser(TwoPass(cached), dit.schedule, "velocity"), z, y)
        results[key] = num(float(psnr(x, exact).mean()), 3)


@book.figure
def caching(results):
    """TeaCache's calibration and the caching curves (FLOP fraction vs PSNR)."""
    t, fit = teachers(), teacache_fit()
    unet, dit = t["U-Net"], t["DiT"]
    z, y = _batch(N_PSNR, 2)
    plain_unet, plain_dit = _euler(unet, z, y), _euler(dit, z, y)
    unet_rows = _sweep(plain_unet, {("DeepCache", n): (lambda n=n: deepcache(unet, steps=STEPS,
                                                                             interval=n))
                                    for n in INTERVALS}, z, y)  # fmt: skip
    dit_rows = _sweep(plain_dit, {
        **{("FORA", n): (lambda n=n: fora(dit, steps=STEPS, interval=n)) for n in INTERVALS},
        **{("uniform residual cache", n): (lambda n=n: uniform_cache(dit, steps=STEPS, interval=n))
           for n in INTERVALS},
        **{("TeaCache", d): (lambda d=d: teacache(dit, steps=STEPS, threshold=d,
                                                  coefficients=fit.coefficients))
           for d in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)},
    }, z, y)  # fmt: skip
    matched = matched_teacache()
    results["tea_r2"] = num(fit.r2, 2)
    results["tea_delta"] = num(matched.threshold, 2)
    results["tea_psnr"] = num(matched.teacache_psnr, 3)
    results["uni2_psnr"] = num(matched.uniform_psnr, 3)
    results["uni2_computed"] = str(matched.uniform_computed)
    results["fora2_computed"] = str(next(r[2] for r in dit_rows if r[0] == "FORA" and r[1] == 2))
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9))
    axes[0].scatter(fit.x, fit.y, s=4, alpha=0.35, color=GREY, label="calibration pairs")
    grid = np.linspace(0, fit.x.max(), 100)
    # the cache reads max(f, 0) (teacache.py): the raw polynomial dips below 0 near r = 0
    axes[0].plot(grid, np.maximum(np.polyval(fit.coefficients, grid), 0), color="k",
                 label="degree-4 fit, clamped at 0")  # fmt: skip
    axes[0].set_xlabel("input change (rel. L1)")
    axes[0].set_ylabel("output change (rel. L1)")
    axes[0].set_title("TeaCache calibration (DiT)")
    axes[0].legend(fontsize=10)
    colours = {"DeepCache": BLUE, "FORA": GREEN, "uniform residual cache": GREY, "TeaCache": ORANGE}
    for ax, rows, title in ((axes[1], unet_rows, "U-Net"), (axes[2], dit_rows, "DiT")):
        for method in dict.fromkeys(r[0] for r in rows):
            pts = [r for r in rows if r[0] == method]
            ax.plot([r[3] for r in pts], [r[4] for r in pts], "o-", color=colours[method],
                    label=method, ms=4)  # fmt: skip
        ax.set_xlabel("fraction of the FLOPs")
        ax.set_ylabel("PSNR vs uncached (dB)")
        ax.set_title(f"{title} teacher, 50 Euler steps")
        ax.legend(fontsize=10)
    axes[2].plot([matched.teacache_fraction], [matched.teacache_psnr], "*", color=ORANGE, ms=14)
    fig.tight_layout()
    _cfg_numbers(results)
    return fig


@functools.cache
def frontier_rows():
    """Every lever on the 397 test labels (the rows of the frontier and the quality tables)."""
    t, fit, delta = teachers(), teacache_fit(), matched_teacache().threshold
    dit = t["DiT"]
    calib = [_batch(16, 200 + i) for i in range(2)]

    def calibrate(model):
        den = Denoiser(model, dit.schedule, dit.prediction)
        for zc, yc in calib:
            _euler(den, zc, yc)

    students = l07.trained_students()
    y = get_dataset("digits", "test").labels
    z = torch.randn(len(y), 1, 8, 8, generator=torch.Generator().manual_seed(7))
    rows, refs = [], {}
    for lever in levers(t, students=students, solver_nfes=(5, 10),
                        deepcache_intervals=(3,), fora_intervals=(2,),
                        teacache_settings=[(delta, fit.coefficients)], calibrate=calibrate):  # fmt: skip
        ref, ref_flops = refs.get(lever.teacher, (None, None))
        row = measure(lambda lever=lever: lever.generate(z, y), ref, y, reference_flops=ref_flops,
                      technique=lever.technique, family=lever.family, teacher=lever.teacher,
                      NFE=lever.nfe)  # fmt: skip
        x = row.pop("_samples")
        if lever.family == "teacher":
            refs[lever.teacher] = (x, row["flops"])
            row["fraction"], row["psnr"] = 1.0, float("inf")
        rows.append(row)
    return rows, len(y)


def _row(rows, technique, teacher):
    return next(r for r in rows if r["technique"] == technique and r["teacher"] == teacher)


@book.figure
def frontier(results):
    """FD against FLOPs per sample and CPU time for every lever of the course."""
    rows, n = frontier_rows()
    floor = helpers.digits_floor_row()
    results["fd_n"] = str(n)
    results["floor_fd"] = num(floor["FD (classifier)"], 3)
    unet, dit = _row(rows, "U-Net teacher", "U-Net"), _row(rows, "DiT teacher", "DiT")
    results["unet_fd"], results["dit_fd"] = num(unet["fd"], 3), num(dit["fd"], 3)
    results["mlp_fd"] = num(_row(rows, "MLP teacher", "MLP")["fd"], 3)
    for key, technique, teacher in (("dc3", "DeepCache N = 3", "U-Net"),
                                    ("fora2", "FORA N = 2", "DiT")):  # fmt: skip
        r = _row(rows, technique, teacher)
        ref = unet if teacher == "U-Net" else dit
        results[f"{key}_fraction"] = num(r["fraction"], 2)
        results[f"{key}_psnr"] = num(r["psnr"], 3)
        results[f"{key}_fd"] = num(r["fd"], 3)
        results[f"{key}_fd_change"] = _change(r["fd"], ref["fd"])
    tea = next(r for r in rows if r["technique"].startswith("TeaCache"))
    results["tea_fraction"] = num(tea["fraction"], 2)
    results["tea_psnr_fd"] = num(tea["psnr"], 3)
    results["tea_fd"] = num(tea["fd"], 3)
    results["tea_fd_change"] = _change(tea["fd"], dit["fd"])
    for key, technique in (("w8a8", "W8A8 (fake-quant)"), ("int8", "W8A8, real INT8"),
                           ("w4a16", "W4A16, groups of 64"), ("w4a4", "W4A4, naive"),
                           ("smooth", "W4A4, SmoothQuant"), ("svdq", "W4A4, SVDQuant rank 16")):  # fmt: skip
        r = _row(rows, technique, "DiT")
        results[f"q_{key}_psnr"] = num(r["psnr"], 3)
        results[f"q_{key}_fd"] = num(r["fd"], 3)
        results[f"q_{key}_change"] = _change(r["fd"], dit["fd"])
    dpm = _row(rows, "DPM-Solver++(2M), 10 NFE", "DiT")
    results["dpm10_fraction"] = num(dpm["fraction"], 2)
    results["dpm10_fd"] = num(dpm["fd"], 3)
    one_step = [r for r in rows if r["family"] == "few-step (L6–7)" and r["NFE"] == 1]
    best = min(one_step, key=lambda r: r["fd"])
    results["best_student_fd"] = num(best["fd"], 3)
    results["best_student"] = f"{best['technique'].split(',')[0]} on the {best['teacher']} teacher"
    saving = [1 / r["fraction"] for r in rows if r["family"] == "few-step (L6–7)"]
    results["student_saving"] = f"{num(min(saving), 2)}–{num(max(saving), 2)}"
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6))
    for ax, key, label in ((axes[0], "flops", "FLOPs per generated digit"),
                           (axes[1], "cpu_s", f"CPU seconds for {n} digits (one thread)")):  # fmt: skip
        for family, (colour, marker, name) in FAMILIES.items():
            pts = [r for r in rows if r["family"] == family]
            ax.scatter([r[key] for r in pts], [r["fd"] for r in pts], c=colour, marker=marker,
                       s=110 if marker == "*" else 40, label=name, zorder=3)  # fmt: skip
        ax.axhline(floor["FD (classifier)"], color=GREY, ls=":", label="real digits (floor)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("FD (classifier features)")
        ax.set_yticks([10, 20, 50, 100, 200], minor=False)  # plain FD values, not powers of 10
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    # one legend for both panels, below them: inside the axes it covered the points
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.15, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=12, frameon=False,
               bbox_to_anchor=(0.5, 0), columnspacing=1.2, handletextpad=0.3)  # fmt: skip
    return fig


@book.figure
def quant_bits(results):
    """Error against bits on the outlier layer; SVDQuant's rank sweep."""
    x, layer = outlier_problem(generator=torch.Generator().manual_seed(0))
    y = layer(x).detach()
    bits = list(range(2, 9))
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9))
    for granularity, colour in (("tensor", GREY), ("channel", BLUE), ("group", ORANGE)):
        w = [relative_error(QuantLinear(layer, w_bits=b, a_bits=16, w_granularity=granularity)(x), y)
             for b in bits]  # fmt: skip
        a = [relative_error(QuantLinear(layer, w_bits=16, a_bits=b, a_granularity=granularity)(x), y)
             for b in bits]  # fmt: skip
        label = {"tensor": "per tensor", "channel": "per channel / token", "group": "groups of 64"}
        axes[0].semilogy(bits, w, "o-", color=colour, label=label[granularity], ms=4)
        axes[1].semilogy(bits, a, "o-", color=colour, label=label[granularity], ms=4)
        results[f"err_w4_{granularity}"] = num(w[2], 2)
        results[f"err_a4_{granularity}"] = num(a[2], 2)
    for ax, title in ((axes[0], "weights only (A16)"), (axes[1], "activations only (W16)")):
        ax.set_xlabel("bits")
        ax.set_ylabel("relative output error")
        ax.set_title(title)
        ax.legend(fontsize=10)
    s = smoothing_factors(x.abs().amax(0), layer.weight, 0.5)
    ranks = [0, 4, 8, 16, 32, 64]
    naive = relative_error(QuantLinear(layer, **W4A4)(x), y)
    svdq = [relative_error(QuantLinear(layer, **W4A4, smooth=s, rank=r)(x), y) for r in ranks]
    low = [relative_error(QuantLinear(layer, **W4A4, rank=r)(x), y) for r in ranks]
    results["err_naive"], results["err_smooth"] = num(naive, 2), num(svdq[0], 2)
    results["err_lowrank"] = num(low[ranks.index(32)], 2)
    results["err_svdq8"], results["err_svdq32"] = num(svdq[2], 2), num(svdq[4], 2)
    results["svdq32_over_naive"] = num(svdq[4] / naive, 2)
    results["svdq32_over_smooth"] = num(svdq[4] / svdq[0], 2)
    axes[2].axhline(naive, color="k", ls="--", label="naive W4A4")
    axes[2].plot(ranks, low, "o-", color=GREY, label="low-rank branch only", ms=4)
    axes[2].plot(ranks, svdq, "o-", color=RED, label="SmoothQuant + branch (SVDQuant)", ms=4)
    axes[2].set_xlabel("rank r of the 16-bit branch")
    axes[2].set_ylabel("relative output error, W4A4")
    axes[2].set_title("SVDQuant (rank 0 = SmoothQuant)")
    axes[2].legend(fontsize=10)
    fig.tight_layout()
    q, k, v = key_offset_problem(generator=torch.Generator().manual_seed(0))
    scale = 1 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.transpose(-1, -2) * scale, -1)
    shift = (torch.softmax(q @ smooth_keys(k).transpose(-1, -2) * scale, -1) - p).abs().max()
    results["sage_shift"] = num(float(shift), 2)
    exact = p @ v
    for b in (8, 4):
        plain = relative_error(sage_attention(q, k, v, bits=b, smooth_k=False), exact)
        smooth = relative_error(sage_attention(q, k, v, bits=b), exact)
        results[f"sage{b}_plain"], results[f"sage{b}_smooth"] = num(plain, 2), num(smooth, 2)
        results[f"sage{b}_red"] = num(plain / smooth, 2)
    return fig


@book.figure(fmt="png")
def masks(results):
    """Sparse VideoGen's masks, sliding tiles, the layout transformation; profiling numbers."""
    frames, height, width = 8, 4, 4
    results["clip_frames"], results["clip_tokens"] = str(frames), f"{height}×{width}"
    spatial, temporal = spatial_mask(frames, height, width), temporal_mask(frames, height, width)
    sta = sliding_tile_mask(frames, height, width, (2, 2, 2), (3, 3, 3))
    perm = position_major(frames, height, width)
    results["temporal_density"] = _share(density(temporal))
    results["temporal_block_density"] = _share(block_density(temporal, 8))
    kinds = ("spatial", "temporal") * 4
    cands = {"spatial": spatial, "temporal": temporal}
    correct, dens, errs, sta_errs = [], [], [], []
    seeds = range(5)
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        q, k, v = video_heads_problem(frames, height, width, kinds, generator=g)
        names, _ = profile_heads(q, k, v, cands, queries=32, generator=g)
        correct.append(sum(a == b for a, b in zip(names, kinds)) / len(kinds))
        chosen = torch.stack([cands[n] for n in names])
        exact = masked_attention(q, k, v)
        dens.append(density(chosen))
        errs.append(relative_error(masked_attention(q, k, v, chosen), exact))
        sta_errs.append(relative_error(masked_attention(q, k, v, sta), exact))
    results["sparse_seeds"] = str(len(seeds))
    results["sparse_acc"] = _share(statistics.mean(correct))
    results["sparse_density"] = _share(statistics.mean(dens))
    results["sparse_err"] = f"{100 * min(errs):.1f}–{100 * max(errs):.1f} %"
    results["sta_density"] = _share(density(sta))
    results["sta_err"] = f"{100 * statistics.mean(sta_errs):.0f} %"
    fig, axes = plt.subplots(1, 4, figsize=(12.0, 3.3))
    for ax, mask, title in ((axes[0], spatial, "spatial"), (axes[1], temporal, "temporal"),
                            (axes[2], sta, "sliding tiles"),
                            (axes[3], temporal[perm][:, perm], "temporal, reordered")):  # fmt: skip
        ax.imshow(mask.numpy(), cmap="Greys", interpolation="nearest")
        ax.set_title(f"{title} ({_share(density(mask))})", fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


@book.figure
def int8_speed(results):
    """CPU time of the DiT's block linear layers: fp32, naive W8A8, Int8Linear."""
    dit = teachers()["DiT"]
    y = get_dataset("digits", "test").labels
    z = torch.randn(len(y), 1, 8, 8, generator=torch.Generator().manual_seed(3))
    inputs = []
    hooks = [m.register_forward_hook(lambda m, a, out: inputs.append((m, a[0].clone())))
             for name, m in dit.model.named_modules()
             if isinstance(m, nn.Linear) and ".image." in name and ".ada" not in name]  # fmt: skip
    with torch.no_grad():
        sample_euler(dit, z, torch.tensor([0.5, 0.48], dtype=torch.float64), y)
    for h in hooks:
        h.remove()
    results["int8_layers"] = str(len(inputs))
    results["int8_rows"] = str(inputs[0][1].numel() // inputs[0][1].shape[-1])

    def naive(layer):  # quantise and rescale with fresh tensors: the slow way
        w = layer.weight.detach()
        sw = w.abs().amax(1) / 127
        wq = torch.round(w / sw[:, None]).to(torch.int8).T.contiguous()

        def run(x):
            x2 = x.reshape(-1, x.shape[-1])
            s = x2.abs().amax(1, keepdim=True) / 127
            acc = torch._int_mm(torch.round(x2 / s).to(torch.int8), wq)
            return acc * sw * s + layer.bias

        return run

    paths = {"fp32": [(m, x) for m, x in inputs],
             "naive W8A8": [(naive(m), x) for m, x in inputs],
             "Int8Linear": [(Int8Linear(m), x) for m, x in inputs]}  # fmt: skip
    a = torch.randint(-127, 128, (4096, 256), dtype=torch.int8)
    b = torch.randint(-127, 128, (256, 1024), dtype=torch.int8)
    af, bf = a.float(), b.float()
    raw = {"fp32 matmul": lambda: af @ bf, "_int_mm": lambda: torch._int_mm(a, b)}

    def layers_of(path):
        return lambda: [fn(x) for fn, x in path]

    load = os.getloadavg()[0]
    with torch.no_grad():
        timing = interleaved_medians({**{k: layers_of(v) for k, v in paths.items()}, **raw}, 7)
    med = {k: t.cpu for k, t in timing.items()}
    results["int8_speedup"] = num(med["fp32"] / med["Int8Linear"], 2)
    results["naive_speedup"] = num(med["fp32"] / med["naive W8A8"], 2)
    results["intmm_speedup"] = num(med["fp32 matmul"] / med["_int_mm"], 2)
    results["int8_load"] = num(load, 2)
    fig, ax = plt.subplots(figsize=(6.0, 2.6))
    names = list(paths)
    ax.barh(names, [1e3 * med[k] for k in names], color=[GREY, RED, BLUE])
    ax.set_xlabel("CPU ms, all block linear layers of one DiT call")
    ax.invert_yaxis()
    return fig


if __name__ == "__main__":
    book.run()
