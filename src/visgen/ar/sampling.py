r"""Sampling a token from logits, as LlamaGen (arXiv 2406.06525, §3.3) and VAR
(arXiv 2404.02905, App.) do: classifier-free guidance on logits, temperature, top-k, top-p.

* **CFG on logits** (Ho & Salimans 2022, applied to the next-token distribution):
  ℓ̃ = ℓ_∅ + w (ℓ_c − ℓ_∅) — one batched forward pass of 2B rows, conditional half first.
  VAR writes (1 + t) ℓ_c − t ℓ_∅, i.e. w = 1 + t, and ramps t linearly over the scales.
* **Temperature** τ: p ∝ exp(ℓ̃/τ).
* **Top-k**: keep the k largest logits; **top-p** (nucleus, Holtzman et al. 2020, arXiv
  1904.09751, §3.1): keep the smallest set of most likely tokens whose probability reaches p
  (the most likely token always stays).

:class:`GenerationStats` counts what the lecture compares: sequential forward passes, token
evaluations (tokens × batch rows through the transformer, CFG rows included) and attention
query–key pairs of one sequence in one layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from visgen._checks import check_tensor

__all__ = ["GenerationStats", "cfg_logits", "filter_logits", "sample_logits"]


@dataclass
class GenerationStats:
    """Cost of one generation call."""

    passes: int = 0  # sequential forward passes of the network
    token_evals: int = 0  # Σ over passes of rows × new tokens (CFG's unconditional rows count)
    attention_pairs: int = 0  # query–key pairs of one sequence, one layer, summed over passes

    def add(self, rows: int, new_tokens: int, keys: int) -> None:
        self.passes += 1
        self.token_evals += rows * new_tokens
        self.attention_pairs += new_tokens * keys


def cfg_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """ℓ_∅ + w (ℓ_c − ℓ_∅); w = 1 is the conditional model."""
    return uncond + scale * (cond - uncond)


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k and outside the nucleus of mass ``top_p`` to −∞
    (``top_k`` = 0 and ``top_p`` = 1 keep everything)."""
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative int (0 = off), got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, -1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        mass = sorted_logits.softmax(-1).cumsum(-1)
        drop = mass - sorted_logits.softmax(-1) >= top_p  # the mass before a token reaches p
        drop = torch.zeros_like(drop).scatter(-1, order, drop)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_logits(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row of logits (..., V) → (...,) from softmax(filtered ℓ / τ)."""
    check_tensor(logits, "logits", min_dim=1, finite=False)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])
