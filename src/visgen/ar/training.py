"""Training methods and cached assets of lecture 8.

Methods (added to :data:`visgen.train.METHODS`, so :func:`visgen.train.train_cached` and the
trainer run them like any diffusion method):

* ``tokenizer`` — reconstruction MSE + the quantiser's codebook/commitment losses; optionally
  VQGAN's hinge GAN term with the adaptive weight and a classifier-feature loss
  (:mod:`visgen.ar.vqgan`);
* ``token_ar`` — cross-entropy of a raster or next-scale transformer on the tokens of a frozen
  tokenizer asset (pinned by its cache key, so a FAST and a full tokenizer never mix), with
  label dropout for CFG;
* ``mar`` — MAR's masked head loss (:func:`visgen.ar.mar.mar_loss`), random orders, truncated
  normal mask ratios, logit-normal (flow) or uniform (diffusion) head times, label dropout.

Assets (:func:`visgen.train.asset`), all on 8×8 digits with codebooks of K = 32:

==========================  ======================================================================
``vq_digits_plain``         VQ-VAE, codebook trained by the codebook loss, random init (the baseline)
``vq_digits``               VQ-VAE with k-means init, EMA codebook and dead-code restarts (4×4 tokens)
``fsq_digits``              FSQ, levels (8, 4)
``vqgan_digits``            ``vq_digits`` + patch discriminator (hinge) + classifier-feature loss
``msvq_digits``             VAR's multi-scale residual VQ, scales 1, 2, 3, 4 (30 tokens), centred
``msvq_digits_uncentered``  the same with VAR's f̂_0 = 0 (the deck's comparison)
``ar_digits``               raster AR (LlamaGen-style) on ``vq_digits`` tokens
``var_digits``              VAR (block-causal) on ``msvq_digits`` tokens
``switti_digits``           Switti (block-diagonal) on ``msvq_digits`` tokens
``mar_digits``              MAR on 2×2 pixel patches (16 tokens of 4 values), flow-matching head —
                            the frozen backbone of homework 6
``mar_digits_diffusion``    the same with the diffusion head
==========================  ======================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visgen.ar.heads import head_times
from visgen.ar.mar import MAR, mar_loss, sample_mask_ratio
from visgen.ar.raster import RasterAR
from visgen.ar.tokenizer import Tokenizer
from visgen.ar.var import NextScaleAR
from visgen.ar.vqgan import (
    adaptive_weight,
    discriminator_hinge_loss,
    feature_loss,
    generator_hinge_loss,
)
from visgen.config import budget
from visgen.nn import MODELS
from visgen.nn.embeddings import drop_labels
from visgen.train.assets import asset, asset_key, register_asset
from visgen.train.methods import METHODS

__all__ = ["MARTraining", "TokenARTraining", "TokenizerTraining", "tokenizer"]

MODELS.update(
    {"tokenizer": Tokenizer, "raster_ar": RasterAR, "next_scale_ar": NextScaleAR, "mar": MAR}
)


def _pinned(name: str, key: str | None, what: str) -> str:
    current = asset_key(name)
    if key is not None and key != current:
        raise ValueError(
            f"this method was specified with {what} {key}, but asset {name!r} is now {current} "
            "(FAST vs full budget, or a changed recipe)"
        )
    return current


def tokenizer(name: str) -> Tokenizer:
    """The trained tokenizer asset ``name`` (frozen, eval mode)."""
    model = asset(name, progress=False).model
    if not isinstance(model, Tokenizer):
        raise TypeError(f"asset {name!r} is not a tokenizer")
    return model


class TokenizerTraining:
    """The ``tokenizer`` method: (1/D)‖x − x̂‖² + codebook + commitment (+ VQGAN terms).

    Args:
        gan_weight: weight of the adaptive-weighted hinge GAN term (needs a tokenizer with a
            discriminator); 0 = off.
        disc_start: training steps before the GAN terms switch on (VQGAN starts late).
        feature_weight: weight of the classifier-feature (LPIPS-like) loss; 0 = off.
        feature_encoder: the classifier asset of that loss.
    """

    name = "tokenizer"

    def __init__(
        self,
        gan_weight: float = 0.0,
        disc_start: int = 0,
        feature_weight: float = 0.0,
        feature_encoder: str = "repa_encoder_digits",
        feature_encoder_key: str | None = None,
    ):
        if gan_weight < 0 or feature_weight < 0 or disc_start < 0:
            raise ValueError("gan_weight, feature_weight and disc_start must be >= 0")
        self.gan_weight, self.disc_start, self.feature_weight = (
            gan_weight,
            disc_start,
            feature_weight,
        )
        self.spec = {"name": "tokenizer"}
        if gan_weight:
            self.spec.update(gan_weight=gan_weight, disc_start=disc_start)
        self._encoder = None
        if feature_weight:
            key = _pinned(feature_encoder, feature_encoder_key, "feature encoder")
            self.feature_encoder = feature_encoder
            self.spec.update(
                feature_weight=feature_weight,
                feature_encoder=feature_encoder,
                feature_encoder_key=key,
            )

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        return batch

    def loss(self, model, batch: dict) -> torch.Tensor:
        if not isinstance(model, Tokenizer):
            raise TypeError(f"the tokenizer method trains a Tokenizer, got {type(model).__name__}")
        x = batch["x0"]
        x_hat, q = model(x)
        rec = (x_hat - x).pow(2).flatten(1).mean(1)
        loss = rec + q.codebook_loss + q.commitment_loss
        if self.feature_weight:
            if self._encoder is None:
                self._encoder = asset(self.feature_encoder, progress=False).model
            loss = loss + self.feature_weight * feature_loss(self._encoder, x, x_hat)
        disc = model.discriminator
        if self.gan_weight and disc is None:
            raise ValueError("gan_weight > 0 needs a tokenizer with discriminator_width > 0")
        if self.gan_weight and model.training:
            disc.steps += 1
            if int(disc.steps) > self.disc_start:
                d_loss = discriminator_hinge_loss(disc(x), disc(x_hat.detach()))
                g_loss = generator_hinge_loss(disc.frozen(x_hat))
                last = model.decoder[-1].weight
                weight = adaptive_weight(rec.mean(), g_loss.mean(), last)
                loss = loss + d_loss + self.gan_weight * weight * g_loss
        return loss


class TokenARTraining:
    """The ``token_ar`` method: mean cross-entropy per sequence of a :class:`RasterAR` or
    :class:`NextScaleAR` on the tokens of tokenizer asset ``tokenizer``; ``label_dropout``
    replaces the class by the null class (CFG)."""

    name = "token_ar"

    def __init__(
        self, tokenizer: str, tokenizer_key: str | None = None, label_dropout: float = 0.1
    ):
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        self.tokenizer_name, self.label_dropout = tokenizer, label_dropout
        key = _pinned(tokenizer, tokenizer_key, "tokenizer")
        self.spec = {
            "name": "token_ar",
            "tokenizer": tokenizer,
            "tokenizer_key": key,
            "label_dropout": label_dropout,
        }
        self._tokenizer = None

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        if batch.get("cond") is not None and self.label_dropout > 0:
            batch = {**batch, "cond": drop_labels(batch["cond"], self.label_dropout, generator)}
        return batch

    def loss(self, model, batch: dict) -> torch.Tensor:
        if self._tokenizer is None:
            self._tokenizer = tokenizer(self.tokenizer_name)
        tok = self._tokenizer
        indices = tok.tokenize(batch["x0"])
        if isinstance(model, NextScaleAR):
            if not tok.multiscale:
                raise TypeError("a next-scale model needs a multi-scale tokenizer")
            logits = model(tok.quantizer.next_scale_inputs(indices), batch.get("cond"))
            target = torch.cat([i.flatten(1) for i in indices], 1)
        elif isinstance(model, RasterAR):
            target = indices.flatten(1)
            logits = model(target, batch.get("cond"))
        else:
            raise TypeError(f"token_ar trains RasterAR or NextScaleAR, got {type(model).__name__}")
        return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)


class MARTraining:
    """The ``mar`` method (:func:`visgen.ar.mar.mar_loss`): ``head_batch_mul`` (t, ε) draws
    per masked token, mask ratios ~ N(1, ``mask_std``²) truncated to [``mask_min``, 1]."""

    name = "mar"

    def __init__(
        self,
        label_dropout: float = 0.1,
        head_batch_mul: int = 4,
        mask_min: float = 0.7,
        mask_std: float = 0.25,
    ):
        if not 0 <= label_dropout <= 1:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout}")
        if not isinstance(head_batch_mul, int) or head_batch_mul < 1:
            raise ValueError(f"head_batch_mul must be a positive int, got {head_batch_mul!r}")
        self.label_dropout, self.head_batch_mul, self.mask_min = (
            label_dropout,
            head_batch_mul,
            mask_min,
        )
        if not 0 < mask_min < 1 or not mask_std > 0:
            raise ValueError(f"need 0 < mask_min < 1 and mask_std > 0, got {mask_min}, {mask_std}")
        self.mask_std = mask_std
        self.spec = {
            "name": "mar",
            "label_dropout": label_dropout,
            "head_batch_mul": head_batch_mul,
            "mask_min": mask_min,
        }
        if mask_std != 0.25:  # MAR's value stays out of the spec (and the cache key)
            self.spec["mask_std"] = mask_std

    def draw(self, batch: dict, generator: torch.Generator) -> dict:
        # randomness is drawn on the image grid, so it does not depend on the model's patch
        # size: ε is an image per repeat (patchified like x), and each token reads its order
        # key and its time from the uniforms at its patch's top-left pixel
        x0, out = batch["x0"], dict(batch)
        b, m, (h, w) = x0.shape[0], self.head_batch_mul, x0.shape[-2:]
        out["order_keys"] = torch.rand(b, h, w, generator=generator)
        out["ratio"] = sample_mask_ratio(b, generator, low=self.mask_min, std=self.mask_std)
        out["time_u"] = torch.rand(b, m, h, w, generator=generator)
        out["noise"] = torch.randn(b, m, *x0.shape[1:], generator=generator)
        if batch.get("cond") is not None and self.label_dropout > 0:
            out["cond"] = drop_labels(batch["cond"], self.label_dropout, generator)
        return out

    def loss(self, model, batch: dict) -> torch.Tensor:
        if not isinstance(model, MAR):
            raise TypeError(f"the mar method trains a MAR, got {type(model).__name__}")
        x, p = batch["x0"], model.patch_size
        b, m = x.shape[0], self.head_batch_mul
        orders = batch["order_keys"][:, ::p, ::p].flatten(1).argsort(1)
        t = head_times(batch["time_u"][:, :, ::p, ::p].flatten(2), model.head.prediction)
        noise = model.tokens(batch["noise"].flatten(0, 1)).unflatten(0, (b, m))
        return mar_loss(model, x, batch.get("cond"), orders, batch["ratio"], t, noise)


METHODS.update({"tokenizer": TokenizerTraining, "token_ar": TokenARTraining, "mar": MARTraining})


# --- assets ---------------------------------------------------------------------------------
# Sizes are set by the tour chapter L08's CPU budget (README): every model trains in seconds on
# one thread; the FAST budgets are the tests'.
_CODEBOOK = {
    "num_codes": 32,
    "latent_dim": 4,
    "ema_decay": 0.9,
    "kmeans_init": True,
    "restart_below": 1.0,
}
_SCALES = [1, 2, 3, 4]
_TRAIN = {"batch_size": 64, "lr": 2e-3, "ema_decay": 0.99}


def _tokenizer_recipe(method: dict | None = None, **model) -> callable:
    def recipe() -> dict:
        return {
            "model": {"name": "tokenizer", "in_channels": 1, "size": 8, "width": 16, **model},
            "method": method or {"name": "tokenizer"},
            "data": "digits",
            "train": {**_TRAIN, "steps": budget(full=600, fast=400), "lr": 3e-3},
        }

    return recipe


def _ar_recipe(model: dict, tokenizer_name: str) -> callable:
    def recipe() -> dict:
        return {
            "model": {
                "num_classes": 10,
                "dim": 64,
                "depth": 2,
                "heads": 4,
                "mlp_ratio": 2.0,
                **model,
            },
            "method": {"name": "token_ar", "tokenizer": tokenizer_name},
            "data": "digits",
            "train": {**_TRAIN, "steps": budget(full=600, fast=300), "weight_decay": 0.01},
        }

    return recipe


def _mar_recipe(head: str) -> callable:
    def recipe() -> dict:
        return {
            "model": {
                "name": "mar",
                "in_channels": 1,
                "size": 8,
                "patch_size": 2,
                "num_classes": 10,
                "dim": 64,
                "depth": 2,
                "heads": 4,
                "mlp_ratio": 2.0,
                "head_width": 64,
                "head_depth": 3,
                "head": head,
            },
            # one (t, ε) per masked token: on a CPU the head, not the backbone, dominates a
            # step (MAR repeats 4 times on GPUs). Mask ratios down to 1/16 and a wider normal
            # (σ 0.5, MAR: 0.25 on [0.7, 1]): with 16 tokens, 16 AR steps show the backbone up
            # to 15 known tokens; trained on MAR's range, FD(16 steps) was not below FD(4)
            "method": {"name": "mar", "head_batch_mul": 1, "mask_min": 0.05, "mask_std": 0.5},
            "data": "digits",
            "train": {**_TRAIN, "steps": budget(full=1200, fast=800), "ema_decay": 0.995},
        }

    return recipe


register_asset("vq_digits_plain", _tokenizer_recipe(num_codes=32, latent_dim=4))
register_asset("vq_digits", _tokenizer_recipe(**_CODEBOOK))
register_asset("fsq_digits", _tokenizer_recipe(quantizer="fsq", fsq_levels=[8, 4]))
register_asset(
    "vqgan_digits",
    _tokenizer_recipe(
        {"name": "tokenizer", "gan_weight": 0.1, "disc_start": 200, "feature_weight": 0.1},
        discriminator_width=16,
        **_CODEBOOK,
    ),
)
_MULTISCALE = {"quantizer": "multiscale", "scales": _SCALES, "cosine": True, **_CODEBOOK}
register_asset("msvq_digits", _tokenizer_recipe(centered=True, **_MULTISCALE))
# VAR's own start f̂_0 = 0, for the lecture's comparison: its 1×1 scale uses 2 of 32 codes
register_asset("msvq_digits_uncentered", _tokenizer_recipe(**_MULTISCALE))
register_asset(
    "ar_digits", _ar_recipe({"name": "raster_ar", "vocab": 32, "length": 16}, "vq_digits")
)
_NEXT_SCALE = {"name": "next_scale_ar", "vocab": 32, "scales": _SCALES, "latent_dim": 4}
register_asset("var_digits", _ar_recipe(_NEXT_SCALE, "msvq_digits"))
register_asset("switti_digits", _ar_recipe({**_NEXT_SCALE, "attention": "diagonal"}, "msvq_digits"))
register_asset("mar_digits", _mar_recipe("velocity"))
register_asset("mar_digits_diffusion", _mar_recipe("eps"))
