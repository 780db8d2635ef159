r"""A tiny CLIP trained by visgen: a caption encoder and an image encoder in one embedding space.

CLIP (Radford et al. 2021, arXiv 2103.00020, Fig. 3) embeds a caption y and an image x as unit
vectors u = f(y)/‖f(y)‖, w = g(x)/‖g(x)‖ and trains them contrastively: with logits
s_ij = e^τ ⟨w_i, u_j⟩ over a batch, the symmetric cross-entropy

.. math::
    L = \tfrac12 \big[ −\log \mathrm{softmax}_j(s_{ij})_{j=i}
        − \log \mathrm{softmax}_i(s_{ij})_{i=j} \big]

pulls matching pairs together and pushes the other pairs of the batch apart; τ is learned
(initialised at log(1/0.07), capped at log 100, as in the paper).

Here f is the word-level :class:`~visgen.nn.dit.TextEncoder` of lecture 5 (its start token,
projected) and g a three-layer CNN whose last feature map is flattened, not pooled, so the
embedding keeps *where* the shape is. CPU-scale simplification: the procedural grammar has
324 distinct captions, so a batch often holds the same caption twice; every pair with equal
captions counts as a positive (a multi-positive InfoNCE that equals CLIP's loss when captions
are distinct).

Uses (lecture 11):

* :func:`clip_score`: 100 · max(cos(w, u), 0), the caption–image agreement of CLIPScore
  (Hessel et al. 2021, arXiv 2104.08718) — a *learned* metric of text-to-image models;
* :func:`clip_attribute_accuracy`: zero-shot reading of each attribute, the caption's value
  against the captions with that attribute swapped for every other value;
* the frozen image tower is IP-Adapter's image encoder (:mod:`visgen.conditioning.ip_adapter`),
  read through its pooled, largely position-free embedding (:meth:`ImageEncoder.pooled`).

Asset ``clip_shapes16`` (trained by the cache on ``shapes16_captions``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from visgen._checks import check_positive
from visgen.data.shapes import (
    ATTRIBUTES,
    CAPTION_LENGTH,
    CAPTION_WORDS,
    COLOURS,
    REGIONS,
    SHAPES,
    SIZES,
    parse_caption,
    tokenize_captions,
)
from visgen.nn import MODELS
from visgen.nn.dit import TextEncoder
from visgen.train.assets import asset, register_asset
from visgen.train.methods import METHODS

__all__ = [
    "Contrastive",
    "ImageEncoder",
    "TinyCLIP",
    "clip_attribute_accuracy",
    "clip_score",
    "tiny_clip",
]


class ImageEncoder(nn.Module):
    """x (B, C, S, S) → (B, dim): 3×3 conv, two stride-2 3×3 convs (SiLU), flatten, linear."""

    def __init__(self, in_channels: int, size: int, width: int, dim: int):
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be divisible by 4, got {size}")
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(4 * width * (size // 4) ** 2, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """x → (B, dim): the head applied to the last feature map averaged over space, i.e.
        the embedding of an image whose every cell looks like the average one — a global
        vector in the same space as :meth:`forward`'s, without the head's per-position
        weights (position survives only through the padded borders)."""
        maps = self.body[:-2](x)
        return self.body[-1](maps.mean((2, 3), keepdim=True).expand_as(maps).flatten(1))


class TinyCLIP(nn.Module):
    """``TinyCLIP(size=16, dim=64, embed_dim=32, width=16, heads=4, depth=1)`` over the shapes
    captions. ``model(x, captions)`` returns the logits s (B_img, B_txt)."""

    def __init__(
        self,
        size: int = 16,
        dim: int = 64,
        embed_dim: int = 32,
        width: int = 16,
        heads: int = 4,
        depth: int = 1,
    ):
        super().__init__()
        for name, value in dict(
            size=size, dim=dim, embed_dim=embed_dim, width=width, heads=heads, depth=depth
        ).items():
            check_positive(value, name, integer=True)
        self.config = {
            "name": "clip",
            "size": size,
            "dim": dim,
            "embed_dim": embed_dim,
            "width": width,
            "heads": heads,
            "depth": depth,
        }
        self.size = size
        self.text = TextEncoder(len(CAPTION_WORDS), CAPTION_LENGTH, dim, depth, heads)
        self.text_proj = nn.Linear(dim, embed_dim, bias=False)
        self.image = ImageEncoder(3, size, width, embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Caption word ids (B, L) → unit vectors (B, embed_dim)."""
        tokens, _ = self.text(ids)
        return F.normalize(self.text_proj(tokens[:, 0]), dim=-1)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, size, size) in [−1, 1] → unit vectors (B, embed_dim)."""
        self._check_images(x)
        return F.normalize(self.image(x), dim=-1)

    def _check_images(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(
                f"x must have shape (B, 3, {self.size}, {self.size}), got {tuple(x.shape)}"
            )

    def encode_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, size, size) → the image tower's pooled embedding (B, embed_dim), not
        normalised (:meth:`ImageEncoder.pooled`)."""
        self._check_images(x)
        return self.image.pooled(x)

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        scale = self.log_scale.clamp(max=math.log(100)).exp()
        return scale * self.encode_image(x) @ self.encode_text(ids).T


