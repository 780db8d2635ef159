r"""Video metrics against the physics of :mod:`visgen.data.video`.

* :func:`track` — the object's centre of mass in each frame, from the intensity above the
  background: w = max(0, I − τ) with I = (max over channels of x + 1)/2 ∈ [0, 1] and τ = 0.25,
  p_f = Σ_u w_u u / Σ_u w_u over pixel centres u (a clip with one object).
* :func:`trajectory_error` — |p̂_f − p_f| per frame against the simulated centre p_f
  (pixels), and the velocity error |Δp̂_f − Δp_f| of the frame-to-frame displacements;
  averaged over videos this is the **drift curve**; :func:`drift` summarises it over a
  span of frames (e.g. the frames beyond the training length).
* :func:`acceleration` — |p̂_{f+1} − 2 p̂_f + p̂_{f−1}| of the tracked centre: 0 for free flight,
  about 2|v_⊥| at a bounce; needs no ground truth, so it also scores unconditional samples
  (a bidirectional teacher) for physical plausibility.
* :func:`temporal_consistency` — mean cosine similarity of object-centred crops of
  consecutive frames (the object keeps its appearance; a blurring or dissolving object
  loses similarity): VBench's subject consistency with pixels as features.
* :func:`frame_frechet_distance` — Fréchet distance (Heusel et al. 2017, arXiv 1706.08500)
  between the frames of generated and real clips, in the space of the top principal
  components of real frames (:class:`visgen.metrics.PCAFeatures`); quote it next to the
  real-vs-real floor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visgen._checks import check_positive, check_tensor
from visgen.metrics.images import PCAFeatures, frechet_distance

__all__ = [
    "acceleration",
    "drift",
    "frame_frechet_distance",
    "temporal_consistency",
    "track",
    "trajectory_error",
]

THRESHOLD = 0.25


def _video(x, name="video") -> torch.Tensor:
    x = check_tensor(x, name, min_dim=5, finite=False)
    if x.dim() != 5:
        raise ValueError(f"{name} must be (B, F, C, H, W), got shape {tuple(x.shape)}")
    return x


def track(video: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """Centre of mass (B, F, 2) = (x, y) in pixels of the intensity above ``threshold``;
    the frame centre where a frame holds no such intensity."""
    video = _video(video)
    intensity = ((video.float().amax(2) + 1) / 2 - threshold).clamp_min(0)  # (B, F, H, W)
    h, w = intensity.shape[-2:]
    mass = intensity.sum((-1, -2))
    xs = torch.arange(w, dtype=intensity.dtype) + 0.5
    ys = torch.arange(h, dtype=intensity.dtype) + 0.5
    cx = (intensity.sum(-2) * xs).sum(-1) / mass.clamp_min(1e-8)
    cy = (intensity.sum(-1) * ys).sum(-1) / mass.clamp_min(1e-8)
    empty = mass < 1e-8
    cx = torch.where(empty, torch.full_like(cx, w / 2), cx)
    cy = torch.where(empty, torch.full_like(cy, h / 2), cy)
    return torch.stack([cx, cy], -1)


def trajectory_error(
    video: torch.Tensor, position: torch.Tensor, threshold: float = THRESHOLD
) -> dict[str, torch.Tensor]:
    """Per-frame errors of the tracked object against the true centre ``position``
    (B, F, 2) or (B, F, 1, 2) of :class:`visgen.data.video.Clips`: ``position`` (B, F) =
    |p̂_f − p_f| and ``velocity`` (B, F − 1) = |(p̂_{f+1} − p̂_f) − (p_{f+1} − p_f)|, pixels."""
    video = _video(video)
    if position.dim() == 4:
        if position.shape[2] != 1:
            raise ValueError("trajectory_error tracks clips with one object")
        position = position[:, :, 0]
    if position.shape != (*video.shape[:2], 2):
        raise ValueError(
            f"position must be (B, F, 2) = {(*video.shape[:2], 2)}, got {tuple(position.shape)}"
        )
    est = track(video, threshold)
    pos = position.to(est.dtype)
    return {
        "position": (est - pos).norm(dim=-1),
        "velocity": ((est[:, 1:] - est[:, :-1]) - (pos[:, 1:] - pos[:, :-1])).norm(dim=-1),
    }


def acceleration(video: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """|p̂_{f+1} − 2 p̂_f + p̂_{f−1}| (B, F − 2) of the tracked centre, pixels per frame²."""
    p = track(video, threshold)
    if p.shape[1] < 3:
        raise ValueError("acceleration needs at least 3 frames")
    return (p[:, 2:] - 2 * p[:, 1:-1] + p[:, :-2]).norm(dim=-1)


def drift(errors: torch.Tensor, start: int = 0, stop: int | None = None) -> float:
    """Mean error of frames ``start`` … ``stop`` − 1 over videos (errors (B, F))."""
    errors = check_tensor(errors, "errors", min_dim=2)
    if not 0 <= start < (stop if stop is not None else errors.shape[1]) <= errors.shape[1]:
        raise ValueError(f"need 0 <= start < stop <= {errors.shape[1]}, got {start}, {stop}")
    return float(errors[:, start:stop].mean())


def _crops(video: torch.Tensor, half: int) -> torch.Tensor:
    """Bilinear crops (B, F, C, 2·half, 2·half) centred on the tracked object."""
    b, f, c, h, w = video.shape
    centre = track(video).reshape(b * f, 1, 1, 2)
    offsets = torch.arange(2 * half, dtype=video.dtype) - half + 0.5
    gx = (centre[..., 0] + offsets[None, None, :]) / w * 2 - 1
    gy = (centre[..., 1] + offsets[None, :, None]) / h * 2 - 1
    grid = torch.stack([gx.expand(-1, 2 * half, -1), gy.expand(-1, -1, 2 * half)], -1)
    frames = (video.reshape(b * f, c, h, w).float() + 1) / 2  # background 0
    out = F.grid_sample(frames, grid.float(), mode="bilinear", align_corners=False)
    return out.reshape(b, f, c, 2 * half, 2 * half)


def temporal_consistency(video: torch.Tensor, half: int = 4) -> torch.Tensor:
    """Per video (B,): mean cosine similarity of object-centred crops (side 2·``half``) of
    consecutive frames; 1 for an object that only moves."""
    video = _video(video)
    check_positive(half, "half", integer=True)
    if video.shape[1] < 2:
        raise ValueError("temporal_consistency needs at least 2 frames")
    crops = _crops(video, half).flatten(2)
    return F.cosine_similarity(crops[:, 1:], crops[:, :-1], dim=-1, eps=1e-6).mean(1)


def frame_frechet_distance(generated: torch.Tensor, real: torch.Tensor, k: int = 16) -> float:
    """FD between the frames of ``generated`` and ``real`` clips in the top-``k`` PCA space
    of the real frames."""
    generated, real = _video(generated, "generated"), _video(real, "real")
    if generated.shape[2:] != real.shape[2:]:
        raise ValueError(
            f"frames differ: generated {tuple(generated.shape[2:])}, real {tuple(real.shape[2:])}"
        )
    features = PCAFeatures(real.flatten(0, 1), k)
    return frechet_distance(features(generated.flatten(0, 1)), features(real.flatten(0, 1)))
