r"""3D Gaussian splats: the scene representation that lecture 12 renders, fits and distils.

A scene is N anisotropic Gaussians (Kerbl et al. 2023, *3D Gaussian Splatting*, arXiv
2308.04079, §4): splat i has a mean μ_i, a covariance Σ_i = R_i S_i S_iᵀ R_iᵀ built from a
rotation (unit quaternion q_i) and per-axis standard deviations S_i = diag(s_i) (eq. 6), an
opacity o_i ∈ [0, 1] and a colour (or any feature vector) f_i. 3DGS adds view-dependent colour
(spherical harmonics); here colours are view-independent, as in the toy scenes of the course.

:class:`Splats` holds a batch of scenes as plain tensors (validated: a zero-size splat has no
covariance to invert); :class:`SplatField` holds *unconstrained* learnable parameters (log
scales, colour and opacity logits) and maps them to Splats, so an optimiser can move them freely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visgen._checks import check_positive, check_tensor

__all__ = ["SplatField", "Splats", "covariance", "quaternion_to_rotation"]


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) = (w, x, y, z) (normalised first)."""
    norm = q.norm(dim=-1, keepdim=True)
    if (norm <= 1e-12).any():
        raise ValueError("rotations must be non-zero quaternions (w, x, y, z)")
    w, x, y, z = (q / norm).unbind(-1)
    return torch.stack(
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def covariance(scales: torch.Tensor, rotations: torch.Tensor | None = None) -> torch.Tensor:
    """Σ = R diag(s²) Rᵀ (..., 3, 3) from standard deviations s (..., 3) and quaternions."""
    cov = torch.diag_embed(scales.pow(2))
    if rotations is None:
        return cov
    R = quaternion_to_rotation(rotations)
    return R @ cov @ R.transpose(-1, -2)


@dataclass(frozen=True)
class Splats:
    """A batch of S scenes of N Gaussians each.

    Attributes:
        means: (S, N, 3) centres μ.
        scales: (S, N, 3) positive standard deviations along the splat's own axes.
        colors: (S, N, C) colours in image units ([−1, 1]) or any features to composite.
        opacities: (S, N) in [0, 1].
        rotations: (S, N, 4) quaternions (w, x, y, z); None = axis-aligned.

    Unbatched (N, ...) tensors are given a scene axis of 1.
    """

    means: torch.Tensor
    scales: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    rotations: torch.Tensor | None = None

    def __post_init__(self):
        names = ("means", "scales", "colors", "opacities", "rotations")
        expect = {"means": 3, "scales": 3, "colors": None, "opacities": 0, "rotations": 4}
        for name in names:
            value = getattr(self, name)
            if value is None:
                continue
            check_tensor(value, name)
            batched = value.dim() == (2 if name == "opacities" else 3)
            if not batched:
                value = value[None]
                object.__setattr__(self, name, value)
            last = expect[name]
            ok = value.dim() == 2 if last == 0 else value.dim() == 3
            if not ok or (last and value.shape[-1] != last):
                shape = "(S, N)" if last == 0 else f"(S, N, {last or 'C'})"
                raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
        n = self.means.shape[1]
        s = max(getattr(self, name).shape[0] for name in names if getattr(self, name) is not None)
        for name in names:
            value = getattr(self, name)
            if value is not None and (value.shape[1] != n or value.shape[0] not in (1, s)):
                raise ValueError(
                    f"{name} must describe the same {n} splats as means (scene axis 1 or {s}), "
                    f"got {tuple(value.shape)}"
                )
        if (self.scales <= 0).any():
            raise ValueError(
                "scales must be positive: a zero-size splat has a singular covariance "
                f"(smallest scale {float(self.scales.min()):.3g})"
            )
        if ((self.opacities < 0) | (self.opacities > 1)).any():
            raise ValueError("opacities must lie in [0, 1]")

    @property
    def num_scenes(self) -> int:
        return max(
            getattr(self, n).shape[0]
            for n in ("means", "scales", "colors", "opacities", "rotations")
            if getattr(self, n) is not None
        )

    @property
    def num_splats(self) -> int:
        return self.means.shape[1]

    def covariances(self) -> torch.Tensor:
        """Σ (S, N, 3, 3)."""
        return covariance(self.scales, self.rotations)

    def repeat(self, views: int) -> Splats:
        """Each scene repeated ``views`` times in a row (scene s → rows s·V … s·V + V − 1), to
        render S scenes from S·V cameras."""
        check_positive(views, "views", integer=True)

        def rep(t):
            if t is None:
                return None
            t = t.expand(self.num_scenes, *t.shape[1:])
            return t.repeat_interleave(views, 0)

        return Splats(
            *(
                rep(t)
                for t in (self.means, self.scales, self.colors, self.opacities, self.rotations)
            )
        )

    def with_colors(self, colors: torch.Tensor) -> Splats:
        """The same geometry with other colours or features (S or 1, N, C)."""
        return Splats(self.means, self.scales, colors, self.opacities, self.rotations)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p) - torch.log1p(-p)


