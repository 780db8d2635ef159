"""The drift protocol of lecture 9, shared by the tour, the tests, the slides and the benchmark.

Held-out clips of the training distribution (:func:`eval_clips`, 32 frames = 4× the
training length T = 8) give a causal model their first :data:`CONTEXT` frames as clean
context (one t = 0 pass into the cache); the model continues each clip to 4T frames with a
rolling cache whose attention spans T frames (window T − chunk, the span it was trained on).
Every model samples each chunk with the same 4-step stochastic multistep sampler
(:data:`~visgen.video.distill.FEW_STEPS`), so all are compared at equal steps. The model is
causal, so the first 2T frames of the 4T rollout *are* its 2T rollout: one rollout gives

* ``error`` — mean position error (px) of the tracked object against the physics over the
  generated frames within the training length (frames C … T − 1);
* ``drift[h]`` — the same over the frames beyond the training length of an h·T rollout
  (frames T … h·T − 1), h = 2, 4; ``curve`` the mean error per frame;
* ``velocity`` (px/frame), ``consistency``, ``acceleration`` (px/frame², median; free flight
  0) over the generated frames of the 2T rollout.

Quote them next to the real clips' numbers (the tracking floor).
"""

from __future__ import annotations

import torch

from visgen.data import tokenize_captions
from visgen.data.video import Clips, bouncing_shapes
from visgen.video.assets import TRAIN_FRAMES
from visgen.video.distill import FEW_STEPS
from visgen.video.metrics import acceleration, temporal_consistency, trajectory_error
from visgen.video.sampling import generate

__all__ = ["CONTEXT", "EVAL_SEED", "HORIZONS", "eval_clips", "rollout_metrics"]

CONTEXT = 4
EVAL_SEED = 2025
HORIZONS = (2, 4)


def eval_clips(n: int = 128, frames: int = 4 * TRAIN_FRAMES, seed: int = EVAL_SEED) -> Clips:
    """Held-out clips of the ``bouncing16`` distribution, long enough for 4× rollouts."""
    return bouncing_shapes(n, frames, 16, seed=seed, channels=1, sizes=("medium",))


def rollout_metrics(model, clips: Clips, *, frames: int | None = None, seed: int = 0) -> dict:
    """Roll the causal ``model`` out from the clips' first :data:`CONTEXT` frames to
    ``frames`` (default: the clips' length); errors against the physics (module docstring)."""
    frames = frames or clips.frames
    t = TRAIN_FRAMES
    video = generate(
        model,
        frames,
        torch.tensor(FEW_STEPS, dtype=torch.float64),
        cond=tokenize_captions(clips.captions),
        context=clips.video[:, :CONTEXT],
        window=t - model.cfg.chunk,
        generator=torch.Generator().manual_seed(seed),
    )
    errors = trajectory_error(video, clips.position[:, :frames])
    position = errors["position"]
    early = slice(CONTEXT, min(2 * t, frames))
    out = {
        "video": video,
        "curve": position.mean(0),
        "error": float(position[:, CONTEXT:t].mean()),
        "drift": {h: float(position[:, t : h * t].mean()) for h in HORIZONS if h * t <= frames},
        "velocity": float(errors["velocity"][:, early].mean()),
        "consistency": float(temporal_consistency(video[:, : 2 * t]).mean()),
        "acceleration": float(acceleration(video[:, CONTEXT - 2 : 2 * t]).median()),
    }
    return out
