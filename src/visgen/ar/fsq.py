r"""Finite scalar quantisation (FSQ; Mentzer et al. 2023, arXiv 2309.15505, §3): a tokenizer
bottleneck without a codebook.

Each of the d channels of z is bounded and rounded to one of L_i levels,

.. math:: \hat z_i = \mathrm{round}\big(f_i(z_i)\big), \qquad
          f_i(z) = h_i \tanh(z + s_i) − o_i, \quad h_i = \tfrac{(L_i − 1)(1 + ε)}{2},

with o_i = ½ for even L_i (so the levels are symmetric half-integers) and s_i = artanh(o_i/h_i);
rounding passes gradients straight through (z + sg(round(z) − z)). The implicit codebook is the
grid ∏ L_i (K = ∏ L_i codes, every one reachable by construction, so there is nothing to
collapse); the code index is the mixed-radix number of the shifted levels. Outputs are
rescaled to [−1, 1] by ⌊L_i/2⌋.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visgen._checks import check_tensor
from visgen.ar.quantize import VQOutput

__all__ = ["FSQ"]


class FSQ(nn.Module):
    """``FSQ(levels)``: quantise z (B, d, ...) with d = len(levels) channels."""

    def __init__(self, levels):
        super().__init__()
        levels = [int(v) for v in levels]
        if not levels or any(v < 2 for v in levels):
            raise ValueError(f"levels must be a non-empty list of ints >= 2, got {levels!r}")
        self.levels_list = levels
        self.dim, self.num_codes = len(levels), math.prod(levels)
        basis = torch.cumprod(torch.tensor([1] + levels[:-1]), 0)
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32), persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    def _per_channel(self, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return v.reshape(1, -1, *([1] * (z.dim() - 2)))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """f(z): each channel squashed into (−h_i − o_i, h_i − o_i), before rounding."""
        levels = self._per_channel(self.levels, z)
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> VQOutput:
        check_tensor(z, "z", min_dim=2)
        if z.shape[1] != self.dim:
            raise ValueError(f"z must have {self.dim} channels (dim 1), got shape {tuple(z.shape)}")
        bounded = self.bound(z)
        rounded = bounded + (bounded.round() - bounded).detach()
        width = self._per_channel(torch.div(self.levels, 2, rounding_mode="floor"), z)
        zero = z.new_zeros(z.shape[0])
        return VQOutput(rounded / width, self.indices(rounded.detach()), zero, zero)

    def indices(self, rounded: torch.Tensor) -> torch.Tensor:
        """Mixed-radix code index of rounded levels (B, d, ...) → (B, ...)."""
        width = self._per_channel(torch.div(self.levels, 2, rounding_mode="floor"), rounded)
        digits = (rounded + width).round().long()
        return (digits * self._per_channel(self.basis, rounded)).sum(1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The quantised vectors of code indices (...,) → (..., d), in [−1, 1]."""
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point():
            raise TypeError("indices must be an integer tensor of code indices")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise ValueError(f"indices must lie in [0, {self.num_codes - 1}]")
        levels = self.levels.long()
        digits = (indices[..., None] // self.basis) % levels
        width = torch.div(levels, 2, rounding_mode="floor")
        return (digits - width).float() / width
