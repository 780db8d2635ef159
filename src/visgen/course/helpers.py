"""Metric rows shared by tour chapters: every result next to its floor, in the same columns.

* 8-Gaussian point clouds: energy distance (floor ≈ 0.0025 at N = 2000, docs/metrics.md),
  share of samples within 3σ of a mode, smallest mode share (ideal 0.125).
* Digits: Fréchet distance on the evaluation classifier's features and on PCA-16 pixels,
  classifier confidence and, for class-conditional samples, agreement with the requested
  class (:func:`visgen.metrics.image_metrics`); the floor row is held-out real digits
  (:func:`visgen.metrics.data_floor`, same N).
"""

from __future__ import annotations

import functools

import torch

from visgen.data import get_dataset
from visgen.metrics import data_floor, energy_distance, image_metrics, mode_coverage
from visgen.oracles import eight_gaussians

__all__ = [
    "digits_floor_row",
    "digits_row",
    "gaussians_floor_row",
    "gaussians_row",
    "nearest_distance",
]


def gaussians_row(label: str, x: torch.Tensor, ref: torch.Tensor, **extra) -> dict:
    """Energy distance and mode coverage of 2D samples x against reference samples ref."""
    cov = mode_coverage(x, eight_gaussians().means, 0.3)
    return {
        "samples": label,
        **extra,
        "energy distance": energy_distance(x, ref),
        "in a mode": cov.in_mode,
        "smallest mode": cov.min_fraction,
    }


def gaussians_floor_row(ref: torch.Tensor, generator: torch.Generator, **extra) -> dict:
    """The same row for an independent draw of the data: the floor."""
    row = gaussians_row(
        "data vs data (floor)", eight_gaussians().sample(len(ref), generator), ref, **extra
    )
    return {**row, "_floor": True}


def digits_row(label: str, x: torch.Tensor, cond=None, **extra) -> dict:
    """Image metrics of digit samples x (N, 1, 8, 8) against the test split."""
    m = image_metrics(x, "digits", cond=cond)
    row = {
        "samples": label,
        **extra,
        "FD (classifier)": m["fd"],
        "FD (PCA-16)": m["fd_pca16"],
        "confidence": m["confidence"],
    }
    row["right class"] = m.get("agreement", float("nan"))
    return row


@functools.lru_cache(maxsize=2)
def _floor() -> dict:
    return data_floor("digits", repeats=5, match_labels=True)


def digits_floor_row(**extra) -> dict:
    """Real training digits with the test split's labels vs the test split: the floor of
    class-conditional samples drawn with the test labels (mean of 5 draws; the label gives
    the standard deviation of the two FDs over the draws)."""
    f = _floor()
    test = get_dataset("digits", "test")
    agreement = image_metrics(test.x, "digits", cond=test.labels)["agreement"]
    return {
        "samples": "real digits (floor)",
        **extra,
        "FD (classifier)": f["fd"],
        "FD (PCA-16)": f["fd_pca16"],
        "confidence": f["confidence"],
        "right class": agreement,
        "_floor": True,
    }


def nearest_distance(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """RMS per-pixel distance of each x to its nearest neighbour in ``bank`` (N,)."""
    d = torch.cdist(x.flatten(1).double(), bank.flatten(1).double())
    return d.min(1).values / x[0].numel() ** 0.5
