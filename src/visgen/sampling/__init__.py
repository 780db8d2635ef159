"""Samplers over explicit time grids; see :mod:`visgen.sampling.grids` for the grids."""

from visgen.sampling import grids
from visgen.sampling.ddim import sample_ddim
from visgen.sampling.dpm_solver import (
    sample_dpm_1,
    sample_dpm_2,
    sample_dpm_2m,
    sample_dpm_3,
    sample_dpmpp_2m,
    sample_dpmpp_2m_sde,
    sample_dpmpp_2s,
    sample_dpmpp_3m,
)
from visgen.sampling.grids import check_grid, edm, logsnr, quadratic, sd3, uniform
from visgen.sampling.likelihood import log_likelihood
from visgen.sampling.ode import sample_euler, sample_heun
from visgen.sampling.sde import sample_ancestral, sample_euler_maruyama, sample_langevin, sample_pc
from visgen.sampling.solvers import SOLVERS, Solver, grid_for_nfe, sample, steps_for_nfe
from visgen.sampling.unipc import sample_unipc

__all__ = [
    "SOLVERS",
    "Solver",
    "check_grid",
    "edm",
    "grid_for_nfe",
    "grids",
    "log_likelihood",
    "logsnr",
    "quadratic",
    "sample",
    "sample_ancestral",
    "sample_ddim",
    "sample_dpm_1",
    "sample_dpm_2",
    "sample_dpm_2m",
    "sample_dpm_3",
    "sample_dpmpp_2m",
    "sample_dpmpp_2m_sde",
    "sample_dpmpp_2s",
    "sample_dpmpp_3m",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_langevin",
    "sample_pc",
    "sample_unipc",
    "sd3",
    "steps_for_nfe",
    "uniform",
]
