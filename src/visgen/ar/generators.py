"""The four generators of lecture 8 on the same digits, behind one call: the tour chapter, the
benchmark (``benchmarks/ar.py``), the slides and the tests sample them through
:func:`generate`, with the settings of :data:`SETTINGS`.

========================  =====================================================================
name                      what runs
========================  =====================================================================
``raster``                ``ar_digits`` on ``vq_digits`` tokens: 16 passes with a KV cache
``var``                   ``var_digits`` on ``msvq_digits`` tokens: 4 passes, per-scale KV cache
``switti``                ``switti_digits``: 4 passes, block-diagonal, no cache
``switti_cfg_off``        ``switti_digits`` with CFG switched off on the last scale
``mar``                   ``mar_digits``: ``steps`` AR steps (MAR's cosine schedule), FM head,
                          linear CFG schedule
========================  =====================================================================

Every call returns the images (clamped to [−1, 1]) and the :class:`~visgen.ar.GenerationStats`
(sequential passes, token evaluations, attention pairs).
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice
from visgen.ar.mar import sample_tokens
from visgen.ar.raster import generate_raster
from visgen.ar.training import tokenizer
from visgen.ar.var import generate_next_scale
from visgen.train import asset

__all__ = ["GENERATORS", "SETTINGS", "generate", "sampler"]

# the guidance scale w: one value for the three token models; MAR with its own linear schedule
# (w at the last step) as in the MAR paper, 16 AR steps of 20 Euler head steps
SETTINGS = {
    "raster": {"cfg": 2.0},
    "var": {"cfg": 2.0},
    "switti": {"cfg": 2.0},
    "switti_cfg_off": {"cfg": 2.0, "cfg_off_from": 3},
    "mar": {"cfg": 1.5, "cfg_schedule": "linear", "steps": 16, "head_steps": 20},
}
GENERATORS = tuple(SETTINGS)
_ASSETS = {
    "raster": ("ar_digits", "vq_digits"),
    "var": ("var_digits", "msvq_digits"),
    "switti": ("switti_digits", "msvq_digits"),
    "switti_cfg_off": ("switti_digits", "msvq_digits"),
    "mar": ("mar_digits", None),
}


def sampler(name: str, **options):
    """``sample(cond, generator) -> (images, stats)`` for generator ``name``, its models loaded
    once (time the calls, not the loading); ``options`` override :data:`SETTINGS` (e.g.
    ``steps=4`` for MAR, ``cfg=1.0``)."""
    check_choice(name, "generator", GENERATORS)
    settings = {**SETTINGS[name], **options}
    model_name, tok_name = _ASSETS[name]
    model = asset(model_name, progress=False).model
    tok = tokenizer(tok_name) if tok_name else None

    @torch.inference_mode()
    def sample(cond: torch.Tensor, generator: torch.Generator | None = None):
        if name == "mar":
            out = sample_tokens(model, cond, generator=generator, **settings)
            return out.images.clamp(-1, 1), out.stats
        if name == "raster":
            out = generate_raster(model, cond, generator=generator, **settings)
            images = tok.decode_tokens(out.tokens.reshape(len(cond), tok.side, tok.side))
        else:
            out = generate_next_scale(model, tok.quantizer, cond, generator=generator, **settings)
            images = tok.decode(out.latents)
        return images.clamp(-1, 1), out.stats

    return sample


def generate(name: str, cond: torch.Tensor, generator: torch.Generator | None = None, **options):
    """(images, stats) of generator ``name`` for class labels ``cond`` (B,); see :func:`sampler`."""
    return sampler(name, **options)(cond, generator)
