"""Tour chapter L09: video generation and autoregressive video diffusion (lecture 9)."""

from __future__ import annotations

import time

import torch

from visgen import budget
from visgen.course import chapter
from visgen.data import tokenize_captions
from visgen.data.video import bouncing_shapes, moving_digits
from visgen.sampling import sample_euler, uniform
from visgen.video import assets
from visgen.video.dit import VideoDiT, chunk_mask, randomize_zero_init
from visgen.video.evaluation import CONTEXT, eval_clips, rollout_metrics
from visgen.video.metrics import (
    acceleration,
    frame_frechet_distance,
    temporal_consistency,
    trajectory_error,
)
from visgen.video.sampling import (
    generate,
    generate_recompute,
    kv_cache_bytes,
    token_forwards,
    video_denoiser,
)
from visgen.viz import figure

T = assets.TRAIN_FRAMES
CHUNK = 1  # the chunk size of the chapter's causal models (the benchmark also runs 4)
METHODS = (
    ("tf", "teacher forcing"),
    ("df", "diffusion forcing"),
    ("causvid", "CausVid"),
    ("sf", "Self-Forcing"),
)
COLOURS = {"tf": "tab:red", "df": "tab:orange", "causvid": "tab:purple", "sf": "tab:blue"}


def _data_section(ctx) -> None:
    shapes = bouncing_shapes(4, 16, 32, seed=0, objects=2)
    digits = moving_digits(4, 16, 32, seed=1, objects=2)
    digits_rgb = digits.video.expand(-1, -1, 3, -1, -1)
    ctx.animation(torch.cat([shapes.video, digits_rgb]), "Procedural clips with exact physics "
                  "(`visgen.data.video`): two bouncing shapes and two moving digits per clip, "
                  "16 frames at 32×32, reflecting elastically off the walls.", nrow=4, scale=2,
                  fps=6)  # fmt: skip
    clips = eval_clips(64)
    errors = trajectory_error(clips.video, clips.position)
    other = eval_clips(64, seed=1)
    ctx.table(
        [
            {
                "clips": "real (the floor of every table below)",
                "tracking error (px)": float(errors["position"].mean()),
                "velocity error (px/frame)": float(errors["velocity"].mean()),
                "temporal consistency": float(temporal_consistency(clips.video).mean()),
                "frame FD": frame_frechet_distance(other.video, clips.video),
                "_floor": True,
            }
        ],
        "The metrics on real held-out clips: the tracker (centre of mass above a threshold) "
        "against the simulated centre, and frame Fréchet distance between two sets of real "
        "clips (PCA-16 of frames).",
    )


