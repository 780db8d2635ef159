r"""The transformer trunk every generator of lecture 8 shares: pre-LN blocks whose attention is
restricted by a group mask (:func:`visgen.nn.attention.group_mask`) and, when decoding, served
by a :class:`~visgen.nn.attention.KVCache`.

A block is DiT's :class:`~visgen.nn.dit.Stream` (Peebles & Xie 2023, arXiv 2212.09748, §3.2):
with a condition vector c it is modulated by adaptive layer norm (VAR conditions on the class
this way, arXiv 2404.02905 §4), without one it is a plain pre-LN block (LlamaGen,
arXiv 2406.06525; MAR's backbone, arXiv 2406.11838):

.. math:: h ← h + α_1 ⊙ \mathrm{Attn}_M\big((1 + γ_1) \mathrm{LN}(h) + β_1\big), \qquad
          h ← h + α_2 ⊙ \mathrm{MLP}\big((1 + γ_2) \mathrm{LN}(h) + β_2\big),

Attn_M = softmax(q kᵀ/√d + log M) v with M the boolean mask. Keys are rotated by RoPE (if given)
*before* they are cached, so cached and recomputed attention see the same keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visgen.nn.attention import KVCache, apply_rope
from visgen.nn.dit import Stream

__all__ = ["TokenTransformer"]


class TokenTransformer(nn.Module):
    """``TokenTransformer(dim, depth, heads, mlp_ratio=4.0, adaptive=True)``: tokens (B, N, dim)
    → (B, N, dim); ``adaptive`` blocks need a condition vector c (B, dim) (adaLN-Zero)."""

    def __init__(
        self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, adaptive: bool = True
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.depth, self.heads, self.adaptive = depth, heads, adaptive
        self.blocks = nn.ModuleList(Stream(dim, heads, mlp_ratio, adaptive) for _ in range(depth))

    @property
    def head_dim(self) -> int:
        return self.blocks[0].qkv.in_features // self.heads

    def forward(
        self,
        h: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        rope=None,
        cache: KVCache | None = None,
        commit: bool = True,
    ) -> torch.Tensor:
        """``mask`` (N_q, N_k) bool, True = attend (over cached + new keys with a ``cache``);
        ``rope`` (cos, sin) of the N new tokens; with ``cache`` the new keys and values are
        appended when ``commit``."""
        if self.adaptive and c is None:
            raise ValueError("this transformer is conditioned (adaLN): pass c")
        for i, block in enumerate(self.blocks):
            mod = block.modulation(c, h)
            q, k, v = block.qkv_heads(h, mod)
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            if cache is None:
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:
                a = cache.attend(i, q, k, v, commit=commit, mask=mask)
            h = block.finish(h, a, mod)
        return h
