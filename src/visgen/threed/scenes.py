r"""Procedural 3D scenes made of Gaussian splats: coloured cubes and a few coloured blobs.

* **Cubes** (:func:`cube_splats`): a cube [−½, ½]³ whose six faces are each covered by a k × k
  grid of flat splats (in-plane standard deviation 0.6 of the grid spacing, so the face looks
  solid; thickness 2 % of the side). Faces are ordered +x, −x, +y, −y, +z, −z
  (:data:`FACES`); :func:`cube_face_index` says which face each splat belongs to, so rendering
  one-hot features instead of colours gives per-pixel face labels.

  - :func:`random_cube_colors`: *palette cubes* — each pair of opposite faces has one colour
    drawn from the 6-colour :data:`PALETTE` (6³ = 216 cubes). Every generic view shows the
    top and two side faces, hence all three colours: a novel view is determined by one input
    view (up to head-on views), which makes novel-view PSNR a measure of geometry, not luck.
  - :data:`CANONICAL`: *the canonical cube* — fixed, distinct face colours, +x red (its
    "front"), −x blue, +y green, −y yellow, +z white, −z dark grey: an object with a front and
    a back, as needed to see the Janus problem of score distillation.

* **Blobs** (:func:`blob_splats`, :func:`random_blobs`): a few round coloured Gaussians.

Colours are in image units [−1, 1]; the renderer's background is mid-grey (0).
"""

from __future__ import annotations

import torch

from visgen._checks import check_positive, check_tensor
from visgen.threed.splats import Splats

__all__ = [
    "CANONICAL",
    "FACES",
    "PALETTE",
    "blob_splats",
    "cube_face_index",
    "cube_splats",
    "random_blobs",
    "random_cube_colors",
]

FACES = ("+x", "-x", "+y", "-y", "+z", "-z")
_NORMALS = torch.tensor(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=torch.float32
)


def _rgb(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 3) / 127.5 - 1


PALETTE = _rgb(
    230, 40, 40,  # red
    240, 225, 40,  # yellow
    40, 185, 60,  # green
    40, 200, 220,  # cyan
    40, 70, 220,  # blue
    245, 245, 245,  # white
)  # fmt: skip
"""(6, 3) colours of the palette cubes, in [−1, 1] (at least 0.9 apart)."""

CANONICAL = _rgb(230, 40, 40, 40, 70, 220, 40, 185, 60, 240, 225, 40, 245, 245, 245, 60, 60, 60)
"""(6, 3) face colours of the canonical cube in :data:`FACES` order (+x red = its front)."""


def cube_face_index(per_side: int = 3) -> torch.Tensor:
    """(6 k²,) face index (into :data:`FACES`) of each splat of :func:`cube_splats`."""
    check_positive(per_side, "per_side", integer=True)
    return torch.arange(6).repeat_interleave(per_side * per_side)


def _cube_geometry(per_side: int, size: float):
    k = per_side
    grid = (torch.arange(k, dtype=torch.float32) + 0.5) / k - 0.5  # face coordinates in (−½, ½)
    a, b = torch.meshgrid(grid, grid, indexing="ij")
    a, b = a.reshape(-1), b.reshape(-1)
    means, scales = [], []
    thin, wide = 0.02, 0.6 / k
    for n in _NORMALS:
        axis = int(n.abs().argmax())
        others = [i for i in range(3) if i != axis]
        m = torch.zeros(k * k, 3)
        m[:, axis] = 0.5 * n[axis]
        m[:, others[0]], m[:, others[1]] = a, b
        s = torch.full((k * k, 3), wide)
        s[:, axis] = thin
        means.append(m)
        scales.append(s)
    return size * torch.cat(means), size * torch.cat(scales)


def cube_splats(face_colors: torch.Tensor, *, per_side: int = 3, size: float = 1.0,
                opacity: float = 0.95) -> Splats:  # fmt: skip
    """Splats (S, 6k², ·) of S cubes of side ``size`` centred at the origin.

    ``face_colors`` (S, 6, C) or (6, C): one colour (or feature vector) per face in
    :data:`FACES` order.
    """
    face_colors = check_tensor(face_colors, "face_colors")
    if face_colors.dim() == 2:
        face_colors = face_colors[None]
    if face_colors.dim() != 3 or face_colors.shape[1] != 6:
        raise ValueError(f"face_colors must have shape (S, 6, C), got {tuple(face_colors.shape)}")
    check_positive(size, "size")
    if not 0 < opacity <= 1:
        raise ValueError(f"opacity must lie in (0, 1], got {opacity!r}")
    means, scales = _cube_geometry(per_side, size)
    means, scales = means.to(face_colors.dtype), scales.to(face_colors.dtype)
    colors = face_colors.repeat_interleave(per_side * per_side, dim=1)
    opac = torch.full((1, means.shape[0]), opacity, dtype=face_colors.dtype)
    return Splats(means[None], scales[None], colors, opac)


def random_cube_colors(n: int, generator: torch.Generator | None = None):
    """n palette cubes: face colours (n, 6, 3) and palette indices (n, 3) of the x, y and z
    face pairs (opposite faces share a colour)."""
    check_positive(n, "n", integer=True)
    idx = torch.randint(len(PALETTE), (n, 3), generator=generator)
    pair = idx.repeat_interleave(2, dim=1)  # (+x, −x, +y, −y, +z, −z)
    return PALETTE[pair], idx


def blob_splats(centers: torch.Tensor, radii: torch.Tensor, colors: torch.Tensor,
                opacity: float = 0.9) -> Splats:  # fmt: skip
    """Round blobs: one isotropic splat per centre (S, K, 3) with radius (S, K) and colour."""
    centers = check_tensor(centers, "centers")
    radii = check_tensor(radii, "radii")
    scales = radii[..., None].expand(*radii.shape, 3)
    return Splats(centers, scales, colors, torch.full(radii.shape, opacity, dtype=centers.dtype))


def random_blobs(n: int, k: int = 3, generator: torch.Generator | None = None) -> Splats:
    """n scenes of k blobs: centres uniform in [−0.5, 0.5]³, radii in [0.15, 0.3], palette colours."""
    check_positive(n, "n", integer=True)
    check_positive(k, "k", integer=True)
    centers = torch.rand(n, k, 3, generator=generator) - 0.5
    radii = 0.15 + 0.15 * torch.rand(n, k, generator=generator)
    colors = PALETTE[torch.randint(len(PALETTE), (n, k), generator=generator)]
    return blob_splats(centers, radii, colors)
