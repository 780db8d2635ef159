r"""IP-Adapter: image prompts through decoupled cross-attention (Ye et al. 2023, arXiv 2308.06721).

A frozen image encoder embeds the reference image into one global vector, e = g(x_ref) (the
paper: CLIP's pooled image embedding); a projection (linear + LayerNorm, the official
``ImageProjModel``) turns e into T = 4 image tokens c_i. Every cross-attention layer of the
frozen text-to-image model gets its own new keys and values for them and adds a second
attention (§3.2, eq. 5):

.. math::
    Z = \mathrm{Attn}(Q, K_t, V_t) + λ\,\mathrm{Attn}(Q, K_i, V_i),\qquad
    K_i = c_i W'_k,\; V_i = c_i W'_v .

Only the projection and W'_k, W'_v are trained; as in the official code W'_k, W'_v start as
copies of the text projections W_k, W_v (not zero), so λ = 0 is the base model exactly while
λ = 1 at initialisation already changes it. The paper trains with the reference = the target
image, dropping the image, the text or both 5 % of the time each (a dropped image has a zero
embedding), and recommends λ ≈ 0.5 to balance image and text prompts.

Here the base is a cross-attention :class:`~visgen.nn.DiT` (``text_mode="cross"``) and the
encoder the frozen image tower of the tiny CLIP (:mod:`visgen.conditioning.clip`). Its own
embedding is no global summary: the tower flattens its last feature map into the head, so the
embedding knows *where* the shape is, and an adapter reading it (``features="embedding"``)
carries the reference's layout into every sample, which blurs a prompt naming another region
(BENCHMARKS.md, "Lecture 11"). The default ``features="pooled"`` reads e = the head applied to
the map averaged over space (:meth:`~visgen.conditioning.clip.ImageEncoder.pooled`): a global
embedding in the same space that keeps the colour and much less of the position (the padded
borders of the convolutions still leak some).

The condition is ``{"text": caption ids (B, L), "image": reference images (B, 3, H, W)}``; a
reference that is all −1 (an empty canvas) means *no image prompt* (the zero embedding), the
null image of classifier-free guidance. λ is the attribute ``scale`` (the official
``set_scale``).
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.conditioning.base import frozen, pretrained_weights
from visgen.conditioning.clip import TinyCLIP
from visgen.conditioning.text import JIT
from visgen.nn import MODELS, DiT
from visgen.train.assets import register_asset
from visgen.train.methods import METHODS, Diffusion

__all__ = ["FEATURES", "IPAdapter", "ImagePromptTraining", "ip_adapter_spec", "null_images"]

FEATURES = ("pooled", "embedding")
"""What the projection reads: the image tower's pooled embedding (global, as the paper's CLIP
image embedding; the default) or the tiny CLIP's own embedding, which keeps the position."""


def null_images(like: torch.Tensor) -> torch.Tensor:
    """Empty canvases shaped like ``like``: the "no image prompt" condition."""
    return torch.full_like(like, -1.0)


