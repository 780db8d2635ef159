"""Sample-quality metrics."""

from visgen.metrics.samples import (
    ModeCoverage,
    energy_distance,
    mmd_rbf,
    mode_coverage,
    sliced_wasserstein,
)

__all__ = ["ModeCoverage", "energy_distance", "mmd_rbf", "mode_coverage", "sliced_wasserstein"]
