r"""Representation alignment: REPA (Yu et al. 2024, arXiv 2410.06940, §3.2, eq. 8) and iREPA
(Singh et al. 2025, arXiv 2512.10794).

REPA adds to the denoising loss the negative patch-wise cosine similarity between the
denoiser's hidden tokens after block ℓ, mapped by a trainable projector h_φ, and the patch
features y = f(x0) of a frozen pretrained encoder of the *clean* image:

.. math:: L_{REPA} = −\frac{1}{N} \sum_{n=1}^{N} \cos\big(h_φ(z_t^{[n]}),\, y^{[n]}\big),
          \qquad L = L_{diff} + λ L_{REPA}   (λ = 0.5 in the paper).

iREPA keeps the loss and changes two things so that the *spatial* structure of the target is
what transfers: the MLP projector becomes a 3×3 convolution on the token grid
(:meth:`visgen.nn.DiT.project`), and the target features are spatially normalised per image
and channel over the N tokens (:func:`spatial_normalize`), which removes the component all
tokens share.

CPU-scale simplification: the frozen encoder standing in for DINOv2 is a small CNN trained
by visgen (its last convolutional feature map, resized to the token grid by
:func:`encoder_tokens`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from visgen._checks import check_positive

__all__ = ["encoder_tokens", "repa_loss", "spatial_normalize"]


def spatial_normalize(y: torch.Tensor, gamma: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """iREPA's target normalisation over tokens: (y − γ·mean_n y) / std_n y per image and channel.

    y is (B, N, C); γ = 1 removes the token mean entirely (γ < 1 keeps part of it).
    """
    if y.dim() != 3:
        raise ValueError(f"y must be patch features (B, N, C), got shape {tuple(y.shape)}")
    if y.shape[1] < 2:
        raise ValueError("spatial normalisation needs at least 2 tokens per image")
    centred = y - gamma * y.mean(1, keepdim=True)
    return centred / (y.std(1, keepdim=True) + eps)


@torch.no_grad()
def encoder_tokens(encoder, x0: torch.Tensor, grid: int) -> torch.Tensor:
    """Patch features (B, grid², C) of a frozen encoder's feature map on clean images x0.

    ``encoder.feature_map(x0)`` (B, C, h, w) is resized bilinearly to grid × grid when its
    resolution differs from the denoiser's token grid, then read row-major like the tokens.
    """
    check_positive(grid, "grid", integer=True)
    if not hasattr(encoder, "feature_map"):
        raise TypeError(
            f"the REPA encoder must have a feature_map(x) method, got {type(encoder).__name__}"
        )
    fmap = encoder.feature_map(x0)
    if fmap.shape[-2:] != (grid, grid):
        fmap = F.interpolate(fmap, size=(grid, grid), mode="bilinear", align_corners=False)
    return rearrange(fmap, "b c h w -> b (h w) c")


def repa_loss(projected: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_n cos(projected[n], target[n]) per sample (B,); both (B, N, C)."""
    if projected.shape != target.shape:
        raise ValueError(
            f"projected tokens {tuple(projected.shape)} and encoder features "
            f"{tuple(target.shape)} must have the same shape (B, N, C)"
        )
    return -F.cosine_similarity(projected, target, dim=-1).mean(1)
