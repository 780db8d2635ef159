r"""Toy 2D point clouds (B, 2), generated in torch from an explicit ``torch.Generator``.

================== ==========================================================================
``eight_gaussians`` the course's target, :func:`visgen.oracles.eight_gaussians` (radius 2,
                    std 0.3): the only one with a closed-form score, so tests prefer it
``checkerboard``    uniform on the black squares of a 4×4 board on [−2, 2]²
``moons``           two interleaving half circles (scikit-learn's ``make_moons`` shape),
                    centred and scaled ×1.5, Gaussian noise 0.1
``swiss_roll``      the 2D swiss roll r = θ, θ ∈ [1.5π, 4.5π], scaled to radius ≈ 2.4
``rings``           three concentric circles of radii 0.8, 1.6, 2.4 (mass ∝ radius), noise 0.08
================== ==========================================================================

All have a spread comparable to N(0, I), so one MLP and one schedule fit every one of them.

:func:`embedding_matrix` places them in a D-dimensional space (x ↦ P x with a fixed random P
with orthonormal columns): data on a 2-D plane of a high-dimensional space, the toy of JiT's
manifold argument (Li & He 2025, arXiv 2511.13720, §3).
"""

from __future__ import annotations

import math

import torch

from visgen._checks import check_choice, check_positive
from visgen.oracles import eight_gaussians

__all__ = ["TOY2D", "embedding_matrix", "toy2d"]


def _eight_gaussians(n, g):
    return eight_gaussians().sample(n, g)


def _checkerboard(n, g):
    # a cell (i, j) of the 4×4 board is "black" when i + j is even: pick one of the 8 black
    # cells, then a uniform point inside it
    cells = torch.tensor([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    k = torch.randint(0, len(cells), (n,), generator=g)
    return (cells[k] + torch.rand(n, 2, generator=g)) - 2.0


def _moons(n, g):
    upper = torch.rand(n, generator=g) < 0.5
    theta = math.pi * torch.rand(n, generator=g)
    x = torch.where(upper, torch.cos(theta), 1 - torch.cos(theta))
    y = torch.where(upper, torch.sin(theta), 0.5 - torch.sin(theta))
    pts = torch.stack([x - 0.5, y - 0.25], 1) * 1.5
    return pts + 0.1 * torch.randn(n, 2, generator=g)


def _swiss_roll(n, g):
    theta = math.pi * (1.5 + 3 * torch.rand(n, generator=g))
    pts = torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], 1) / (4.5 * math.pi)
    return 2.4 * pts + 0.05 * torch.randn(n, 2, generator=g)


def _rings(n, g):
    radii = torch.tensor([0.8, 1.6, 2.4])
    k = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=g)
    theta = 2 * math.pi * torch.rand(n, generator=g)
    pts = radii[k, None] * torch.stack([torch.cos(theta), torch.sin(theta)], 1)
    return pts + 0.08 * torch.randn(n, 2, generator=g)


TOY2D = {
    "eight_gaussians": _eight_gaussians,
    "checkerboard": _checkerboard,
    "moons": _moons,
    "swiss_roll": _swiss_roll,
    "rings": _rings,
}


def toy2d(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """n points (n, 2) float32 of the toy distribution `name` (one of :data:`TOY2D`)."""
    check_choice(name, "name", tuple(TOY2D))
    check_positive(n, "n", integer=True)
    return TOY2D[name](n, generator).to(torch.float32)


def embedding_matrix(dim: int, intrinsic: int = 2, seed: int = 0) -> torch.Tensor:
    """P (dim, intrinsic) with orthonormal columns (QR of a seeded Gaussian matrix).

    x = P u embeds u ∈ R^intrinsic in R^dim isometrically; Pᵀ x recovers u.
    """
    check_positive(dim, "dim", integer=True)
    check_positive(intrinsic, "intrinsic", integer=True)
    if intrinsic > dim:
        raise ValueError(f"intrinsic {intrinsic} must not exceed dim {dim}")
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, intrinsic, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).to(torch.float32)
