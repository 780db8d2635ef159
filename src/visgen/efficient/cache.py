r"""Feature caching as a Denoiser wrapper: one design for DeepCache, FORA, TeaCache and PAB.

A sampler calls the network once per step; consecutive calls see inputs that differ little,
so deep features change slowly along the trajectory (DeepCache, arXiv 2312.00858, Fig. 2;
TeaCache, arXiv 2411.19108, Fig. 3). A cache stores some intermediate features at a *refresh*
step and reuses them at the following steps, skipping the layers that made them. The design
follows diffusers' hook registry (a frozen config, a hook that replaces the forward pass, a
state reset per inference) without its code, as a :class:`~visgen.param.Denoiser`, so every
sampler, guidance wrapper and metric takes a cached model unchanged:

* a :class:`CacheHook` (DeepCache, FORA, TeaCache, PAB, …) owns the frozen ``config`` and
  runs one model call given a mutable per-branch state (the cached tensors, the step index);
* :class:`CachedDenoiser` keeps **one state per CFG branch**, keyed by the condition the call
  carries (its values, and the batch shape): the conditional and unconditional passes of
  classifier-free guidance never read each other's features — the pitfall of a single global
  state when the two passes are separate calls. (With visgen's batched CFG both halves go
  through one call and each row reuses only its own row.)
* **steps** (model calls per inference) is part of the config: the first and the last call of
  every inference always compute (caching there hurts most; TeaCache and DeepCache do the
  same), and after ``steps`` calls a branch's state resets for the next inference. A call
  whose time is *later* than the previous one mid-way is a new trajectory started too early:
  ``ValueError`` (call :meth:`CachedDenoiser.reset`).

Every wrapper counts the FLOPs it evaluates against those of the plain model
(:mod:`visgen.efficient.flops`): ``den.stats`` gives the calls, the steps that ran the full
network, and ``fraction`` = evaluated / plain FLOPs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from visgen._checks import check_positive
from visgen.efficient.flops import first_rows, flop_table
from visgen.param import Denoiser

__all__ = ["BranchState", "CacheHook", "CachedDenoiser", "branch_key"]


@dataclass
class BranchState:
    """What one CFG branch remembers within one inference.

    ``step`` is the index of the next call (0 … steps − 1), ``store`` the cached tensors,
    ``computed`` whether each call ran the full network, ``flops`` the FLOPs evaluated and
    ``plain_flops`` what the uncached model would have cost.
    """

    step: int = 0
    last_t: float | None = None
    store: dict = field(default_factory=dict)
    computed: list = field(default_factory=list)
    flops: int = 0
    plain_flops: int = 0


def branch_key(x: torch.Tensor, cond) -> tuple:
    """The cache entry of a call: the batch shape and the condition's values (None, a tensor
    or a dict of tensors). Two calls share a state only if both agree."""

    def values(c):
        if c is None:
            return None
        if isinstance(c, dict):
            return tuple(sorted((k, values(v)) for k, v in c.items()))
        if isinstance(c, torch.Tensor):
            return (tuple(c.shape), str(c.dtype), c.detach().cpu().numpy().tobytes())
        raise TypeError(f"cond must be None, a tensor or a dict of tensors, got {type(c).__name__}")

    return (tuple(x.shape), values(cond))


class CacheHook(ABC):
    """One caching method: ``model_type`` it applies to, a frozen ``config`` with ``steps``,
    and :meth:`forward`, which evaluates the model at one step using and updating ``state``.

    FLOP costs come from :func:`~visgen.efficient.flops.flop_table` of the model (per sample),
    built on the first call; :meth:`forward` returns (output, FLOPs per sample it evaluated).
    """

    model_type: type = nn.Module

    def __init__(self, config):
        self.config = config
        check_positive(config.steps, "steps", integer=True)
        self.table: dict[str, int] | None = None

    def bind(self, model) -> None:
        if not isinstance(model, self.model_type):
            raise TypeError(
                f"{type(self).__name__} applies to a {self.model_type.__name__}, "
                f"got {type(model).__name__}"
            )

    def must_compute(self, state: BranchState) -> bool:
        """The first and the last call of an inference always run the full network."""
        return state.step == 0 or state.step == self.config.steps - 1

    @abstractmethod
    def forward(self, model, x, t, cond, state: BranchState) -> tuple[torch.Tensor, int]:
        """(prediction, FLOPs per sample evaluated) of one call at step ``state.step``."""


class CachedDenoiser(Denoiser):
    """A :class:`~visgen.param.Denoiser` whose network calls go through a :class:`CacheHook`.

    Built by :func:`~visgen.efficient.deepcache`, :func:`~visgen.efficient.fora`,
    :func:`~visgen.efficient.teacache` and friends; ``base`` is the plain denoiser,
    ``config`` the method's settings. ``per_branch=False`` keeps one state for every call
    (the CFG pitfall, kept to show what goes wrong).
    """

    def __init__(self, den: Denoiser, hook: CacheHook, *, per_branch: bool = True):
        if not isinstance(den, Denoiser):
            raise TypeError(f"den must be a visgen Denoiser, got {type(den).__name__}")
        hook.bind(den.model)
        super().__init__(self._evaluate, den.schedule, den.prediction)
        self.base, self.hook, self.per_branch = den, hook, bool(per_branch)
        self.states: dict[tuple, BranchState] = {}
        self.finished: list[BranchState] = []

    @property
    def config(self):
        return self.hook.config

    def reset(self) -> None:
        """Forget every branch's cache and counts (a fresh inference follows)."""
        self.states.clear()
        self.finished.clear()
        self.nfe = 0

    @torch.no_grad()
    def _evaluate(self, x, t, cond=None):
        key = branch_key(x, cond) if self.per_branch else ()
        state = self.states.get(key)
        if state is None or state.step == self.hook.config.steps:
            if state is not None:
                self.finished.append(state)
            state = self.states[key] = BranchState()
        now = float(t.max())
        if state.last_t is not None and now > state.last_t:
            raise ValueError(
                f"a new trajectory started after {state.step} of steps={self.hook.config.steps} "
                "calls; set steps to the sampler's number of model calls or call reset()"
            )
        if self.hook.table is None:
            self.hook.table = flop_table(self.base.model, x[:1], t[:1], first_rows(cond))
        out, flops = self.hook.forward(self.base.model, x, t, cond, state)
        n = x.shape[0]
        state.flops += flops * n
        state.plain_flops += self.hook.table[""] * n
        state.last_t = now
        state.step += 1
        return out

    @property
    def stats(self) -> dict:
        """Counts over every inference since the last :meth:`reset`: ``calls``, ``computed``
        (calls that ran the full network), ``flops``, ``plain_flops`` and ``fraction``."""
        states = [*self.finished, *self.states.values()]
        calls = sum(s.step for s in states)
        flops = sum(s.flops for s in states)
        plain = sum(s.plain_flops for s in states)
        return {
            "calls": calls,
            "computed": sum(sum(s.computed) for s in states),
            "flops": flops,
            "plain_flops": plain,
            "fraction": flops / plain if plain else float("nan"),
            "branches": len(self.states),
        }
