"""Sparse attention and attention broadcast on the *trained* video DiTs of lecture 9 (lecture 10).

The synthetic heads of ``efficient.video_heads_problem`` show that the masks work when heads
are spatial or temporal by construction; this script asks whether the heads of a trained
model are. Both teachers are the cached lecture-9 assets, trained on ``bouncing16`` (8 frames
of 16×16, patches of 8: 4 tokens per frame, 32 per clip), sampled with 50 Euler steps from
held-out captions (``video.evaluation.eval_clips``):

* **Sparse VideoGen** on ``video_teacher`` (3 blocks of full 3-D attention, 4 heads): at
  steps 5, 25, 45 of the plain trajectory (t = 0.9, 0.5, 0.1) every head of every block is
  profiled online as spatial (same frame, density 1/8) or temporal (same position, 1/4)
  (:func:`visgen.efficient.profile_video_dit`); reported: the density of the chosen masks and
  the relative error of the block's attention output against full attention (issue 19's bar:
  ≤ 5 % error at ≤ 30 % density), with one mask for every head beside it;
* the same on ``video_teacher_p2`` (lecture 10's asset: ``video_teacher`` with patches of 2,
  64 tokens per frame, 512 per clip), where Sparse VideoGen's premise has room to hold, with
  two sliding-tile masks (every head the same) beside the profiled ones; for both teachers
  the **oracle** (:func:`visgen.efficient.topk_mask`: per query the 30 % of keys with the
  most attention weight): the attention mass it keeps (no mask of that density keeps more)
  and its output error, and the attention rows' entropy over log N (1 = uniform over the
  clip);
* **PAB** on ``video_teacher_factorised`` (spatial and temporal blocks alternate, caption
  cross-attention): how much each attention kind's output changes between consecutive steps
  (the premise of the pyramid: cross least, spatial most), then the 50-step sampler with
  broadcast ranges (spatial, temporal, cross) = (2, 4, 6) — PAB's pyramid — against every
  kind every 2 and every 4 steps (window t ∈ [0.1, 0.8]): FLOP fraction and PSNR against the
  uncached samples from the same noise.

    python benchmarks/efficient_video.py                  # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/efficient_video.py    # the FAST teachers of the tests
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from visgen import budget, set_threads
from visgen.data import tokenize_captions
from visgen.efficient import (
    attention_flops,
    block_density,
    density,
    masked_flops,
    pab,
    position_major,
    profile_video_dit,
    sliding_tile_mask,
    spatial_mask,
    temporal_mask,
    video_positions,
)
from visgen.metrics import psnr
from visgen.sampling import sample_euler, uniform
from visgen.timing import load_average
from visgen.train import asset
from visgen.video import assets
from visgen.video.evaluation import eval_clips
from visgen.video.sampling import video_denoiser

STEPS = 50
PROFILED_STEPS = (5, 25, 45)
TILES = {"tiles (1,2,2) window (3,3,3)": ((1, 2, 2), (3, 3, 3)),
         "tiles (2,2,2) window (3,3,3)": ((2, 2, 2), (3, 3, 3))}  # fmt: skip
PAB_SETTINGS = {"pyramid (2, 4, 6)": (2, 4, 6), "every kind 2": (2, 2, 2),
                "every kind 4": (4, 4, 4)}  # fmt: skip


def batch(n: int, seed: int):
    """Noise (n, 8, 1, 16, 16) from generator ``seed`` and the captions of n held-out clips."""
    clips = eval_clips(n, frames=assets.TRAIN_FRAMES)
    noise = torch.randn(n, assets.TRAIN_FRAMES, 1, 16, 16,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return noise, tokenize_captions(clips.captions)


def tile_masks(model) -> dict:
    """The sliding-tile masks of :data:`TILES` on the model's token grid."""
    side = model.cfg.size // model.cfg.patch_size
    return {name: sliding_tile_mask(assets.TRAIN_FRAMES, side, side, tile, window)
            for name, (tile, window) in TILES.items()}  # fmt: skip


