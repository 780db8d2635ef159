"""Lecture 9's trained models through the asset cache (FAST budgets): a Self-Forcing student
is fine-tuned from its diffusion-forcing asset with its own loop (``fit``), pinned to the
exact init and teacher entries, stored once and served again; its rollouts go through the
drift protocol."""

from __future__ import annotations

import math

import torch

from visgen.train import asset, asset_key
from visgen.video.evaluation import eval_clips, rollout_metrics


def test_self_forcing_student_is_a_cached_asset_from_its_init_and_teacher():
    student = asset("video_sf_c4", progress=False)
    init = asset("video_df_c4", progress=False)
    assert student.config["init"] == f"video_df_c4:{asset_key('video_df_c4')}"
    assert student.config["method"]["teacher_key"] == asset_key("video_teacher")
    assert student.model.config == init.model.config and student.model.cfg.chunk == 4
    assert len(student.history) == student.config["step"] > 0
    assert all(math.isfinite(v) for v in student.history.tolist())
    moved = max(
        float((a - b).abs().max())
        for a, b in zip(student.model.parameters(), init.model.parameters())
    )
    assert moved > 1e-4  # the distillation steps changed the diffusion-forcing weights
    again = asset("video_sf_c4", progress=False)  # from the cache, not retrained
    assert again.path == student.path
    assert all(
        torch.equal(a, b) for a, b in zip(again.model.parameters(), student.model.parameters())
    )
    clips = eval_clips(4)
    result = rollout_metrics(student.model, clips, frames=16)
    assert result["video"].shape == (4, 16, 1, 16, 16)
    assert torch.equal(result["video"][:, :4], clips.video[:, :4])  # the context is kept
    assert result["curve"].shape == (16,) and math.isfinite(result["drift"][2])
