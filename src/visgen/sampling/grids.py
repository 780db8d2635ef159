r"""Time grids for samplers: 1-D float64 tensors decreasing from the start time to the end time.

Every sampler integrates over an explicit grid ``ts`` (t = 1 noise → t = 0 data) and
:func:`check_grid` is the one place grids are validated. A builder returns n + 1 times, i.e.
n steps (n NFE for a one-evaluation-per-step solver).

==================  =========================================================================
``uniform``         uniform in t
``logsnr``          uniform in λ = log(α/σ) (DPM-Solver, Lu et al. 2022, arXiv 2206.00927 §3.3)
``edm``             Karras et al. 2022 (arXiv 2206.00364, eq. 5): σ_i uniform in σ^{1/ρ}, with
                    σ = σ_t/α_t the VE-equivalent noise level, mapped to the schedule's t
``sd3``             SD3's shift (Esser et al. 2024, arXiv 2403.03206, eq. 23) of a uniform grid
``quadratic``       t − t_end ∝ (n − i)² (DDIM's quadratic skip, Song et al. 2021, §D.2)
==================  =========================================================================

**Singular ends.** λ is +∞ where σ_t = 0 (t = 0 of the VP and flow-matching schedules) and
−∞ where α_t = 0 (t = 1 of ``linear`` and ``vp_cosine``). The schedule-aware builders
(``logsnr``, ``edm``) default to the schedule's ends, moved inwards by ``T_EPS`` = 1e-3 where
|λ| > ``LOGSNR_MAX`` = 15 (infinite, or numerically so: the cosine schedule's α(1) is 6e-17 in
floating point). For DDPM's 1000 steps the clipped end is t = 1/T, the first discrete step;
for flow matching the grid runs from t = 0.999 to 0.001 (|λ| = 6.9). A sampler that
must reach clean data takes a final denoising step (``denoise_to_zero=True``) or a grid that
ends exactly where σ = 0.

:func:`schedule_on_grid` evaluates the schedule once per grid for the samplers (α, σ, λ and
the conversion coefficients as Python floats), so no step re-evaluates it.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch

from visgen._checks import check_positive
from visgen.objectives.timesteps import shift_time
from visgen.schedules import Schedule, get_schedule

__all__ = [
    "LOGSNR_MAX",
    "T_EPS",
    "GridValues",
    "check_grid",
    "default_ends",
    "edm",
    "logsnr",
    "quadratic",
    "schedule_on_grid",
    "schedule_values",
    "sd3",
    "uniform",
]

T_EPS = 1e-3
LOGSNR_MAX = 15.0


def check_grid(ts, name: str = "ts") -> torch.Tensor:
    """Validate a sampling grid: 1-D, ≥ 2 points, strictly decreasing, inside [0, 1], finite."""
    if not isinstance(ts, torch.Tensor):
        try:
            ts = torch.as_tensor(ts, dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a 1-D tensor of times, got {type(ts).__name__}"
            ) from err
    if ts.dim() != 1 or ts.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D grid with at least 2 times (1 step), got shape {tuple(ts.shape)}"
        )
    if not torch.isfinite(ts).all():
        raise ValueError(f"{name} contains NaN or infinite times")
    if (ts < 0).any() or (ts > 1).any():
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 1 noise, t = 0 data), got [{ts.min():.4g}, {ts.max():.4g}]"
        )
    if not (ts[1:] < ts[:-1]).all():
        raise ValueError(
            f"{name} must be strictly decreasing (from noise to data), got {ts.tolist()}"
        )
    return ts


def _check_ends(t_start: float, t_end: float) -> None:
    if not 0 <= t_end < t_start <= 1:
        raise ValueError(f"need 0 <= t_end < t_start <= 1, got t_start={t_start}, t_end={t_end}")


def uniform(n: int, t_start: float = 1.0, t_end: float = 0.0, dtype=torch.float64) -> torch.Tensor:
    """n steps uniform in t: n + 1 times from t_start down to t_end."""
    check_positive(n, "n", integer=True)
    _check_ends(t_start, t_end)
    return torch.linspace(t_start, t_end, n + 1, dtype=dtype)


def default_ends(schedule: Schedule | str) -> tuple[float, float]:
    """The schedule's ends (t = 1, t = 0), each moved inwards by ``T_EPS`` where |λ| exceeds
    ``LOGSNR_MAX`` (infinite, or numerically so): where the λ-based grids start and stop."""
    schedule = get_schedule(schedule)
    lam_1, lam_0 = schedule.logsnr(torch.tensor([1.0, 0.0], dtype=torch.float64)).tolist()
    t_start = 1.0 if abs(lam_1) <= LOGSNR_MAX else 1.0 - T_EPS
    t_end = 0.0 if abs(lam_0) <= LOGSNR_MAX else T_EPS
    return t_start, t_end


def _logsnr_ends(schedule: Schedule, t_start, t_end) -> tuple[float, float, float, float]:
    """(t_start, t_end, λ(t_start), λ(t_end)) with the defaults clipped where λ is infinite."""
    if t_start is None or t_end is None:
        default_start, default_end = default_ends(schedule)
        t_start = default_start if t_start is None else t_start
        t_end = default_end if t_end is None else t_end
    _check_ends(t_start, t_end)
    lam_start, lam_end = schedule.logsnr(torch.tensor([t_start, t_end], dtype=torch.float64))
    for name, t, lam in (("t_start", t_start, lam_start), ("t_end", t_end, lam_end)):
        if not torch.isfinite(lam):
            raise ValueError(
                f"{name}={t} gives log-SNR λ = {lam.item()} for schedule {schedule.name}; "
                f"move it inside (0, 1) (the default clips by T_EPS = {T_EPS})"
            )
    return t_start, t_end, lam_start.item(), lam_end.item()


def logsnr(n: int, schedule: Schedule | str, t_start=None, t_end=None) -> torch.Tensor:
    """n steps uniform in λ = log(α_t/σ_t) between t_start and t_end, mapped back by t(λ).

    The grid DPM-Solver recommends (Lu et al. 2022, §3.3): each step has the same h = λ_s − λ_t.
    Defaults: the schedule's ends, moved in by ``T_EPS`` where λ is infinite.
    """
    check_positive(n, "n", integer=True)
    schedule = get_schedule(schedule)
    t_start, t_end, lam_start, lam_end = _logsnr_ends(schedule, t_start, t_end)
    lam = torch.linspace(lam_start, lam_end, n + 1, dtype=torch.float64)
    ts = schedule.t_from_logsnr(lam).to(torch.float64)
    ts[0], ts[-1] = t_start, t_end  # exact ends, free of the inversion's round-off
    return check_grid(ts)


def edm(
    n: int,
    schedule: Schedule | str,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = 7.0,
) -> torch.Tensor:
    r"""Karras et al.'s ρ-schedule (arXiv 2206.00364, eq. 5) on any schedule.

    σ_i = (σ_max^{1/ρ} + i/n (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for i = 0..n, where σ = σ_t/α_t
    = e^{−λ} is the VE-equivalent noise level of x_t/α_t, then t_i = t(λ = −log σ_i). For
    flow matching this is t = σ/(1 + σ). Defaults for σ_min, σ_max: the schedule's range
    between its (clipped, see the module doc) ends; EDM's own are 0.002 and 80.
    """
    check_positive(n, "n", integer=True)
    check_positive(rho, "rho")
    schedule = get_schedule(schedule)
    t_hi, t_lo, lam_hi, lam_lo = _logsnr_ends(schedule, None, None)
    lo, hi = math.exp(-lam_lo), math.exp(-lam_hi)
    sigma_min = lo if sigma_min is None else sigma_min
    sigma_max = hi if sigma_max is None else sigma_max
    if not 0 < sigma_min < sigma_max:
        raise ValueError(
            f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}"
        )
    if sigma_min < lo * (1 - 1e-9) or sigma_max > hi * (1 + 1e-9):
        raise ValueError(
            f"sigma_min, sigma_max = {sigma_min}, {sigma_max} fall outside the range "
            f"[{lo:.4g}, {hi:.4g}] of σ/α that schedule {schedule.name} covers"
        )
    ramp = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    ts = schedule.t_from_logsnr(-rho * torch.log(a + ramp * (b - a))).to(torch.float64)
    if sigma_max == hi:  # exact ends, free of the inversion's round-off
        ts[0] = t_hi
    if sigma_min == lo:
        ts[-1] = t_lo
    return check_grid(ts)


def sd3(n: int, shift: float = 3.0, t_start: float = 1.0, t_end: float = 0.0) -> torch.Tensor:
    """A uniform grid warped by SD3's shift t' = s t / (1 + (s − 1) t) (Esser et al. 2024, eq. 23).

    s > 1 spends more steps near noise (the larger the image, the larger s should be);
    s = 1 is :func:`uniform`. The ends are shifted too (0 and 1 are fixed points), so for a
    λ-based solver on flow matching start below t = 1 (e.g. ``t_start=1 - T_EPS``).
    """
    check_positive(n, "n", integer=True)
    check_positive(shift, "shift")
    return check_grid(shift_time(uniform(n, t_start, t_end), shift))


def quadratic(n: int, t_start: float = 1.0, t_end: float = 0.0) -> torch.Tensor:
    """t_i = t_end + (t_start − t_end)(1 − i/n)²: steps shrink towards the data (DDIM, §D.2)."""
    check_positive(n, "n", integer=True)
    _check_ends(t_start, t_end)
    ramp = torch.linspace(1, 0, n + 1, dtype=torch.float64)
    return check_grid(t_end + (t_start - t_end) * ramp**2)


class GridValues(NamedTuple):
    """A schedule evaluated on a grid, as Python floats (one vectorised call per quantity)."""

    t: tuple[float, ...]
    alpha: tuple[float, ...]
    sigma: tuple[float, ...]
    logsnr: tuple[float, ...]
    coefficients: tuple[tuple[float, ...], ...]  # (α, σ[, α', σ']) for Denoiser calls


def schedule_values(schedule: Schedule, ts: torch.Tensor, derivatives: bool = True) -> GridValues:
    """α, σ, λ (and α', σ') at the times ``ts`` (any order), as Python floats."""
    names = ("alpha", "sigma", "logsnr") + (("d_alpha", "d_sigma") if derivatives else ())
    values = [tuple(getattr(schedule, f)(ts).tolist()) for f in names]
    alpha, sigma, lam = values[:3]
    return GridValues(tuple(ts.tolist()), alpha, sigma, lam, tuple(zip(alpha, sigma, *values[3:])))


def _grid_key(ts) -> tuple[float, ...]:
    """``ts`` as a tuple of floats, validated like :func:`check_grid` (Python checks on the
    tuple: a handful of floats costs less than one tensor operation)."""
    if isinstance(ts, torch.Tensor) and ts.dim() == 1:
        key = tuple(ts.tolist())
        ok = (
            len(key) >= 2
            and all(0.0 <= t <= 1.0 for t in key)  # False for NaN
            and all(a > b for a, b in zip(key, key[1:]))
        )
        if ok:
            return key
    return tuple(check_grid(ts).tolist())  # the slow path raises the precise error


@functools.lru_cache(maxsize=256)
def _values_on(schedule: Schedule, ts: tuple[float, ...], derivatives: bool) -> GridValues:
    """One evaluation per (schedule, grid): a sampler called again on the same grid (every
    batch of a sampling loop) reuses it. Keyed by the schedule object, which the cache keeps
    alive, so an id is never reused; GridValues holds only immutable floats and lists the
    samplers read."""
    return schedule_values(schedule, torch.tensor(ts, dtype=torch.float64), derivatives)


def schedule_on_grid(
    schedule: Schedule, ts, solver: str | None = None, derivatives: bool = True
) -> GridValues:
    """Validate ``ts`` (:func:`check_grid`) and evaluate the schedule on it once.

    With ``solver`` (the name of a λ-based solver, for the message), λ must be finite at
    every point except a last point where σ = 0 (λ = +∞), which the solvers treat as the
    denoising step x_s = α_s x̂0, the limit of their first-order update as λ_s → ∞.
    ``derivatives=False`` skips α', σ' (only velocity conversions need them).
    """
    values = _values_on(schedule, _grid_key(ts), derivatives)
    if solver is not None:
        last = len(values.t) - 1
        for i, (t, lam) in enumerate(zip(values.t, values.logsnr)):
            if not (math.isfinite(lam) or (i == last and values.sigma[i] == 0)):
                raise ValueError(
                    f"ts[{i}] = {t} has log-SNR λ = {lam} under schedule {schedule.name}; "
                    f"{solver} needs finite λ (except at a last point where σ = 0): clip "
                    f"the grid, e.g. grids.logsnr(n, schedule)"
                )
    return values
