"""Lecture 9 diagnostics: what moves the drift of Self-Forcing at this scale (BENCHMARKS.md).

The drift protocol of :mod:`visgen.video.evaluation` (128 held-out clips, 4 real context
frames, the 4-step sampler, rolling cache) to 2× the training length, for one training seed
and chunk size, over the knobs the Self-Forcing recipe has:

1. **The teacher** (the DMD real score): the bidirectional teacher trained for
   ``--teacher-steps``; median |acceleration| and mean speed of the tracked centre of its
   8-frame clips (16 Euler steps, unconditional in the motion), and its own continuation of
   the 4 real frames by replacement inpainting (the context re-noised to every level, the
   other frames denoised jointly; 16 Euler steps) — its position error over frames 4–7,
   next to the causal models' 1× error.
2. **The causal baselines at more compute**: teacher and diffusion forcing at
   ``--forcing-steps``.
3. **Self-Forcing variants** (one change each from the registered recipe, ``video_sf_c<k>``):
   DMD steps, student learning rate (a tiny one gives the first-order direction of DMD at the
   initialisation), fake-score updates and learning rate (DMD2's two time-scale rule),
   training rollouts that start from the clip's real context frames as the evaluation does,
   the longer-trained teacher and initialisation of 1 and 2, and (CausVid's causal-teacher
   ablation) the causal diffusion-forcing model of 2 as the real score.

Variant models are cached under their own keys (``video_teacher_steps<n>`` etc. are
registered here only), never over the registered assets.

    python benchmarks/video_budget.py --seed 0 --chunk 1     # BENCHMARKS.md
    # the other seeds' rows (variants 1, 2, 3, 7), the registered baselines next to them:
    python benchmarks/video_budget.py --seed 1 --teacher-steps "" --forcing-steps 500 --variants 1,2,3,7
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from visgen import set_threads
from visgen.data import tokenize_captions
from visgen.sampling import sample_euler, uniform
from visgen.timing import machine
from visgen.train import asset
from visgen.train.assets import ASSETS, register_asset
from visgen.video.assets import TRAIN_FRAMES, recipe
from visgen.video.evaluation import CONTEXT, eval_clips, rollout_metrics
from visgen.video.metrics import acceleration, track, trajectory_error
from visgen.video.sampling import video_denoiser


def variant(kind: str, chunk: int, seed: int, steps: int) -> str:
    """The asset name of a registered recipe trained for ``steps`` (registered on demand)."""
    base = f"video_{kind}" + (f"_c{chunk}" if chunk else "") + (f"_s{seed}" if seed else "")
    name = f"{base}_steps{steps}"
    if name not in ASSETS:

        def spec(kind=kind, chunk=chunk, seed=seed, steps=steps):
            out = recipe(kind, chunk, seed)
            out["train"]["steps"] = steps
            return out

        register_asset(name, spec)
    return name


@torch.no_grad()
def inpaint(model, clips, steps: int, generator) -> torch.Tensor:
    """The teacher's continuation of the clips' first CONTEXT frames: Euler on the PF-ODE of
    the whole clip, the context frames replaced by the real ones noised to each level."""
    den, real = video_denoiser(model), clips.video[:, :TRAIN_FRAMES]
    cond = tokenize_captions(clips.captions)
    ts = uniform(steps).tolist()
    x = torch.randn(real.shape, generator=generator)
    for a, b in zip(ts[:-1], ts[1:]):
        ctx = real[:, :CONTEXT]
        x[:, :CONTEXT] = (1 - a) * ctx + a * torch.randn(ctx.shape, generator=generator)
        x0 = den(x, torch.full((len(x),), a), cond).x0
        x = (1 - b) * x0 + b * (x - (1 - a) * x0) / a
    x[:, :CONTEXT] = real[:, :CONTEXT]
    return x


def teachers(steps, seed: int, clips) -> None:
    cond = tokenize_captions(clips.captions)
    for s in steps:
        start = time.process_time()
        model = asset(variant("teacher", 0, seed, s), progress=False).model
        cpu = time.process_time() - start
        noise = torch.randn(len(clips.video), TRAIN_FRAMES, 1, 16, 16,
                            generator=torch.Generator().manual_seed(6))  # fmt: skip
        x = sample_euler(video_denoiser(model), noise, uniform(16), cond)
        speed = track(x).diff(dim=1).norm(dim=-1).mean()
        y = inpaint(model, clips, 16, torch.Generator().manual_seed(1))
        err = trajectory_error(y, clips.position[:, :TRAIN_FRAMES])["position"][:, CONTEXT:]
        print(f"teacher {s:5d} steps: clips accel {float(acceleration(x).median()):.2f}, speed "
              f"{float(speed):.2f} px/frame; inpainted frames 4-7 error {float(err.mean()):.2f} "
              f"px (train/load {cpu:.0f} CPU s)", flush=True)  # fmt: skip


def report(label: str, name: str, clips) -> None:
    start = time.process_time()
    model = asset(name, progress=False).model
    cpu = time.process_time() - start
    m = rollout_metrics(model, clips, frames=2 * TRAIN_FRAMES, seed=1)
    print(f"{label:38s} 1× {m['error']:.2f}  2× {m['drift'][2]:.2f}  accel "
          f"{m['acceleration']:.2f}  (train/load {cpu:.0f} CPU s)", flush=True)  # fmt: skip


def self_forcing(chunk: int, seed: int, name: str, *, teacher=None, init_steps=None,
                 method=None, train=None) -> str:  # fmt: skip
    """A Self-Forcing variant of the registered recipe, registered under ``name``;
    ``teacher`` = (``"teacher"`` or the causal ``"df"``, its training steps)."""

    def spec():
        out = recipe("sf", chunk, seed)
        if teacher:
            kind, steps = teacher
            out["method"]["teacher"] = variant(kind, 0 if kind == "teacher" else chunk, seed,
                                               steps)  # fmt: skip
        if init_steps:
            out["init"] = variant("df", chunk, seed, init_steps)
        out["method"].update(method or {})
        out["train"].update(train or {})
        return out

    if name not in ASSETS:
        register_asset(name, spec)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=1)
    parser.add_argument("--teacher-steps", default="500,2000,4000")
    parser.add_argument("--forcing-steps", default="500,2000")
    parser.add_argument("--variants", default="", help="indices of the Self-Forcing rows "
                        "to run (default: all)")  # fmt: skip
    args = parser.parse_args()
    set_threads(1)
    seed, k = args.seed, args.chunk
    print(f"{machine()}, load {os.getloadavg()[0]:.1f}")
    clips = eval_clips(128)
    teachers([int(s) for s in args.teacher_steps.split(",") if s], seed, clips)
    for kind in ("tf", "df"):
        for s in (int(v) for v in args.forcing_steps.split(",") if v):
            report(f"{kind} {s} steps", variant(kind, k, seed, s), clips)
    sf = f"video_sf_c{k}" + (f"_s{seed}" if seed else "")
    runs = [
        ("SF, DMD lr 1e-9 × 3 steps (= init)", {"train": {"steps": 3, "lr": 1e-9, "min_lr": 0}}),
        ("SF, lr 1e-5 (first-order direction)", {"train": {"lr": 1e-5, "min_lr": 0}}),
        ("SF, 30 DMD steps", {"train": {"steps": 30}}),
        ("SF, 100 DMD steps (registered)", None),
        ("SF, 300 DMD steps", {"train": {"steps": 300}}),
        ("SF, 5 fake updates / step", {"method": {"fake_updates": 5}}),
        ("SF, fake lr 1e-4", {"method": {"fake_lr": 1e-4}}),
        ("SF, rollouts from 4 real frames", {"method": {"context": CONTEXT}}),
        ("SF, teacher 2000 steps", {"teacher": ("teacher", 2000)}),
        ("SF, teacher 2000, init DF 2000", {"teacher": ("teacher", 2000), "init_steps": 2000}),
        ("SF, teacher 4000, init DF 2000", {"teacher": ("teacher", 4000), "init_steps": 2000}),
        ("SF, real score = causal DF 2000", {"teacher": ("df", 2000)}),
        ("SF, real score and init DF 2000", {"teacher": ("df", 2000), "init_steps": 2000}),
    ]
    chosen = [int(i) for i in args.variants.split(",")] if args.variants else range(len(runs))
    for i in chosen:
        label, options = runs[i]
        name = sf if options is None else self_forcing(k, seed, f"{sf}_variant{i}", **options)
        report(label, name, clips)
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
