"""The lecture-10 teachers: what caching and quantisation are applied to.

========================  ==================================================  =============
asset                     network                                             registered by
========================  ==================================================  =============
``fm_digits_unet``        2-level U-Net (DeepCache), class-conditional FM     visgen.fewstep
``fm_digits_dit``         DiT, 16 tokens of 2×2 pixels, 4 blocks (FORA,      here
                          TeaCache, quantisation, the INT8 layer)
``video_teacher_p2``      lecture 9's full-3D video teacher with patches of   here
                          2×2: 64 tokens per frame, 512 per clip (sparse
                          video attention)
========================  ==================================================  =============

Both predict the flow-matching velocity on 8×8 digits with 10 % label dropout (CFG-ready),
so every lever of lecture 10 is compared on the same data and labels as the few-step students
of lectures 6–7. The DiT is 128 wide: at that width its linear layers are large enough for
INT8 matrix products to pay off on a CPU (at width 64 the quantise/rescale passes eat the
gain; BENCHMARKS.md). FAST mode trains a 64-wide DiT for a few hundred steps (smoke tests).

``video_teacher_p2`` is ``video_teacher`` (same data ``bouncing16``, captions, method and
steps) at 16× the tokens: Sparse VideoGen's premise, heads that attend within a frame or
along one position over time, needs more than the 4 tokens per frame of lecture 9's models.
"""

from __future__ import annotations

from visgen.config import budget
from visgen.train import register_asset
from visgen.video import assets as video_assets

__all__ = ["dit_recipe", "video_p2_recipe"]


def dit_recipe() -> dict:
    """The ``fm_digits_dit`` spec."""
    return {
        "model": {
            "name": "dit", "in_channels": 1, "size": 8, "patch_size": 2,
            "dim": budget(full=128, fast=64), "depth": 4, "heads": 4, "num_classes": 10,
        },
        "method": {"name": "fm", "t_sampler": "logit_normal", "label_dropout": 0.1},
        "data": "digits",
        "train": {
            "steps": budget(full=1000, fast=400), "batch_size": 128,
            "lr": budget(full=1e-3, fast=2e-3),
        },
    }  # fmt: skip


def video_p2_recipe() -> dict:
    """The ``video_teacher_p2`` spec: ``video_teacher``'s recipe with ``patch_size`` 2."""
    spec = video_assets.recipe("teacher")
    return {**spec, "model": {**video_assets.architecture(), "patch_size": 2}}


register_asset("fm_digits_dit", dit_recipe)
register_asset("video_teacher_p2", video_p2_recipe)
