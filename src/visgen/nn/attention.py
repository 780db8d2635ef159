r"""Attention building blocks shared by every transformer of the course: rotary position
embeddings, group masks (causal, block-causal, block-diagonal, sliding window with a sink) and a
key–value cache.

**RoPE** (Su et al. 2021, arXiv 2104.09864, eq. 34): the i-th pair of channel halves
(x_i, x_{i+d/2}) of a query or key at position m is rotated by the angle m ω_i, so
⟨R_m q, R_n k⟩ depends only on m − n. :func:`rope_1d` takes *absolute* positions (a frame index,
a token index), :func:`rope_2d` the (row, column) of a token grid; :func:`apply_rope` rotates.
Keys are rotated before they are cached, so a cache never re-rotates (Self-Forcing stores them
the same way).

**Group masks.** Every token carries a group index g (the scale of VAR, the frame or chunk of a
video, 0 for a plain sequence); :func:`group_mask` says which query–key pairs may interact:
``causal`` g_k ≤ g_q (VAR's block-causal mask, arXiv 2404.02905 §3.2; a token-causal mask when
every token is its own group), ``diagonal`` g_k = g_q (Switti's non-causal scales, arXiv
2412.01819), ``full``; a ``window`` w keeps g_q − g_k < w, and the first ``sink`` groups stay
visible (attention sink, Xiao et al. 2023, arXiv 2309.17453).

**KV cache.** :class:`KVCache` keeps, per layer, the keys and values of tokens that were
*committed*; :meth:`KVCache.attend` lets new queries attend to the cached tokens plus the new
ones, and stores the new keys and values only when ``commit=True``. Autoregressive decoding
commits every step (raster AR, VAR's scales); few-step video diffusion reads the cache while it
denoises a chunk (``commit=False``) and commits the clean K/V of one extra t = 0 pass (CausVid,
arXiv 2412.07772; Self-Forcing, arXiv 2506.08009). With ``window_tokens`` the cache is rolling:
after a commit it keeps the first ``sink_tokens`` and the last ``window_tokens``. Attention goes
through ``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visgen._checks import check_choice

__all__ = ["KVCache", "apply_rope", "group_mask", "rope_1d", "rope_2d"]


def _frequencies(count: int, base: float) -> torch.Tensor:
    return base ** (-torch.arange(count, dtype=torch.float64) / count)


def rope_1d(positions, head_dim: int, base: float = 10_000.0):
    """Rotary embedding of absolute positions (N,) for heads of width ``head_dim`` (even).

    Returns (cos, sin), each (N, head_dim/2), for :func:`apply_rope`; computed in float64.
    """
    if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int, got {head_dim!r}")
    positions = torch.as_tensor(positions, dtype=torch.float64)
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D, got shape {tuple(positions.shape)}")
    angles = positions[:, None] * _frequencies(head_dim // 2, base)
    return angles.cos().float(), angles.sin().float()


def rope_2d(grid: int, head_dim: int, base: float = 10_000.0):
    """Axial 2D rotary embedding (arXiv 2104.09864, §3.4, per image axis).

    A token at row r, column c rotates the i-th pair of channel halves (x_i, x_{i+d/2}) by
    angle r ω_i for i < d/4 and c ω_{i−d/4} otherwise, ω_i = base^{−i/(d/4)}; the query–key
    product then depends only on the offset (r − r', c − c'). Returns (cos, sin), each
    (grid², head_dim/2).
    """
    if head_dim % 4:
        raise ValueError(f"head_dim must be divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = _frequencies(quarter, base)
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    angles = torch.cat([rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], 1)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., N, d) queries or keys by the angles of :func:`rope_1d` / :func:`rope_2d`."""
    x1, x2 = x.chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


