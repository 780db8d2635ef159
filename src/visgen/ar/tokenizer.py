r"""Image tokenizers: a convolutional encoder, a quantiser, a decoder (VQ-VAE, van den Oord et al.
2017, arXiv 1711.00937; VQGAN, Esser et al. 2021, arXiv 2012.09841; VAR's multi-scale VQ-VAE,
Tian et al. 2024, arXiv 2404.02905).

x (B, C, H, W) → z_e = enc(x) (B, d, H/2^ℓ, W/2^ℓ) → quantised z_q → x̂ = dec(z_q), trained on

.. math:: L = \frac{1}{D}\|x − x̂\|^2 + L_{VQ}

(+ the VQGAN terms of :mod:`visgen.ar.vqgan` when the training method asks for them). The
quantiser is one of

* ``vq``: a codebook (:class:`~visgen.ar.quantize.VectorQuantizer`; EMA, k-means init and
  dead-code restarts optional) — the tokens are an (h, w) map of code indices;
* ``fsq``: finite scalar quantisation (:class:`~visgen.ar.fsq.FSQ`), no codebook;
* ``multiscale``: VAR's residual quantiser over ``scales`` with a shared codebook
  (:class:`~visgen.ar.multiscale.MultiScaleQuantizer`) — the tokens are a list of maps.

The encoder and decoder are the convolution stacks of lecture 5's KL autoencoder
(:func:`visgen.nn.autoencoder.conv_encoder`); a ``discriminator_width`` > 0 adds VQGAN's patch
discriminator, trained with the tokenizer by the same optimiser (:mod:`visgen.ar.vqgan`).

CPU-scale simplification: no attention blocks or perceptual network in the autoencoder.
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_choice, check_positive, check_tensor
from visgen.ar.fsq import FSQ
from visgen.ar.multiscale import MultiScaleQuantizer
from visgen.ar.quantize import VectorQuantizer
from visgen.ar.vqgan import PatchDiscriminator
from visgen.nn.autoencoder import conv_decoder, conv_encoder

__all__ = ["Tokenizer"]


class Tokenizer(nn.Module):
    """``Tokenizer(in_channels, size, quantizer="vq", ...)``.

    Args:
        in_channels, size: images (B, in_channels, size, size).
        levels, width: the encoder halves the side ``levels`` times; ``width`` channels at
            full resolution.
        latent_dim: d, channels of z_e (for ``fsq``: len(fsq_levels)).
        quantizer: ``vq`` | ``fsq`` | ``multiscale``.
        num_codes: codebook size K (``vq``, ``multiscale``).
        scales: token-map sides of ``multiscale`` (increasing, the last = the latent side).
        centered: ``multiscale`` only: quantise f − μ, μ the running mean latent
            (:class:`~visgen.ar.multiscale.MultiScaleQuantizer`).
        beta, ema_decay, kmeans_init, restart_below, cosine: codebook options (see
            :class:`~visgen.ar.quantize.VectorQuantizer`).
        fsq_levels: levels per channel of ``fsq`` (K = their product).
        discriminator_width: > 0 adds VQGAN's patch discriminator of that width.
    """

    def __init__(
        self,
        in_channels: int,
        size: int,
        *,
        levels: int = 1,
        width: int = 32,
        latent_dim: int = 4,
        quantizer: str = "vq",
        num_codes: int = 32,
        scales=(),
        centered: bool = False,
        beta: float = 0.25,
        ema_decay: float = 0.0,
        kmeans_init: bool = False,
        restart_below: float = 0.0,
        cosine: bool = False,
        fsq_levels=(),
        discriminator_width: int = 0,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("size", size), ("levels", levels)):
            check_positive(value, name, integer=True)
        check_positive(width, "width", integer=True)
        check_choice(quantizer, "quantizer", ("vq", "fsq", "multiscale"))
        if size % 2**levels:
            raise ValueError(f"size {size} must be divisible by 2^levels = {2**levels}")
        if centered and quantizer != "multiscale":
            raise ValueError(f"centered needs quantizer 'multiscale', got {quantizer!r}")
        if quantizer == "fsq":
            if not fsq_levels:
                raise ValueError("quantizer 'fsq' needs fsq_levels")
            latent_dim = len(fsq_levels)
        self.config = {
            "name": "tokenizer",
            "in_channels": in_channels,
            "size": size,
            "levels": levels,
            "width": width,
            "latent_dim": latent_dim,
            "quantizer": quantizer,
            "num_codes": num_codes,
            "scales": list(scales),
            "centered": centered,
            "beta": beta,
            "ema_decay": ema_decay,
            "kmeans_init": kmeans_init,
            "restart_below": restart_below,
            "cosine": cosine,
            "fsq_levels": list(fsq_levels),
            "discriminator_width": discriminator_width,
        }
        self.input_shape = (in_channels, size, size)
        self.side = size // 2**levels
        self.latent_shape = (latent_dim, self.side, self.side)
        self.encoder = conv_encoder(in_channels, latent_dim, width, levels)
        self.decoder = conv_decoder(latent_dim, in_channels, width, levels)
        vq = dict(beta=beta, ema_decay=ema_decay, kmeans_init=kmeans_init)
        vq.update(restart_below=restart_below, cosine=cosine)
        if quantizer == "vq":
            self.quantizer = VectorQuantizer(num_codes, latent_dim, **vq)
        elif quantizer == "fsq":
            self.quantizer = FSQ(fsq_levels)
        else:
            self.quantizer = MultiScaleQuantizer(
                num_codes, latent_dim, scales, self.side, centered=centered, **vq
            )
        self.num_codes = self.quantizer.num_codes
        self.discriminator = (
            PatchDiscriminator(in_channels, discriminator_width) if discriminator_width else None
        )

    @property
    def multiscale(self) -> bool:
        return isinstance(self.quantizer, MultiScaleQuantizer)

    def _check_images(self, x) -> torch.Tensor:
        check_tensor(x, "x", min_dim=4)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"x must have shape (B, {', '.join(map(str, self.input_shape))}) for this "
                f"tokenizer, got {tuple(x.shape)}"
            )
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_e = enc(x) (B, d, h, w)."""
        return self.encoder(self._check_images(x))

    def forward(self, x: torch.Tensor):
        """(x̂, quantiser output) with x̂ = dec(z_q) decoded from the straight-through z_q."""
        q = self.quantizer(self.encode(x))
        return self.decoder(q.z_q), q

    @torch.no_grad()
    def tokenize(self, x: torch.Tensor):
        """Code indices of images: (B, h, w), or a list of (B, s_k, s_k) for ``multiscale``."""
        return self.quantizer(self.encode(x)).indices

    def latents(self, indices) -> torch.Tensor:
        """z_q of token indices: (B, d, h, w) (for ``multiscale``, f̂_K of the token maps)."""
        if self.multiscale:
            return self.quantizer.reconstruct(indices)[-1]
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point():
            raise TypeError("indices must be an integer tensor of code indices (B, h, w)")
        if indices.dim() != 3 or tuple(indices.shape[1:]) != (self.side, self.side):
            raise ValueError(
                f"indices must have shape (B, {self.side}, {self.side}), got {tuple(indices.shape)}"
            )
        return self.quantizer.lookup(indices).movedim(-1, 1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x̂ = dec(z) for latents z (B, d, h, w)."""
        check_tensor(z, "z", min_dim=4)
        if tuple(z.shape[1:]) != self.latent_shape:
            raise ValueError(
                f"z must have shape (B, {', '.join(map(str, self.latent_shape))}), got {tuple(z.shape)}"
            )
        return self.decoder(z)

    @torch.no_grad()
    def decode_tokens(self, indices) -> torch.Tensor:
        """Images of token indices (the generator's output)."""
        return self.decode(self.latents(indices))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """dec(Q(enc(x))) in eval mode."""
        return self.decoder(self.quantizer(self.encode(x)).z_q)
