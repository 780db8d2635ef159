"""The trained video models of lecture 9, as named assets of :mod:`visgen.train.assets`.

==========================  ===================================================================
``video_teacher``           bidirectional full-3D VideoDiT, flow matching (x0-prediction), the
                            teacher of CausVid / Self-Forcing
``video_teacher_factorised`` the same with factorised space–time attention (lecture 10 reuses it)
``video_tf_c{1,4}``         frame-block-causal, teacher forcing, chunks of 1 / 4 frames
``video_df_c{1,4}``         frame-block-causal, diffusion forcing
``video_sf_c{1,4}``         Self-Forcing few-step student (4 steps), from ``video_df_c*``
``video_causvid_c{1,4}``    CausVid few-step student, from ``video_df_c*``
==========================  ===================================================================

All train on ``bouncing16`` (8-frame clips, :data:`TRAIN_FRAMES`) with captions; the causal
ones have the same architecture (:func:`architecture`), so a student starts from its
diffusion-forcing model (spec ``init``). ``_s1``, ``_s2`` suffixes name the same recipes with
training seeds 1 and 2 (the benchmark's spread).
"""

from __future__ import annotations

from visgen.config import budget
from visgen.data import CAPTION_LENGTH, CAPTION_WORDS
from visgen.data.registry import VIDEO_FRAMES
from visgen.train.assets import register_asset

__all__ = ["CHUNKS", "SEEDS", "TRAIN_FRAMES", "architecture", "recipe"]

TRAIN_FRAMES = VIDEO_FRAMES  # the training length; rollouts of 2× and 4× measure drift
CHUNKS = (1, 4)
SEEDS = (0, 1, 2)
KINDS = ("teacher", "teacher_factorised", "tf", "df", "sf", "causvid")


def architecture(chunk: int = 0, attention: str = "full") -> dict:
    """The model config: 16×16 frames cut into 4 patches of 8×8, width 48, 3 blocks (4 for
    factorised attention, so spatial and temporal blocks alternate twice)."""
    return {
        "name": "video_dit",
        "channels": 1,
        "size": 16,
        "patch_size": 8,
        "dim": 48,
        "depth": 4 if attention == "factorised" else 3,
        "heads": 4,
        "attention": attention,
        "chunk": chunk,
        "text_vocab": len(CAPTION_WORDS),
        "text_len": CAPTION_LENGTH,
    }


def _train(steps: int, seed: int, batch_size: int = 32, lr: float = 2e-3) -> dict:
    return {"steps": steps, "batch_size": batch_size, "lr": lr, "warmup": min(50, steps // 4),
            "ema_decay": 0.99, "seed": seed}  # fmt: skip


def recipe(kind: str, chunk: int = 0, seed: int = 0) -> dict:
    """The spec of one model (``kind`` of :data:`KINDS`, ``chunk`` for causal kinds)."""
    suffix = f"_s{seed}" if seed else ""
    common = {"data": "bouncing16", "labels": True}
    if kind in ("teacher", "teacher_factorised"):
        attention = "full" if kind == "teacher" else "factorised"
        return {
            **common,
            "model": architecture(0, attention),
            "method": {"name": "fm", "prediction": "x0", "loss": "x0", "label_dropout": 0.1},
            "train": _train(budget(full=500, fast=150), seed),
        }
    if kind in ("tf", "df"):
        forcing = "teacher" if kind == "tf" else "diffusion"
        return {
            **common,
            "model": architecture(chunk),
            "method": {"name": "forcing", "kind": forcing, "chunk": chunk},
            "train": _train(budget(full=500, fast=150), seed),
        }
    method = {"name": "self_forcing" if kind == "sf" else "causvid",
              "teacher": f"video_teacher{suffix}"}  # fmt: skip
    return {
        **common,
        "model": architecture(chunk),
        "init": f"video_df_c{chunk}{suffix}",
        "method": method,
        "train": _train(budget(full=100, fast=30), seed, batch_size=16, lr=3e-4),
    }


def _register() -> None:
    for seed in SEEDS:
        suffix = f"_s{seed}" if seed else ""
        for kind in KINDS:
            chunks = (0,) if kind.startswith("teacher") else CHUNKS
            for chunk in chunks:
                name = f"video_{kind}" + (f"_c{chunk}" if chunk else "") + suffix
                register_asset(name, lambda k=kind, c=chunk, s=seed: recipe(k, c, s))


_register()
