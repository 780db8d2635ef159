r"""VQGAN's extra training terms (Esser et al. 2021, arXiv 2012.09841, §3.2): a patch
discriminator with the hinge loss, an adaptive weight, and a perceptual feature loss.

* **Patch discriminator** (PatchGAN, Isola et al. 2017, arXiv 1611.07004): a small convolution
  stack that outputs one real/fake logit per image patch.
* **Hinge loss** (VQGAN's released code; Lim & Ye 2017): discriminator
  L_D = E[relu(1 − D(x))] + E[relu(1 + D(x̂))]; tokenizer L_G = −E[D(x̂)].
* **Adaptive weight** (eq. 7): λ = ‖∇_{G_L} L_rec‖ / (‖∇_{G_L} L_G‖ + δ) at the decoder's last
  layer G_L, so the GAN gradient never swamps the reconstruction gradient.
* **Feature loss** in place of LPIPS (Zhang et al. 2018, arXiv 1801.03924, eq. 1): the squared
  distance of channel-normalised feature maps of a frozen network, averaged over positions and
  summed over layers. visgen has no ImageNet network, so the layers are those of one of its own
  small classifiers (:class:`~visgen.nn.Classifier`) — a *different* one from the evaluation
  classifier behind FD (``repa_encoder_digits``, another seed), so training does not optimise
  the metric it is judged by.

CPU-scale simplification: the discriminator and the tokenizer take one simultaneous gradient
step with one optimiser (the discriminator sees its loss on a detached x̂; the tokenizer's GAN
term reaches the discriminator's weights through a detached copy), where VQGAN alternates two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

__all__ = [
    "PatchDiscriminator",
    "adaptive_weight",
    "discriminator_hinge_loss",
    "feature_loss",
    "generator_hinge_loss",
]


class PatchDiscriminator(nn.Module):
    """``PatchDiscriminator(in_channels, width)``: images (B, C, H, W) → patch logits
    (B, 1, H/2, W/2)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # training steps seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def frozen(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) with the weights detached: the tokenizer's GAN gradient stops at the input."""
        params = {k: v.detach() for k, v in self.named_parameters()}
        return functional_call(self, params, (x,))


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample relu(1 − D(x)) + relu(1 + D(x̂)), averaged over patches (B,)."""
    real = F.relu(1 - real_logits).flatten(1).mean(1)
    return real + F.relu(1 + fake_logits).flatten(1).mean(1)


def generator_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample −D(x̂) averaged over patches (B,)."""
    return -fake_logits.flatten(1).mean(1)


def adaptive_weight(
    rec_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, delta: float = 1e-4
) -> torch.Tensor:
    """λ = ‖∇ rec‖ / (‖∇ gan‖ + δ) at ``last_layer``, clamped to [0, 10⁴], without gradient."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + delta)).clamp(0, 1e4).detach()


def _normalise(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)


def feature_loss(classifier, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """LPIPS-style distance per sample (B,): Σ_layers mean_positions ‖n(φ_ℓ(x)) − n(φ_ℓ(x̂))‖²
    over the three convolutional layers of a :class:`~visgen.nn.Classifier` (n = unit norm
    over channels); the classifier is frozen and x is the target."""
    total = x.new_zeros(x.shape[0])
    h_real, h_fake = x, x_hat
    for layer in classifier.body:
        if isinstance(layer, nn.AdaptiveAvgPool2d):  # pooling and the head follow
            break
        h_fake = layer(h_fake)
        with torch.no_grad():
            h_real = layer(h_real)
        if isinstance(layer, nn.SiLU):
            diff = _normalise(h_fake) - _normalise(h_real)
            total = total + diff.pow(2).sum(1).flatten(1).mean(1)
    return total
