r"""VAR's multi-scale residual quantiser (Tian et al. 2024, arXiv 2404.02905, §3.2 and Alg. 1–2):
one latent map f (d × h × h) becomes K token maps r_1, …, r_K of growing sides s_1 < … < s_K = h,
all drawn from **one shared codebook**.

Encoding (Alg. 1), with f̂_0 = 0:

.. math:: r_k = Q\big(\mathrm{down}_{s_k}(f − \hat f_{k−1})\big), \qquad
          \hat f_k = \hat f_{k−1} + φ_k\big(\mathrm{up}_h(e[r_k])\big),

down = area interpolation to s_k × s_k, up = bicubic interpolation back to h × h (the last scale
is not resized), φ_k the **upsampling refinement**: a 3×3 convolution mixed with its input,
φ(z) = (1 − ρ) z + ρ conv(z) with ρ = 0.5 (VAR's ``quant_resi``). Each scale quantises what the
coarser ones left, so the cumulative reconstruction f̂_k approaches f scale by scale. Losses
(VAR's ``quant.py``), averaged over scales: β‖sg(f̂_k) − f‖² (commitment, to the encoder) and
‖f̂_k − sg(f)‖² (to the codebook and φ); f̂ goes to the decoder straight-through.

The transformer's teacher-forced input for scale k ≥ 2 is down_{s_k}(f̂_{k−1})
(:meth:`MultiScaleQuantizer.next_scale_inputs`); at sampling time the same map is built token map
by token map (:meth:`MultiScaleQuantizer.step`).

The shared codebook is a :class:`~visgen.ar.quantize.VectorQuantizer`. With its EMA update,
each scale's residuals are weighted by 1/s_k², so every scale pulls on the codebook equally: the
1×1 residuals (one per image, tightly clustered) would otherwise get a single code, the
collapse of the coarse scales that VAR re-implementers report (Infinity issue #80).

**Centring** (``centered=True``, visgen's addition; VAR starts at f̂_0 = 0): f̂_0 = μ, the
running mean latent per channel (an EMA over training batches), so every scale quantises a
deviation from the average image. On digits the 1×1 residual of VAR's start, the image's mean
latent, is nearly the same for every image (pairwise cosine ≈ 0.99 over the held-out digits):
with f̂_0 = 0 it takes 2 of the 32 codes, centred it spreads over all of them.

CPU-scale simplification: one φ per scale (VAR shares 4 across 10 scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visgen._checks import check_tensor
from visgen.ar.quantize import VectorQuantizer

__all__ = ["MultiScaleOutput", "MultiScaleQuantizer", "check_scales"]


def check_scales(scales, side: int) -> tuple[int, ...]:
    """Scales must be strictly increasing positive ints ending at the latent side."""
    try:
        scales = tuple(int(s) for s in scales)
    except (TypeError, ValueError) as err:
        raise TypeError(f"scales must be a sequence of ints, got {scales!r}") from err
    if not scales or scales[0] < 1 or any(b <= a for a, b in zip(scales, scales[1:])):
        raise ValueError(f"scales must be strictly increasing positive ints, got {scales}")
    if scales[-1] != side:
        raise ValueError(
            f"scales {scales} do not fit the latent: the last scale must equal its side {side}"
        )
    return scales


@dataclass
class MultiScaleOutput:
    """z_q (straight-through f̂_K), indices per scale [(B, s_k, s_k)], per-sample losses (B,)
    and the cumulative reconstructions f̂_1, …, f̂_K."""

    z_q: torch.Tensor
    indices: list[torch.Tensor]
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    cumulative: list[torch.Tensor]


class MultiScaleQuantizer(nn.Module):
    """``MultiScaleQuantizer(num_codes, dim, scales, side, **vq_options)`` over latents
    (B, dim, side, side); ``vq_options`` go to the shared
    :class:`~visgen.ar.quantize.VectorQuantizer`."""

    def __init__(
        self,
        num_codes: int,
        dim: int,
        scales,
        side: int,
        *,
        ratio: float = 0.5,
        centered: bool = False,
        **vq,
    ):
        super().__init__()
        self.scales, self.side, self.ratio = check_scales(scales, side), side, ratio
        self.vq = VectorQuantizer(num_codes, dim, **vq)
        self.num_codes, self.dim, self.centered = num_codes, dim, centered
        self.phi = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in self.scales)
        self.register_buffer("offset", torch.zeros(dim))

    def start(self, batch: int) -> torch.Tensor:
        """f̂_0 (batch, dim, h, h): zeros, or with ``centered`` the mean latent μ."""
        return self.offset.view(1, -1, 1, 1).expand(batch, -1, self.side, self.side).clone()

    @torch.no_grad()
    def _track_offset(self, f: torch.Tensor) -> None:
        """μ ← the codebook's EMA of the batch's mean latent per channel, set on the first step;
        a codebook learned by gradients (``ema_decay`` 0) keeps the running mean of the batches."""
        if not (self.training and self.centered):
            return
        mean, steps = f.mean((0, 2, 3)), int(self.vq.steps)
        if steps == 0:
            self.offset.copy_(mean)
        else:
            self.offset.lerp_(mean, 1 - self.vq.ema_decay if self.vq.ema_decay else 1 / (steps + 1))

    @property
    def tokens_per_scale(self) -> list[int]:
        return [s * s for s in self.scales]

    def _check(self, f: torch.Tensor) -> None:
        check_tensor(f, "f", min_dim=4)
        if tuple(f.shape[1:]) != (self.dim, self.side, self.side):
            raise ValueError(
                f"f must have shape (B, {self.dim}, {self.side}, {self.side}), got {tuple(f.shape)}"
            )

    def down(self, f: torch.Tensor, side: int) -> torch.Tensor:
        return f if side == f.shape[-1] else F.interpolate(f, size=(side, side), mode="area")

    def refine(self, k: int, codes: torch.Tensor) -> torch.Tensor:
        """φ_k(up(e[r_k])): codes (B, dim, s_k, s_k) → the map added to f̂ (B, dim, h, h)."""
        if codes.shape[-1] != self.side:
            codes = F.interpolate(codes, size=(self.side, self.side), mode="bicubic")
        return (1 - self.ratio) * codes + self.ratio * self.phi[k](codes)

    def codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of a token map (B, s, s) → (B, dim, s, s)."""
        return self.vq.lookup(indices).movedim(-1, 1)

    def forward(self, f: torch.Tensor) -> MultiScaleOutput:
        self._check(f)
        plain = f.detach()
        self._track_offset(plain)
        f_hat = self.start(f.shape[0])
        rest = plain - f_hat
        indices, residuals, weights, cumulative = [], [], [], []
        codebook = commit = f.new_zeros(f.shape[0])
        self.vq.maybe_init(self.vq.flatten(rest))
        for k, side in enumerate(self.scales):
            z = self.down(rest, side).detach()
            flat = self.vq.flatten(z)
            idx = self.vq.nearest(flat).reshape(f.shape[0], side, side)
            h = self.refine(k, self.codes(idx))
            f_hat = f_hat + h
            rest = rest - h.detach()
            indices.append(idx)
            residuals.append(flat)
            weights.append(flat.new_full((len(flat),), 1.0 / (side * side)))
            cumulative.append(f_hat)
            commit = commit + self.vq.beta * (f_hat.detach() - f).pow(2).flatten(1).mean(1)
            codebook = codebook + (f_hat - plain).pow(2).flatten(1).mean(1)
        self.vq.update(
            torch.cat(residuals), torch.cat([i.flatten() for i in indices]), torch.cat(weights)
        )
        z_q = f + (f_hat - f).detach()
        n = len(self.scales)
        return MultiScaleOutput(z_q, indices, codebook / n, commit / n, cumulative)

    # --- what the next-scale transformer sees ------------------------------------------------
    def check_indices(self, indices) -> list[torch.Tensor]:
        """A list of K token maps (B, s_k, s_k) of code indices."""
        if not isinstance(indices, (list, tuple)) or len(indices) != len(self.scales):
            raise ValueError(
                f"indices must be a list of {len(self.scales)} token maps, one per scale"
            )
        for k, (idx, side) in enumerate(zip(indices, self.scales)):
            if not isinstance(idx, torch.Tensor) or idx.is_floating_point():
                raise TypeError(f"indices[{k}] must be an integer tensor")
            if (
                idx.dim() != 3
                or tuple(idx.shape[1:]) != (side, side)
                or len(idx) != len(indices[0])
            ):
                raise ValueError(
                    f"indices[{k}] must have shape (B, {side}, {side}), got {tuple(idx.shape)}"
                )
        return list(indices)

    def step(self, k: int, f_hat: torch.Tensor, idx: torch.Tensor):
        """After token map k: f̂_k = f̂_{k−1} + φ_k(up(e[r_k])) and the next scale's input
        down_{s_{k+1}}(f̂_k) as tokens (B, s_{k+1}², dim) (None after the last scale)."""
        f_hat = f_hat + self.refine(k, self.codes(idx))
        if k + 1 == len(self.scales):
            return f_hat, None
        return f_hat, self.down(f_hat, self.scales[k + 1]).flatten(2).transpose(1, 2)

    def next_scale_inputs(self, indices) -> torch.Tensor:
        """Teacher-forced inputs of scales 2…K from ground-truth token maps:
        (B, Σ_{k≥2} s_k², dim), the k-th block down_{s_k}(f̂_{k−1})."""
        indices = self.check_indices(indices)
        f_hat = self.start(len(indices[0]))
        inputs = []
        for k, idx in enumerate(indices[:-1]):
            f_hat, nxt = self.step(k, f_hat, idx)
            inputs.append(nxt)
        return torch.cat(inputs, 1)

    def reconstruct(self, indices) -> list[torch.Tensor]:
        """The cumulative latents f̂_1, …, f̂_K of token maps."""
        indices = self.check_indices(indices)
        f_hat = self.start(len(indices[0]))
        out = []
        for k, idx in enumerate(indices):
            f_hat, _ = self.step(k, f_hat, idx)
            out.append(f_hat)
        return out
