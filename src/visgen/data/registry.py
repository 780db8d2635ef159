"""Named data sets for training, evaluation, the CLI and the tour: ``get_dataset(name, split)``.

==================  ===========================================  ============  =========
name                what                                         shape         classes
==================  ===========================================  ============  =========
toy 2D (5 names)    :data:`visgen.data.TOY2D`, 50 000 train pts  (2,)          8 for eight_gaussians, else 0
``digits``          scikit-learn digits, fixed split             (1, 8, 8)     10
``digits16``        the same, bilinear ×2                        (1, 16, 16)   10
``shapes16``        procedural shapes, 8 000 train / 2 000 test  (3, 16, 16)   12
``shapes32``        the same at 32 px                            (3, 32, 32)   12
``folder:PATH``     PNG/JPEG folder, 32 px (train split only)    (3, 32, 32)   sub-folders
==================  ===========================================  ============  =========

Derived sets (same splits):

* ``shapes16_captions`` / ``shapes32_captions``: the shapes with their captions as word ids
  (N, 8) in place of class labels (``visgen.data.tokenize_captions``; −1 = padding);
* ``embedded:<toy>:<D>``: a toy 2D set placed on a plane of R^D by the fixed orthonormal
  ``embedding_matrix(D)`` (JiT's high-dimensional toy), labels as the toy's.

Data sets made by a trained model (``latent:<asset>``, the latents of an autoencoder asset)
belong to :mod:`visgen.train` (:func:`visgen.train.training_data`): this package never
imports the training stack.

Splits are fixed: train and test of the toy sets and of shapes come from different seeds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from visgen._checks import check_choice
from visgen.data.digits import load_digits
from visgen.data.folder import load_image_folder
from visgen.data.shapes import make_shapes, tokenize_captions
from visgen.data.toy2d import TOY2D, embedding_matrix, toy2d
from visgen.oracles import eight_gaussians

__all__ = ["DATASETS", "Dataset", "get_dataset"]

DATASETS = (*TOY2D, "digits", "digits16", "shapes16", "shapes32")
_TOY_SIZES = {"train": 50_000, "test": 5_000}
_SHAPE_SIZES = {"train": 8_000, "test": 2_000}
_SPLIT_SEEDS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Dataset:
    """A named tensor data set: samples ``x`` (N, ...) and optional ``labels``: class labels
    (N,), or caption word ids (N, L) for the ``*_captions`` sets."""

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    def __len__(self) -> int:
        return self.x.shape[0]


@functools.lru_cache(maxsize=16)
def _load(name: str, split: str) -> Dataset:
    if name.startswith("folder:"):
        if split != "train":
            raise ValueError(f"image folders have only a 'train' split, got split={split!r}")
        x, labels, classes = load_image_folder(name.removeprefix("folder:"), 32)
        if len(classes) == 1:
            return Dataset(name, x, None, 0)
        return Dataset(name, x, labels, len(classes))
    check_choice(split, "split", ("train", "test"))
    if name.startswith("latent:"):
        raise ValueError(
            f"{name!r} names the latents of a trained autoencoder: get it with "
            "visgen.train.training_data (visgen.data knows no trained models)"
        )
    if name.startswith("embedded:"):
        toy, _, dim = name.removeprefix("embedded:").rpartition(":")
        if not dim.isdigit():
            raise ValueError(f"embedded data sets are named 'embedded:<toy>:<D>', got {name!r}")
        base = _load(toy, split)
        return Dataset(name, base.x @ embedding_matrix(int(dim)).T, base.labels, base.num_classes)
    if name.endswith("_captions"):
        check_choice(name, "dataset", ("shapes16_captions", "shapes32_captions"))
        size = int(name.removeprefix("shapes").removesuffix("_captions"))
        shapes = make_shapes(_SHAPE_SIZES[split], size, _SPLIT_SEEDS[split])
        return Dataset(name, shapes.images, tokenize_captions(shapes.captions), 0)
    check_choice(name, "dataset", DATASETS)
    g = torch.Generator().manual_seed(_SPLIT_SEEDS[split])
    if name == "eight_gaussians":
        x, labels = eight_gaussians().sample(_TOY_SIZES[split], g, return_labels=True)
        return Dataset(name, x, labels, 8)
    if name in TOY2D:
        return Dataset(name, toy2d(name, _TOY_SIZES[split], g), None, 0)
    if name.startswith("digits"):
        x, labels = load_digits(split, 16 if name == "digits16" else 8)
        return Dataset(name, x, labels, 10)
    shapes = make_shapes(_SHAPE_SIZES[split], int(name.removeprefix("shapes")), _SPLIT_SEEDS[split])
    return Dataset(name, shapes.images, shapes.label, shapes.num_classes)


def get_dataset(name: str, split: str = "train") -> Dataset:
    """The data set ``name`` (see the module table); loaded once per process and cached.

    The returned tensors are shared: clone before modifying them in place.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a data set name, got {type(name).__name__}")
    return _load(name, split)