@torch.no_grad()
def sparse_rows(model, noise, cond, seed: int, tiles: bool = False) -> list[dict]:
    """Profile every full-attention block at :data:`PROFILED_STEPS` of the plain sampler
    (and measure the sliding-tile masks, ``tiles``)."""
    states = {}

    def record(i, t, x, pred):
        if i in PROFILED_STEPS:
            states[i] = (x.clone(), pred.t)

    sample_euler(video_denoiser(model), noise, uniform(STEPS), cond, callback=record)
    rows = []
    for i, (x, t) in states.items():
        g = torch.Generator().manual_seed(seed)
        profiled = profile_video_dit(model, x, t, cond, queries=64, generator=g)
        for name, mask in tile_masks(model).items() if tiles else ():
            for r, tiled in zip(profiled, profile_video_dit(model, x, t, cond, masks={name: mask})):
                r[name] = tiled["error"]
        for layer, r in enumerate(profiled):
            rows.append({"seed": seed, "step": i, "t": float(t.flatten()[0]), "block": layer,
                         **r})  # fmt: skip
    return rows


def accounting(model) -> str:
    """Density, FLOPs per head and clip, and the density a block-sparse kernel pays in the
    mask's own token layout, for every mask of the model's token grid."""
    side = model.cfg.size // model.cfg.patch_size
    f, p, d = assets.TRAIN_FRAMES, side * side, model.head_dim
    perm = position_major(f, side, side)
    temporal = temporal_mask(f, side, side)
    layouts = {"spatial (same frame)": (spatial_mask(f, side, side), p),
               "temporal (same position)": (temporal[perm][:, perm], f)}  # fmt: skip
    pos = video_positions(f, side, side)
    for name, mask in tile_masks(model).items():
        tile = TILES[name][0]
        # tile-major order: the tokens of one tile are contiguous, so kept tiles are full blocks
        order = torch.cat([pos // torch.tensor(tile), pos], 1).tolist()
        tiles = torch.tensor(sorted(range(len(order)), key=order.__getitem__))
        layouts[name] = (mask[tiles][:, tiles], tile[0] * tile[1] * tile[2])
    lines = [f"| mask ({f} × {p} tokens) | density | FLOPs / head / clip (full "
             f"{attention_flops((f * p) ** 2, d):,}) | block density (block) |",
             "|---|---|---|---|"]  # fmt: skip
    for name, (mask, block) in layouts.items():
        lines.append(f"| {name} | {100 * density(mask):.1f} % | {masked_flops(mask, d):,} | "
                     f"{100 * block_density(mask, block):.1f} % ({block}) |")  # fmt: skip
    return "\n".join(lines)


@torch.no_grad()
def attention_change(model, noise, cond) -> dict:
    """Mean relative L2 change of each attention kind's output between consecutive steps,
    over the first / middle / last third of the trajectory."""
    den = pab(video_denoiser(model), steps=STEPS, spatial=1, temporal=1, cross=1)
    previous, changes = {}, {}

    def record(i, t, x, pred):
        store = next(iter(den.states.values())).store
        for key, out in store.items():
            if not isinstance(key, tuple):
                continue
            index, name = key
            kind = "cross" if name == "cross_attention" else model.blocks[index].kind
            if key in previous:
                change = float((out - previous[key]).norm() / previous[key].norm())
                changes.setdefault(kind, {}).setdefault(min(3 * i // STEPS, 2), []).append(change)
            previous[key] = out.clone()

    sample_euler(den, noise, uniform(STEPS), cond, callback=record)
    return {kind: [statistics.mean(v[p]) for p in range(3)] for kind, v in changes.items()}


@torch.no_grad()
def pab_rows(model, noise, cond, seed: int) -> list[dict]:
    den = video_denoiser(model)
    plain = sample_euler(den, noise, uniform(STEPS), cond)
    rows = []
    for label, (s, tm, c) in PAB_SETTINGS.items():
        cached = pab(den, steps=STEPS, spatial=s, temporal=tm, cross=c)
        x = sample_euler(cached, noise, uniform(STEPS), cond)
        rows.append({"seed": seed, "setting": label, "fraction": cached.stats["fraction"],
                     "PSNR": float(psnr(x, plain).mean())})  # fmt: skip
    return rows


def sparse_table(name: str, rows: list[dict], clips: int) -> None:
    """Per step and block: mean over seeds [min–max] of every error column."""
    tiles = [k for k in TILES if k in rows[0]]
    print(f"\nSparse VideoGen on {name}, {clips} clips (per step and block: mean over seeds "
          "[min–max]):\n")  # fmt: skip
    print("| step (t) | block | entropy | oracle top-30 %: mass kept | error | "
          "heads named spatial | density | "
          "error, profiled | error, all spatial | error, all temporal |"
          + "".join(f" {k} |" for k in tiles))  # fmt: skip
    print("|---" * (10 + len(tiles)) + "|")
    for step in PROFILED_STEPS:
        for block in sorted({r["block"] for r in rows}):
            rs = [r for r in rows if r["step"] == step and r["block"] == block]

            def span(key, rs=rs, scale=100):
                v = [scale * r[key] for r in rs]
                return f"{statistics.mean(v):.1f} % [{min(v):.1f}–{max(v):.1f}]"

            spatial = [sum(h == "spatial" for h in r["heads"]) for r in rs]
            entropy = statistics.mean(r["entropy"] for r in rs)
            print(f"| {step} ({rs[0]['t']:.2f}) | {block} | {entropy:.2f} | "
                  f"{span('mass_oracle')} | {span('error_oracle')} | {min(spatial)}–{max(spatial)} of "
                  f"{len(rs[0]['heads'])} | {span('density')} | {span('error')} | "
                  f"{span('error_spatial')} | {span('error_temporal')} |"
                  + "".join(f" {span(k)} |" for k in tiles))  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=budget(full=64, fast=16))
    p.add_argument("--clips-p2", type=int, default=budget(full=16, fast=8),
                   help="clips for the 512-token teacher")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    set_threads(1)
    start_cpu, start_wall, load = time.process_time(), time.perf_counter(), load_average()
    full = asset("video_teacher", progress=False).model.eval()
    fine = asset("video_teacher_p2", progress=False).model.eval()
    factorised = asset("video_teacher_factorised", progress=False).model.eval()
    sparse, sparse_p2, broadcast, change = [], [], [], None
    for seed in args.seeds:
        noise, cond = batch(args.clips_p2, seed)
        sparse_p2 += sparse_rows(fine, noise, cond, seed, tiles=True)
        noise, cond = batch(args.clips, seed)
        sparse += sparse_rows(full, noise, cond, seed)
        broadcast += pab_rows(factorised, noise, cond, seed)
        if change is None:
            change = attention_change(factorised, noise, cond)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.clips} clips, seeds "
          f"{args.seeds}, {time.process_time() - start_cpu:.0f} CPU s, "
          f"{time.perf_counter() - start_wall:.0f} s wall, load {load} → {load_average()}\n")  # fmt: skip
    for name, rows, clips in (
        ("video_teacher (8 × 4 tokens)", sparse, args.clips),
        ("video_teacher_p2 (8 × 64 tokens)", sparse_p2, args.clips_p2),
    ):
        sparse_table(name, rows, clips)
    print(f"\n{accounting(fine)}\n")
    print(
        "\nAttention output change between consecutive steps, video_teacher_factorised "
        "(first / middle / last third of the 50 steps, seed 0):\n"
    )
    print("| kind | first | middle | last |\n|---|---|---|---|")
    for kind, v in change.items():
        print(f"| {kind} | " + " | ".join(f"{100 * x:.1f} %" for x in v) + " |")
    print("\nPAB on video_teacher_factorised (mean over seeds [min–max]):\n")
    print("| broadcast ranges (spatial, temporal, cross) | FLOP fraction | PSNR vs uncached (dB) |")
    print("|---|---|---|")
    for label in PAB_SETTINGS:
        rs = [r for r in broadcast if r["setting"] == label]
        ps = [r["PSNR"] for r in rs]
        print(f"| {label} | {rs[0]['fraction']:.3f} | {statistics.mean(ps):.1f} "
              f"[{min(ps):.1f}–{max(ps):.1f}] |")  # fmt: skip


if __name__ == "__main__":
    main()