def _cache_section(ctx) -> None:
    model = randomize_zero_init(VideoDiT(**_arch(2)), seed=0).eval()
    g = ctx.generator(1)
    cond = torch.randint(0, 20, (4, 8), generator=g)
    frames, steps = 16, 4
    rows, videos = [], {}
    for name, fn in (("KV cache", generate), ("recompute", generate_recompute)):
        start = time.process_time()
        videos[name] = fn(model, frames, uniform(steps), cond=cond, generator=ctx.generator(2))
        cpu = time.process_time() - start
        tokens = token_forwards(frames, 2, steps, model.cfg.tokens_per_frame,
                                cached=name == "KV cache")  # fmt: skip
        rows.append({"sampling": name, "token-forwards per video": tokens, "CPU s": cpu})
    diff = float((videos["KV cache"] - videos["recompute"]).abs().max())
    rows[0]["max |cached − recomputed|"] = diff
    ctx.metric("cache.max_difference", diff)
    ctx.table(rows, f"{frames} frames in chunks of 2, {steps} denoising steps + the clean t = 0 "
              "pass per chunk, random weights: the cache gives the same video with "
              f"{rows[1]['token-forwards per video'] / rows[0]['token-forwards per video']:.1f}× "
              "fewer token-forwards.", ["sampling", "token-forwards per video", "CPU s",
                                        "max |cached − recomputed|"])  # fmt: skip
    tokens = torch.arange(8).repeat_interleave(4)
    fig, axes = figure(3, size=2.6)
    for ax, (title, mask) in zip(axes, [
        ("bidirectional", torch.ones(32, 32, dtype=torch.bool)),
        ("block-causal, chunks of 2", chunk_mask(tokens, tokens, 2)),
        ("window 2 + sink 2", chunk_mask(tokens, tokens, 2, window=2, sink=2)),
    ]):  # fmt: skip
        ax.imshow(mask.numpy(), cmap="Greys", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ctx.figure(fig, "Self-attention masks over 8 frames × 4 tokens (query rows, key columns; "
               "black = attends).")  # fmt: skip
    wan = type("Wan", (), dict(depth=30, tokens_per_frame=1560, heads=12, dim=1536))
    ctx.table(
        [
            {"model": "this chapter's causal DiT (float32)", "frames": 32,
             "KV cache": f"{kv_cache_bytes(model, 32) / 1e3:.0f} kB",
             "rolling (window 6 + sink 2)": f"{kv_cache_bytes(model, 32, window=6, sink=2) / 1e3:.0f} kB"},
            {"model": "Wan2.1-1.3B (Self-Forcing, bf16)", "frames": 21,
             "KV cache": f"{kv_cache_bytes(wan, 21, bytes_per_value=2) / 1e9:.1f} GB",
             "rolling (window 6 + sink 2)":
                 f"{kv_cache_bytes(wan, 21, bytes_per_value=2, window=6, sink=2) / 1e9:.1f} GB"},
        ],
        "KV memory per video = 2 (K, V) × layers × tokens × heads × head width × bytes "
        "(`kv_cache_bytes`); a rolling cache bounds the tokens by (sink + window) frames.",
    )  # fmt: skip


def _arch(chunk: int) -> dict:
    arch = dict(assets.architecture(chunk))
    arch.pop("name")
    return arch


def _methods_section(ctx) -> None:
    n = budget(full=64, fast=16)
    clips = eval_clips(n)
    results = {}
    for kind, _ in METHODS:
        trained = ctx.asset(f"video_{kind}_c{CHUNK}")
        results[kind] = rollout_metrics(trained.model, clips, seed=1)
    teacher = ctx.asset("video_teacher")
    noise = torch.randn(n, T, 1, 16, 16, generator=ctx.generator(3))
    cond = tokenize_captions(clips.captions)
    bidir = sample_euler(video_denoiser(teacher.model), noise, uniform(16), cond)
    ctx.animation(bidir[:8], "The bidirectional teacher (all 8 frames denoised together, 16 Euler "
                  "steps): the distribution the students are distilled towards.", nrow=8,
                  fps=4)  # fmt: skip
    shown = [clips.video[:6, : 2 * T]] + [results[k]["video"][:6, : 2 * T] for k, _ in METHODS]
    ctx.animation(torch.cat(shown), "Rollouts to 2× the training length from the same 4 real "
                  "context frames, every model with the same 4-step sampler. Rows: real clip, "
                  + ", ".join(label for _, label in METHODS) + f" (chunks of {CHUNK} frame).",
                  nrow=6, scale=3, fps=4)  # fmt: skip
    fig, (ax,) = figure(1, size=4.6)
    frames = torch.arange(4 * T)
    for kind, label in METHODS:
        ax.plot(frames[CONTEXT:], results[kind]["curve"][CONTEXT:], label=label,
                color=COLOURS[kind])  # fmt: skip
    ax.axvline(T - 0.5, color="k", lw=0.8, ls="--")
    ax.set_xlabel("frame (dashed: the training length)")
    ax.set_ylabel("position error (px)")
    ax.legend(fontsize=8, frameon=False)
    ctx.figure(fig, "Drift: the tracked object's distance from the physics, per frame, over "
               f"4× the training length (mean over {n} held-out clips).")  # fmt: skip
    real = trajectory_error(clips.video, clips.position)
    rows = [{"method": "real clips (floor)", "error (1×)": float(real["position"].mean()),
             "drift (2×)": float(real["position"].mean()), "drift (4×)": float(real["position"].mean()),
             "velocity error": float(real["velocity"].mean()),
             "consistency": float(temporal_consistency(clips.video).mean()),
             "median |acceleration|": float(acceleration(clips.video).median()), "_floor": True},
            {"method": "bidirectional teacher (8 frames, 16 Euler steps)",
             "consistency": float(temporal_consistency(bidir).mean()),
             "median |acceleration|": float(acceleration(bidir).median())}]  # fmt: skip
    for kind, label in METHODS:
        r = results[kind]
        rows.append({"method": label, "error (1×)": r["error"], "drift (2×)": r["drift"][2],
                     "drift (4×)": r["drift"][4], "velocity error": r["velocity"],
                     "consistency": r["consistency"],
                     "median |acceleration|": r["acceleration"]})  # fmt: skip
        ctx.metric(f"c{CHUNK}.{kind}.drift2", r["drift"][2])
        ctx.metric(f"c{CHUNK}.{kind}.drift4", r["drift"][4])
    ctx.metric("teacher.acceleration", rows[1]["median |acceleration|"])
    ctx.table(rows, "Trajectory error (px) against the physics: over the generated frames "
              "within the training length (1×) and beyond it in 2× and 4× rollouts; velocity "
              "error, temporal consistency and the median |second difference| of the tracked "
              "centre (px/frame², 0 in free flight) over the 2× rollout. The students are "
              "distilled towards the teacher's whole clips, not fitted to the continuation of "
              "real context; a better-trained teacher does not close the gap (BENCHMARKS.md, "
              "Lecture 9 diagnostics).", ["method", "error (1×)", "drift (2×)", "drift (4×)",
                             "velocity error", "consistency", "median |acceleration|"])  # fmt: skip


@chapter(
    "L09",
    "Video generation and autoregressive video diffusion",
    lecture=9,
    summary="Bouncing shapes with exact physics; a causal video DiT whose KV-cached sampling "
    "equals recomputation; teacher forcing, diffusion forcing, CausVid and Self-Forcing "
    "rolled out beyond the training length.",
    slides="lectures/09-video/slides.pdf",
    code=[
        "visgen.data.video.bouncing_shapes",
        "visgen.video.dit.VideoDiT",
        "visgen.video.sampling.generate",
        "visgen.video.forcing.Forcing",
        "visgen.video.distill.SelfForcing",
        "visgen.video.metrics.trajectory_error",
    ],
)
def run(ctx) -> None:
    ctx.text(
        "A video is a stack of frames (B, F, C, H, W); a video DiT cuts every frame into "
        "patches and attends over space and time — all F·P tokens at once (**full 3D**) or "
        "alternately within a frame and along time (**factorised**). Made **frame-block "
        "causal** (a chunk sees only earlier chunks), the same network generates a video chunk "
        "by chunk, reusing the keys and values of earlier frames from a **KV cache**: written "
        "once per chunk by a clean t = 0 pass, read while the next chunk is denoised, rotated "
        "by RoPE at *absolute* frame positions.",
        "How the causal model is trained decides how it **drifts** beyond its training length. "
        "**Teacher forcing** shows it the clean ground-truth past, which it never sees at "
        "inference (exposure bias); **diffusion forcing** noises every chunk independently; "
        "**CausVid** distils a bidirectional teacher into a 4-step causal student with "
        "distribution matching on noised data; **Self-Forcing** does the same on the student's "
        "own KV-cached rollouts. The toy: one white shape bouncing in a 16×16 frame, trained "
        f"on {T}-frame clips, scored against the simulated trajectory.",
    )
    _data_section(ctx)
    _cache_section(ctx)
    _methods_section(ctx)
