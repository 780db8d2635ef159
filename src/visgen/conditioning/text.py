r"""Text-to-image at toy scale: one generator, three ways to read the caption, and text guidance.

The generator is the lecture-5 :class:`~visgen.nn.DiT` on 16×16 shapes (16 tokens of 4×4×3
values, 4 blocks of width 64, DiT's fixed sin-cos positions) reading captions through the tiny
word-level :class:`~visgen.nn.dit.TextEncoder`; only ``text_mode`` differs:

* ``pooled``: the pooled text vector joins the time embedding in adaLN (how class labels enter);
* ``cross``: cross-attention from image tokens to text tokens (Stable Diffusion, PixArt-α);
* ``joint``: MMDiT joint attention over text and image tokens (SD3, arXiv 2403.03206).

The three assets ``text_dit_<mode>`` train with the same data, steps, batch and optimiser
(equal compute per step up to the mechanism's own FLOPs, :func:`forward_flops`); training
drops 10 % of captions (classifier-free guidance) and each attribute phrase 15 % of the time
(:func:`visgen.data.drop_attributes`), so partial prompts such as ``"a red"`` work. Positions
are absolute (added to the tokens) because with RoPE alone a pooled or cross-attention DiT
cannot know where a token sits — attention scores only see offsets — and "at the top left"
is unlearnable; an MMDiT with RoPE can, since its unrotated text keys meet rotated image
queries.

:func:`text_guidance` is classifier-free guidance on text (Ho & Salimans 2022, arXiv
2207.12598, eq. 6) with an optional **negative prompt**: the unconditional branch is replaced
by the negative caption, ε̃ = ε̂(x, n) + w (ε̂(x, y) − ε̂(x, n)), which steers away from n.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from visgen._checks import check_choice
from visgen.data.shapes import CAPTION_LENGTH, CAPTION_WORDS, tokenize_captions
from visgen.nn import TEXT_MODES
from visgen.param import Denoiser
from visgen.sampling.guidance import classifier_free_guidance
from visgen.train.assets import register_asset

__all__ = ["JIT", "TEXT_DIT", "forward_flops", "text_dit_spec", "text_guidance"]

TEXT_DIT = {
    "name": "dit",
    "in_channels": 3,
    "size": 16,
    "patch_size": 4,
    "dim": 64,
    "depth": 4,
    "heads": 4,
    "pos": "sincos",
    "text_vocab": len(CAPTION_WORDS),
    "text_len": CAPTION_LENGTH,
}
"""The generator of lecture 11 (``text_mode`` is added per mechanism)."""
JIT = {"prediction": "x0", "t_eps": 0.05, "t_sampler": "logit_normal"}
"""x-prediction with the v-loss and logit-normal times (JiT; the lecture-5 DiTs)."""
STEPS = 500  # batch 64; the same in FAST runs (the tests use the tour's models)


def text_dit_spec(mode: str, steps: int | None = None, seed: int = 0) -> dict:
    """Training spec of the text-conditioned DiT reading captions by ``mode``."""
    check_choice(mode, "mode", TEXT_MODES)
    steps = STEPS if steps is None else steps
    return {
        "model": {**TEXT_DIT, "text_mode": mode},
        "method": {"name": "fm", **JIT, "label_dropout": 0.1, "attribute_dropout": 0.15},
        "data": "shapes16_captions",
        "labels": True,
        "train": {"steps": steps, "batch_size": 64, "lr": 2e-3, "warmup": 50, "seed": seed},
    }


for _mode in TEXT_MODES:
    register_asset(f"text_dit_{_mode}", lambda mode=_mode: text_dit_spec(mode))


def forward_flops(model, *args, **kwargs) -> int:
    """Floating-point operations of one call ``model(*args, **kwargs)`` (torch's counter:
    2 per multiply–add of matrix products and attention; element-wise work is not counted)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return int(counter.get_total_flops())


def text_guidance(den: Denoiser, scale: float, negative: str | None = None) -> Denoiser:
    """CFG on captions; with ``negative`` the null caption is replaced by the negative prompt."""
    if negative is None:
        return classifier_free_guidance(den, scale)
    if not isinstance(negative, str):
        raise TypeError(f"negative must be a caption string, got {type(negative).__name__}")
    return classifier_free_guidance(den, scale, null=tokenize_captions([negative])[0])
