r"""TeaCache: skip the whole block stack while the timestep-modulated input has barely moved
(Liu et al. 2024, arXiv 2411.19108, §3.3–3.4; official code ``ali-vilab/TeaCache``).

A DiT's output changes between steps roughly as much as its *timestep-modulated input* does —
the first block's :math:`m_t = (1 + γ_1(c_t)) ⊙ \mathrm{LN}(h_t) + β_1(c_t)`, which costs one
adaLN map and no block. TeaCache measures the relative L1 change
:math:`r_t = \lVert m_t − m_{t_{prev}}\rVert_1 / \lVert m_{t_{prev}}\rVert_1`, maps it through a
polynomial f fitted on calibration runs to the change of the *output* it predicts (eq. 6), and
accumulates :math:`\sum f(r)` over the steps since the last full evaluation. While the sum
stays below the threshold δ the blocks are skipped and the cached **residual** (block-stack
output − input) is added to the current input; otherwise the blocks run, the residual is
stored and the sum restarts at 0. The first and last calls always compute.

* :func:`calibrate_teacache`: plain sampling runs give pairs (r_t, output change) at every
  step; ``np.polyfit(·, ·, 4)`` (the official answer to "coefficients for a new model",
  TeaCache issue #2). f(r) is clamped at 0 from below (it estimates a non-negative change),
  so δ = 0 never skips and is bit-identical to the plain DiT.
* :func:`uniform_cache`: the same residual reuse on a fixed schedule (every N-th call and the
  last), the baseline an adaptive policy must beat at an equal skip rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visgen._checks import check_positive
from visgen.efficient.cache import CachedDenoiser, CacheHook
from visgen.efficient.fora import check_image_dit, modulation_flops
from visgen.nn.dit import DiT

__all__ = [
    "TeaCacheConfig",
    "TeaCacheFit",
    "UniformCacheConfig",
    "calibrate_teacache",
    "modulated_input",
    "relative_l1",
    "teacache",
    "uniform_cache",
]


def relative_l1(new: torch.Tensor, old: torch.Tensor) -> float:
    """‖new − old‖₁ / ‖old‖₁ over the whole batch (TeaCache decides once per call)."""
    return float((new - old).abs().mean() / old.abs().mean().clamp_min(1e-12))


def modulated_input(model: DiT, x, t, cond) -> torch.Tensor:
    """The first block's timestep-modulated input (1 + γ_1) ⊙ LN(h) + β_1 of ``model``."""
    h = model.tokens(x)
    c, _, _ = model.condition(t, cond)
    first = model.blocks[0].image
    return first.modulated_input(h, first.modulation(c, h))


@dataclass(frozen=True)
class TeaCacheConfig:
    """``steps`` calls per inference, threshold δ, polynomial ``coefficients`` (highest degree
    first, as ``np.polyfit`` returns them)."""

    steps: int
    threshold: float
    coefficients: tuple

    def __post_init__(self):
        if not self.threshold >= 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold!r}")
        coefficients = tuple(float(c) for c in np.atleast_1d(self.coefficients))
        if not coefficients or not np.all(np.isfinite(coefficients)):
            raise ValueError("coefficients must be a non-empty sequence of finite numbers")
        object.__setattr__(self, "coefficients", coefficients)

    def rescale(self, r: float) -> float:
        """f(r) ≥ 0: the output change predicted from the input change r."""
        return max(float(np.polyval(self.coefficients, r)), 0.0)


@dataclass(frozen=True)
class UniformCacheConfig:
    """``steps`` calls per inference; the blocks run every ``interval`` calls."""

    steps: int
    interval: int = 2

    def __post_init__(self):
        check_positive(self.interval, "interval", integer=True)