def group_mask(
    query_groups, key_groups, rule: str = "causal", *, window: int | None = None, sink: int = 0
) -> torch.Tensor:
    """Boolean (Nq, Nk) mask, True where a query of group g_q may attend to a key of group g_k.

    ``rule``: ``causal`` (g_k ≤ g_q), ``diagonal`` (g_k = g_q) or ``full``. ``window`` w
    (groups) further requires g_q − g_k < w unless g_k < ``sink``.
    """
    check_choice(rule, "rule", ("causal", "diagonal", "full"))
    q = torch.as_tensor(query_groups)
    k = torch.as_tensor(key_groups)
    if q.dim() != 1 or k.dim() != 1:
        raise ValueError("query_groups and key_groups must be 1-D group indices")
    if window is not None and (not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a positive int (groups), got {window!r}")
    if not isinstance(sink, int) or sink < 0:
        raise ValueError(f"sink must be a non-negative int (groups), got {sink!r}")
    gq, gk = q[:, None], k[None, :]
    if rule == "causal":
        mask = gk <= gq
    elif rule == "diagonal":
        mask = gk == gq
    else:
        mask = torch.ones(len(q), len(k), dtype=torch.bool)
    if window is not None:
        mask = mask & ((gq - gk < window) | (gk < sink))
    return mask


class KVCache:
    """Per-layer keys and values of committed tokens, (B, heads, N, head_dim) each.

    Args:
        layers: number of attention layers that share the cache.
        window_tokens: if set, a rolling cache: after each commit only the first
            ``sink_tokens`` and the last ``window_tokens`` committed tokens stay.
        sink_tokens: tokens pinned at the start of a rolling cache (attention sink).

    ``committed`` counts every token ever committed (evicted ones included): the absolute
    position of the next token, which RoPE needs.
    """

    def __init__(self, layers: int, *, window_tokens: int | None = None, sink_tokens: int = 0):
        if not isinstance(layers, int) or layers < 1:
            raise ValueError(f"layers must be a positive int, got {layers!r}")
        if window_tokens is not None and (not isinstance(window_tokens, int) or window_tokens < 1):
            raise ValueError(f"window_tokens must be a positive int, got {window_tokens!r}")
        if not isinstance(sink_tokens, int) or sink_tokens < 0:
            raise ValueError(f"sink_tokens must be a non-negative int, got {sink_tokens!r}")
        if sink_tokens and window_tokens is None:
            raise ValueError("sink_tokens needs a rolling cache (set window_tokens)")
        self.layers = layers
        self.window_tokens = window_tokens
        self.sink_tokens = sink_tokens
        self.reset()

    def reset(self) -> None:
        """Forget every cached token."""
        self.keys: list[torch.Tensor | None] = [None] * self.layers
        self.values: list[torch.Tensor | None] = [None] * self.layers
        self.committed = 0

    def __len__(self) -> int:
        """Tokens held now (layer 0; every layer holds the same number)."""
        return 0 if self.keys[0] is None else self.keys[0].shape[-2]

    def positions(self) -> torch.Tensor:
        """Absolute indices (N,) of the tokens held now: all committed tokens, or for a rolling
        cache that has evicted, the first ``sink_tokens`` and the last ``window_tokens``."""
        held = len(self)
        if held == self.committed:
            return torch.arange(held)
        return torch.cat(
            [
                torch.arange(self.sink_tokens),
                torch.arange(self.committed - self.window_tokens, self.committed),
            ]
        )

    def _check_layer(self, layer: int) -> None:
        if not isinstance(layer, int) or not 0 <= layer < self.layers:
            raise ValueError(f"layer must be an int in [0, {self.layers - 1}], got {layer!r}")

    def attend(
        self,
        layer: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        commit: bool,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """softmax(q Kᵀ/√d) V over K = [cached keys; k], V = [cached values; v].

        ``mask`` (bool, (Nq, N_cached + N_new), True = attend) restricts the pairs; without it
        every query sees every cached and new token. With ``commit`` k and v are stored after
        the call (the last layer's commit advances :attr:`committed`).
        """
        self._check_layer(layer)
        if q.dim() != 4 or k.shape != v.shape or k.shape[:2] != q.shape[:2]:
            raise ValueError(
                "q, k, v must be (B, heads, N, head_dim) with equal batch and heads, got "
                f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
            )
        cached_k, cached_v = self.keys[layer], self.values[layer]
        if cached_k is not None:
            if cached_k.shape[:2] != k.shape[:2] or cached_k.shape[-1] != k.shape[-1]:
                raise ValueError(
                    f"new keys {tuple(k.shape)} do not match the cache {tuple(cached_k.shape)}"
                )
            k_all, v_all = torch.cat([cached_k, k], -2), torch.cat([cached_v, v], -2)
        else:
            k_all, v_all = k, v
        if mask is not None and tuple(mask.shape) != (q.shape[-2], k_all.shape[-2]):
            raise ValueError(
                f"mask must have shape ({q.shape[-2]}, {k_all.shape[-2]}) (queries, cached + "
                f"new keys), got {tuple(mask.shape)}"
            )
        out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        if commit:
            self.keys[layer], self.values[layer] = self._evict(k_all), self._evict(v_all)
            if layer == self.layers - 1:
                self.committed += k.shape[-2]
        return out

    def _evict(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.window_tokens
        if keep is None or x.shape[-2] <= self.sink_tokens + keep:
            return x
        return torch.cat([x[..., : self.sink_tokens, :], x[..., -keep:, :]], -2)

    def select(self, batch_index) -> None:
        """Keep only the batch rows ``batch_index`` (e.g. the conditional half once CFG stops)."""
        for i in range(self.layers):
            if self.keys[i] is not None:
                self.keys[i] = self.keys[i][batch_index]
                self.values[i] = self.values[i][batch_index]

    def nbytes(self) -> int:
        """Bytes held by all cached keys and values."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)

    @staticmethod
    def estimate_bytes(
        *, layers: int, tokens: int, batch: int, heads: int, head_dim: int, bytes_per_value: int
    ) -> int:
        """Memory of a full cache: 2 (K and V) × layers × batch × tokens × heads × head_dim ×
        bytes per value — the KV-memory estimate of a long video."""
        for name, value in dict(
            layers=layers,
            tokens=tokens,
            batch=batch,
            heads=heads,
            head_dim=head_dim,
            bytes_per_value=bytes_per_value,
        ).items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        return 2 * layers * batch * tokens * heads * head_dim * bytes_per_value
