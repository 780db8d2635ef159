"""Multi-view data sets with known cameras, rendered from the procedural scenes of
:mod:`visgen.threed.scenes` (named in :func:`visgen.data.get_dataset`).

===================  ==================================================  ===================  =======================
name                 what                                                x                    labels
===================  ==================================================  ===================  =======================
``cube_views16``     the canonical cube (face colours jittered by        (N, 3, 16, 16)       azimuth bin (N,) of 8
                     σ = 0.08) from one camera: elevation 30°, azimuth                        (45° each, bin 0 = front)
                     front-biased (60 % N(0°, 45°), 40 % uniform)
``cubes_orbit16``    palette cubes from 4 cameras 90° apart (random      (N, 4, 3, 16, 16)    cameras (N, 4, 16)
                     offset, one elevation in [20°, 40°]): MVDream's
                     orbit
``cubes_pairs16``    palette cubes from 2 independent cameras            (N, 2, 3, 16, 16)    cameras (N, 2, 16)
                     (azimuth uniform, elevation in [20°, 40°]): the
                     (input, target) pairs of novel-view synthesis
===================  ==================================================  ===================  =======================

Cameras are :meth:`Cameras.as_vector` rows (radius 3, field of view 40°, perspective). The
front bias of ``cube_views16`` imitates photo collections, where objects are mostly seen from
the front — the bias that makes a view-agnostic prior paint a face on every side (the Janus
problem). Train / test splits (8 000 / 1 000 views, 4 000 / 500 orbits, 6 000 / 500 pairs)
come from seeds 0 / 1.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_positive
from visgen.threed.cameras import Cameras, orbit
from visgen.threed.render import render
from visgen.threed.scenes import CANONICAL, cube_splats, random_cube_colors

__all__ = [
    "AZIMUTH_BINS",
    "CAMERA",
    "azimuth_bin",
    "cameras",
    "canonical_views",
    "cube_orbits",
    "cube_pairs",
    "load_threed",
    "render_views",
]

CAMERA = {"radius": 3.0, "fov": 40.0, "size": 16}
"""The cameras of every lecture-12 data set."""
AZIMUTH_BINS = 8
_SIZES = {  # (train, test) samples; an orbit holds 4 images, a pair 2
    "cube_views16": (8000, 1000),
    "cubes_orbit16": (4000, 500),
    "cubes_pairs16": (6000, 500),
}
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
    images = render_views(colors.clamp(-1, 1), cameras(az, 30.0))
    return images, az, azimuth_bin(az)


def cube_orbits(n: int, generator: torch.Generator, views: int = 4):
    """Palette cubes from ``views`` cameras evenly spaced in azimuth (random offset, one
    elevation in [20°, 40°] per cube): images (n, V, 3, 16, 16), cameras (n, V, 16), palette
    indices (n, 3)."""
    check_positive(n, "n", integer=True)
    colors, idx = random_cube_colors(n, generator)
    offset = 360 * torch.rand(n, 1, generator=generator)
    az = offset + torch.arange(views) * (360 / views)
    el = torch.full((n, views), 30.0)
    cams = cameras(az.reshape(-1), el.reshape(-1))
    images = render_views(colors, cams)
    s = CAMERA["size"]
    return images.reshape(n, views, 3, s, s), cams.as_vector().reshape(n, views, 16), idx


def cube_pairs(n: int, generator: torch.Generator):
    """Palette cubes from two independent cameras (azimuth uniform, elevation in [20°, 40°]):
    images (n, 2, 3, 16, 16), cameras (n, 2, 16), palette indices (n, 3)."""
    check_positive(n, "n", integer=True)
    colors, idx = random_cube_colors(n, generator)
    az = 360 * torch.rand(n, 2, generator=generator)
    el = 20 + 20 * torch.rand(n, 2, generator=generator)
    cams = cameras(az.reshape(-1), el.reshape(-1))
    images = render_views(colors, cams)
    s = CAMERA["size"]
    return images.reshape(n, 2, 3, s, s), cams.as_vector().reshape(n, 2, 16), idx


def load_threed(name: str, split: str):
    """(x, labels, num_classes) of a lecture-12 data set (see the module table)."""
    check_choice(name, "dataset", ("cube_views16", "cubes_orbit16", "cubes_pairs16"))
    check_choice(split, "split", tuple(_SEEDS))
    g = torch.Generator().manual_seed(_SEEDS[split])
    n = _SIZES[name][split == "test"]
    if name == "cube_views16":
        images, _, bins = canonical_views(n, g)
        return images, bins, AZIMUTH_BINS
    build = cube_orbits if name == "cubes_orbit16" else cube_pairs
    images, cams, _ = build(n, g)
    return images, cams, 0
