"""Pieces shared by the solvers: the schedule on the grid and the optional final denoising step."""

from __future__ import annotations

import torch

from visgen.param import Denoiser
from visgen.sampling.grids import GridValues, schedule_on_grid


def lambda_grid(den: Denoiser, ts, solver: str) -> GridValues:
    """The schedule on ``ts`` for a λ-based solver (finite λ; α', σ' only for velocity models)."""
    return schedule_on_grid(den.schedule, ts, solver, derivatives=den.prediction == "velocity")


def denoise_to_zero(den: Denoiser, x: torch.Tensor, g: GridValues, cond) -> torch.Tensor:
    """x ← x̂0(x, t_N): one more NFE from the grid's last time to clean data (σ = 0).

    The step of DPM-Solver's ``denoise_to_zero`` (Lu et al. 2022) and of k-diffusion's final
    σ → 0 step. A grid that already ends where σ = 0 needs no such step.
    """
    if g.sigma[-1] == 0:
        raise ValueError(
            f"denoise_to_zero=True but the grid already ends at t = {g.t[-1]} where σ = 0"
        )
    return den(x, g.t[-1], cond, coefficients=g.coefficients[-1]).x0
