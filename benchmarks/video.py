"""Lecture 9: drift of causal video models beyond their training length, and the cost of
KV-cached vs recomputed chunkwise sampling.

1. **Drift** (:mod:`visgen.video.evaluation`): for each training seed in ``--seeds`` and
   chunk size in ``--chunks``, the assets ``video_{tf,df,causvid,sf}_c<k>[_s<seed>]`` (teacher
   forcing, diffusion forcing, CausVid, Self-Forcing; trained through the asset cache on the
   first run) continue 128 held-out clips from 4 real frames to 4× the training length (8
   frames). Printed: the error within the training length, the mean position error beyond it
   in 2× and 4× rollouts with its mean and spread (min–max) over seeds, the ratio to teacher
   forcing, the median |acceleration| of the tracked centre, the bidirectional teacher's
   acceleration, and the real clips' floors.
2. **Cache timing**: one causal model (random weights, the lecture's architecture) generates
   32 frames by :func:`~visgen.video.sampling.generate` and by
   :func:`~visgen.video.sampling.generate_recompute`; token-forwards (counted by a hook on the
   patch embedding, next to the closed form) and CPU seconds (median of 3, one thread).

    python benchmarks/video.py                        # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/video.py --seeds 0 # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from visgen import set_threads
from visgen.data import tokenize_captions
from visgen.sampling import sample_euler, uniform
from visgen.timing import machine
from visgen.train import asset
from visgen.video.assets import architecture
from visgen.video.dit import VideoDiT, randomize_zero_init
from visgen.video.evaluation import eval_clips, rollout_metrics
from visgen.video.metrics import acceleration, trajectory_error
from visgen.video.sampling import generate, generate_recompute, token_forwards, video_denoiser

METHODS = ("tf", "df", "causvid", "sf")
LABELS = {"tf": "teacher forcing", "df": "diffusion forcing", "causvid": "CausVid",
          "sf": "Self-Forcing"}  # fmt: skip


def drift(seeds, chunks, n: int) -> dict:
    clips = eval_clips(n)
    out = {}
    for seed in seeds:  # seed outermost: a partial run still gives whole tables
        for chunk in chunks:
            for kind in METHODS:
                name = f"video_{kind}_c{chunk}" + (f"_s{seed}" if seed else "")
                start = time.process_time()
                trained = asset(name, progress=False)
                trained_cpu = time.process_time() - start
                m = rollout_metrics(trained.model, clips, seed=1)
                row = {k: v for k, v in m.items() if k not in ("video", "curve")}
                row["curve"] = m["curve"].tolist()
                row["train_cpu_s"] = trained_cpu
                out[(chunk, kind, seed)] = row
                print(f"c{chunk} {kind:8s} seed {seed}: error 1× {row['error']:.2f}, drift "
                      f"2× {row['drift'][2]:.2f}, 4× {row['drift'][4]:.2f}, accel "
                      f"{row['acceleration']:.2f} (train/load {trained_cpu:.0f} CPU s)",
                      flush=True)  # fmt: skip
    return out


def summary(results: dict, seeds, chunks) -> list[dict]:
    rows = []
    for chunk in chunks:
        base = {h: [results[(chunk, "tf", s)]["drift"][h] for s in seeds] for h in (2, 4)}
        for kind in METHODS:
            row = {"chunk": chunk, "method": LABELS[kind]}
            for h in (2, 4):
                values = [results[(chunk, kind, s)]["drift"][h] for s in seeds]
                ratios = [v / b for v, b in zip(values, base[h])]
                row[f"drift {h}x"] = (statistics.mean(values), min(values), max(values))
                row[f"/TF {h}x"] = (statistics.mean(ratios), min(ratios), max(ratios))
            row["error 1x"] = statistics.mean(results[(chunk, kind, s)]["error"] for s in seeds)
            row["accel"] = statistics.mean(results[(chunk, kind, s)]["acceleration"] for s in seeds)
            rows.append(row)
    return rows


def cache_timing(frames: int = 32, chunk: int = 1, steps: int = 4, repeats: int = 3) -> dict:
    arch = {k: v for k, v in architecture(chunk).items() if k != "name"}
    model = randomize_zero_init(VideoDiT(**arch), seed=0).eval()
    p = model.cfg.tokens_per_frame
    counted = {"tokens": 0}
    model.embed.register_forward_hook(
        lambda m, i, o: counted.__setitem__("tokens", counted["tokens"] + o.shape[0] * o.shape[1])
    )
    out = {}
    for name, fn in (("cached", generate), ("recomputed", generate_recompute)):
        times = []
        for _ in range(repeats):
            counted["tokens"] = 0
            start = time.process_time()
            fn(model, frames, uniform(steps), batch=8, generator=torch.Generator().manual_seed(0))
            times.append(time.process_time() - start)
        out[name] = {
            "cpu_s": statistics.median(times),
            "tokens": counted["tokens"] // 8,
            "closed_form": token_forwards(frames, chunk, steps, p, cached=name == "cached"),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--chunks", default="1,4")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    set_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    chunks = [int(c) for c in args.chunks.split(",")]
    print(f"{machine()}, load {os.getloadavg()[0]:.1f}")
    timing = {c: cache_timing(chunk=c) for c in chunks}
    for c, t in timing.items():
        for name, r in t.items():
            print(f"cache c{c} {name:10s}: {r['tokens']} token-forwards (closed form "
                  f"{r['closed_form']}), {r['cpu_s']:.2f} CPU s for 8 videos of 32 frames")  # fmt: skip
    clips = eval_clips(args.n)
    real = trajectory_error(clips.video, clips.position)
    print(f"real clips: tracking error {float(real['position'].mean()):.3f} px, median "
          f"|acceleration| {float(acceleration(clips.video).median()):.3f}")  # fmt: skip
    for seed in seeds:
        teacher = asset("video_teacher" + (f"_s{seed}" if seed else ""), progress=False).model
        noise = torch.randn(args.n, 8, 1, 16, 16, generator=torch.Generator().manual_seed(6))
        x = sample_euler(
            video_denoiser(teacher), noise, uniform(16), tokenize_captions(clips.captions)
        )
        print(f"teacher seed {seed}: median |acceleration| {float(acceleration(x).median()):.3f}")
    results = drift(seeds, chunks, args.n)
    for row in summary(results, seeds, chunks):
        cells = [f"c{row['chunk']}", f"{row['method']:18s}", f"1× {row['error 1x']:.2f}",
                 f"accel {row['accel']:.2f}"]  # fmt: skip
        for h in (2, 4):
            m, lo, hi = row[f"drift {h}x"]
            r, rlo, rhi = row[f"/TF {h}x"]
            cells.append(f"{h}× {m:.2f} ({lo:.2f}–{hi:.2f}) = {r:.2f}×TF ({rlo:.2f}–{rhi:.2f})")
        print(" | ".join(cells))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"timing": timing, "drift": {f"c{c}-{k}-s{s}": v for (c, k, s), v in
                                                   results.items()}}, f, indent=1)  # fmt: skip
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
