r"""SageAttention: INT8 QKᵀ after smoothing the keys (Zhang et al. 2024, arXiv 2410.02367,
§3.2–3.4).

Keys of trained transformers share a large per-channel offset across tokens (the paper's
Fig. 4), so one INT8 scale per block of keys spends its range on the offset and rounds the
token-to-token differences away. Subtracting the mean key over the tokens,
:math:`K' = K − \bar k`, leaves attention **exactly** unchanged: each score row changes by the
constant :math:`q_i · \bar k`, and softmax is invariant to adding a constant to a row —

.. math::
    \mathrm{softmax}(q_i K'^⊤) = \mathrm{softmax}(q_i K^⊤ − q_i·\bar k) = \mathrm{softmax}(q_i K^⊤).

Then Q and K' are quantised to INT8 with one scale per block of ``block`` tokens
(:math:`δ = \max|·| / 127`), the scores are :math:`S = (\hat Q \hat K'^⊤) δ_Q δ_K / \sqrt d`,
and P V stays in floating point (SageAttention keeps it in FP16). The integer product is
computed exactly here in float32: every partial sum is an integer below 2²⁴ while
d · 127² < 2²⁴ (d ≤ 1040), so float32 accumulation makes no rounding error.
"""

from __future__ import annotations

import math

import torch

from visgen._checks import check_positive, check_tensor

__all__ = ["key_offset_problem", "quantized_scores", "sage_attention", "smooth_keys"]


def smooth_keys(k: torch.Tensor) -> torch.Tensor:
    """K − mean over the tokens (axis −2), per batch and head."""
    return k - k.mean(-2, keepdim=True)


def _quantize_blocks(x: torch.Tensor, bits: int, block: int):
    """(integer values as floats, per-token scale) with one scale per ``block`` tokens."""
    *lead, n, d = x.shape
    if n % block:
        raise ValueError(f"block {block} must divide the number of tokens {n}")
    qmax = 2 ** (bits - 1) - 1
    blocks = x.reshape(*lead, n // block, block * d)
    scale = (blocks.abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-12)
    q = torch.round(blocks / scale).clamp(-qmax, qmax)
    return q.reshape(*lead, n, d), scale.repeat_interleave(block, -2).reshape(*lead, n, 1)


def quantized_scores(
    q: torch.Tensor, k: torch.Tensor, *, bits: int = 8, smooth_k: bool = True, block: int = 64
) -> torch.Tensor:
    """Attention logits Q Kᵀ/√d from ``bits``-bit integer Q and (smoothed) K, dequantised."""
    check_tensor(q, "q", min_dim=2)
    check_tensor(k, "k", min_dim=2)
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an int in [2, 8], got {bits!r}")
    check_positive(block, "block", integer=True)
    if smooth_k:
        k = smooth_keys(k)
    qi, sq = _quantize_blocks(q, bits, block)
    ki, sk = _quantize_blocks(k, bits, block)
    return (qi @ ki.transpose(-1, -2)) * (sq * sk.transpose(-1, -2)) / math.sqrt(q.shape[-1])


def sage_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    bits: int = 8,
    smooth_k: bool = True,
    block: int = 64,
) -> torch.Tensor:
    """softmax(quantised Q Kᵀ / √d) V for (…, L, d) queries, keys and values."""
    check_tensor(v, "v", min_dim=2)
    scores = quantized_scores(q, k, bits=bits, smooth_k=smooth_k, block=block)
    return torch.softmax(scores, -1) @ v


def key_offset_problem(
    tokens: int = 256,
    dim: int = 32,
    *,
    offset: float = 5.0,
    heads: int = 4,
    generator: torch.Generator | None = None,
):
    """Queries, keys and values (heads, tokens, dim) whose keys share a per-channel offset of
    ``offset`` standard deviations, the pattern SageAttention measured in real models."""
    q = torch.randn(heads, tokens, dim, generator=generator)
    k = torch.randn(heads, tokens, dim, generator=generator)
    k = k + offset * torch.randn(heads, 1, dim, generator=generator)
    v = torch.randn(heads, tokens, dim, generator=generator)
    return q, k, v