MODELS["clip"] = TinyCLIP


class Contrastive:
    """The ``clip`` method: CLIP's symmetric contrastive loss, per image–caption pair."""

    name = "clip"

    def __init__(self):
        self.spec = {"name": "clip"}

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        cond = batch.get("cond")
        if cond is None or cond.dim() != 2:
            raise ValueError("the clip method needs captions (a *_captions data set)")
        return batch

    def loss(self, model, batch: dict) -> torch.Tensor:
        ids = batch["cond"]
        logits = model(batch["x0"], ids)
        same = (ids[:, None, :] == ids[None, :, :]).all(-1)
        image_to_text = -(logits.log_softmax(1).masked_fill(~same, -torch.inf)).logsumexp(1)
        text_to_image = -(logits.log_softmax(0).masked_fill(~same, -torch.inf)).logsumexp(0)
        return (image_to_text + text_to_image) / 2


METHODS["clip"] = Contrastive


def _clip_shapes16() -> dict:
    return {
        "model": {"name": "clip", "size": 16},
        "method": {"name": "clip"},
        "data": "shapes16_captions",
        "labels": True,
        "train": {
            "steps": 300,
            "batch_size": 128,
            "lr": 3e-3,
            "warmup": 50,
            "ema_decay": 0.99,
        },
    }


register_asset("clip_shapes16", _clip_shapes16)


def tiny_clip() -> TinyCLIP:
    """The trained ``clip_shapes16`` asset (frozen, EMA weights)."""
    return asset("clip_shapes16", progress=False).model


def _ids(captions) -> torch.Tensor:
    if isinstance(captions, torch.Tensor):
        return captions
    return tokenize_captions(captions)


@torch.no_grad()
def clip_score(clip: TinyCLIP, images: torch.Tensor, captions) -> torch.Tensor:
    """CLIPScore per image: 100 · max(cos(image, caption), 0) (arXiv 2104.08718, eq. 1 up to
    its constant w = 2.5 → 100, the torchmetrics convention)."""
    if not isinstance(clip, TinyCLIP):
        raise TypeError(f"clip must be a TinyCLIP, got {type(clip).__name__}")
    ids = _ids(captions)
    if len(ids) != len(images):
        raise ValueError(f"captions must hold {len(images)} captions, got {len(ids)}")
    cos = (clip.encode_image(images.clamp(-1, 1)) * clip.encode_text(ids)).sum(1)
    return 100 * cos.clamp_min(0)


_VALUES = {"size": list(SIZES), "colour": list(COLOURS), "shape": list(SHAPES), "region": REGIONS}


def _caption(values: dict) -> str:
    words = ["a"] + [
        _VALUES[a][values[a]] for a in ("size", "colour", "shape") if values[a] is not None
    ]
    if values["region"] is not None:
        words.append(REGIONS[values["region"]])
    return " ".join(words)


@torch.no_grad()
def clip_attribute_accuracy(clip: TinyCLIP, images: torch.Tensor, captions) -> dict[str, float]:
    """Zero-shot: per attribute a caption names, the share of images for which the caption
    scores higher than every copy of it with that attribute changed; ``mean`` over the four."""
    if isinstance(captions, str) or len(captions) != len(images):
        raise ValueError(f"captions must be a list of {len(images)} captions")
    image = clip.encode_image(images.clamp(-1, 1))
    parsed = [parse_caption(c) for c in captions]
    out = {}
    for attribute in ATTRIBUTES:
        rows = [i for i, p in enumerate(parsed) if p[attribute] is not None]
        if not rows:
            continue
        options = len(_VALUES[attribute])
        alternatives = [_caption({**parsed[i], attribute: v}) for i in rows for v in range(options)]
        text = clip.encode_text(tokenize_captions(alternatives)).reshape(len(rows), options, -1)
        chosen = (text * image[rows, None]).sum(-1).argmax(1)
        truth = torch.tensor([parsed[i][attribute] for i in rows])
        out[attribute] = float((chosen == truth).float().mean())
    out["mean"] = sum(out.values()) / len(out) if out else float("nan")
    return out
