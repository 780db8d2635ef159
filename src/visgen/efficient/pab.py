r"""Pyramid Attention Broadcast: reuse each kind of attention for its own number of steps
(Zhao, Jin, Wang, You, ICLR 2025, arXiv 2408.12588, §3).

A video DiT block has up to three attention branches — *spatial* (the tokens of one frame),
*temporal* (one position across frames) and *cross* (to the text) — and an MLP. Between
consecutive steps each attention's output changes along a U shape over the trajectory
(most at the first and the last steps) and by a different amount per kind: cross-attention
least, spatial most (the paper's Fig. 3–4). PAB therefore *broadcasts* (reuses) each
attention's output for a kind-specific number of steps — a pyramid of ranges, e.g. spatial 2,
temporal 4, cross 6 — and only inside a middle window of the trajectory, t ∈ [t_lo, t_hi]
(diffusers' default window: timesteps 100–800 of 1000); outside it, and at the first and last
calls, everything is computed. The MLPs always run. It is FORA (:mod:`visgen.efficient.fora`)
with one interval per attention kind and a time window.

The hook works on any model whose ``blocks`` have a ``kind`` (``spatial``, ``temporal`` or
``full``) and return their attention branches before the gate from ``self_attention(...)``
and ``cross_attention(...)`` — visgen's video DiT (lecture 9). During one cached call those two
methods of every block are wrapped so that they return the stored branch when broadcasting;
nothing else of the model changes, and intervals of 1 (or an empty window) are bit-identical
to the plain model. A ``full`` block (3-D attention) uses the ``spatial`` interval. FLOPs of
a skipped branch are measured once per branch with :func:`~visgen.efficient.flops.flop_counter`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from visgen._checks import check_positive
from visgen.efficient.cache import CachedDenoiser, CacheHook
from visgen.efficient.flops import flop_counter

__all__ = ["PABConfig", "pab"]

KINDS = ("spatial", "temporal", "cross")


@dataclass(frozen=True)
class PABConfig:
    """``steps`` calls per inference; broadcast ranges per attention kind; the window
    (t_lo, t_hi) of the trajectory in which broadcasting is allowed."""

    steps: int
    spatial: int = 2
    temporal: int = 4
    cross: int = 6
    window: tuple = (0.1, 0.8)

    def __post_init__(self):
        for kind in KINDS:
            check_positive(getattr(self, kind), kind, integer=True)
        lo, hi = self.window
        if not 0 <= lo <= hi <= 1:
            raise ValueError(
                f"window must be (t_lo, t_hi) with 0 <= t_lo <= t_hi <= 1, got {self.window}"
            )

    def interval(self, kind: str) -> int:
        return getattr(self, "spatial" if kind == "full" else kind)


class PABHook(CacheHook):
    def bind(self, model) -> None:
        blocks = getattr(model, "blocks", None)
        if blocks is None or not all(hasattr(b, "self_attention") and hasattr(b, "kind")
                                     for b in blocks):  # fmt: skip
            raise TypeError(
                "PAB applies to a video DiT whose blocks have a kind and self_attention(...)"
            )
        self.branch_flops: dict[tuple, float] = {}

    def _wrap(self, block, index: int, name: str, state, compute: bool, skipped: list):
        original = getattr(block, name)
        key = (index, name)

        def branch(*args, **kwargs):
            if compute or key not in state.store:
                if key in self.branch_flops:
                    out = original(*args, **kwargs)
                else:  # measured once: FLOPs per output row of this branch
                    with flop_counter() as counter:
                        out = original(*args, **kwargs)
                    self.branch_flops[key] = counter.get_total_flops() / out.shape[0]
                state.store[key] = out
                return out
            out = state.store[key]
            skipped[0] += self.branch_flops[key] * out.shape[0]
            return out

        return branch

    def forward(self, model, x, t, cond, state):
        cfg = self.config
        now = float(t.max())
        inside = cfg.window[0] <= now <= cfg.window[1] and not self.must_compute(state)
        last = state.store.setdefault("last", {})
        decide = {}
        for kind in KINDS:
            decide[kind] = not inside or state.step - last.get(kind, -cfg.steps) >= cfg.interval(
                kind
            )
            if decide[kind]:
                last[kind] = state.step
        decide["full"] = decide["spatial"]
        skipped = [0.0]
        with contextlib.ExitStack() as stack:
            for i, block in enumerate(model.blocks):
                for name, kind in (("self_attention", block.kind), ("cross_attention", "cross")):
                    if hasattr(block, name):
                        wrapped = self._wrap(block, i, name, state, decide[kind], skipped)
                        stack.enter_context(_attribute(block, name, wrapped))
            out = model(x, t, cond)
        state.computed.append(all(decide.values()))
        return out, self.table[""] - skipped[0] / x.shape[0]


@contextlib.contextmanager
def _attribute(obj, name, value):
    """obj.name = value (an instance attribute) for the duration of a with-block; whatever
    the instance held before (usually nothing: the class method) is restored after."""
    previous = vars(obj).get(name, _attribute)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if previous is _attribute:
            delattr(obj, name)
        else:
            setattr(obj, name, previous)


def pab(den, *, steps: int, spatial: int = 2, temporal: int = 4, cross: int = 6,
        window=(0.1, 0.8)) -> CachedDenoiser:  # fmt: skip
    """``den`` (a Denoiser of a video DiT) with Pyramid Attention Broadcast: each attention
    kind recomputed every ``spatial`` / ``temporal`` / ``cross`` calls inside ``window``."""
    return CachedDenoiser(den, PABHook(PABConfig(steps, spatial, temporal, cross, tuple(window))))
