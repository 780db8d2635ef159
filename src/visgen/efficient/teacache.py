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

``indicator`` picks what is watched: ``modulated_input`` (above; the paper's FLUX and
HunyuanVideo code) or ``timestep_modulation``, the first block's adaLN modulation vector of
the condition alone (the official Wan2.1 variant, "e0").

An adaptive schedule gains most where the steps differ. Against the uniform cache at the same
26 of 50 full calls (:func:`compare_at_matched_skips`) on the full-budget digits DiT, 256
digits, 3 noise × 2 calibration seeds (``benchmarks/teacache_matched.py``, BENCHMARKS.md): on
the teacher's own sampler grid (50 uniform Euler steps — TeaCache, too, was evaluated with each
generator's default sampler) every step moves the output about equally, TeaCache's schedule
comes out nearly uniform and the gain, +0.5 to +1.7 dB (mean +1.35), depends on which few
calls the matched threshold moves; with a perfect indicator (R² = 1,
:func:`perfect_indicator_schedule`) the rule gains even less there (−0.5 to +0.9 dB), so the
polynomial's R² (0.65) is not the limit. On SD3's shifted grid, as SD3 / FLUX-style flow
models are sampled, +5.4 to +6.5 dB.

* :func:`calibrate_teacache`: plain sampling runs give pairs (r_t, output change) at every
  step; ``np.polyfit(·, ·, 4)`` (the official answer to "coefficients for a new model",
  TeaCache issue #2). f(r) is clamped at 0 from below (it estimates a non-negative change),
  so δ = 0 never skips and is bit-identical to the plain DiT.
* :func:`uniform_cache`: the same residual reuse on a fixed schedule (every N-th call and the
  last), the baseline an adaptive policy must beat at an equal skip rate;
  :func:`compare_at_matched_skips` is the course's one way of making that comparison;
  :func:`scheduled_cache` runs any given schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from visgen._checks import check_choice, check_positive
from visgen.efficient.cache import CachedDenoiser, CacheHook
from visgen.efficient.fora import check_image_dit
from visgen.metrics import psnr
from visgen.nn.dit import DiT

__all__ = [
    "MatchedComparison",
    "TeaCacheConfig",
    "TeaCacheFit",
    "UniformCacheConfig",
    "calibrate_teacache",
    "compare_at_matched_skips",
    "ScheduledCacheConfig",
    "modulated_input",
    "perfect_indicator_schedule",
    "relative_l1",
    "scheduled_cache",
    "teacache",
    "threshold_for_skips",
    "uniform_cache",
]


def relative_l1(new: torch.Tensor, old: torch.Tensor) -> float:
    """‖new − old‖₁ / ‖old‖₁ over the whole batch (TeaCache decides once per call)."""
    return float((new - old).abs().mean() / old.abs().mean().clamp_min(1e-12))


INDICATORS = ("modulated_input", "timestep_modulation")


def _indicator(model: DiT, h, c, kind: str) -> torch.Tensor:
    first = model.blocks[0].image
    mod = first.modulation(c, h)
    if kind == "modulated_input":
        return first.modulated_input(h, mod)
    return torch.cat(mod, -1)


def modulated_input(model: DiT, x, t, cond, indicator: str = "modulated_input") -> torch.Tensor:
    """What TeaCache watches: the first block's timestep-modulated input
    (1 + γ_1) ⊙ LN(h) + β_1 (``modulated_input``; FLUX, HunyuanVideo), or the first block's
    adaLN modulation vector of the condition alone (``timestep_modulation``; the official
    Wan2.1 variant, "e0")."""
    check_choice(indicator, "indicator", INDICATORS)
    h = model.tokens(x)
    c, _, _ = model.condition(t, cond)
    return _indicator(model, h, c, indicator)


@dataclass(frozen=True)
class TeaCacheConfig:
    """``steps`` calls per inference, threshold δ, polynomial ``coefficients`` (highest degree
    first, as ``np.polyfit`` returns them)."""

    steps: int
    threshold: float
    coefficients: tuple
    indicator: str = "modulated_input"

    def __post_init__(self):
        check_choice(self.indicator, "indicator", INDICATORS)
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


@dataclass(frozen=True)
class ScheduledCacheConfig:
    """``computed[i]``: whether call i runs the blocks (``steps`` = its length; the first and
    last calls run them whatever it says)."""

    computed: tuple

    def __post_init__(self):
        object.__setattr__(self, "computed", tuple(bool(c) for c in self.computed))

    @property
    def steps(self) -> int:
        return len(self.computed)


class _ResidualCacheHook(CacheHook):
    """Skip every block and add the stored residual when :meth:`skip` says so."""

    model_type = DiT

    def bind(self, model) -> None:
        super().bind(model)
        check_image_dit(model)

    def skip(self, model, h, c, state) -> bool:
        raise NotImplementedError

    def decision_flops(self) -> int:
        """FLOPs per sample :meth:`skip` spends deciding."""
        return 0

    def forward(self, model: DiT, x, t, cond, state):
        h = model.tokens(x)
        c, _, _ = model.condition(t, cond)
        skip = self.skip(model, h, c, state) and not self.must_compute(state)
        state.computed.append(not skip)
        if skip:
            h = h + state.store["residual"]
            blocks = sum(self.table[f"blocks.{i}"] for i in range(len(model.blocks)))
            flops = self.table[""] - blocks
        else:
            start = h
            for block in model.blocks:
                h, _ = block(h, c, model.rope)
            state.store["residual"] = h - start
            flops = self.table[""]
        return model.decode(h, c), flops + self.decision_flops()


class TeaCacheHook(_ResidualCacheHook):
    def decision_flops(self) -> int:
        return self.table["blocks.0.image.ada"]  # the modulated input, every call

    def skip(self, model, h, c, state) -> bool:
        m = _indicator(model, h, c, self.config.indicator)
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


class ScheduledCacheHook(_ResidualCacheHook):
    def skip(self, model, h, c, state) -> bool:
        return not self.config.computed[state.step]


def teacache(
    den, *, steps: int, threshold: float, coefficients, indicator: str = "modulated_input"
) -> CachedDenoiser:
    """``den`` (a Denoiser of an image :class:`~visgen.nn.DiT`) with TeaCache at threshold δ,
    the rescaling polynomial ``coefficients`` (:func:`calibrate_teacache`, with the same
    ``indicator``)."""
    config = TeaCacheConfig(steps, threshold, coefficients, indicator)
    return CachedDenoiser(den, TeaCacheHook(config))


def uniform_cache(den, *, steps: int, interval: int) -> CachedDenoiser:
    """``den`` with the block stack's residual reused between refreshes every ``interval``
    calls (and the last): TeaCache's mechanism on a fixed schedule."""
    return CachedDenoiser(den, UniformCacheHook(UniformCacheConfig(steps, interval)))


def scheduled_cache(den, *, computed) -> CachedDenoiser:
    """``den`` with the residual cache on a given schedule: call i runs the blocks iff
    ``computed[i]`` (and the first and last calls always)."""
    return CachedDenoiser(den, ScheduledCacheHook(ScheduledCacheConfig(tuple(computed))))


def _accumulate(changes, threshold: float) -> tuple:
    """TeaCache's rule on known per-call changes (``changes[i]`` between calls i and i + 1):
    which of the len(changes) + 1 calls run the blocks."""
    computed, total = [True], 0.0
    for i, change in enumerate(changes, start=1):
        total += change
        run = total >= threshold or i == len(changes)
        computed.append(run)
        if run:
            total = 0.0
    return tuple(computed)


def perfect_indicator_schedule(changes, computed: int) -> tuple:
    """TeaCache's schedule had its rescaled indicator been exact (R² = 1): accumulate the
    uncached trajectory's own output changes (``changes[i]``, relative L1 between calls i and
    i + 1, as :func:`calibrate_teacache` measures them) and run the blocks when the sum
    reaches δ, with the smallest δ that runs them on at most ``computed`` calls (exact: the
    candidate δ are the partial sums). It separates the two ways TeaCache can fall short:
    the polynomial's misfit (TeaCache vs this schedule) and the rule itself (this schedule vs
    the uniform one)."""
    changes = [float(c) for c in changes]
    check_positive(computed, "computed", integer=True)
    if computed < 2:
        raise ValueError(f"computed must be >= 2 (the first and last calls run), got {computed}")
    sums = {sum(changes[i:j]) for i in range(len(changes)) for j in range(i + 1, len(changes) + 1)}
    for threshold in sorted(sums):
        schedule = _accumulate(changes, threshold)
        if sum(schedule) <= computed:
            return schedule
    return _accumulate(changes, float("inf"))


@dataclass
class TeaCacheFit:
    """The fitted polynomial (``coefficients``, highest degree first), the calibration pairs
    ``x`` (input change r) and ``y`` (output change), and the fit's R²."""

    coefficients: np.ndarray
    x: np.ndarray
    y: np.ndarray
    r2: float


@torch.no_grad()
def calibrate_teacache(
    den, runs, sampler, ts, degree: int = 4, indicator: str = "modulated_input"
) -> TeaCacheFit:
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
            m = modulated_input(den.model, x, pred.t, cond, indicator)
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


def threshold_for_skips(
    make, run, computed: int, *, low: float = 1e-4, high: float = 10.0, iterations: int = 12
):
    """TeaCache at a prescribed compute: the smallest threshold δ (bisection in log δ between
    ``low`` and ``high``) whose denoiser ``make(δ)`` runs the full network on at most
    ``computed`` calls of ``run(den)``. Returns (δ, that denoiser, already run)."""
    check_positive(computed, "computed", integer=True)
    best = make(high)
    run(best)
    if best.stats["computed"] > computed:
        raise ValueError(
            f"even threshold {high} computes {best.stats['computed']} > {computed} calls"
        )
    for _ in range(iterations):
        mid = (low * high) ** 0.5
        den = make(mid)
        run(den)
        if den.stats["computed"] <= computed:
            high, best = mid, den
        else:
            low = mid
    return high, best


@dataclass
class MatchedComparison:
    """TeaCache against the uniform cache on one batch at the same number of full calls
    (:func:`compare_at_matched_skips`). PSNRs are means over the batch of the per-sample PSNR
    (dB) against the uncached samples from the same noise; ``samples`` holds the three
    batches (``plain``, ``uniform``, ``teacache``); ``schedule`` marks TeaCache's calls that
    ran the blocks (``x``) or reused the residual (``.``)."""

    threshold: float
    interval: int
    calls: int
    uniform_computed: int
    teacache_computed: int
    uniform_fraction: float
    teacache_fraction: float
    uniform_psnr: float
    teacache_psnr: float
    schedule: str
    samples: dict

    @property
    def gain(self) -> float:
        """TeaCache's PSNR minus the uniform cache's (dB)."""
        return self.teacache_psnr - self.uniform_psnr


@torch.no_grad()
def compare_at_matched_skips(
    den, coefficients, noise, cond, sampler, ts, *, interval: int = 2,
    indicator: str = "modulated_input", plain=None,
) -> MatchedComparison:  # fmt: skip
    """The course's one way to compare TeaCache with fixed-schedule caching: run the uniform
    cache (blocks every ``interval`` calls and the last) on this batch, find TeaCache's
    threshold that runs the blocks on the *same number* of calls of the same batch
    (:func:`threshold_for_skips` with its defaults), and compare both to the uncached samples
    ``plain`` (computed when not given) by PSNR. ``sampler(den, noise, ts, cond)`` is any
    visgen sampler; one network call per step is assumed (``steps = len(ts) − 1``).

    TeaCache decides once per call for the whole batch (as the official code does for its
    batch), so the matched threshold and the gain belong to the batch, not to one sample."""
    steps = len(ts) - 1
    if plain is None:
        plain = sampler(den, noise, ts, cond)
    base = uniform_cache(den, steps=steps, interval=interval)
    x_uniform = sampler(base, noise, ts, cond)
    outputs = {}

    def run(cached):
        outputs[id(cached)] = sampler(cached, noise, ts, cond)

    delta, tea = threshold_for_skips(
        lambda d: teacache(den, steps=steps, threshold=d, coefficients=coefficients,
                           indicator=indicator),
        run, base.stats["computed"],
    )  # fmt: skip
    x_tea = outputs[id(tea)]
    return MatchedComparison(
        threshold=delta, interval=interval, calls=base.stats["calls"],
        uniform_computed=base.stats["computed"], teacache_computed=tea.stats["computed"],
        uniform_fraction=base.stats["fraction"], teacache_fraction=tea.stats["fraction"],
        uniform_psnr=float(psnr(x_uniform, plain).mean()),
        teacache_psnr=float(psnr(x_tea, plain).mean()),
        schedule="".join("x" if c else "." for s in [*tea.finished, *tea.states.values()]
                         for c in s.computed),
        samples={"plain": plain, "uniform": x_uniform, "teacache": x_tea},
    )  # fmt: skip
