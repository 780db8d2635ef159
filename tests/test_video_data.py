"""visgen.data.video: the physics is exact, clips are deterministic, the tracker recovers the
ground truth; animations for reports; the metrics' floors on real clips."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from visgen.data import get_dataset
from visgen.data.video import bouncing_shapes, moving_digits, reflect
from visgen.video.metrics import (
    acceleration,
    frame_frechet_distance,
    temporal_consistency,
    track,
    trajectory_error,
)
from visgen.viz import animation_bytes


def test_reflection_is_elastic_and_stays_inside():
    rng = np.random.default_rng(0)
    start = 2 + 8 * rng.random((500, 2))
    velocity = rng.uniform(-1.9, 1.9, (500, 2))
    pos, vel, bounce = reflect(start, velocity, 40, 2.0, 10.0)
    assert ((pos >= 2) & (pos <= 10)).all()
    assert np.array_equal(np.abs(vel), np.abs(velocity)[None].repeat(40, 0))  # speed per axis kept
    # away from a bounce the motion is p + v; at a bounce the mirror image of p + v
    free = pos[:-1] + vel[:-1]
    mirrored = np.where(free < 2, 4 - free, np.where(free > 10, 20 - free, free))
    assert np.allclose(pos[1:], mirrored, atol=1e-12)
    assert np.array_equal(bounce[1:], ((free < 2) | (free > 10)).any(-1))
    assert bounce[1:].any() and not bounce[0].any()
    with pytest.raises(ValueError, match="free width"):
        reflect(start, velocity * 5, 3, 2.0, 10.0)


@pytest.mark.parametrize("make", [bouncing_shapes, moving_digits])
def test_clips_are_deterministic_per_seed(make):
    a, b, c = make(6, 12, 16, seed=3), make(6, 12, 16, seed=3), make(6, 12, 16, seed=4)
    assert torch.equal(a.video, b.video) and torch.equal(a.position, b.position)
    assert a.captions == b.captions
    assert not torch.equal(a.video, c.video)
    assert a.video.shape[:2] == (6, 12) and a.video.min() >= -1 and a.video.max() <= 1


@pytest.mark.parametrize(
    "clips, threshold, tolerance",
    [
        (bouncing_shapes(40, 24, 16, seed=0, channels=1), 0.25, 0.4),  # 4×4 supersampled edges
        (bouncing_shapes(40, 16, 32, seed=1), 0.25, 0.4),
        (moving_digits(40, 16, 32, seed=2), 0.0, 1e-4),  # bilinear shifts keep the centre of mass
        (moving_digits(40, 16, 16, seed=3), 0.0, 1e-4),
        (moving_digits(40, 16, 32, seed=4), 0.25, 0.7),  # the threshold moves it a little
    ],
)
def test_tracking_real_clips_recovers_the_simulated_centre(clips, threshold, tolerance):
    errors = trajectory_error(clips.video, clips.position, threshold)
    assert errors["position"].max() < tolerance
    assert errors["velocity"].max() < 2 * tolerance
    consistency = temporal_consistency(clips.video)
    assert consistency.min() > 0.9  # objects keep their appearance
    if clips.position.shape[2] == 1 and threshold == 0:  # free flight has no acceleration
        accel = acceleration(clips.video, threshold)
        bounced = clips.bounce[:, 1:-1, 0] | clips.bounce[:, 2:, 0]
        assert accel[~bounced].max() < 1e-3 and accel[bounced].mean() > 0.3


def test_tracking_sees_a_frozen_or_shuffled_video():
    clips = bouncing_shapes(40, 16, 16, seed=5, channels=1)
    frozen = clips.video[:, :1].expand(-1, 16, -1, -1, -1)
    errors = trajectory_error(frozen, clips.position)["position"]
    assert errors[:, 0].max() < 0.25 and errors[:, -4:].mean() > 2  # frozen objects drift off
    shuffled = clips.video[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    assert trajectory_error(shuffled, clips.position)["velocity"].mean() > 1.0
    assert track(torch.full((1, 2, 1, 16, 16), -1.0)).tolist() == [[[8.0, 8.0]] * 2]


def test_frame_frechet_distance_floor_and_a_blurred_video():
    a = bouncing_shapes(200, 8, 16, seed=0, channels=1).video
    b = bouncing_shapes(200, 8, 16, seed=1, channels=1).video
    floor = frame_frechet_distance(b, a)
    blurred = torch.nn.functional.avg_pool2d(b.flatten(0, 1), 3, 1, 1).reshape(b.shape)
    assert frame_frechet_distance(blurred, a) > 3 * floor


def test_captions_registry_and_multi_object_clips():
    clips = bouncing_shapes(3, 8, 32, seed=0, objects=2)
    assert clips.position.shape == (3, 8, 2, 2) and clips.label.shape == (3, 2)
    assert " and " in clips.captions[0] and clips.captions[0].startswith("a ")
    data = get_dataset("bouncing16", "test")
    assert data.x.shape[1:] == (8, 1, 16, 16) and data.labels.shape == (len(data), 8)
    with pytest.raises(ValueError, match="size"):
        bouncing_shapes(2, 8, 20)
    with pytest.raises(ValueError, match="speed max"):
        bouncing_shapes(2, 8, 16, speed=(1, 12))
    with pytest.raises(ValueError, match="sizes"):
        bouncing_shapes(2, 8, 16, sizes=("huge",))


@pytest.mark.parametrize("fmt, magic", [("gif", b"GIF8"), ("png", b"\x89PNG"), ("webp", b"RIFF")])
def test_animations_hold_every_frame(fmt, magic):
    clips = bouncing_shapes(3, 10, 16, seed=0)
    data = animation_bytes(clips.video, 3, fmt=fmt, scale=2)
    assert data[:4] == magic
    image = Image.open(io.BytesIO(data))
    assert image.n_frames == 10 and image.size[0] > 3 * 16 * 2
    with pytest.raises(ValueError, match="fmt"):
        animation_bytes(clips.video, fmt="mp4")
