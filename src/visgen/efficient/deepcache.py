r"""DeepCache: reuse a U-Net's deep features, recompute only its shallow branch
(Ma, Fang, Wang, CVPR 2024, arXiv 2312.00858, §3.2–3.3, Alg. 1).

A U-Net's output at step t is :math:`\mathrm{out}(U_1(\mathrm{concat}(u_2^t, d_1^t)))`: the
last up block U_1 reads the shallow skip feature d_1 and the deep feature u_2 that the whole
rest of the network (deeper down blocks, middle block, deeper up blocks) produced. Deep
features change slowly between adjacent steps (the paper's Fig. 2), so at a *refresh* step
the full network runs and :math:`u_2` is stored; at the next N − 1 steps ("cache interval"
N) only the shallow branch runs — the input conv and the down layers up to the chosen skip,
then the up path from the block that reads that skip — with :math:`u_2` taken from the
cache. ``branch`` = m picks the skip connection: 0 is the shallowest (the input conv's skip,
read by the very last up block; DeepCache's default for Stable Diffusion), larger m recompute
more of the network. Refresh steps are every N-th call counted from the first, plus the last
call (the first and last steps always compute, :mod:`visgen.efficient.cache`); the paper's
non-uniform refresh schedule is left out.

The saving per skipped call is the FLOPs of everything outside the shallow branch (measured
by :func:`~visgen.efficient.flops.flop_table`, e.g. 87 % of visgen's 2-level digits U-Net at
m = 0). N = 1 refreshes at every call and is bit-identical to the plain U-Net.
"""

from __future__ import annotations

from dataclasses import dataclass

from visgen._checks import check_positive
from visgen.efficient.cache import CachedDenoiser, CacheHook
from visgen.nn.unet import UNet

__all__ = ["DeepCacheConfig", "deepcache"]


@dataclass(frozen=True)
class DeepCacheConfig:
    """``steps`` model calls per inference, refresh ``interval`` N, skip ``branch`` m."""

    steps: int
    interval: int = 3
    branch: int = 0

    def __post_init__(self):
        check_positive(self.interval, "interval", integer=True)
        if not isinstance(self.branch, int) or self.branch < 0:
            raise ValueError(f"branch must be a non-negative int, got {self.branch!r}")


class DeepCacheHook(CacheHook):
    model_type = UNet

    def bind(self, model) -> None:
        super().bind(model)
        self.reader = model.skip_reader(self.config.branch)  # checks branch ≤ len(down)

    def partial_flops(self) -> int:
        """FLOPs per sample of a cached call: embedding, shallow down path, up path from the
        reader block, output conv."""
        t, m = self.table, self.config.branch
        names = ["embed", "inp", "out", *(f"down.{i}" for i in range(m))]
        names += [name for name in t if name.count(".") == 1 and name.startswith("up.")
                  and int(name.split(".")[1]) >= self.reader]  # fmt: skip
        return sum(t.get(name, 0) for name in names)

    def forward(self, model: UNet, x, t, cond, state):
        cfg = self.config
        emb = model.embed(t, cond)
        refresh = self.must_compute(state) or state.step % cfg.interval == 0
        state.computed.append(refresh)
        if refresh:
            skips = model.encode(x, emb)
            h = skips[-1]
            for layer in model.mid:
                h = layer(h, emb)
            out, state.store["deep"] = model.decode(h, skips, emb, capture=self.reader)
            return out, self.table[""]
        skips = model.encode(x, emb, depth=cfg.branch)
        out = model.decode(state.store["deep"], skips, emb, start=self.reader)
        return out, self.partial_flops()


def deepcache(den, *, steps: int, interval: int = 3, branch: int = 0) -> CachedDenoiser:
    """``den`` (a Denoiser of a :class:`~visgen.nn.UNet`) with DeepCache: the deep feature
    entering up block ``skip_reader(branch)`` is refreshed every ``interval`` calls (and at
    the first and last of ``steps`` calls) and reused in between."""
    return CachedDenoiser(den, DeepCacheHook(DeepCacheConfig(steps, interval, branch)))
