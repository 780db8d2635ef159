r"""Time and class embeddings shared by every network.

* :class:`SinusoidalEmbedding` — the Transformer's position code (Vaswani et al. 2017, §3.5)
  applied to time, as DDPM does for its step index (Ho et al. 2020, arXiv 2006.11239, App. B):
  e(t)_{2i} = cos(s t ω_i), e(t)_{2i+1} = sin(s t ω_i), ω_i = P^{−i/(d/2)}, with s = 1000 so
  t ∈ [0, 1] spans the same phases as DDPM's k ∈ {0..999} and P = 10 000.
* :class:`LabelEmbedding` — a learned vector per class plus one for the **null label**, used
  when ``cond`` is ``None`` or −1: classifier-free guidance trains one network for both by
  dropping labels (Ho & Salimans 2022, arXiv 2207.12598, Alg. 1; :func:`drop_labels`).
* :class:`ConditionEmbedding` — time MLP + label embedding, summed: the vector every block of
  the MLP and the UNet is modulated by.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visgen._checks import check_positive

__all__ = ["ConditionEmbedding", "LabelEmbedding", "SinusoidalEmbedding", "drop_labels"]


class SinusoidalEmbedding(nn.Module):
    """t (B,) in [0, 1] → (B, dim) sinusoidal features (no parameters)."""

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10_000.0):
        super().__init__()
        check_positive(dim, "dim", integer=True)
        if dim % 2:
            raise ValueError(f"dim must be even, got {dim}")
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2) / (dim // 2))
        self.register_buffer("freqs", scale * freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if t.dim() != 1:
            raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
        phase = t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return torch.cat([torch.cos(phase), torch.sin(phase)], 1)


class LabelEmbedding(nn.Module):
    """Class labels (B,) in {−1, 0, …, K−1} → (B, dim); −1 (or ``None``) is the null label."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        check_positive(num_classes, "num_classes", integer=True)
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)  # row K is the null label

    def forward(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        null = torch.full((batch,), self.num_classes, device=self.table.weight.device)
        if cond is None:
            return self.table(null)
        cond = torch.as_tensor(cond, device=self.table.weight.device)
        if cond.shape != (batch,) or cond.is_floating_point():
            raise ValueError(f"cond must be integer class labels of shape ({batch},), got {cond!r}")
        if ((cond < -1) | (cond >= self.num_classes)).any():
            raise ValueError(f"cond must lie in [-1, {self.num_classes - 1}] (-1 = unconditional)")
        return self.table(torch.where(cond < 0, null, cond.long()))


class ConditionEmbedding(nn.Module):
    """(t, cond) → (B, dim): MLP(sinusoidal(t)) + label embedding (if ``num_classes`` > 0)."""

    def __init__(self, dim: int, num_classes: int = 0, freq_dim: int | None = None):
        super().__init__()
        freq_dim = freq_dim or dim
        self.time = nn.Sequential(
            SinusoidalEmbedding(freq_dim), nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.label = LabelEmbedding(num_classes, dim) if num_classes else None

    def forward(self, t: torch.Tensor, cond=None) -> torch.Tensor:
        emb = self.time(t)
        if self.label is not None:
            emb = emb + self.label(cond, t.shape[0])
        elif cond is not None:
            raise ValueError("this network is unconditional (num_classes=0) but cond was given")
        return emb


def drop_labels(cond: torch.Tensor, p: float, generator: torch.Generator | None = None):
    """Replace each condition by the null condition −1 with probability p (CFG training).

    ``cond`` is (B,) class labels or (B, L) caption token ids: a dropped caption becomes all
    −1, the empty caption.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    drop = torch.rand(cond.shape[:1], generator=generator) < p
    drop = drop.reshape(-1, *([1] * (cond.dim() - 1))).to(cond.device)
    return torch.where(drop, torch.full_like(cond, -1), cond)
