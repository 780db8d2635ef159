"""Procedural shapes: RGB images of one disc, square or triangle with known attributes.

Each image holds one shape on a black background; its attributes are labels:

* ``shape``: disc | square | triangle;  ``colour``: red | green | blue | yellow;
* ``size``: small | medium | large (circumradius 0.16, 0.23, 0.30 of the image side);
* ``position``: the centre (x, y) in [0, 1]² (x to the right, y down) and its ``region`` on a
  3×3 grid (top left … bottom right);
* ``caption``: e.g. ``"a large red disc at the top left"`` (for text-conditioning lectures);
  :func:`tokenize_captions` turns captions into word ids over :data:`CAPTION_WORDS`.

The class label used by class-conditional models and the evaluation classifier is
``shape × 4 + colour`` (12 classes). Edges are anti-aliased by 4×4 supersampling. Generation
is deterministic per ``seed`` (numpy's PCG64), independent of torch's global state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visgen._checks import check_choice, check_positive

__all__ = [
    "CAPTION_LENGTH",
    "CAPTION_WORDS",
    "COLOURS",
    "REGIONS",
    "SHAPES",
    "SIZES",
    "Shapes",
    "coverage",
    "make_shapes",
    "tokenize_captions",
]

SHAPES = ("disc", "square", "triangle")
COLOURS = {
    "red": (0.95, 0.15, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.35, 1.0),
    "yellow": (0.95, 0.85, 0.1),
}
SIZES = {"small": 0.16, "medium": 0.23, "large": 0.30}
REGIONS = (
    "at the top left",
    "at the top",
    "at the top right",
    "on the left",
    "in the centre",
    "on the right",
    "at the bottom left",
    "at the bottom",
    "at the bottom right",
)
CAPTION_WORDS = tuple(dict.fromkeys(["a", *SIZES, *COLOURS, *SHAPES, *" ".join(REGIONS).split()]))
"""The word vocabulary of the captions; a word's token id is its index."""
CAPTION_LENGTH = 8  # "a large yellow triangle at the bottom right"
_SUPERSAMPLE = 4
_CHUNK = 256


@dataclass
class Shapes:
    """A batch of procedural shape images and their labels (see the module docstring)."""

    images: torch.Tensor  # (N, 3, H, W) in [−1, 1]
    shape: torch.Tensor  # (N,) index into SHAPES
    colour: torch.Tensor  # (N,) index into COLOURS
    size: torch.Tensor  # (N,) index into SIZES
    position: torch.Tensor  # (N, 2) centre (x, y) in [0, 1]
    region: torch.Tensor  # (N,) index into REGIONS
    captions: list[str]

    num_classes = len(SHAPES) * len(COLOURS)

    @property
    def label(self) -> torch.Tensor:
        """Class label shape × 4 + colour, in {0, …, 11}."""
        return self.shape * len(COLOURS) + self.colour

    def __len__(self) -> int:
        return self.images.shape[0]


def coverage(kind, cx, cy, r, res):
    """Fraction of each pixel covered by the shapes (n, res, res), by 4×4 supersampling.

    ``kind`` (n,) indexes :data:`SHAPES`; centres ``cx``, ``cy`` and circumradii ``r`` (n,) are
    in units of the image side; ``res`` is the side in pixels.
    """
    fine = res * _SUPERSAMPLE
    grid = (np.arange(fine) + 0.5) / fine
    x = grid[None, None, :] - cx[:, None, None]
    y = grid[None, :, None] - cy[:, None, None]
    r = r[:, None, None]
    disc = x**2 + y**2 <= r**2
    half = r / np.sqrt(2)  # square inscribed in the same circle
    square = (np.abs(x) <= half) & (np.abs(y) <= half)
    # equilateral triangle pointing up, inscribed in the circle (y grows downwards)
    s3 = np.sqrt(3)
    triangle = (y <= r / 2) & (s3 * x - y <= r) & (-s3 * x - y <= r)
    inside = np.where(
        kind[:, None, None] == 0, disc, np.where(kind[:, None, None] == 1, square, triangle)
    )
    n = inside.shape[0]
    return inside.reshape(n, res, _SUPERSAMPLE, res, _SUPERSAMPLE).mean((2, 4))


def make_shapes(n: int, size: int = 16, seed: int = 0) -> Shapes:
    """n images of size ``size`` (16 or 32) with their labels, deterministic per ``seed``."""
    check_positive(n, "n", integer=True)
    check_choice(size, "size", (16, 32))
    if not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, len(SHAPES), n)
    colour = rng.integers(0, len(COLOURS), n)
    size_idx = rng.integers(0, len(SIZES), n)
    radius = np.array(list(SIZES.values()))[size_idx]
    cx = radius + (1 - 2 * radius) * rng.random(n)
    cy = radius + (1 - 2 * radius) * rng.random(n)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    for i in range(0, n, _CHUNK):
        sl = slice(i, i + _CHUNK)
        cov = coverage(kind[sl], cx[sl], cy[sl], radius[sl], size).astype(np.float32)
        images[sl] = cov[:, None] * palette[colour[sl]][:, :, None, None] * 2 - 1
    region = np.minimum((cy * 3).astype(int), 2) * 3 + np.minimum((cx * 3).astype(int), 2)
    names, colours, sizes = SHAPES, list(COLOURS), list(SIZES)
    captions = [
        f"a {sizes[s]} {colours[c]} {names[k]} {REGIONS[g]}"
        for k, c, s, g in zip(kind, colour, size_idx, region)
    ]
    return Shapes(
        images=torch.from_numpy(images),
        shape=torch.from_numpy(kind).long(),
        colour=torch.from_numpy(colour).long(),
        size=torch.from_numpy(size_idx).long(),
        position=torch.from_numpy(np.stack([cx, cy], 1).astype(np.float32)),
        region=torch.from_numpy(region).long(),
        captions=captions,
    )


def tokenize_captions(captions, length: int = CAPTION_LENGTH) -> torch.Tensor:
    """Word ids (N, length) over :data:`CAPTION_WORDS`, padded with −1 (the empty caption is
    all −1: the null condition of classifier-free guidance)."""
    if isinstance(captions, str):
        raise TypeError("captions must be a list of strings, not one string")
    check_positive(length, "length", integer=True)
    index = {w: i for i, w in enumerate(CAPTION_WORDS)}
    out = torch.full((len(captions), length), -1, dtype=torch.long)
    for row, caption in enumerate(captions):
        words = caption.split()
        if len(words) > length:
            raise ValueError(f"caption {caption!r} has more than {length} words")
        unknown = [w for w in words if w not in index]
        if unknown:
            raise ValueError(f"caption {caption!r} has words outside CAPTION_WORDS: {unknown}")
        out[row, : len(words)] = torch.tensor([index[w] for w in words], dtype=torch.long)
    return out
