r"""A small convolutional KL autoencoder: the latent space of latent diffusion (Rombach et al.
2022, arXiv 2112.10752, §3 and App. G).

The encoder maps x (B, C, H, W) to the posterior q(z | x) = N(μ(x), diag σ²(x)) over latents
z (B, c_z, H/f, W/f) with f = 2^levels; the decoder maps z back to x̂. Trained (by the ``vae``
method of :mod:`visgen.train.latent`) on

.. math:: L = \frac{1}{D}\|x − \mathrm{dec}(z)\|^2 + \frac{β}{D}\,\mathrm{KL}\big(q(z|x)\,\|\,N(0, I)\big),
          \qquad z = μ + σ ⊙ ε,

with D the number of values of x and a small β (LDM's "KL-reg", so z stays close to an
autoencoder's code but has a bounded scale). Diffusion then runs on s·μ(x), where the **latent
scaling factor** s = 1/std(μ) is measured on the training data (:meth:`Autoencoder.fit_scale`;
LDM §4.3.2 does the same with its first batch), so the diffusion sees unit-variance data.

CPU-scale simplifications: no perceptual or patch-GAN loss, no attention; two or three
convolutions per resolution level.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from visgen._checks import check_positive, check_tensor

__all__ = ["Autoencoder", "Posterior", "conv_decoder", "conv_encoder"]


class Posterior:
    """q(z | x) = N(mean, diag exp(logvar)): ``sample(noise)``, ``mode()``, ``kl()`` (B,)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        """z = μ + σ ⊙ ε for a given ε shaped like the latents."""
        if noise.shape != self.mean.shape:
            raise ValueError(
                f"noise must have the latent shape {tuple(self.mean.shape)}, got {tuple(noise.shape)}"
            )
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²) per sample."""
        return 0.5 * (self.mean**2 + self.logvar.exp() - 1 - self.logvar).flatten(1).sum(1)


def _conv(c_in, c_out, stride=1):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


def conv_encoder(in_channels: int, out_channels: int, width: int, levels: int) -> nn.Sequential:
    """Images (B, in_channels, H, W) → (B, out_channels, H/2^levels, W/2^levels): ``width``
    channels at full resolution, doubled at every lower level (stride-2 3×3 convolutions)."""
    widths = [width * 2**i for i in range(levels + 1)]
    enc: list[nn.Module] = [_conv(in_channels, widths[0]), nn.SiLU()]
    for i in range(levels):
        enc += [_conv(widths[i], widths[i + 1], stride=2), nn.SiLU()]
        enc += [_conv(widths[i + 1], widths[i + 1]), nn.SiLU()]
    enc.append(nn.Conv2d(widths[-1], out_channels, 1))
    return nn.Sequential(*enc)


def conv_decoder(latent_channels: int, out_channels: int, width: int, levels: int) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`: latents → images, nearest ×2 upsampling per level."""
    widths = [width * 2**i for i in range(levels + 1)]
    dec: list[nn.Module] = [_conv(latent_channels, widths[-1]), nn.SiLU()]
    for i in reversed(range(levels)):
        dec += [_conv(widths[i + 1], widths[i + 1]), nn.SiLU()]
        dec += [nn.Upsample(scale_factor=2), _conv(widths[i + 1], widths[i]), nn.SiLU()]
    dec.append(_conv(widths[0], out_channels))
    return nn.Sequential(*dec)


class Autoencoder(nn.Module):
    """``Autoencoder(in_channels, size, latent_channels=4, width=32, levels=2)``.

    Latents are (latent_channels, size/2^levels, size/2^levels); ``width`` channels at full
    resolution, doubled at every lower level.
    """

    def __init__(
        self,
        in_channels: int,
        size: int,
        latent_channels: int = 4,
        width: int = 32,
        levels: int = 2,
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("size", size),
            ("latent_channels", latent_channels),
            ("width", width),
            ("levels", levels),
        ):
            check_positive(value, name, integer=True)
        if size % 2**levels:
            raise ValueError(f"size {size} must be divisible by 2^levels = {2**levels}")
        if latent_channels > in_channels * 4**levels:
            raise ValueError(
                f"latent_channels {latent_channels} would give more latent values than input "
                f"values (at most in_channels * 4^levels = {in_channels * 4**levels})"
            )
        self.config = {
            "name": "autoencoder",
            "in_channels": in_channels,
            "size": size,
            "latent_channels": latent_channels,
            "width": width,
            "levels": levels,
        }
        self.input_shape = (in_channels, size, size)
        self.latent_shape = (latent_channels, size // 2**levels, size // 2**levels)
        self.encoder = conv_encoder(in_channels, 2 * latent_channels, width, levels)
        self.decoder = conv_decoder(latent_channels, in_channels, width, levels)
        # the latent scaling factor s (1 until fit_scale measures it on data)
        self.register_buffer("scale", torch.ones(()))

    def _check(self, x, name, shape):
        check_tensor(x, name, min_dim=4, finite=False)
        if tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{name} must have shape (B, {', '.join(map(str, shape))}) for this autoencoder, "
                f"got {tuple(x.shape)}"
            )

    def encode(self, x: torch.Tensor) -> Posterior:
        """q(z | x) for images x (B, C, size, size)."""
        self._check(x, "x", self.input_shape)
        mean, logvar = self.encoder(x).chunk(2, 1)
        return Posterior(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = dec(z) for latents z (B, *latent_shape) (unscaled)."""
        self._check(z, "z", self.latent_shape)
        return self.decoder(z)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None):
        """(x̂, posterior): reconstruction from z = μ + σ ε (from μ when ``noise`` is None)."""
        q = self.encode(x)
        return self.decode(q.mode() if noise is None else q.sample(noise)), q

    # --- the latent space the diffusion model sees ---------------------------------------
    @torch.no_grad()
    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Diffusion latents s·μ(x) (B, *latent_shape)."""
        return self.scale * self.encode(x).mode()

    @torch.no_grad()
    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Images dec(z / s) from diffusion latents."""
        return self.decode(z / self.scale)

    @torch.no_grad()
    def fit_scale(self, x: torch.Tensor, batch_size: int = 1024) -> float:
        """Set s = 1 / std of μ(x) over the images x (all latent values pooled); returns s."""
        check_positive(batch_size, "batch_size", integer=True)
        means = torch.cat(
            [self.encode(x[i : i + batch_size]).mode() for i in range(0, len(x), batch_size)]
        )
        std = float(means.double().std())
        if not math.isfinite(std) or std <= 0:
            raise ValueError(f"latents have standard deviation {std}; cannot set the scale")
        self.scale.fill_(1.0 / std)
        return 1.0 / std
