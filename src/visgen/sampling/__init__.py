"""Samplers over explicit time grids; see :mod:`visgen.sampling.grids` for the grids."""

from visgen.sampling.grids import check_grid, uniform
from visgen.sampling.likelihood import log_likelihood
from visgen.sampling.ode import sample_euler, sample_heun
from visgen.sampling.sde import sample_ancestral, sample_euler_maruyama, sample_langevin, sample_pc

__all__ = [
    "check_grid",
    "log_likelihood",
    "sample_ancestral",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_langevin",
    "sample_pc",
    "uniform",
]
