"""Procedural shapes: RGB images of one disc, square or triangle with known attributes.

Each image holds one shape on a black background; its attributes are labels:

* ``shape``: disc | square | triangle;  ``colour``: red | green | blue | yellow;
* ``size``: small | medium | large (circumradius 0.16, 0.23, 0.30 of the image side);
* ``position``: the centre (x, y) in [0, 1]² (x to the right, y down) and its ``region`` on a
  3×3 grid (top left … bottom right);
* ``caption``: e.g. ``"a large red disc at the top left"`` (for text-conditioning lectures).

**The word-level tokenizer** of the captions (lecture 11; a closed grammar needs no BPE):
:func:`tokenize_captions` turns captions into word ids over :data:`CAPTION_WORDS` (−1 pads),
:func:`decode_captions` turns ids back into captions, :func:`parse_caption` reads which
attribute values a (possibly partial) caption names, and :func:`drop_attributes` removes
whole attribute phrases at random, so a text-conditioned model also learns partial prompts
such as ``"a red"`` (and negative prompts).

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
    "ATTRIBUTES",
    "CAPTION_LENGTH",
    "CAPTION_WORDS",
    "COLOURS",
    "REGIONS",
    "SHAPES",
    "SIZES",
    "Shapes",
    "decode_captions",
    "drop_attributes",
    "make_shapes",
    "parse_caption",
    "render_coverage",
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
ATTRIBUTES = ("size", "colour", "shape", "region")
"""The attributes a caption names, in caption order (``region`` is a 2–3 word phrase)."""
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


def render_coverage(kind, cx, cy, r, res: int) -> np.ndarray:
    """Fraction of each pixel covered by the shapes (n, res, res), by 4×4 supersampling.

    ``kind`` (n,) indexes :data:`SHAPES`; centres ``cx``, ``cy`` and circumradii ``r`` (n,) are
    in units of the image side; ``res`` is the side in pixels. The renderer of
    :func:`make_shapes` and :func:`~visgen.data.video.bouncing_shapes`, public so that
    readers of generated images can compare a candidate shape with what they see.
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
        cov = render_coverage(kind[sl], cx[sl], cy[sl], radius[sl], size).astype(np.float32)
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


def decode_captions(ids: torch.Tensor) -> list[str]:
    """The inverse of :func:`tokenize_captions`: word ids (N, L) → captions (−1 skipped)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point():
        raise TypeError("ids must be an integer tensor of caption word ids (N, L)")
    if ((ids < -1) | (ids >= len(CAPTION_WORDS))).any():
        raise ValueError(f"ids must lie in [-1, {len(CAPTION_WORDS) - 1}]")
    return [" ".join(CAPTION_WORDS[i] for i in row if i >= 0) for row in ids.tolist()]


_PHRASES = {
    "size": {w: i for i, w in enumerate(SIZES)},
    "colour": {w: i for i, w in enumerate(COLOURS)},
    "shape": {w: i for i, w in enumerate(SHAPES)},
    "region": {phrase: i for i, phrase in enumerate(REGIONS)},
}


def parse_caption(caption: str) -> dict[str, int | None]:
    """The attribute values a caption names: ``{"size": 2, "colour": 0, "shape": None, ...}``.

    Indices into SIZES, COLOURS, SHAPES, REGIONS; None where the caption leaves the attribute
    open (partial captions, the empty caption). A caption outside the grammar
    ``a [size] [colour] [shape] [region]`` is a ValueError.
    """
    if not isinstance(caption, str):
        raise TypeError(f"caption must be a string, got {type(caption).__name__}")
    words = caption.split()
    out: dict[str, int | None] = dict.fromkeys(ATTRIBUTES)
    if words and words[0] == "a":
        words = words[1:]
    for attribute in ("size", "colour", "shape"):
        if words and words[0] in _PHRASES[attribute]:
            out[attribute] = _PHRASES[attribute][words.pop(0)]
    if words:
        phrase = " ".join(words)
        if phrase not in _PHRASES["region"]:
            raise ValueError(
                f"caption {caption!r} does not follow 'a [size] [colour] [shape] [region]'"
            )
        out["region"] = _PHRASES["region"][phrase]
    return out


def _attribute_of_word() -> torch.Tensor:
    """For each word id, the index into ATTRIBUTES of the phrase it belongs to (−1 for "a")."""
    owner = torch.full((len(CAPTION_WORDS),), len(ATTRIBUTES) - 1, dtype=torch.long)
    owner[CAPTION_WORDS.index("a")] = -1
    for k, attribute in enumerate(ATTRIBUTES[:-1]):
        for word in _PHRASES[attribute]:
            owner[CAPTION_WORDS.index(word)] = k
    return owner


def drop_attributes(ids: torch.Tensor, p: float, generator: torch.Generator | None = None):
    """Caption word ids (N, L) with each attribute phrase removed with probability p.

    Each of size, colour, shape and region is dropped independently per caption; the words
    left keep their order and move to the front (the form :func:`tokenize_captions` gives a
    partial caption), padding with −1. Empty captions (all −1) stay empty.
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point():
        raise TypeError("ids must be an integer tensor of caption word ids (N, L)")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    drop = torch.rand(ids.shape[0], len(ATTRIBUTES), generator=generator).to(ids.device) < p
    owner = _attribute_of_word().to(ids.device)[ids.clamp_min(0)]
    dropped = torch.gather(drop, 1, owner.clamp_min(0)) & (owner >= 0)
    keep = (ids >= 0) & ~dropped
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    kept = torch.gather(torch.where(keep, ids, torch.full_like(ids, -1)), 1, order)
    return kept
