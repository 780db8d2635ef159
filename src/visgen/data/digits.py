"""scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes), no download.

Pixels 0…16 are scaled to [−1, 1] by x/8 − 1. The train/test split is fixed
(a seeded permutation, 1400 train / 397 test, stratification not needed at this size), so every
model, metric and homework sees the same held-out images. ``size=16`` upsamples bilinearly.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from visgen._checks import check_choice

__all__ = ["DIGITS_SPLIT_SEED", "N_TEST", "load_digits"]

DIGITS_SPLIT_SEED = 0
N_TEST = 397


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load

    d = sk_load()
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(d.target))
    return d.images[perm].astype(np.float32), d.target[perm].astype(np.int64)


def load_digits(split: str = "train", size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, size, size) in [−1, 1] and labels (N,) of the fixed ``train | test | all`` split.

    ``size`` is 8 (native) or 16 (bilinear ×2, values stay in [−1, 1]).
    """
    check_choice(split, "split", ("train", "test", "all"))
    check_choice(size, "size", (8, 16))
    images, labels = _raw()
    sl = {"train": slice(N_TEST, None), "test": slice(0, N_TEST), "all": slice(None)}[split]
    x = torch.from_numpy(images[sl].copy()).unsqueeze(1) / 8.0 - 1.0
    if size == 16:
        x = F.interpolate(x, size=16, mode="bilinear", align_corners=False).clamp(-1, 1)
    return x, torch.from_numpy(labels[sl].copy())
