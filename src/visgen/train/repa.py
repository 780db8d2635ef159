r"""REPA's frozen encoders (cached assets) and the hidden features of an aligned layer.

The encoder standing in for DINOv2 (Yu et al. 2024, arXiv 2410.06940) is a small CNN
classifier trained by visgen: ``repa_encoder_digits`` and ``repa_encoder_shapes16`` use a
different seed from the evaluation classifiers of :mod:`visgen.metrics`, so a model aligned
to one is not scored by the same features. Its last convolutional feature map is the target
(:func:`visgen.objectives.encoder_tokens`).

:func:`hidden_features` reads the mean-pooled image tokens of a DiT block on noised inputs
x_t = (1 − t) x0 + t ε; :func:`visgen.metrics.probe_accuracy` fits a linear probe on them
(REPA §2: the aligned layer's features become linearly more class-informative).
"""

from __future__ import annotations

import torch

from visgen._checks import as_time
from visgen.train.assets import classifier_recipe, register_asset

__all__ = ["hidden_features"]


# REPA's frozen target encoders: classifiers of their own (seed 1), standing in for DINO
register_asset("repa_encoder_digits", classifier_recipe("digits", 1, 10, 16, (1500, 600), seed=1))
register_asset(
    "repa_encoder_shapes16", classifier_recipe("shapes16", 3, 12, 16, (1500, 600), seed=1)
)


@torch.no_grad()
def hidden_features(model, x0, layers, t: float, *, generator=None, batch_size=512) -> dict:
    """Mean-pooled image tokens (N, dim) after each block of ``layers`` of a DiT on
    x_t = (1 − t) x0 + t ε, evaluated unconditionally (null condition): {layer: features}."""
    t = float(as_time(t, "t"))
    layers = (layers,) if isinstance(layers, int) else tuple(layers)
    feats = {layer: [] for layer in layers}
    for i in range(0, len(x0), batch_size):
        x = x0[i : i + batch_size]
        xt = (1 - t) * x + t * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        _, hidden = model(xt, torch.full((len(x),), t), return_hidden=layers)
        for layer in layers:
            feats[layer].append(hidden[layer].mean(1))
    return {layer: torch.cat(f) for layer, f in feats.items()}
