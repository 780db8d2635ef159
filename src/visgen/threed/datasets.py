"""Multi-view data sets with known cameras, rendered from the procedural scenes of
:mod:`visgen.threed.scenes` (named in :func:`visgen.data.get_dataset`).

=================  ====================================================  ==================  =====================
name               what                                                  x                   labels
=================  ====================================================  ==================  =====================
``cube_views16``   the canonical cube (face colours jittered by σ =      (N, 3, 16, 16)      azimuth bin (N,) of 8
                   0.08) from one camera: azimuth front-biased (60 %                         (45° each, 0 = front)
                   N(0°, 45°), 40 % uniform)
``cubes_mv16``     palette cubes from 4 cameras 90° apart (a random      (N, 4, 3, 16, 16)   cameras (N, 4, 16)
                   offset): MVDream's orbit
=================  ====================================================  ==================  =====================

Cameras are :meth:`Cameras.as_vector` rows (radius 3, field of view 40°, perspective,
elevation 30°). The
front bias of ``cube_views16`` imitates photo collections, where objects are mostly seen from
the front — the bias that makes a view-agnostic prior paint a face on every side (the Janus
problem). Train / test splits (8 000 / 1 000 views, 4 000 / 500 stacks) come from seeds 0 / 1. The
loaders are registered in :data:`visgen.data.registry.RENDERED`, so ``get_dataset`` finds them.
"""

from __future__ import annotations

import functools

import torch

from visgen._checks import check_choice, check_positive
from visgen.data.registry import RENDERED
from visgen.threed.cameras import Cameras, orbit
from visgen.threed.render import render
from visgen.threed.scenes import CANONICAL, cube_splats, random_cube_colors

__all__ = [
    "AZIMUTH_BINS",
    "CAMERA",
    "azimuth_bin",
    "cameras",
    "canonical_views",
    "load_threed",
    "palette_views",
    "render_views",
]

CAMERA = {"radius": 3.0, "fov": 40.0, "size": 16}
"""The cameras of every lecture-12 data set."""
AZIMUTH_BINS = 8
_SIZES = {"cube_views16": (8000, 1000), "cubes_mv16": (4000, 500)}  # (train, test) samples
ELEVATION = 30.0
_SEEDS = {"train": 0, "test": 1}


def azimuth_bin(azimuth: torch.Tensor) -> torch.Tensor:
    """The view label of azimuths in degrees: the nearest of 8 directions 45° apart (0 = +x)."""
    step = 360 / AZIMUTH_BINS
    return torch.round(torch.as_tensor(azimuth) / step).long() % AZIMUTH_BINS


def cameras(azimuths, elevations, size: int = CAMERA["size"]) -> Cameras:
    """The data sets' orbit cameras (radius 3, field of view 40°) at these angles (degrees)."""
    return orbit(azimuths, elevations, CAMERA["radius"], size=size, fov=CAMERA["fov"])


def render_views(face_colors: torch.Tensor, cams: Cameras, chunk: int = 32) -> torch.Tensor:
    """Cube images (S·V, 3, H, W): cube s (face colours (S, 6, 3)) seen by cameras s·V … s·V+V−1."""
    views = len(cams) // face_colors.shape[0]
    out = []
    for start in range(0, len(cams), chunk):
        rows = slice(start, start + chunk)
        scenes = cube_splats(face_colors[start // views : (start + chunk) // views])
        out.append(render(scenes.repeat(views), cams[rows]).image)
    return torch.cat(out).clamp(-1, 1)


def canonical_views(
    n: int, generator: torch.Generator, *, jitter: float = 0.08, front: float = 0.6
):
    """Images (n, 3, 16, 16), azimuths (n,) in degrees and their bins of the canonical cube."""
    check_positive(n, "n", integer=True)
    biased = torch.rand(n, generator=generator) < front
    az = torch.where(
        biased,
        45.0 * torch.randn(n, generator=generator),
        360.0 * torch.rand(n, generator=generator) - 180.0,
    )
    colors = CANONICAL + jitter * torch.randn(n, 6, 3, generator=generator)
    images = render_views(colors.clamp(-1, 1), cameras(az, ELEVATION))
    return images, az, azimuth_bin(az)


def palette_views(
    n: int,
    generator: torch.Generator,
    views: int = 4,
    spacing: float | None = None,
    jitter: float = 180.0,
):
    """Palette cubes seen by ``views`` cameras at elevation 30°: azimuths independent and
    uniform, or ``spacing`` degrees apart from a random offset (MVDream's orbit: 4 views, 90°).
    Returns images (n, V, 3, 16, 16), cameras (n, V, 16) and palette indices (n, 3)."""
    check_positive(n, "n", integer=True)
    check_positive(views, "views", integer=True)
    colors, idx = random_cube_colors(n, generator)
    if spacing is None:
        az = 360 * torch.rand(n, views, generator=generator)
    else:
        offset = 45 + jitter * (2 * torch.rand(n, 1, generator=generator) - 1)
        az = offset + spacing * torch.arange(views)
    cams = cameras(az.reshape(-1), torch.full((n * views,), ELEVATION))
    images = render_views(colors, cams)
    s = CAMERA["size"]
    return images.reshape(n, views, 3, s, s), cams.as_vector().reshape(n, views, 16), idx


def load_threed(name: str, split: str):
    """(x, labels, num_classes) of a lecture-12 data set (see the module table)."""
    check_choice(name, "dataset", tuple(_SIZES))
    check_choice(split, "split", tuple(_SEEDS))
    g = torch.Generator().manual_seed(_SEEDS[split])
    n = _SIZES[name][split == "test"]
    if name == "cube_views16":
        images, _, bins = canonical_views(n, g)
        return images, bins, AZIMUTH_BINS
    images, cams, _ = palette_views(n, g, spacing=90.0)
    return images, cams, 0


for _name in _SIZES:
    RENDERED[_name] = functools.partial(load_threed, _name)
