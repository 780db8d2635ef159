"""The table of ODE solvers (lecture 4) and the front door that samples with exactly N NFE.

:data:`SOLVERS` is the one place that knows each deterministic sampler's order and cost; the
tour, the benchmarks, the tests and :func:`sample` read it. A grid that ends where σ = 0
finishes with the denoising step x = α x̂0 (1 NFE, :mod:`visgen.sampling.dpm_solver`), so a
solver of ``per_step`` evaluations per step and ``warmup`` extra evaluations on its first
step costs, over k steps,

    NFE(k) = per_step · (k − 1) + 1 + warmup · [k ≥ 2].

:func:`grid_for_nfe` inverts this for a grid family of :mod:`visgen.sampling.grids`, and
:func:`sample` runs a solver from noise to clean data with exactly ``nfe`` evaluations —
``sample(den, x, 10)`` instead of a hand-made grid plus ``denoise_to_zero``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from visgen._checks import check_choice
from visgen.param import Denoiser
from visgen.sampling import grids
from visgen.sampling.ddim import sample_ddim
from visgen.sampling.dpm_solver import (
    sample_dpm_1,
    sample_dpm_2,
    sample_dpm_2m,
    sample_dpm_3,
    sample_dpmpp_2m,
    sample_dpmpp_2s,
    sample_dpmpp_3m,
)
from visgen.sampling.ode import sample_euler, sample_heun
from visgen.sampling.unipc import sample_unipc
from visgen.schedules import get_schedule

__all__ = ["GRID_KINDS", "SOLVERS", "Solver", "grid_for_nfe", "sample", "steps_for_nfe"]


@dataclass(frozen=True)
class Solver:
    """A deterministic PF-ODE sampler: ``fn(den, x, ts, cond, callback=...)``.

    ``order`` is the global order on a smooth problem (``tests/test_solvers.py`` measures
    it); ``per_step`` the model evaluations of a step; ``warmup`` the extra evaluations of
    its first step; ``label`` the name tables print.
    """

    name: str
    fn: Callable
    order: int
    per_step: int
    label: str
    warmup: int = 0

    def nfe(self, steps: int) -> int:
        """Evaluations of ``steps`` steps on a grid that ends where σ = 0."""
        return self.per_step * (steps - 1) + 1 + (self.warmup if steps >= 2 else 0)


def _table(*solvers: Solver) -> dict[str, Solver]:
    return {s.name: s for s in solvers}


SOLVERS: dict[str, Solver] = _table(
    Solver("euler", sample_euler, 1, 1, "Euler"),
    Solver("heun", sample_heun, 2, 2, "Heun"),
    Solver("ddim", sample_ddim, 1, 1, "DDIM"),
    Solver("dpm_1", sample_dpm_1, 1, 1, "DPM-Solver-1"),
    Solver("dpm_2", sample_dpm_2, 2, 2, "DPM-Solver-2"),
    Solver("dpm_3", sample_dpm_3, 3, 3, "DPM-Solver-3"),
    Solver("dpm_2m", sample_dpm_2m, 2, 1, "DPM-Solver-2M"),
    Solver("dpmpp_2s", sample_dpmpp_2s, 2, 2, "DPM-Solver++(2S)"),
    Solver("dpmpp_2m", sample_dpmpp_2m, 2, 1, "DPM-Solver++(2M)"),
    Solver("dpmpp_3m", sample_dpmpp_3m, 3, 1, "DPM-Solver++(3M)", warmup=1),
    Solver(
        "dpmpp_3m_lowstart",
        partial(sample_dpmpp_3m, warmup="multistep"),
        2,
        1,
        "DPM-Solver++(3M), low-order start",
    ),
    Solver("unipc", sample_unipc, 3, 1, "UniPC"),
)

GRID_KINDS = ("uniform", "logsnr", "edm", "sd3", "quadratic")


def _solver(solver: str | Solver) -> Solver:
    if isinstance(solver, Solver):
        return solver
    return SOLVERS[check_choice(solver, "solver", tuple(SOLVERS))]


def steps_for_nfe(nfe: int, solver: str | Solver) -> int:
    """The number of steps k with NFE(k) = ``nfe`` on a grid ending where σ = 0."""
    info = _solver(solver)
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 1:
        raise ValueError(f"nfe must be a positive int, got {nfe!r}")
    if nfe == 1:
        return 1
    steps, rest = divmod(nfe - 1 - info.warmup, info.per_step)  # NFE(k) inverted, k ≥ 2
    if rest == 0 and steps >= 1:
        return steps + 1
    reachable = sorted({info.nfe(k) for k in range(1, nfe + 2)})
    near = [n for n in reachable if abs(n - nfe) <= info.per_step]
    raise ValueError(
        f"nfe={nfe} is not reachable with {info.name} ({info.per_step} NFE per step, "
        f"{info.warmup} extra on the first, 1 for the final denoising step); nearest: {near}"
    )


def grid_for_nfe(
    nfe: int,
    solver: str | Solver,
    schedule,
    kind: str = "logsnr",
    *,
    t_start: float | None = None,
    **options,
) -> torch.Tensor:
    """A grid of ``kind`` on which ``solver`` costs exactly ``nfe`` evaluations and ends at
    clean data: k − 1 steps of :mod:`~visgen.sampling.grids`' ``kind`` from ``t_start``
    (default: the schedule's clipped start, :func:`~visgen.sampling.grids.default_ends`) to
    its clipped end, then the denoising step to t = 0. ``options`` go to the grid builder
    (``rho``, ``sigma_min``, ``sigma_max`` for ``edm``; ``shift`` for ``sd3``). Built once
    per arguments (a sampling loop asks for the same grid every batch); each call returns a
    copy (cheaper than a tensor built from floats)."""
    check_choice(kind, "kind", GRID_KINDS)
    steps = steps_for_nfe(nfe, solver)
    key = tuple(sorted(options.items()))
    return _grid(steps, get_schedule(schedule), kind, t_start, key).clone()


@functools.lru_cache(maxsize=256)
def _grid(steps: int, schedule, kind: str, t_start: float | None, options: tuple) -> torch.Tensor:
    return torch.tensor(_grid_points(steps, schedule, kind, t_start, options), dtype=torch.float64)


def _grid_points(steps: int, schedule, kind: str, t_start: float | None, options: tuple) -> tuple:
    options = dict(options)
    default_start, t_end = grids.default_ends(schedule)
    t_start = default_start if t_start is None else t_start
    if steps == 1:
        return (t_start, 0.0)
    n = steps - 1
    if kind == "uniform":
        ts = grids.uniform(n, t_start, t_end)
    elif kind == "logsnr":
        ts = grids.logsnr(n, schedule, t_start, t_end)
    elif kind == "edm":
        if t_start != default_start:
            raise ValueError("t_start does not apply to kind='edm'; set its sigma_max instead")
        ts = grids.edm(n, schedule, **options)
    elif kind == "sd3":
        ts = grids.sd3(n, t_start=t_start, t_end=t_end, **options)
    else:
        ts = grids.quadratic(n, t_start, t_end)
    return (*ts.tolist(), 0.0)


def sample(
    den: Denoiser,
    x: torch.Tensor,
    nfe: int,
    solver: str | Solver = "unipc",
    grid: str | torch.Tensor = "logsnr",
    cond=None,
    *,
    callback=None,
) -> torch.Tensor:
    """Clean samples from x (the state at the grid's first time, noise for the default grids)
    with exactly ``nfe`` model evaluations.

    ``grid`` is a kind of :func:`grid_for_nfe` or an explicit grid ending at t = 0 that costs
    ``nfe`` (e.g. one from :func:`visgen.sampling.tuning.optimize_grid`). Count evaluations
    with ``den.counting()``.
    """
    info = _solver(solver)
    if isinstance(grid, str):
        ts = grid_for_nfe(nfe, info, den.schedule, grid)
    else:
        ts = grids.check_grid(grid, "grid")
        if ts[-1] != 0:
            raise ValueError(f"grid must end at t = 0 (clean data), got t = {ts[-1].item()}")
        if info.nfe(len(ts) - 1) != nfe:
            raise ValueError(
                f"grid has {len(ts) - 1} steps, which cost {info.nfe(len(ts) - 1)} NFE with "
                f"{info.name}, not nfe={nfe}"
            )
    with den.counting() as count:
        out = info.fn(den, x, ts, cond, callback=callback)
    if count.nfe != nfe:  # the table and the sampler disagree: a bug, not bad input
        raise RuntimeError(f"{info.name} used {count.nfe} NFE, the solver table says {nfe}")
    return out
