r"""Diffusion as spectral autoregression (Dieleman 2024, "Diffusion is spectral autoregression",
sander.ai/2024/09/02/spectral-autoregression.html; Rissanen et al. 2022, arXiv 2206.13397, §2).

The **radially averaged power spectral density** (RAPSD) of images, P(f) = E|F[x](k)|² averaged
over the frequency vectors k with |k| ≈ f (orthonormal 2D DFT), of natural images follows a power
law P(f) ∝ f^{−a} (a ≈ 2). Gaussian noise of variance σ² is **white**: its RAPSD is σ² at every
frequency. The noised image x_t = α_t x_0 + σ_t ε has, since x_0 and ε are independent,

.. math:: P_t(f) = α_t^2 P(f) + σ_t^2 ,

so noise drowns every frequency above the **crossover** f*(t), where α_t² P(f*) = σ_t²:
a higher noise level hides more of the spectrum, top down. Denoising from t = 1 to 0 therefore
reveals the image coarse to fine — an implicit next-scale prediction, the frequency-domain
view of VAR's scales (:mod:`visgen.ar.var`).

:func:`power_law_images` makes random-phase images with an exact spectrum f^{−a} for tests.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from visgen._checks import check_positive, check_tensor

__all__ = ["crossover_frequency", "fit_power_law", "power_law_images", "rapsd"]


def _radius(size: int) -> torch.Tensor:
    k = torch.fft.fftfreq(size, d=1.0 / size)
    return torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2)


def rapsd(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies, power): the RAPSD of square images (B, C, S, S), averaged over the batch and
    channels, in integer radius bins f = 1 … S/2 cycles per image (the mean, f = 0, dropped);
    frequencies are returned in cycles per pixel (f / S). Orthonormal DFT: white noise of
    variance σ² has power σ² in every bin."""
    x = check_tensor(images, "images", min_dim=4).double()
    size = x.shape[-1]
    if x.shape[-2] != size or size < 4:
        raise ValueError(f"images must be square and at least 4×4, got {tuple(x.shape)}")
    power = torch.fft.fft2(x, norm="ortho").abs().pow(2).mean((0, 1))
    bins = _radius(size).round().long().flatten()
    top = size // 2
    keep = bins <= top  # the corners beyond the Nyquist circle are dropped
    total = torch.zeros(top + 1, dtype=torch.float64).index_add_(
        0, bins[keep], power.flatten()[keep]
    )
    count = torch.bincount(bins[keep], minlength=top + 1).double()
    f = torch.arange(1, top + 1, dtype=torch.float64)
    return f / size, total[1:] / count[1:]


def fit_power_law(freqs: torch.Tensor, power: torch.Tensor) -> float:
    """The least-squares slope of log P against log f (−a for P ∝ f^{−a})."""
    lf, lp = np.log(np.asarray(freqs, dtype=float)), np.log(np.asarray(power, dtype=float))
    return float(np.polyfit(lf, lp, 1)[0])


def crossover_frequency(freqs: torch.Tensor, power: torch.Tensor, noise_power: float) -> float:
    """f*: where the (decreasing) spectrum P(f) meets the white-noise level ``noise_power``
    = σ_t²/α_t², interpolated linearly in log–log between bins; the lowest (highest)
    frequency if the noise is above (below) every bin."""
    if not noise_power > 0:
        raise ValueError(f"noise_power must be positive, got {noise_power!r}")
    lf = np.log(np.asarray(freqs, dtype=float))
    lp = np.log(np.asarray(power, dtype=float))
    target = math.log(noise_power)
    below = np.nonzero(lp < target)[0]
    if len(below) == 0:
        return float(freqs[-1])
    i = int(below[0])
    if i == 0:
        return float(freqs[0])
    w = (lp[i - 1] - target) / (lp[i - 1] - lp[i])
    return float(np.exp(lf[i - 1] + w * (lf[i] - lf[i - 1])))


def power_law_images(
    n: int, size: int, exponent: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n random-phase images (n, 1, size, size) with RAPSD ∝ f^{−exponent}: white noise whose
    DFT is multiplied by |k|^{−exponent/2} (mean removed), scaled to unit pixel variance."""
    check_positive(n, "n", integer=True)
    check_positive(size, "size", integer=True)
    noise = torch.randn(n, 1, size, size, generator=generator, dtype=torch.float64)
    r = _radius(size)
    gain = torch.where(r > 0, r.clamp_min(1e-12) ** (-exponent / 2), torch.zeros_like(r))
    x = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real
    return (x / x.std()).float()
