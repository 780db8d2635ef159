r"""MAR: masked autoregression over continuous tokens with a per-token head (Li, Tian, Li, Deng &
He 2024, arXiv 2406.11838) — the model of homework 6.

An image (or a VAE latent) becomes N continuous tokens x_1, …, x_N ∈ R^D by :func:`patchify`
(p × p patches). A **bidirectional** transformer (the backbone) sees the known tokens, a learned
mask token at the unknown positions and, in front, ``buffer`` tokens that carry the class
embedding; it outputs one vector z_i per position. A small head (:mod:`visgen.ar.heads`) models
p(x_i | z_i) by flow matching (or diffusion), so no vector quantisation is needed.

**Training** (MAR §3.3–3.4, :func:`mar_loss`): per image a random order and a mask ratio drawn
from a truncated normal on [0.7, 1] (mode 1, std 0.25); the first ⌈N·ratio⌉ positions of the
order are masked; the head loss is taken on the **masked tokens only**
(:func:`masked_head_loss`), each repeated ``head_batch_mul`` = 4 times with independent (t, ε)
(MAR's diffusion batch multiplier). The class is replaced by the null class with
probability 0.1 (MAR's "fake latent"), which teaches the unconditional half of CFG.

**Sampling** (MAR §3.5, :func:`sample_tokens`): a random order per image; over S steps the
number of tokens still masked after step s is ⌊N cos(π/2 · (s+1)/S)⌋ clamped to
[1, #masked − 1], 0 after the last step (:func:`cosine_mask_schedule`); each step runs the
backbone once (2B rows with CFG) and samples the newly revealed tokens with the head, CFG
inside the head with a per-step scale (:func:`cfg_scale`: constant; MAR's linear
w_s = 1 + (w − 1)(N − #masked after s)/N; or an interval that is off for the first steps).

CPU-scale simplifications: one bidirectional transformer with mask tokens in place of MAR's
MAE-style encoder (visible tokens) + decoder (all positions); a few buffer tokens instead of 64;
learned positions initialised at unit scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from visgen._checks import check_choice, check_positive, check_tensor
from visgen.ar.heads import TokenHead, head_loss, sample_head
from visgen.ar.raster import check_labels
from visgen.ar.sampling import GenerationStats
from visgen.ar.transformer import TokenTransformer
from visgen.nn.dit import patchify, unpatchify
from visgen.nn.embeddings import LabelEmbedding

__all__ = [
    "MAR",
    "MARSample",
    "cfg_scale",
    "cosine_mask_schedule",
    "mar_loss",
    "mask_from_order",
    "masked_head_loss",
    "patchify",
    "random_orders",
    "sample_mask_ratio",
    "sample_tokens",
    "unpatchify",
]


class MAR(nn.Module):
    """``MAR(in_channels, size, patch_size, num_classes, dim=64, depth=2, heads=4, buffer=4,
    head_width=128, head_depth=3, head="velocity")``: backbone + per-token head over the
    (size/p)² tokens of p·p·in_channels values of images (or latents) (B, C, size, size)."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        patch_size: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        buffer: int = 4,
        head_width: int = 128,
        head_depth: int = 3,
        head: str = "velocity",
    ):
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("size", size),
            ("patch_size", patch_size),
            ("num_classes", num_classes),
            ("buffer", buffer),
        ):
            check_positive(value, name, integer=True)
        if size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide size {size}")
        self.config = {
            "name": "mar",
            "in_channels": in_channels,
            "size": size,
            "patch_size": patch_size,
            "num_classes": num_classes,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "buffer": buffer,
            "head_width": head_width,
            "head_depth": head_depth,
            "head": head,
        }
        self.in_channels, self.size, self.patch_size = in_channels, size, patch_size
        self.num_classes, self.buffer = num_classes, buffer
        self.seq_len = (size // patch_size) ** 2
        self.token_dim = patch_size * patch_size * in_channels
        self.embed = nn.Linear(self.token_dim, dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.label = LabelEmbedding(num_classes, dim)  # the null row is MAR's fake latent
        # unit-scale positions (MAR: std 0.02): at 0.02 a two-block backbone needs far more
        # than a CPU budget of steps before it attends by position, i.e. reads its neighbours
        self.pos = nn.Parameter(torch.randn(1, buffer + self.seq_len, dim))
        self.transformer = TokenTransformer(dim, depth, heads, mlp_ratio, adaptive=False)
        self.norm = nn.LayerNorm(dim)
        self.head = TokenHead(self.token_dim, dim, head_width, head_depth, head)

    # --- tokens -----------------------------------------------------------------------------
    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, size, size) → tokens (B, N, p·p·C) (:func:`patchify`)."""
        check_tensor(x, "x", min_dim=4)
        if tuple(x.shape[1:]) != (self.in_channels, self.size, self.size):
            raise ValueError(
                f"x must have shape (B, {self.in_channels}, {self.size}, {self.size}), "
                f"got {tuple(x.shape)}"
            )
        return patchify(x, self.patch_size)

    def images(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N, p·p·C) → images (:func:`unpatchify`)."""
        return unpatchify(tokens, self.patch_size, self.in_channels, self.size)

    def _check_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> None:
        check_tensor(tokens, "tokens", min_dim=3)
        if tokens.shape[1:] != (self.seq_len, self.token_dim):
            raise ValueError(
                f"tokens must have shape (B, {self.seq_len}, {self.token_dim}), got {tuple(tokens.shape)}"
            )
        if mask.dtype != torch.bool or mask.shape != tokens.shape[:2]:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(tokens.shape[:2])}")

    # --- the backbone -------------------------------------------------------------------------
    def backbone(self, tokens: torch.Tensor, mask: torch.Tensor, cond=None) -> torch.Tensor:
        """z (B, N, dim): one condition vector per position, from the known tokens (mask False),
        mask tokens (mask True) and the class buffer (label −1 or None = the null class)."""
        self._check_tokens(tokens, mask)
        h = torch.where(mask[..., None], self.mask_token, self.embed(tokens))
        buffer = self.label(cond, tokens.shape[0])[:, None].expand(-1, self.buffer, -1)
        h = self.transformer(torch.cat([buffer, h], 1) + self.pos)
        return self.norm(h[:, self.buffer :])