class SplatField(nn.Module):
    """Learnable splats of one scene: μ, log s, q, colour logits, opacity logits.

    ``colors = tanh(color_logits)`` keeps colours in [−1, 1], ``opacities = max_opacity ·
    sigmoid(·)`` and ``scales = exp(·)`` keep the Splats valid whatever the optimiser does.
    ``learn`` names the parameter groups that require gradients (the others stay fixed).
    """

    GROUPS = ("means", "scales", "rotations", "colors", "opacities")

    def __init__(self, splats: Splats, learn=GROUPS, max_opacity: float = 0.99):
        super().__init__()
        if splats.num_scenes != 1:
            raise ValueError(f"a SplatField holds one scene, got {splats.num_scenes}")
        unknown = set(learn) - set(self.GROUPS)
        if unknown:
            raise ValueError(
                f"learn has unknown groups {sorted(unknown)}; choose from {self.GROUPS}"
            )
        check_positive(max_opacity, "max_opacity")
        self.max_opacity = max_opacity
        rot = splats.rotations
        if rot is None:
            rot = torch.zeros(1, splats.num_splats, 4, dtype=splats.means.dtype)
            rot[..., 0] = 1.0
        raw = {
            "means": splats.means[0],
            "scales": splats.scales[0].log(),
            "rotations": rot[0],
            "colors": torch.atanh(splats.colors[0].clamp(-0.999, 0.999)),
            "opacities": _logit(splats.opacities[0] / max_opacity),
        }
        for name, value in raw.items():
            self.register_parameter(name, nn.Parameter(value.clone(), requires_grad=name in learn))

    def splats(self) -> Splats:
        return Splats(
            self.means,
            self.scales.exp(),
            torch.tanh(self.colors),
            self.max_opacity * torch.sigmoid(self.opacities),
            self.rotations,
        )

    @staticmethod
    def random(
        n: int,
        generator: torch.Generator,
        *,
        radius: float = 0.6,
        scale: float = 0.12,
        opacity: float = 0.5,
        learn=GROUPS,
    ) -> SplatField:
        """n grey isotropic splats uniform in a ball of ``radius``: a neutral starting point."""
        check_positive(n, "n", integer=True)
        d = torch.randn(n, 3, generator=generator)
        r = radius * torch.rand(n, 1, generator=generator) ** (1 / 3)
        means = r * d / d.norm(dim=-1, keepdim=True)
        splats = Splats(
            means,
            torch.full((n, 3), scale),
            torch.zeros(n, 3),
            torch.full((n,), opacity),
        )
        return SplatField(splats, learn)

    def extra_repr(self) -> str:
        learned = [g for g in self.GROUPS if getattr(self, g).requires_grad]
        return f"splats={self.means.shape[0]}, learn={learned}, max_opacity={self.max_opacity}"
