r"""A differentiable Gaussian-splat renderer in plain torch (perspective and orthographic).

For each camera (Kerbl et al. 2023, arXiv 2308.04079, §4 and eq. 2–5; EWA splatting, Zwicker
et al. 2002): splat means go to the camera frame, μ_c = Rᵀ(μ − c), and are projected to pixels
μ' = π(μ_c); the 3D covariance becomes the 2D one

.. math::
    Σ' = J\, Rᵀ Σ R\, Jᵀ + b I, \qquad
    J_\text{persp} = \begin{pmatrix} f_x/z & s/z & −(f_x x + s y)/z^2 \\ 0 & f_y/z & −f_y y/z^2 \end{pmatrix},
    \quad J_\text{ortho} = \begin{pmatrix} f_x & s & 0 \\ 0 & f_y & 0 \end{pmatrix},

J the Jacobian of the projection at μ_c (the local affine approximation) and b = 0.3 px² the
3DGS low-pass dilation. Every splat is evaluated at every pixel centre p,
α_i(p) = min(0.99, o_i exp(−½ (p − μ'_i)ᵀ Σ'^{−1}_i (p − μ'_i))), the splats are sorted front to
back by their depth z_i and composited,

.. math::
    C(p) = \sum_i f_i\, α_i(p) \prod_{j<i} (1 − α_j(p)) + T_N(p)\, C_\text{bg},
    \qquad T_N(p) = \prod_i (1 − α_i(p)).

CPU-sized simplifications: no tiles and no culling (every splat meets every pixel: fine for
≤ a few hundred splats on 16–32 px images), a per-splat depth sort (as 3DGS), no α < 1/255
cut-off (so the image is a smooth function of the parameters away from the 0.99 clamp and from
depth-order swaps, and gradients match finite differences); perspective splats closer than
``near`` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visgen._checks import check_positive
from visgen.threed.cameras import Cameras
from visgen.threed.splats import Splats

__all__ = ["Rendered", "render"]


@dataclass
class Rendered:
    """What :func:`render` returns: ``image`` (B, C, H, W), ``alpha`` (B, 1, H, W) = 1 − T_N and
    the α-weighted ``depth`` (B, 1, H, W) (0 where nothing was hit)."""

    image: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def _project(splats: Splats, cameras: Cameras, near: float, blur: float):
    """2D means (B, N, 2), inverse 2D covariances (B, N, 3) as (a, b, c), depths and validity."""
    R, c, K = cameras.R, cameras.centers, cameras.K
    means = splats.means.expand(len(cameras), -1, -1)
    xc = (means - c[:, None]) @ R  # (B, N, 3)
    cov = splats.covariances().expand(len(cameras), -1, -1, -1)
    cov_c = R.transpose(1, 2)[:, None] @ cov @ R[:, None]
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    s, cx, cy = K[:, 0, 1, None], K[:, 0, 2, None], K[:, 1, 2, None]
    x, y, z = xc.unbind(-1)
    zero = torch.zeros_like(x)
    if cameras.orthographic:
        valid = torch.ones_like(z, dtype=torch.bool)
        u, v = fx * x + s * y + cx, fy * y + cy
        rows = [torch.stack([fx.expand_as(x), s.expand_as(x), zero], -1),
                torch.stack([zero, fy.expand_as(x), zero], -1)]  # fmt: skip
    else:
        valid = z > near
        zs = torch.where(valid, z, torch.full_like(z, near))
        u, v = (fx * x + s * y) / zs + cx, fy * y / zs + cy
        rows = [torch.stack([fx / zs, s / zs, -(fx * x + s * y) / zs**2], -1),
                torch.stack([zero, fy / zs, -fy * y / zs**2], -1)]  # fmt: skip
    J = torch.stack(rows, -2)  # (B, N, 2, 3)
    cov2 = J @ cov_c @ J.transpose(-1, -2)
    a, b, d = cov2[..., 0, 0] + blur, cov2[..., 0, 1], cov2[..., 1, 1] + blur
    det = a * d - b * b
    conic = torch.stack([d / det, -b / det, a / det], -1)
    return torch.stack([u, v], -1), conic, z, valid


def render(
    splats: Splats,
    cameras: Cameras,
    *,
    background=0.0,
    blur: float = 0.3,
    near: float = 0.05,
    max_alpha: float = 0.99,
) -> Rendered:
    """Render scene b of ``splats`` (S = 1 or B scenes) with camera b of ``cameras`` (B).

    ``background`` is a number or a (C,) colour in image units. Use :meth:`Splats.repeat` to
    render S scenes from V cameras each (B = S·V). See the module docstring for the math.
    """
    if not isinstance(splats, Splats):
        raise TypeError(f"splats must be a Splats, got {type(splats).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be a Cameras, got {type(cameras).__name__}")
    if splats.num_scenes not in (1, len(cameras)):
        raise ValueError(
            f"splats hold {splats.num_scenes} scenes for {len(cameras)} cameras (need 1 or "
            f"{len(cameras)}; Splats.repeat renders each scene from several cameras)"
        )
    check_positive(near, "near")
    if blur < 0:
        raise ValueError(f"blur must be non-negative, got {blur!r}")
    if not 0 < max_alpha < 1:
        raise ValueError(f"max_alpha must lie in (0, 1), got {max_alpha!r}")
    mean2d, conic, depth, valid = _project(splats, cameras, near, blur)
    B, N = depth.shape
    # sort the splats front to back once, before they meet the pixels
    order = torch.argsort(depth.detach(), dim=1)

    def sort(t):
        t = t.expand(B, N, *t.shape[2:])
        return t.gather(1, order.reshape(B, N, *[1] * (t.dim() - 2)).expand_as(t))

    mean2d, conic, z, valid = sort(mean2d), sort(conic), sort(depth), sort(valid)
    opac, feats = sort(splats.opacities), sort(splats.colors)
    pix = cameras.pixel_grid().to(z.dtype).reshape(-1, 2)  # (P, 2)
    dx = pix[None, None, :, 0] - mean2d[..., 0, None]  # (B, N, P)
    dy = pix[None, None, :, 1] - mean2d[..., 1, None]
    ca, cb, cc = (conic[..., k, None] for k in range(3))
    power = -0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy
    alpha = (opac[..., None] * torch.exp(power.clamp_max(0.0))).clamp_max(max_alpha)
    alpha = alpha * valid[..., None]
    trans = torch.cumprod(1 - alpha, dim=1)
    before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], 1)
    weight = alpha * before  # (B, N, P)
    bg = torch.as_tensor(background, dtype=feats.dtype).reshape(-1)
    if bg.numel() not in (1, feats.shape[-1]):
        raise ValueError(
            f"background must be a number or {feats.shape[-1]} values, got {bg.numel()}"
        )
    rest = trans[:, -1]  # (B, P)
    image = torch.einsum("bnp,bnc->bcp", weight, feats) + rest[:, None] * bg[None, :, None]
    hit = 1 - rest
    depth_map = torch.einsum("bnp,bn->bp", weight, z)
    h, w = cameras.height, cameras.width
    return Rendered(
        image.reshape(B, -1, h, w), hit.reshape(B, 1, h, w), depth_map.reshape(B, 1, h, w)
    )
