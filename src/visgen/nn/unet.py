r"""A small UNet denoiser for 8–32 px images (Ronneberger et al. 2015, arXiv 1505.04597, in the
form DDPM uses: Ho et al. 2020, arXiv 2006.11239, App. B).

Per resolution level: ``num_res`` residual blocks (GroupNorm → SiLU → 3×3 conv, with the
time/class embedding added between the two convolutions), then a stride-2 downsampling conv;
a middle block (res, self-attention, res) at the lowest resolution; the decoder mirrors the
encoder with skip connections concatenated, and nearest-neighbour upsampling + conv. The last
conv of every residual block and the output conv start at zero, so each block starts as the
identity and the untrained network predicts 0. CPU-sized simplification: one attention block
(only in the middle), no dropout by default. ``control`` adds ControlNet residuals to every
skip connection and to the middle block's output (:mod:`visgen.conditioning.controlnet`).

``size`` must be divisible by 2^(len(mults) − 1); the network is fully convolutional, so it
also runs at any other size divisible by it (scale-wise generators evaluate it at lower
resolutions). Parameter counts (:func:`count_parameters`;
checked by ``tests/test_nn.py`` against this table):

=============================================================  ==========
configuration                                                  parameters
=============================================================  ==========
``UNet(1, 8, channels=32, mults=(1, 2))``                         651 041
``UNet(1, 16, channels=32, mults=(1, 2, 2), num_classes=10)``   1 063 905
``UNet(3, 32, channels=32, mults=(1, 2, 2), num_classes=12)``   1 065 315
``UNet(3, 32, channels=64, mults=(1, 2, 2))``                   4 238 787
=============================================================  ==========
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_positive
from visgen.nn.embeddings import ConditionEmbedding

__all__ = ["UNet", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.block1 = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Linear(emb_dim, c_out)
        self.block2 = nn.Sequential(
            _norm(c_out),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv2d(c_out, c_out, 3, padding=1)),
        )
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.block1(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.block2(h)


class Attention(nn.Module):
    """Single-head self-attention over the H·W positions, residual, output projection zero."""

    def __init__(self, c: int):
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(c), nn.Conv2d(c, 3 * c, 1), _zero(nn.Conv2d(c, c, 1))

    def forward(self, x, emb=None):
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        h = nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """``UNet(in_channels, size, channels=32, mults=(1, 2, 2), num_res=1, num_classes=0)``.

    Called as ``model(x, t, cond=None)`` with x (B, in_channels, size, size), t (B,) in [0, 1]
    and cond class labels (B,) (−1 = null label) when ``num_classes`` > 0.
    """

    def __init__(
        self,
        in_channels: int,
        size: int,
        channels: int = 32,
        mults=(1, 2, 2),
        num_res: int = 1,
        num_classes: int = 0,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("size", size), ("channels", channels)):
            check_positive(value, name, integer=True)
        check_positive(num_res, "num_res", integer=True)
        mults = tuple(int(m) for m in mults)
        if not mults or size % 2 ** (len(mults) - 1):
            raise ValueError(
                f"size {size} must be divisible by 2^(len(mults) - 1) = {2 ** (len(mults) - 1)}"
            )
        self.config = {
            "name": "unet",
            "in_channels": in_channels,
            "size": size,
            "channels": channels,
            "mults": list(mults),
            "num_res": num_res,
            "num_classes": num_classes,
            "dropout": dropout,
        }
        emb_dim = 4 * channels
        self.embed = ConditionEmbedding(emb_dim, num_classes, freq_dim=channels)
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down, skips, c = nn.ModuleList(), [channels], channels
        for level, m in enumerate(mults):
            for _ in range(num_res):
                self.down.append(ResBlock(c, channels * m, emb_dim, dropout))
                c = channels * m
                skips.append(c)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList(
            [ResBlock(c, c, emb_dim, dropout), Attention(c), ResBlock(c, c, emb_dim, dropout)]
        )
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(num_res + 1):
                self.up.append(ResBlock(c + skips.pop(), channels * m, emb_dim, dropout))
                c = channels * m
            if level > 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 3, padding=1))
                )
        self.out = nn.Sequential(
            _norm(c), nn.SiLU(), _zero(nn.Conv2d(c, in_channels, 3, padding=1))
        )
        self.shape = (in_channels, size, size)

    @property
    def num_skips(self) -> int:
        """Number of skip connections: the encoder features the decoder concatenates."""
        return 1 + len(self.down)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond=None, *, control=None):
        """The prediction shaped like x. ``control``: ControlNet residuals, one per skip
        connection in the order the encoder stores them, then one for the middle block —
        added as ControlNet's locked U-Net does (arXiv 2302.05543, Fig. 3)."""
        emb = self.embed(t, cond)
        skips = self.encode(x, emb)
        h = skips[-1]
        for layer in self.mid:
            h = layer(h, emb)
        if control is not None:
            if len(control) != self.num_skips + 1:
                raise ValueError(
                    f"control must hold {self.num_skips + 1} residuals (one per skip "
                    f"connection and one for the middle block), got {len(control)}"
                )
            skips = [skip + r for skip, r in zip(skips, control)]
            h = h + control[-1]
        return self.decode(h, skips, emb)

    def encode(self, x: torch.Tensor, emb: torch.Tensor, depth: int | None = None) -> list:
        """The skip features [inp(x), down_1, …]: the input conv and the first ``depth`` down
        layers (all by default); the last entry is what the middle block reads."""
        # fully convolutional: trained at `size`, callable at any size the down-sampling
        # divides (scale-wise generation, visgen.fewstep.swd)
        f = 2 ** (len(self.config["mults"]) - 1)
        if x.dim() != 4 or x.shape[1] != self.shape[0] or x.shape[2] % f or x.shape[3] % f:
            raise ValueError(
                f"x must have shape (B, {self.shape[0]}, H, W) with H and W divisible by {f} "
                f"(trained at {self.shape[1]}×{self.shape[2]}), got {tuple(x.shape)}"
            )
        h = self.inp(x)
        hs = [h]
        for layer in self.down[: len(self.down) if depth is None else depth]:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        return hs

    def skip_reader(self, skip: int) -> int:
        """Index in ``up`` of the residual block that concatenates skip feature ``skip``."""
        if not isinstance(skip, int) or not 0 <= skip <= len(self.down):
            raise ValueError(f"skip must be an int in [0, {len(self.down)}], got {skip!r}")
        blocks = [i for i, layer in enumerate(self.up) if isinstance(layer, ResBlock)]
        return blocks[len(self.down) - skip]  # up blocks pop the skips last-in, first-out

    def decode(self, h, skips: list, emb, start: int = 0, capture: int | None = None):
        """The up path from layer ``start`` of ``up`` (popping ``skips``) and the output conv.
        With ``capture`` = i also returns the features entering up layer i (DeepCache)."""
        skips, captured = list(skips), None
        for i, layer in enumerate(self.up[start:], start):
            if i == capture:
                captured = h
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], 1), emb)
            else:
                h = layer(h)
        out = self.out(h)
        return out if capture is None else (out, captured)
