"""An MLP denoiser for points and small flattened images.

x (B, *shape) is flattened, then ``depth`` hidden layers h ← SiLU(W_i h + U_i e(t, cond)) of
size ``width`` each add the condition embedding e (time + class), and a final linear layer
maps back to the input size. It is the workhorse of the 2D toys and of the
digits baseline (3 × 256 on 8×8 digits).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visgen._checks import check_positive
from visgen.nn.embeddings import ConditionEmbedding

__all__ = ["MLP"]


class MLP(nn.Module):
    """``MLP(shape, width=256, depth=3, num_classes=0)``; called as ``model(x, t, cond=None)``.

    Args:
        shape: the shape of one sample, e.g. ``2`` for points or ``(1, 8, 8)`` for digits.
        num_classes: > 0 adds class conditioning with a null label (−1) for CFG.
    """

    def __init__(self, shape, width: int = 256, depth: int = 3, num_classes: int = 0):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        check_positive(width, "width", integer=True)
        check_positive(depth, "depth", integer=True)
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.config = {
            "name": "mlp",
            "shape": list(shape),
            "width": width,
            "depth": depth,
            "num_classes": num_classes,
        }
        self.shape, dim = shape, math.prod(shape)
        self.embed = ConditionEmbedding(width, num_classes, freq_dim=64)
        self.layers = nn.ModuleList(
            nn.Linear(dim if i == 0 else width, width) for i in range(depth)
        )
        self.mods = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x must have shape (B, {self.shape}), got {tuple(x.shape)}")
        e = self.embed(t, cond)
        h = x.flatten(1)
        for layer, mod in zip(self.layers, self.mods):
            h = nn.functional.silu(layer(h) + mod(e))
        return self.out(h).reshape(x.shape)
