r"""Procedural video clips with their ground-truth physics: bouncing shapes and moving digits.

Every clip holds K objects that move at constant velocity and reflect elastically off the
walls of the frame. With the centre p_f (pixels, x to the right, y down; pixel i covers
[i, i + 1)) and the velocity v_f (pixels per frame) of one object, one frame of physics is

.. math::
    p' = p_f + v_f, \qquad
    p_{f+1} = \begin{cases} 2\,lo − p' & p' < lo \\ 2\,hi − p' & p' > hi \\ p' & \text{else}
    \end{cases}, \qquad v_{f+1} = ±v_f \text{ (the reflected components change sign)},

per axis, where [lo, hi] keeps the whole object inside the frame (a shape's circumradius or
half a digit's box from the walls). Speeds are drawn below the width of that interval, so
one frame reflects at most once per axis. The clips record the position, velocity and the
frames right after a bounce, so a generated video can be scored against the physics
(:mod:`visgen.video.metrics`).

* :func:`bouncing_shapes` — the discs, squares and triangles of :mod:`visgen.data.shapes`
  (4×4 supersampled edges), white on black (``channels=1``) or in the four colours; the
  position is the shape's centre (its centre of mass).
* :func:`moving_digits` — scikit-learn's 8×8 digits (×2 bilinear for 32-pixel frames), moving
  Moving-MNIST style at sub-pixel positions (bilinear resampling, which keeps the centre of
  mass exact); several digits combine by their maximum. The position is each digit's centre
  of mass.

Clips are (N, F, C, H, W) in [−1, 1] (the course's video convention), deterministic per
``seed`` (numpy's PCG64, independent of torch's global state). Captions describe the objects
("a small red disc"); :func:`visgen.data.tokenize_captions` turns the shape captions into
word ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from visgen._checks import check_choice, check_positive
from visgen.data.digits import load_digits
from visgen.data.shapes import COLOURS, SHAPES, SIZES, render_coverage

__all__ = ["Clips", "bouncing_shapes", "moving_digits", "reflect"]

_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_CHUNK = 256


@dataclass
class Clips:
    """A batch of clips and the ground truth of every object (see the module docstring)."""

    video: torch.Tensor  # (N, F, C, H, W) in [−1, 1]
    position: torch.Tensor  # (N, F, K, 2) centre of mass (x, y) in pixels
    velocity: torch.Tensor  # (N, F, K, 2) pixels per frame, as it leaves frame f
    bounce: torch.Tensor  # (N, F, K) bool: a wall reflection between frames f − 1 and f
    label: torch.Tensor  # (N, K): shape × 4 + colour (shapes) or the digit (digits)
    captions: list[str]

    def __len__(self) -> int:
        return self.video.shape[0]

    @property
    def frames(self) -> int:
        return self.video.shape[1]


def _check_common(n, frames, size, objects, seed):
    check_positive(n, "n", integer=True)
    check_positive(frames, "frames", integer=True)
    check_positive(objects, "objects", integer=True)
    check_choice(size, "size", (16, 32))
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")


def reflect(start, velocity, frames: int, lo, hi):
    """Positions, velocities and bounce flags of ``frames`` frames of elastic bouncing.

    ``start`` and ``velocity`` are arrays (..., 2) (pixels, pixels per frame); ``lo`` and
    ``hi`` (broadcastable to (..., 2)) bound the centre. Returns arrays (frames, ..., 2),
    (frames, ..., 2) and a bool array (frames, ...). Needs |v| < hi − lo per axis.
    """
    p = np.asarray(start, dtype=np.float64).copy()
    v = np.asarray(velocity, dtype=np.float64).copy()
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), p.shape)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), p.shape)
    if (np.abs(v) >= hi - lo).any():
        raise ValueError("a velocity component is not below the free width hi − lo")
    if ((p < lo) | (p > hi)).any():
        raise ValueError("start must lie inside [lo, hi]")
    positions, velocities, bounces = [p.copy()], [v.copy()], [np.zeros(p.shape[:-1], bool)]
    for _ in range(frames - 1):
        p = p + v
        low, high = p < lo, p > hi
        p = np.where(low, 2 * lo - p, np.where(high, 2 * hi - p, p))
        v = np.where(low | high, -v, v)
        positions.append(p.copy())
        velocities.append(v.copy())
        bounces.append((low | high).any(-1))
    return np.stack(positions), np.stack(velocities), np.stack(bounces)


def _motion(rng, n, objects, lo, hi, speed):
    """Uniform start inside [lo, hi], speed uniform in ``speed``, uniform direction."""
    start = lo + (hi - lo) * rng.random((n, objects, 2))
    angle = 2 * np.pi * rng.random((n, objects))
    norm = speed[0] + (speed[1] - speed[0]) * rng.random((n, objects))
    return start, norm[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)


def _check_speed(speed, width):
    lo_s, hi_s = (float(s) for s in speed)
    if not 0 <= lo_s <= hi_s:
        raise ValueError(f"speed must be (min, max) with 0 <= min <= max, got {speed!r}")
    if hi_s >= np.min(width):
        raise ValueError(
            f"speed max {hi_s} must stay below the free width {np.min(width):.3g} pixels "
            "(one reflection per frame at most)"
        )
    return lo_s, hi_s


def _to_clips(video, pos, vel, bounce, label, captions) -> Clips:
    # reflect() returns (frames, n, K, ...): put the clip axis first
    return Clips(
        video=torch.from_numpy(np.ascontiguousarray(video)),
        position=torch.from_numpy(pos.transpose(1, 0, 2, 3).astype(np.float32)),
        velocity=torch.from_numpy(vel.transpose(1, 0, 2, 3).astype(np.float32)),
        bounce=torch.from_numpy(bounce.transpose(1, 0, 2).copy()),
        label=torch.from_numpy(label).long(),
        captions=captions,
    )


def bouncing_shapes(
    n: int,
    frames: int = 16,
    size: int = 16,
    *,
    seed: int = 0,
    objects: int = 1,
    channels: int = 3,
    sizes=("small", "medium"),
    speed=(0.5, 1.5),
) -> Clips:
    """n clips of ``objects`` bouncing shapes (the module docstring gives the physics).

    Args:
        frames, size: clip length and frame side (16 or 32 pixels).
        channels: 3 (the shapes' four colours) or 1 (white shapes, no colour in the caption).
        sizes: names of :data:`visgen.data.SIZES` to draw from (circumradius × the side).
        speed: (min, max) speed in pixels per frame.
    """
    _check_common(n, frames, size, objects, seed)
    check_choice(channels, "channels", (1, 3))
    if not sizes or any(s not in SIZES for s in sizes):
        raise ValueError(f"sizes must be names of {sorted(SIZES)}, got {sizes!r}")
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, len(SHAPES), (n, objects))
    colour = rng.integers(0, len(COLOURS), (n, objects)) if channels == 3 else np.zeros_like(kind)
    size_idx = rng.integers(0, len(sizes), (n, objects))
    radius = np.array([SIZES[s] for s in sizes])[size_idx] * size  # circumradius in pixels
    lo, hi = radius[..., None], size - radius[..., None]
    speed = _check_speed(speed, hi - lo)
    start, velocity = _motion(rng, n, objects, lo, hi, speed)
    pos, vel, bounce = reflect(start, velocity, frames, lo, hi)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    if channels == 1:
        palette = np.ones((1, 1), dtype=np.float32)
    intensity = np.zeros((n * frames, channels, size, size), dtype=np.float32)
    for k in range(objects):
        # frame j of clip i is image i·frames + j; coordinates in units of the side
        cx, cy = (pos[:, :, k] / size).transpose(2, 1, 0).reshape(2, -1)
        rk, kk = np.repeat(radius[:, k] / size, frames), np.repeat(kind[:, k], frames)
        tint = np.repeat(palette[colour[:, k]], frames, 0)[:, :, None, None]
        for i in range(0, n * frames, _CHUNK):
            sl = slice(i, i + _CHUNK)
            cov = render_coverage(kk[sl], cx[sl], cy[sl], rk[sl], size).astype(np.float32)
            intensity[sl] = np.maximum(intensity[sl], cov[:, None] * tint[sl])
    intensity = intensity.reshape(n, frames, channels, size, size)
    colours = list(COLOURS)
    captions = [
        " and ".join(
            f"a {sizes[size_idx[i, k]]} "
            + (f"{colours[colour[i, k]]} " if channels == 3 else "")
            + SHAPES[kind[i, k]]
            for k in range(objects)
        )
        for i in range(n)
    ]
    label = kind * len(COLOURS) + colour
    return _to_clips(intensity * 2 - 1, pos, vel, bounce, label, captions)


def moving_digits(
    n: int,
    frames: int = 16,
    size: int = 32,
    *,
    seed: int = 0,
    objects: int = 1,
    split: str = "train",
    speed=(0.5, 1.5),
) -> Clips:
    """n clips of ``objects`` moving digits of the fixed ``split`` of scikit-learn's digits.

    Digits are 8×8 in 16-pixel frames and 16×16 (bilinear ×2) in 32-pixel frames; one channel.
    """
    _check_common(n, frames, size, objects, seed)
    images, labels = load_digits(split, 8 if size == 16 else 16)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(labels), (n, objects))
    template = (images[torch.from_numpy(pick.reshape(-1))] + 1) / 2  # (n·K, 1, d, d) in [0, 1]
    d = template.shape[-1]
    half = d / 2
    speed = _check_speed(speed, np.array([size - d]))
    start, velocity = _motion(rng, n, objects, half, size - half, speed)  # box centres
    box, vel, bounce = reflect(start, velocity, frames, half, size - half)
    # the digit's centre of mass relative to its box centre (pixel i's centre is at i + 0.5)
    grid = torch.arange(d, dtype=torch.float64) + 0.5
    mass = template[:, 0].double()
    total = mass.sum((1, 2))[:, None].clamp_min(1e-12)
    com = torch.stack([(mass.sum(1) * grid).sum(1), (mass.sum(2) * grid).sum(1)], -1) / total
    com = (com - half).numpy().reshape(n, objects, 2)
    video = torch.zeros(n, frames, 1, size, size)
    pixel = (torch.arange(size, dtype=torch.float64) + 0.5)[None, :]
    for k in range(objects):
        ox = torch.from_numpy(box[:, :, k, 0].T.reshape(-1)) - half  # top-left offset (n·F,)
        oy = torch.from_numpy(box[:, :, k, 1].T.reshape(-1)) - half
        # output pixel centre u maps to template coordinate u − offset, normalised to [−1, 1]
        gx = (2 * (pixel - ox[:, None]) / d - 1).float()
        gy = (2 * (pixel - oy[:, None]) / d - 1).float()
        sample_grid = torch.stack(
            [gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], -1
        )
        src = template.reshape(n, objects, 1, d, d)[:, k].repeat_interleave(frames, 0)
        moved = F.grid_sample(src, sample_grid, mode="bilinear", align_corners=False)
        video = torch.maximum(video, moved.reshape(n, frames, 1, size, size))
    position = box + com[None]
    captions = [
        " and ".join(f"the digit {_DIGIT_NAMES[int(labels[p])]}" for p in row) for row in pick
    ]
    label = labels[torch.from_numpy(pick.reshape(-1))].reshape(n, objects).numpy()
    return _to_clips(video.numpy() * 2 - 1, position, vel, bounce, label, captions)
