"""Sample-quality metrics: point-cloud distances and image metrics (Fréchet distance)."""

from visgen.metrics.images import (
    IMAGE_DATASETS,
    ClassifierFeatures,
    PCAFeatures,
    data_floor,
    frechet_distance,
    image_metrics,
)
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
    "mmd_rbf",
    "mode_coverage",
    "sliced_wasserstein",
]