class IPAdapter(nn.Module):
    """``IPAdapter(base, *, encoder="clip_shapes16", tokens=4, features="pooled")`` around a
    cross-attention DiT.

    ``base``: an asset name or the DiT itself; ``encoder``: an asset name of a
    :class:`~visgen.conditioning.TinyCLIP` or the model; ``features``: which image embedding
    the projection reads (:data:`FEATURES`). ``scale`` (λ, default 1) weighs the image
    attention.
    """

    def __init__(
        self,
        base,
        *,
        base_key: str | None = None,
        encoder="clip_shapes16",
        encoder_key: str | None = None,
        tokens: int = 4,
        features: str = "pooled",
    ):
        super().__init__()
        check_positive(tokens, "tokens", integer=True)
        check_choice(features, "features", FEATURES)
        self.base, entry = frozen(base, base_key, (DiT,), "base")
        if self.base.cfg.text_mode != "cross" or not self.base.cfg.text_vocab:
            raise ValueError("IP-Adapter needs a DiT with text_mode='cross'")
        self.encoder, enc_entry = frozen(encoder, encoder_key, (TinyCLIP,), "encoder")
        self.config = {
            "name": "ip_adapter",
            **entry,
            **enc_entry,
            "tokens": tokens,
            "features": features,
        }
        dim, self.tokens, self.features = self.base.cfg.dim, tokens, features
        self.proj = nn.Linear(self.encoder.config["embed_dim"], tokens * dim)
        self.norm = nn.LayerNorm(dim)
        self.k = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in self.base.blocks)
        self.v = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in self.base.blocks)
        self._copy_text_projections()
        self.scale = 1.0

    def _copy_text_projections(self) -> None:
        """The official initialisation: W'_k, W'_v are copies of each block's text K/V."""
        with torch.no_grad():
            for k, v, block in zip(self.k, self.v, self.base.blocks):
                k.weight.copy_(block.cross.k.weight)
                v.weight.copy_(block.cross.v.weight)

    def load_pretrained(self) -> None:
        """Load the trained base and image encoder assets; copy the text K/V again."""
        if self.config["base"] is not None:
            self.base.load_state_dict(pretrained_weights(self.config["base"]))
            self._copy_text_projections()
        if self.config["encoder"] is not None:
            self.encoder.load_state_dict(pretrained_weights(self.config["encoder"]))

    def train(self, mode: bool = True):
        super().train(mode)
        self.base.eval()
        self.encoder.eval()
        return self

    def image_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """e = g(x_ref), what the projection reads (B, d); an all −1 image gives e = 0."""
        if self.features == "pooled":
            emb = self.encoder.encode_pooled(images)
        else:
            emb = self.encoder.encode_image(images)
        empty = (images == -1).flatten(1).all(1)
        return torch.where(empty[:, None], torch.zeros_like(emb), emb)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """The T image-prompt tokens (B, T, dim): the projected, normalised embedding."""
        emb = self.image_embedding(images)
        return self.norm(self.proj(emb).reshape(len(images), self.tokens, -1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if not isinstance(cond, dict) or set(cond) != {"text", "image"}:
            raise ValueError(
                "cond must be a dict {'text': caption ids (B, L), 'image': images (B, 3, H, W)}"
            )
        image = cond["image"]
        if not isinstance(image, torch.Tensor) or image.shape[0] != x.shape[0]:
            raise ValueError(f"cond['image'] must hold {x.shape[0]} reference images")
        c = self.image_tokens(image)
        pairs = [
            (block.cross.split(k(c)), block.cross.split(v(c)))
            for block, k, v in zip(self.base.blocks, self.k, self.v)
        ]
        return self.base(x, t, cond["text"], image_prompt=(pairs, self.scale))


MODELS["ip_adapter"] = IPAdapter


class ImagePromptTraining(Diffusion):
    """The ``image_prompt`` method: flow matching of an IP-Adapter with the target as its own
    reference image. Per sample, with probabilities ``drop`` = (text, image, both) the text,
    the image or both are dropped (the paper: 0.05 each); ``attribute_dropout`` shortens the
    captions as for the base. Other options as the ``fm`` method."""

    def __init__(self, drop=(0.05, 0.05, 0.05), **options):
        options.pop("name", None)
        super().__init__("fm", **options)
        drop = tuple(float(p) for p in drop)
        if len(drop) != 3 or min(drop) < 0 or sum(drop) > 1:
            raise ValueError(f"drop must be 3 probabilities (text, image, both), got {drop}")
        self.drop = drop
        self.spec = {**self.spec, "name": "image_prompt", "drop": list(drop)}

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        out = super().draw(batch, generator)
        text, x0 = out.get("cond"), batch["x0"]
        if text is None or text.dim() != 2:
            raise ValueError("the image_prompt method needs captions (a *_captions data set)")
        u = torch.rand(x0.shape[0], generator=generator)
        p_text, p_image, p_both = self.drop
        drop_text = (u < p_text) | (u >= 1 - p_both)
        drop_image = ((u >= p_text) & (u < p_text + p_image)) | (u >= 1 - p_both)
        text = torch.where(drop_text[:, None], torch.full_like(text, -1), text)
        image = torch.where(drop_image[:, None, None, None], null_images(x0), x0)
        out["cond"] = {"text": text, "image": image}
        return out


METHODS["image_prompt"] = ImagePromptTraining


def ip_adapter_spec(
    steps: int,
    *,
    seed: int = 0,
    drop=(0.25, 0.05, 0.05),
    attribute_dropout: float = 0.3,
    features: str = "pooled",
) -> dict:
    """Training spec of the IP-Adapter on ``text_dit_cross`` with the tiny CLIP's image tower.

    The text is dropped a quarter of the time (the paper: 5 %) and otherwise loses attribute
    phrases at random: with the full caption always present, a few hundred steps teach the
    adapter nothing the caption does not already say (the paper's 5 % left the reference's
    colour at λ = 0.5 lower on every seed tried; BENCHMARKS.md, "Lecture 11").
    """
    return {
        "model": {
            "name": "ip_adapter",
            "base": "text_dit_cross",
            "encoder": "clip_shapes16",
            "tokens": 4,
            "features": features,
        },
        "method": {
            "name": "image_prompt",
            **JIT,
            "drop": list(drop),
            "attribute_dropout": attribute_dropout,
        },
        "data": "shapes16_captions",
        "labels": True,
        "train": {
            "steps": steps,
            "batch_size": 64,
            "lr": 6e-3,
            "warmup": 20,
            "ema_decay": 0.99,
            "seed": seed,
        },
    }


# 200 steps of batch 64 at lr 6e-3: at λ = 0.5 the reference's colour shows in 0.71-0.77 of
# samples over seeds 0-2 while the prompt's region stays at 0.60-0.63, near the base's own
# 0.65-0.71 at λ = 0 (N = 300; BENCHMARKS.md, "Lecture 11"). At lr 3e-3 the colour share
# needed 300 steps to get there.
register_asset("ip_adapter_shapes16", lambda: ip_adapter_spec(200))
