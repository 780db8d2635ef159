"""The drift protocol of lecture 9, shared by the tour, the tests, the slides and the benchmark.

Held-out clips of the training distribution (:func:`eval_clips`, 32 frames: 4× the training
length T = 8) give a causal model its first :data:`CONTEXT` frames as clean context (one
t = 0 pass into the cache); it continues the clip to 2T and 4T frames with a rolling cache
whose attention spans T frames (window T − chunk), the span it was trained on. The tracked
object is compared with the simulated one frame by frame (:mod:`visgen.video.metrics`):

* ``drift`` = mean position error over the frames beyond the training length (T … 2T − 1 for
  2×, T … 4T − 1 for 4×), pixels; ``curve`` the mean error per frame;
* ``velocity`` = mean velocity error over the generated frames; ``consistency`` = temporal
  consistency; ``acceleration`` = median |second difference| of the tracked centre over the
  generated frames (free flight: 0); all next to the same numbers for the real clips (the
  floor).

Many-step models (teacher and diffusion forcing) sample each chunk with 8 Euler steps; the
few-step students with their 4-step stochastic multistep sampler (:func:`sampler_of`).
"""

from __future__ import annotations

import torch

from visgen.data import tokenize_captions
from visgen.data.video import Clips, bouncing_shapes
from visgen.sampling import uniform
from visgen.video.assets import TRAIN_FRAMES
from visgen.video.distill import FEW_STEPS
from visgen.video.metrics import acceleration, temporal_consistency, trajectory_error
from visgen.video.sampling import generate

__all__ = ["CONTEXT", "EVAL_SEED", "eval_clips", "rollout_metrics", "sampler_of"]

CONTEXT = 4
EVAL_SEED = 2025
EULER_STEPS = 8


def eval_clips(n: int = 128, frames: int = 4 * TRAIN_FRAMES, seed: int = EVAL_SEED) -> Clips:
    """Held-out clips of the ``bouncing16`` distribution, long enough for 4× rollouts."""
    return bouncing_shapes(n, frames, 16, seed=seed, channels=1, sizes=("medium",))


def sampler_of(method: dict) -> tuple[str, torch.Tensor]:
    """(sampler, grid) for a model trained by ``method`` (its spec): students sample with
    their few steps, flow-matching models with Euler."""
    if method["name"] in ("self_forcing", "causvid"):
        return "multistep", torch.tensor(method.get("ts", FEW_STEPS), dtype=torch.float64)
    return "euler", uniform(EULER_STEPS)


def rollout_metrics(
    model, method: dict, clips: Clips, frames: int, *, seed: int = 0, context: int = CONTEXT
) -> dict:
    """Roll ``model`` out to ``frames`` from the clips' first ``context`` frames; errors
    against the physics (see the module docstring)."""
    chunk = model.cfg.chunk
    sampler, ts = sampler_of(method)
    video = generate(
        model,
        frames,
        ts,
        cond=tokenize_captions(clips.captions),
        context=clips.video[:, :context],
        sampler=sampler,
        window=TRAIN_FRAMES - chunk,
        generator=torch.Generator().manual_seed(seed),
    )
    errors = trajectory_error(video, clips.position[:, :frames])
    beyond = min(TRAIN_FRAMES, frames - 1)
    return {
        "video": video,
        "curve": errors["position"].mean(0),
        "drift": float(errors["position"][:, beyond:].mean()),
        "error": float(errors["position"][:, context:].mean()),
        "velocity": float(errors["velocity"][:, context:].mean()),
        "consistency": float(temporal_consistency(video).mean()),
        "acceleration": float(acceleration(video[:, context - 2 :]).median()),
    }
