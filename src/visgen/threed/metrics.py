r"""Measuring 3D generation: cross-view consistency, the Janus score, colour saturation, PSNR.

* :func:`face_colors` reads the colour of each cube face in each view, using face labels
  rendered with the same cameras (one-hot features through :func:`~visgen.threed.render`).
* :func:`cross_view_consistency`: for every face of a cube seen by two views, do both views show
  it in the same palette colour? The share of agreeing view pairs, averaged over faces.
  Independent per-view samples of palette cubes agree by chance (1/6 per face); a consistent
  3D object agrees always.
* :func:`colors_per_view` (:func:`orbit_colors` per view of each cube): the number of different palette colours among the faces a view
  shows (≈ 2.5 for the data: three faces, colours drawn from six). Read beside the
  consistency: a generator that paints every cube in one colour is perfectly consistent, so
  consistency counts only where the samples keep the data's colours.
* :func:`janus_score`: the share of viewing directions from which the canonical cube's front
  colour (red) fills at least ``threshold`` of the object — 3/8 for the true cube seen from 8
  azimuths 45° apart (the red face is visible from the front half of the circle), up to 1
  for a "multi-faced" (Janus) object whose front colour is seen from everywhere.
* :func:`saturation`: the mean HSV saturation (max − min)/max of the object's pixels, the
  number that rises when score distillation over-saturates (DreamFusion, Poole et al. 2022,
  arXiv 2209.14988, §4 and App. A.3: large guidance weights give over-saturated colours).
* :func:`psnr`: 10 log10(range² / MSE) per image (range 2 for images in [−1, 1]), or of the
  MSE pooled over a set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visgen._checks import check_positive, check_tensor
from visgen.threed.cameras import Cameras
from visgen.threed.render import render
from visgen.threed.scenes import CANONICAL, PALETTE, cube_splats

__all__ = [
    "colors_per_view",
    "cross_view_consistency",
    "face_colors",
    "face_labels",
    "janus_score",
    "orbit_colors",
    "psnr",
    "saturation",
]


def psnr(x: torch.Tensor, y: torch.Tensor, *, pool: bool = False) -> torch.Tensor:
    """PSNR in dB of images in [−1, 1] (…, C, H, W): one value per image, or with ``pool`` one
    value for the whole set, 10 log10(4 / mean MSE) — robust where some images match exactly
    (their per-image PSNR is infinite)."""
    x, y = check_tensor(x, "x", min_dim=3), check_tensor(y, "y", min_dim=3)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    mse = (x - y).pow(2).flatten(-3).mean(-1)
    if pool:
        mse = mse.mean()
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def face_labels(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel face weights (B, 6, H, W) of the unit cube seen by ``cams`` and its alpha."""
    onehot = F.one_hot(torch.arange(6), 6).to(cams.c2w.dtype)
    out = render(cube_splats(onehot), cams, background=0.0)
    return out.image, out.alpha


def face_colors(images: torch.Tensor, cams: Cameras, min_pixels: int = 6):
    """Mean colour (B, 6, 3) of each face in each image (B, 3, H, W) and whether the face is
    seen (B, 6): at least ``min_pixels`` pixels where it dominates (weight > 0.7)."""
    weights, _ = face_labels(cams)
    own = weights > 0.7  # (B, 6, H, W)
    count = own.flatten(2).sum(-1)
    total = torch.einsum("bfhw,bchw->bfc", own.to(images.dtype), images)
    return total / count.clamp_min(1)[..., None], count >= min_pixels