# --- orders, masks and schedules ------------------------------------------------------------
def random_orders(batch: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random permutation of the n positions per row (batch, n)."""
    check_positive(batch, "batch", integer=True)
    check_positive(n, "n", integer=True)
    return torch.rand(batch, n, generator=generator).argsort(1)


def mask_from_order(orders: torch.Tensor, num_masked) -> torch.Tensor:
    """Bool mask (B, N), True at the first ``num_masked`` (int or (B,)) positions of each order."""
    b, n = orders.shape
    num = torch.as_tensor(num_masked).reshape(-1, 1).expand(b, 1)
    if (num < 0).any() or (num > n).any():
        raise ValueError(f"num_masked must lie in [0, {n}]")
    rank = torch.empty_like(orders).scatter_(1, orders, torch.arange(n).expand(b, n))
    return rank < num


def sample_mask_ratio(
    batch: int,
    generator: torch.Generator | None = None,
    *,
    low: float = 0.7,
    mode: float = 1.0,
    std: float = 0.25,
) -> torch.Tensor:
    """Mask ratios (batch,) from the normal N(mode, std²) truncated to [low, mode] (MAR), by
    inverting the normal CDF Φ on U[Φ(a), Φ(0)], a = (low − mode)/std."""
    if not 0 < low < mode <= 1 or not std > 0:
        raise ValueError(f"need 0 < low < mode <= 1 and std > 0, got {low}, {mode}, {std}")
    lo = torch.special.ndtr(torch.tensor((low - mode) / std, dtype=torch.float64))
    u = lo + (0.5 - lo) * torch.rand(batch, generator=generator, dtype=torch.float64)
    return (mode + std * torch.special.ndtri(u)).clamp(low, mode).float()


def cosine_mask_schedule(n: int, steps: int) -> list[int]:
    """Tokens revealed at each of ``steps`` steps (they sum to n): still masked after step s is
    ⌊n cos(π/2 (s+1)/S)⌋ clamped to [1, #masked − 1], and 0 after the last step (MAR)."""
    check_positive(n, "n", integer=True)
    check_positive(steps, "steps", integer=True)
    if steps > n:
        raise ValueError(f"steps must be at most the token count {n}, got {steps}")
    counts, masked = [], n
    for s in range(steps):
        after = 0
        if s < steps - 1:
            after = max(1, min(masked - 1, math.floor(n * math.cos(math.pi / 2 * (s + 1) / steps))))
        counts.append(masked - after)
        masked = after
    return counts


def cfg_scale(
    schedule: str, cfg: float, step: int, steps: int, masked_after: int, n: int, start: int = 0
) -> float:
    """The guidance scale of AR step ``step``: ``constant`` w; ``linear`` (MAR)
    1 + (w − 1)(n − masked_after)/n, rising as tokens are revealed; ``interval`` 1 (off) for
    the first ``start`` steps, then w."""
    check_choice(schedule, "cfg_schedule", ("constant", "linear", "interval"))
    if not 0 <= step < steps or not 0 <= masked_after <= n:
        raise ValueError(
            f"need 0 <= step < steps and 0 <= masked_after <= n, got {step}, {masked_after}"
        )
    if schedule == "constant":
        return cfg
    if schedule == "linear":
        return 1 + (cfg - 1) * (n - masked_after) / n
    return cfg if step >= start else 1.0


# --- training -----------------------------------------------------------------------------
def masked_head_loss(
    head: TokenHead,
    z: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """Per-sample head loss (B,) on the **masked** tokens only: z (B, N, C), target (B, N, D),
    mask (B, N) bool, t (B, m, N) and noise (B, m, N, D) for m repeats per token; each sample's
    loss is the mean over its masked tokens and repeats (unmasked targets are never read)."""
    b, n = mask.shape
    if (
        t.dim() != 3
        or t.shape[0] != b
        or t.shape[2] != n
        or noise.shape != (*t.shape, target.shape[-1])
    ):
        raise ValueError("t must be (B, m, N) and noise (B, m, N, D) for m repeats per token")
    rows, cols = mask.nonzero(as_tuple=True)
    if len(rows) == 0:
        raise ValueError("mask selects no token")
    m = t.shape[1]
    per_token = head_loss(
        head,
        target[rows, cols].repeat(m, 1),
        z[rows, cols].repeat(m, 1),
        t[rows, :, cols].T.reshape(-1),
        noise[rows, :, cols].transpose(0, 1).reshape(-1, target.shape[-1]),
    )
    sums = per_token.new_zeros(b).index_add_(0, rows.repeat(m), per_token)
    return sums / (mask.sum(1) * m).clamp_min(1)


def mar_loss(
    model: MAR,
    x: torch.Tensor,
    cond,
    orders: torch.Tensor,
    ratio: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """MAR's training forward (B,): mask the first ⌈N·ratio⌉ positions of each order, run the
    backbone on the masked tokens, and score the head on the masked tokens."""
    tokens = model.tokens(x)
    mask = mask_from_order(orders, torch.ceil(model.seq_len * ratio).long())
    z = model.backbone(tokens, mask, cond)
    return masked_head_loss(model.head, z, tokens, mask, t, noise)


# --- sampling -----------------------------------------------------------------------------
@dataclass
class MARSample:
    """Generated tokens (B, N, D), their images and the cost (``stats.passes`` = AR steps)."""

    tokens: torch.Tensor
    images: torch.Tensor
    stats: GenerationStats
    head_evals: int


@torch.no_grad()
def sample_tokens(
    model: MAR,
    cond: torch.Tensor,
    steps: int,
    *,
    cfg: float = 1.0,
    cfg_schedule: str = "constant",
    cfg_start: int = 0,
    head_steps: int = 20,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> MARSample:
    """Generate for class labels ``cond`` (B,) in ``steps`` AR steps (one backbone pass each,
    on 2B rows with CFG), revealing :func:`cosine_mask_schedule` tokens per step in a random
    order and sampling each with the head (``head_steps`` evaluations, CFG inside).
    ``cfg_schedule``/``cfg_start``: see :func:`cfg_scale`."""
    cond = check_labels(cond, model.num_classes)
    b, n, guided = len(cond), model.seq_len, cfg != 1.0
    counts = cosine_mask_schedule(n, steps)
    orders = random_orders(b, n, generator)
    tokens = torch.zeros(b, n, model.token_dim)
    mask = torch.ones(b, n, dtype=torch.bool)
    labels = torch.cat([cond, torch.full_like(cond, -1)]) if guided else cond
    stats, head_evals, masked = GenerationStats(), 0, n
    for step, count in enumerate(counts):
        rows = 2 if guided else 1
        z = model.backbone(tokens.repeat(rows, 1, 1), mask.repeat(rows, 1), labels)
        stats.add(len(labels), n, n + model.buffer)
        masked -= count
        new = mask & ~mask_from_order(orders, masked)
        w = cfg_scale(cfg_schedule, cfg, step, steps, masked, n, cfg_start) if guided else 1.0
        zz = torch.cat([z[:b][new], z[b:][new]]) if w != 1.0 else z[:b][new]
        tokens[new] = sample_head(
            model.head, zz, head_steps, cfg=w, temperature=temperature, generator=generator
        )
        head_evals += len(zz) * head_steps
        mask = mask & ~new
    return MARSample(tokens, model.images(tokens), stats, head_evals)