class _ResidualCacheHook(CacheHook):
    """Skip every block and add the stored residual when :meth:`skip` says so."""

    model_type = DiT

    def bind(self, model) -> None:
        super().bind(model)
        check_image_dit(model)

    def skip(self, model, h, c, state) -> bool:
        raise NotImplementedError

    def forward(self, model: DiT, x, t, cond, state):
        h = model.tokens(x)
        c, _, _ = model.condition(t, cond)
        skip = self.skip(model, h, c, state) and not self.must_compute(state)
        state.computed.append(not skip)
        if skip:
            h = h + state.store["residual"]
            flops = modulation_flops(self.table, len(model.blocks))
            flops -= sum(self.table[f"blocks.{i}.image.ada"] for i in range(1, len(model.blocks)))
        else:
            start = h
            for block in model.blocks:
                h, _ = block(h, c, model.rope)
            state.store["residual"] = h - start
            flops = self.table[""]
        return model.decode(h, c), flops


class TeaCacheHook(_ResidualCacheHook):
    def skip(self, model, h, c, state) -> bool:
        first = model.blocks[0].image
        m = first.modulated_input(h, first.modulation(c, h))
        previous, state.store["input"] = state.store.get("input"), m
        if previous is None or self.must_compute(state):
            state.store["accumulated"] = 0.0
            return False
        state.store["accumulated"] += self.config.rescale(relative_l1(m, previous))
        if state.store["accumulated"] < self.config.threshold:
            return True
        state.store["accumulated"] = 0.0
        return False


class UniformCacheHook(_ResidualCacheHook):
    def skip(self, model, h, c, state) -> bool:
        return state.step % self.config.interval != 0


def teacache(den, *, steps: int, threshold: float, coefficients) -> CachedDenoiser:
    """``den`` (a Denoiser of an image :class:`~visgen.nn.DiT`) with TeaCache at threshold δ
    and the rescaling polynomial ``coefficients`` (:func:`calibrate_teacache`)."""
    return CachedDenoiser(den, TeaCacheHook(TeaCacheConfig(steps, threshold, coefficients)))


def uniform_cache(den, *, steps: int, interval: int) -> CachedDenoiser:
    """``den`` with the block stack's residual reused between refreshes every ``interval``
    calls (and the last): TeaCache's mechanism on a fixed schedule."""
    return CachedDenoiser(den, UniformCacheHook(UniformCacheConfig(steps, interval)))


@dataclass
class TeaCacheFit:
    """The fitted polynomial (``coefficients``, highest degree first), the calibration pairs
    ``x`` (input change r) and ``y`` (output change), and the fit's R²."""

    coefficients: np.ndarray
    x: np.ndarray
    y: np.ndarray
    r2: float


@torch.no_grad()
def calibrate_teacache(den, runs, sampler, ts, degree: int = 4) -> TeaCacheFit:
    """Fit TeaCache's rescaling polynomial on plain sampling runs.

    ``runs`` is a list of (noise, cond) batches; ``sampler(den, x, ts, cond, callback=...)``
    is any visgen sampler (its callback sees every model evaluation). At every step after
    the first the pair (relative L1 change of the modulated input, relative L1 change of the
    model output) is recorded; ``np.polyfit(x, y, degree)`` fits f.
    """
    if not isinstance(den.model, DiT):
        raise TypeError(f"TeaCache calibrates a DiT denoiser, got {type(den.model).__name__}")
    check_positive(degree, "degree", integer=True)
    xs, ys = [], []
    for noise, cond in runs:
        previous = {}

        def record(i, t, x, pred, cond=cond, previous=previous):
            m = modulated_input(den.model, x, pred.t, cond)
            if previous:
                xs.append(relative_l1(m, previous["m"]))
                ys.append(relative_l1(pred.raw, previous["out"]))
            previous.update(m=m, out=pred.raw)

        sampler(den, noise, ts, cond, callback=record)
    x, y = np.asarray(xs), np.asarray(ys)
    if len(x) <= degree:
        raise ValueError(f"need more than {degree} calibration pairs, got {len(x)}")
    coefficients = np.polyfit(x, y, degree)
    residual = y - np.polyval(coefficients, x)
    r2 = 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())
    return TeaCacheFit(coefficients, x, y, r2)
