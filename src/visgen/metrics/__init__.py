"""Sample-quality metrics: point-cloud distances, image metrics (Fréchet distance) and the
linear probe of representations.

Metrics sit above :mod:`visgen.train` (the image metrics' evaluation classifiers and the
probed features come from it); the training stack never imports this package."""

from visgen.metrics.images import (
    IMAGE_DATASETS,
    ClassifierFeatures,
    PCAFeatures,
    data_floor,
    frechet_distance,
    image_metrics,
)
from visgen.metrics.probe import linear_probe, probe_accuracy
from visgen.metrics.samples import (
    ModeCoverage,
    energy_distance,
    mmd_rbf,
    mode_coverage,
    sliced_wasserstein,
)

__all__ = [
    "IMAGE_DATASETS",
    "ClassifierFeatures",
    "ModeCoverage",
    "PCAFeatures",
    "data_floor",
    "energy_distance",
    "frechet_distance",
    "image_metrics",
    "linear_probe",
    "mmd_rbf",
    "mode_coverage",
    "probe_accuracy",
    "sliced_wasserstein",
]
