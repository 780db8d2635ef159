"""Data: toy 2D distributions, scikit-learn digits, procedural shapes and image folders.

Everything is generated or ships with scikit-learn: nothing is downloaded. Images are
(N, C, H, W) in [−1, 1]; points (N, D). :func:`get_dataset` names every built-in set.
"""

from visgen.data.digits import load_digits
from visgen.data.folder import load_image_folder, resize_center_crop
from visgen.data.registry import DATASETS, Dataset, get_dataset
from visgen.data.shapes import (
    CAPTION_LENGTH,
    CAPTION_WORDS,
    COLOURS,
    REGIONS,
    SHAPES,
    SIZES,
    Shapes,
    make_shapes,
    tokenize_captions,
)
from visgen.data.toy2d import TOY2D, embedding_matrix, toy2d

__all__ = [
    "CAPTION_LENGTH",
    "CAPTION_WORDS",
    "COLOURS",
    "DATASETS",
    "REGIONS",
    "SHAPES",
    "SIZES",
    "TOY2D",
    "Dataset",
    "Shapes",
    "embedding_matrix",
    "get_dataset",
    "load_digits",
    "load_image_folder",
    "make_shapes",
    "resize_center_crop",
    "tokenize_captions",
    "toy2d",
]