def _nearest(colors: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    return (
        torch.cdist(colors.reshape(-1, 3), palette.to(colors.dtype))
        .argmin(-1)
        .reshape(colors.shape[:-1])
    )


def _view_colors(images: torch.Tensor, cams: Cameras, palette) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest palette index (B, 6) of each face in each image (B, 3, H, W) and whether the
    face is seen (B, 6)."""
    colors, seen = face_colors(images, cams)
    return _nearest(colors, palette), seen


def _orbit_faces(images: torch.Tensor, cams: Cameras, palette) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_view_colors` of view stacks ``images`` (B, V, 3, H, W) seen by the B·V cameras
    ``cams`` (sample-major), as (B, V, 6) each."""
    images = check_tensor(images, "images", min_dim=5)
    B, V = images.shape[:2]
    if len(cams) != B * V:
        raise ValueError(f"cams must hold {B * V} cameras for {B}×{V} views, got {len(cams)}")
    idx, seen = _view_colors(images.flatten(0, 1), cams, palette)
    return idx.reshape(B, V, 6), seen.reshape(B, V, 6)


def _count_colors(idx: torch.Tensor, seen: torch.Tensor, palette) -> torch.Tensor:
    """(...) the number of different palette colours among the seen faces of (..., 6) faces."""
    onehot = F.one_hot(idx, len(palette)) * seen[..., None]  # (..., 6, P): seen faces' colours
    return (onehot.sum(-2) > 0).sum(-1)


def cross_view_consistency(
    images: torch.Tensor, cams: Cameras, palette=PALETTE, *, min_colors: int = 1
) -> float:
    """For every face of every cube seen by at least two views: the share of those view pairs
    that show it in the same nearest palette colour; averaged over (cube, face), so the top
    face (seen by every view) and a side face (seen by two) weigh the same. ``images`` (B, V,
    3, H, W), ``cams`` the B·V cameras (sample-major).

    ``min_colors`` > 1 counts only the cubes whose every view shows at least that many
    different colours: a cube painted in one colour agrees across views for free, so the
    number over multi-coloured cubes says whether a generator's agreement is bought by
    dropping colours."""
    check_positive(min_colors, "min_colors", integer=True)
    idx, seen = _orbit_faces(images, cams, palette)
    counted = (_count_colors(idx, seen, palette) >= min_colors).all(1)
    idx, seen = idx[counted], seen[counted]
    V = idx.shape[1]
    pairs = torch.triu(torch.ones(V, V, dtype=torch.bool), 1)[None, :, :, None]
    both = seen[:, :, None] & seen[:, None, :] & pairs  # (B', V, V, 6)
    same = both & (idx[:, :, None] == idx[:, None, :])
    cases = both.sum((1, 2))  # (B', 6) view pairs that see each face
    if not (cases > 0).any():
        raise ValueError(
            "no face is seen by two views"
            + (f" of a cube whose views show {min_colors}+ colours" if min_colors > 1 else "")
            + ": cannot measure consistency"
        )
    share = same.sum((1, 2)) / cases.clamp_min(1)
    return float(share[cases > 0].mean())


def orbit_colors(images: torch.Tensor, cams: Cameras, palette=PALETTE) -> torch.Tensor:
    """(B, V) the number of different palette colours each view of each cube shows; ``images``
    (B, V, 3, H, W), ``cams`` the B·V cameras (sample-major)."""
    return _count_colors(*_orbit_faces(images, cams, palette), palette)


def colors_per_view(images: torch.Tensor, cams: Cameras, palette=PALETTE) -> float:
    """Mean number of different nearest palette colours among the faces each image (B, 3, H, W)
    shows (seen as in :func:`face_colors`); ``cams`` the B cameras."""
    images = check_tensor(images, "images", min_dim=4)
    if len(cams) != len(images):
        raise ValueError(f"cams must hold {len(images)} cameras, got {len(cams)}")
    return float(_count_colors(*_view_colors(images, cams, palette), palette).float().mean())


def _foreground(images: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """(B, P) mask of object pixels: alpha > ½, or pixels away from the grey background."""
    if alpha is not None:
        return alpha.flatten(1) > 0.5
    return images.abs().amax(1).flatten(1) > 0.15


def saturation(images: torch.Tensor, alpha: torch.Tensor | None = None) -> float:
    """Mean HSV saturation (max − min)/max of the object's pixels of images (B, 3, H, W)."""
    images = check_tensor(images, "images", min_dim=4)
    rgb = ((images.clamp(-1, 1) + 1) / 2).flatten(2)  # (B, 3, P) in [0, 1]
    hi, lo = rgb.amax(1), rgb.amin(1)
    sat = (hi - lo) / hi.clamp_min(1e-6)
    mask = _foreground(images, alpha)
    return float(sat[mask].mean())


def janus_score(images: torch.Tensor, alpha: torch.Tensor | None = None, *, front=None,
                threshold: float = 0.15, tolerance: float = 0.5) -> float:  # fmt: skip
    """Share of views (B, 3, H, W) in which the front colour (default: the canonical cube's
    red) covers at least ``threshold`` of the object's pixels (colour distance < ``tolerance``)."""
    images = check_tensor(images, "images", min_dim=4)
    front = CANONICAL[0] if front is None else torch.as_tensor(front)
    dist = (images - front.to(images.dtype)[None, :, None, None]).norm(dim=1).flatten(1)
    mask = _foreground(images, alpha)
    share = ((dist < tolerance) & mask).sum(1) / mask.sum(1).clamp_min(1)
    return float((share >= threshold).float().mean())
