"""A small CNN image classifier: the evaluation network of the digits and shapes metrics.

Three 3×3 convolutions (the last two with stride 2), global average pooling, a ``feature_dim``
penultimate layer and a linear head. ``features(x)`` is the embedding the Fréchet distance of
:mod:`visgen.metrics.images` is computed on (the role Inception-v3's pool features play in
FID, Heusel et al. 2017, arXiv 1706.08500, at CPU scale).
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_positive

__all__ = ["Classifier"]

_CONV_LAYERS = 6  # the three (conv, SiLU) pairs at the start of Classifier.body


class Classifier(nn.Module):
    """``Classifier(in_channels, num_classes, width=32, feature_dim=64)``: x (B, C, H, W) → logits."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, feature_dim: int = 64):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("num_classes", num_classes),
            ("width", width),
            ("feature_dim", feature_dim),
        ):
            check_positive(value, name, integer=True)
        self.config = {
            "name": "classifier",
            "in_channels": in_channels,
            "num_classes": num_classes,
            "width": width,
            "feature_dim": feature_dim,
        }
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(2 * width, feature_dim),
            nn.SiLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(
                f"x must have shape (B, {self.config['in_channels']}, H, W), got {tuple(x.shape)}"
            )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_dim)."""
        self._check(x)
        return self.body(x)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional activations (B, 2·width, ⌈H/4⌉, ⌈W/4⌉), before pooling: the
        patch features a REPA encoder provides (:mod:`visgen.objectives.repa`)."""
        self._check(x)
        return self.body[:_CONV_LAYERS](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
