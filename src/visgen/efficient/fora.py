r"""FORA: fast-forward caching of a DiT's attention and MLP outputs
(Selvaraju et al. 2024, arXiv 2407.01425, §3).

A DiT block computes :math:`h ← h + α_1 ⊙ A(h)` and :math:`h ← h + α_2 ⊙ M(h)` with the
attention branch A and the MLP branch M read through adaLN modulation, and the gates α from
the condition c (time and class). FORA stores every block's A and M at a refresh step and, at
the next N − 1 steps, replaces them by the stored values while the gates (cheap: one linear
map of c) and the residual additions are recomputed:
:math:`h ← h + α_1(c_t) ⊙ A_{\text{cached}},\ h ← h + α_2(c_t) ⊙ M_{\text{cached}}`. Refresh
steps are every N-th call from the first and the last call (the official code refreshes at
``step % N == 0`` and at the last step). A cached call evaluates no attention and no MLP:
its block calls are the adaLN modulations only. N = 1 is bit-identical to the plain DiT.
Image DiTs only (text DiTs: pooled, cross or joint, are not cached here).
"""

from __future__ import annotations

from dataclasses import dataclass

from visgen._checks import check_positive
from visgen.efficient.cache import CachedDenoiser, CacheHook
from visgen.nn.dit import DiT

__all__ = ["FORAConfig", "fora"]


def check_image_dit(model) -> None:
    if model.cfg.text_vocab:
        raise TypeError("caching applies to image DiTs (class or no condition), not a text DiT")


def modulation_flops(table: dict, depth: int) -> int:
    """FLOPs per sample of a DiT call that skips every block but still computes each
    block's adaLN modulation (and the embedding and final layer)."""
    blocks = sum(table[f"blocks.{i}"] for i in range(depth))
    return table[""] - blocks + sum(table[f"blocks.{i}.image.ada"] for i in range(depth))


@dataclass(frozen=True)
class FORAConfig:
    """``steps`` model calls per inference, refresh ``interval`` N."""

    steps: int
    interval: int = 2

    def __post_init__(self):
        check_positive(self.interval, "interval", integer=True)


class FORAHook(CacheHook):
    model_type = DiT

    def bind(self, model) -> None:
        super().bind(model)
        check_image_dit(model)

    def forward(self, model: DiT, x, t, cond, state):
        refresh = self.must_compute(state) or state.step % self.config.interval == 0
        state.computed.append(refresh)
        h = model.tokens(x)
        c, _, _ = model.condition(t, cond)
        for i, block in enumerate(model.blocks):
            mod = block.image.modulation(c, h)
            if refresh:
                a = state.store[i, "attn"] = block.self_attention(h, mod, model.rope)
                h = h + mod[2] * a
                m = state.store[i, "mlp"] = block.image.feed_forward(h, mod)
                h = h + mod[5] * m
            else:
                h = h + mod[2] * state.store[i, "attn"]
                h = h + mod[5] * state.store[i, "mlp"]
        flops = self.table[""] if refresh else modulation_flops(self.table, len(model.blocks))
        return model.decode(h, c), flops


def fora(den, *, steps: int, interval: int = 2) -> CachedDenoiser:
    """``den`` (a Denoiser of an image :class:`~visgen.nn.DiT`) with FORA: every block's
    attention and MLP outputs are refreshed every ``interval`` calls (and at the first and
    last of ``steps`` calls) and reused, gated by the current step's adaLN, in between."""
    return CachedDenoiser(den, FORAHook(FORAConfig(steps, interval)))
