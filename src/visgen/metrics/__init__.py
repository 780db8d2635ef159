"""Sample-quality metrics (and the linear probe of representations)."""

from visgen.metrics.probe import linear_probe
from visgen.metrics.samples import (
    ModeCoverage,
    energy_distance,
    mmd_rbf,
    mode_coverage,
    sliced_wasserstein,
)

__all__ = [
    "ModeCoverage",
    "energy_distance",
    "linear_probe",
    "mmd_rbf",
    "mode_coverage",
    "sliced_wasserstein",
]
