"""Data: toy 2D distributions, scikit-learn digits, procedural shapes and image folders.

Everything is generated or ships with scikit-learn: nothing is downloaded. Images are
(N, C, H, W) in [−1, 1]; points (N, D). :func:`get_dataset` names every built-in set.
"""

from visgen.data.digits import load_digits
from visgen.data.folder import load_image_folder, resize_center_crop
from visgen.data.registry import DATASETS, Dataset, get_dataset
from visgen.data.shapes import COLOURS, REGIONS, SHAPES, SIZES, Shapes, make_shapes
from visgen.data.toy2d import TOY2D, toy2d

__all__ = [
    "COLOURS",
    "DATASETS",
    "REGIONS",
    "SHAPES",
    "SIZES",
    "TOY2D",
    "Dataset",
    "Shapes",
    "get_dataset",
    "load_digits",
    "load_image_folder",
    "make_shapes",
    "resize_center_crop",
    "toy2d",
]
