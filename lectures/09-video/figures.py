"""Figures and measured numbers of lecture 9 (video generation and autoregressive video
diffusion).

Every panel is computed by visgen: the procedural clips and their physics
(``data.video``), the attention masks and pair counts of the video DiT (``video.dit``), the
KV-cached sampler against recomputation on random weights (``video.sampling``), and the
trained assets of the tour chapter L09 (``video.assets``: the bidirectional teacher, teacher
forcing, diffusion forcing, CausVid and Self-Forcing with chunks of 1 and 4 frames, seed 0;
the benchmark ``benchmarks/video.py`` adds seeds 1 and 2), scored by ``video.evaluation``.

Run: ``python -m visgen.course.slides --only 09 --figures always`` (or ``python figures.py``).
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import torch

from visgen.course.figurebook import FigureBook, num
from visgen.data import tokenize_captions
from visgen.data.video import bouncing_shapes
from visgen.sampling import sample_euler, uniform
from visgen.train import asset
from visgen.video.assets import TRAIN_FRAMES, architecture
from visgen.video.dit import VideoDiT, chunk_mask, randomize_zero_init
from visgen.video.evaluation import CONTEXT, eval_clips, rollout_metrics
from visgen.video.metrics import acceleration, trajectory_error
from visgen.video.sampling import (
    generate,
    generate_recompute,
    kv_cache_bytes,
    token_forwards,
    video_denoiser,
)

book = FigureBook(__file__)
BLUE, ORANGE, GREEN, PURPLE, GREY, RED = (
    "#1f5fa8",
    "#c2571a",
    "#2f7d32",
    "#5b4a8a",
    "#6b7280",
    "#b3261e",
)
T = TRAIN_FRAMES
METHODS = {"tf": ("teacher forcing", RED), "df": ("diffusion forcing", ORANGE),
           "causvid": ("CausVid", PURPLE), "sf": ("Self-Forcing", BLUE)}  # fmt: skip
N_EVAL = 128


def _hide(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


def _frames(axes_row, video, label=None):
    for ax, frame in zip(axes_row, video):
        ax.imshow(frame[0].numpy(), cmap="gray", vmin=-1, vmax=1)
        _hide(ax)
    if label:
        axes_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=13)


def _model(chunk: int, seed: int = 0) -> VideoDiT:
    arch = {k: v for k, v in architecture(chunk).items() if k != "name"}
    return randomize_zero_init(VideoDiT(**arch), seed=seed).eval()


@book.figure(fmt="png")
def clips(results):
    """Three real clips (12 frames) and the x, y trajectory of the first, bounces marked."""
    c = bouncing_shapes(3, 12, 16, seed=4, channels=1, sizes=("medium",))
    fig = plt.figure(figsize=(11, 3.2))
    grid = fig.add_gridspec(3, 18, wspace=0.05, hspace=0.08)
    for r in range(3):
        _frames([fig.add_subplot(grid[r, f]) for f in range(12)], c.video[r])
    ax = fig.add_subplot(grid[:, 13:])
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    ax.plot(c.position[0, :, 0, 0], c=BLUE, label="x")
    ax.plot(c.position[0, :, 0, 1], c=ORANGE, label="y")
    for f in torch.nonzero(c.bounce[0, :, 0]).flatten().tolist():
        ax.axvline(f - 0.5, c=GREY, lw=0.8, ls="--")
    ax.set_xlabel("frame")
    ax.set_ylabel("centre (px)")
    ax.legend(frameon=False, fontsize=11)
    real = eval_clips(N_EVAL)
    err = trajectory_error(real.video, real.position)
    results["track_floor"] = num(float(err["position"].mean()), 2)
    results["track_floor_vel"] = num(float(err["velocity"].mean()), 2)
    return fig


@book.figure
def masks(results):
    """Full, factorised (spatial + temporal) and block-causal masks; pair counts."""
    f, p = 8, 4
    frames = torch.arange(f).repeat_interleave(p)
    cells = torch.arange(p).repeat(f)
    panels = [
        ("full 3D", torch.ones(f * p, f * p, dtype=torch.bool)),
        ("spatial", frames[:, None] == frames[None, :]),
        ("temporal", cells[:, None] == cells[None, :]),
        ("block-causal, $k = 2$", chunk_mask(frames, frames, 2)),
        ("window 4, sink 2", chunk_mask(frames, frames, 2, window=4, sink=2)),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.4))
    axes = axes.flatten()
    axes[-1].set_axis_off()
    for ax, (title, mask) in zip(axes, panels):
        ax.imshow(mask.numpy(), cmap="Greys", interpolation="nearest")
        ax.set_title(title, fontsize=22)
        _hide(ax)
        results[f"pairs_{title.split(',')[0].split()[0].replace('-', '')}"] = str(int(mask.sum()))
    results["pairs_factorised"] = str(int(panels[1][1].sum() + panels[2][1].sum()))
    fig.tight_layout()
    return fig


@book.figure
def cache_cost(results):
    """Token-forwards of cached vs recomputed sampling; the oracles on random weights."""
    p, steps = 4, 4
    frames = torch.arange(4, 65, 4)
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    for chunk, style in ((1, "-"), (4, "--")):
        cached = [token_forwards(int(n), chunk, steps, p) for n in frames]
        full = [token_forwards(int(n), chunk, steps, p, cached=False) for n in frames]
        ax.plot(frames, full, style, c=RED, label=f"recompute, chunk {chunk}")
        ax.plot(frames, cached, style, c=BLUE, label=f"KV cache, chunk {chunk}")
    ax.set_xlabel("frames $T$")
    ax.set_ylabel("token-forwards per video")
    ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=10)
    fig.tight_layout()
    # oracles on random weights of the lecture's architecture
    model = _model(1)
    cond = tokenize_captions(bouncing_shapes(4, 2, 16, seed=0, channels=1).captions)
    kw = dict(cond=cond)
    timings = {}
    for name, fn in (("cached", generate), ("recomputed", generate_recompute)):
        start = time.process_time()
        video = fn(model, 32, uniform(steps), generator=torch.Generator().manual_seed(0), **kw)
        timings[name] = (time.process_time() - start, video)
    results["cache_err"] = num(
        float((timings["cached"][1] - timings["recomputed"][1]).abs().max()), 1
    )
    results["cache_cpu"] = num(timings["cached"][0], 2)
    results["recompute_cpu"] = num(timings["recomputed"][0], 2)
    results["tokens_cached"] = str(token_forwards(32, 1, steps, p))
    results["tokens_recomputed"] = str(token_forwards(32, 1, steps, p, cached=False))
    rope = model.rope
    model.rope = lambda fr, per_token: rope(fr % 1, per_token)  # chunk-relative positions
    buggy = generate(model, 32, uniform(steps), generator=torch.Generator().manual_seed(0), **kw)
    model.rope = rope
    results["offset_err"] = num(float((buggy - timings["cached"][1]).abs().max()), 2)
    rolled = generate(model, 32, uniform(steps), window=6, sink=2,
                      generator=torch.Generator().manual_seed(0), **kw)  # fmt: skip
    sliding = generate_recompute(model, 32, uniform(steps), window=6, sink=2,
                                 generator=torch.Generator().manual_seed(0), **kw)  # fmt: skip
    results["rolling_err"] = num(float((rolled - sliding).abs().max()), 1)
    wan = type("Wan", (), dict(depth=30, tokens_per_frame=1560, heads=12, dim=1536))
    results["wan_kv21"] = num(kv_cache_bytes(wan, 21, bytes_per_value=2) / 1e9, 2)
    results["wan_kv81"] = num(kv_cache_bytes(wan, 81, bytes_per_value=2) / 1e9, 2)
    results["wan_kv_roll"] = num(
        kv_cache_bytes(wan, 81, bytes_per_value=2, window=9, sink=3) / 1e9, 2
    )
    results["toy_kv32"] = num(kv_cache_bytes(model, 32) / 1e3, 2)
    return fig


_CACHE: dict = {}


def _rollouts(chunk: int) -> dict:
    """4× rollouts of every causal model (seed 0 assets), computed once per chunk size."""
    if chunk not in _CACHE:
        clips = eval_clips(N_EVAL)
        _CACHE[chunk] = {
            kind: rollout_metrics(
                asset(f"video_{kind}_c{chunk}", progress=False).model, clips, seed=1
            )  # fmt: skip
            for kind in METHODS
        }
    return _CACHE[chunk]


@book.figure(fmt="png")
def samples(results):
    """The bidirectional teacher's clips, then 2× rollouts of every causal model (chunk 1)."""
    teacher = asset("video_teacher", progress=False)
    clips = eval_clips(N_EVAL)
    noise = torch.randn(1, T, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    cond = tokenize_captions(clips.captions[:1])
    bidir = sample_euler(video_denoiser(teacher.model), noise, uniform(16), cond)
    many = torch.randn(N_EVAL, T, 1, 16, 16, generator=torch.Generator().manual_seed(6))
    clips_cond = tokenize_captions(clips.captions)
    sampled = sample_euler(video_denoiser(teacher.model), many, uniform(16), clips_cond)
    results["teacher_accel"] = num(float(acceleration(sampled).median()), 2)
    results["real_accel"] = num(float(acceleration(clips.video).median()), 2)
    rows = [("teacher (8 frames)", bidir[0]), ("real", clips.video[0, : 2 * T])]
    for kind, (label, _) in METHODS.items():
        rows.append((label, _rollouts(1)[kind]["video"][0, : 2 * T]))
    fig, axes = plt.subplots(len(rows), 2 * T, figsize=(11, 0.72 * len(rows) + 0.3))
    for (label, video), row in zip(rows, axes):
        _frames(row, video, label)
        for ax in row[len(video) :]:
            ax.set_axis_off()
    for row in axes[1:]:
        row[CONTEXT - 1].spines["right"].set_visible(True)
    fig.tight_layout(h_pad=0.1, w_pad=0.05)
    return fig


@book.figure
def drift(results):
    """Drift curves (position error per frame over 4× the training length), chunks 1 and 4."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    frames = torch.arange(4 * T)
    for ax, chunk in zip(axes, (1, 4)):
        r = _rollouts(chunk)
        for kind, (label, colour) in METHODS.items():
            ax.plot(frames[CONTEXT:], r[kind]["curve"][CONTEXT:], c=colour, label=label)
            results[f"c{chunk}_{kind}_err1"] = num(r[kind]["error"], 2)
            for h in (2, 4):
                results[f"c{chunk}_{kind}_drift{h}"] = num(r[kind]["drift"][h], 2)
                results[f"c{chunk}_{kind}_ratio{h}"] = num(
                    r[kind]["drift"][h] / r["tf"]["drift"][h], 2
                )
            results[f"c{chunk}_{kind}_accel"] = num(r[kind]["acceleration"], 2)
        ax.axvline(T - 0.5, c="k", lw=0.8, ls="--")
        ax.set_title(f"chunks of {chunk} frame{'s' if chunk > 1 else ''}", fontsize=14)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("position error (px)")
    axes[0].legend(frameon=False, fontsize=11)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    book.run()
