"""Data: toy 2D distributions, scikit-learn digits, procedural shapes and image folders.

Everything is generated or ships with scikit-learn: nothing is downloaded. Images are
(N, C, H, W) in [−1, 1]; points (N, D). :func:`get_dataset` names every built-in set.
"""

from visgen.data.digits import load_digits
from visgen.data.folder import load_image_folder, resize_center_crop
from visgen.data.registry import DATASETS, Dataset, get_dataset
from visgen.data.shapes import (
    ATTRIBUTES,
    CAPTION_LENGTH,
    CAPTION_WORDS,
    COLOURS,
    REGIONS,
    SHAPES,
    SIZES,
    Shapes,
    decode_captions,
    drop_attributes,
    make_shapes,
    parse_caption,
    render_coverage,
    tokenize_captions,
)
from visgen.data.toy2d import TOY2D, embedding_matrix, toy2d

__all__ = [
    "ATTRIBUTES",
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
    "decode_captions",
    "drop_attributes",
    "embedding_matrix",
    "get_dataset",
    "load_digits",
    "load_image_folder",
    "make_shapes",
    "parse_caption",
    "render_coverage",
    "resize_center_crop",
    "tokenize_captions",
    "toy2d",
]
