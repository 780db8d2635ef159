r"""Next-scale prediction: VAR (Tian et al. 2024, arXiv 2404.02905) and its non-causal variant
Switti (Voronov et al. 2024, arXiv 2412.01819).

The tokenizer (:mod:`visgen.ar.multiscale`) turns an image into token maps r_1, …, r_K of sides
s_1 < … < s_K; VAR factorises over **scales**, not tokens (eq. 6):

.. math:: p(r_1, …, r_K \mid y) = \prod_{k=1}^{K} p(r_k \mid r_{<k}, y),

and predicts all s_k² tokens of scale k *in parallel*, so sampling takes K forward passes
instead of Σ s_k². The input of scale k ≥ 2 is the cumulative reconstruction of the coarser
scales, area-downsampled to s_k × s_k (down_{s_k}(f̂_{k−1})), linearly embedded; scale 1's input
is the class token. Each token also gets a learned absolute position and a level (scale)
embedding; every block is modulated by the class through adaLN (VAR §4).

**Attention masks** (:func:`visgen.nn.attention.group_mask` on the scale index of each token):

* VAR, ``attention="causal"``: a token sees its own scale and all coarser ones (block-causal).
  Training uses the mask on all L = Σ s_k² tokens at once; sampling caches the keys and values
  of finished scales (a per-scale :class:`~visgen.nn.attention.KVCache`), so the queries of
  scale k attend to [cache; scale k] with no mask — the training mask restricted to those rows.
  Query–key pairs of one sequence: Σ_k s_k² Σ_{j≤k} s_j² (627 for scales 1, 2, 3, 4).
* Switti, ``attention="diagonal"``: a token sees only its own scale (block-diagonal, Switti §3;
  the coarser scales reach it through the upsampled input), so there is no KV cache and
  Σ_k s_k⁴ pairs (354). Switti also **turns CFG off on the last scales** (``cfg_off_from``):
  from that scale on, the batch of 2B rows is sliced to its conditional half (and so would
  every cache be, :meth:`~visgen.nn.attention.KVCache.select`), which removes those scales'
  unconditional token evaluations.

CFG (:func:`generate_next_scale`): ℓ_∅ + w_k (ℓ_c − ℓ_∅), with w_k constant or VAR's linear
ramp w_k = 1 + (w − 1)(k − 1)/(K − 1) over the scales.

CPU-scale simplifications: learned absolute positions for both (Switti uses 2D RoPE with
per-scale normalised coordinates); class conditioning in place of Switti's text
cross-attention; no attention-logit normalisation.
"""

from __future__ import annotations

import torch
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.ar.multiscale import MultiScaleQuantizer
from visgen.ar.raster import ARSample, check_labels
from visgen.ar.sampling import GenerationStats, cfg_logits, sample_logits
from visgen.ar.transformer import TokenTransformer
from visgen.nn.attention import KVCache, group_mask
from visgen.nn.dit import FinalLayer
from visgen.nn.embeddings import LabelEmbedding

__all__ = ["NextScaleAR", "attention_pairs", "generate_next_scale", "scale_groups"]


def scale_groups(scales) -> torch.Tensor:
    """The scale index of every token of the concatenated token maps (L,)."""
    return torch.cat([torch.full((s * s,), k) for k, s in enumerate(scales)])


def attention_pairs(scales, attention: str) -> int:
    """Query–key pairs of one sequence in one layer under the scale mask (exact count)."""
    groups = scale_groups(scales)
    return int(group_mask(groups, groups, attention).sum())


class NextScaleAR(nn.Module):
    """``NextScaleAR(vocab, scales, latent_dim, num_classes, dim=64, depth=2, heads=4,
    attention="causal")``: VAR (``causal``) or Switti (``diagonal``)."""

    def __init__(
        self,
        vocab: int,
        scales,
        latent_dim: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        attention: str = "causal",
    ):
        super().__init__()
        for name, value in (
            ("vocab", vocab),
            ("latent_dim", latent_dim),
            ("num_classes", num_classes),
        ):
            check_positive(value, name, integer=True)
        check_choice(attention, "attention", ("causal", "diagonal"))
        scales = [int(s) for s in scales]
        self.config = {
            "name": "next_scale_ar",
            "vocab": vocab,
            "scales": scales,
            "latent_dim": latent_dim,
            "num_classes": num_classes,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
            "attention": attention,
        }
        self.vocab, self.scales, self.num_classes = vocab, scales, num_classes
        self.attention = attention
        self.length = sum(s * s for s in scales)
        self.label = LabelEmbedding(num_classes, dim)
        self.start = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.word = nn.Linear(latent_dim, dim)
        self.pos = nn.Parameter(torch.randn(1, self.length, dim) * 0.02)
        self.level = nn.Embedding(len(scales), dim)
        self.transformer = TokenTransformer(dim, depth, heads, mlp_ratio, adaptive=True)
        self.final = FinalLayer(dim, vocab)
        self.register_buffer("groups", scale_groups(scales), persistent=False)

    def _slice(self, k: int) -> slice:
        start = sum(s * s for s in self.scales[:k])
        return slice(start, start + self.scales[k] ** 2)

    def embed(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Scale k's input tokens: position and level embeddings added."""
        return h + self.pos[:, self._slice(k)] + self.level.weight[k]

    def forward(self, inputs: torch.Tensor, cond=None) -> torch.Tensor:
        """Teacher forcing: logits (B, L, vocab) of every scale from ``inputs``
        (B, L − 1, latent_dim), the downsampled cumulative reconstructions of scales 2…K
        (:meth:`~visgen.ar.multiscale.MultiScaleQuantizer.next_scale_inputs`)."""
        expected = self.length - self.scales[0] ** 2
        if (
            inputs.dim() != 3
            or inputs.shape[1] != expected
            or inputs.shape[2] != self.word.in_features
        ):
            raise ValueError(
                f"inputs must have shape (B, {expected}, {self.word.in_features}), "
                f"got {tuple(inputs.shape)}"
            )
        c = self.label(cond, inputs.shape[0])
        first = (self.start + c[:, None]).expand(-1, self.scales[0] ** 2, -1)
        h = torch.cat([first, self.word(inputs)], 1) + self.pos + self.level(self.groups)
        mask = group_mask(self.groups, self.groups, self.attention).to(h.device)
        return self.final(self.transformer(h, c, mask=mask), c)

    def scale_logits(self, k: int, h: torch.Tensor, c: torch.Tensor, cache) -> torch.Tensor:
        """Logits of scale k from its embedded inputs h (B, s_k², dim): against the cache
        (committed) for VAR, alone for Switti."""
        return self.final(self.transformer(self.embed(k, h), c, cache=cache), c)


def _cfg_scale(cfg: float, schedule: str, k: int, scales: int) -> float:
    if schedule == "constant" or scales == 1:
        return cfg
    return 1 + (cfg - 1) * k / (scales - 1)


@torch.no_grad()
def generate_next_scale(
    model: NextScaleAR,
    quantizer: MultiScaleQuantizer,
    cond: torch.Tensor,
    *,
    cfg: float = 1.0,
    cfg_schedule: str = "constant",
    cfg_off_from: int | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> ARSample:
    """Sample token maps [(B, s_k, s_k)] scale by scale: K forward passes.

    ``cfg`` = w; ``cfg_schedule`` ``constant`` or ``linear`` (VAR's ramp from 1 at the first
    scale to w at the last); ``cfg_off_from`` = k₀ turns CFG off from scale index k₀ on
    (Switti): the rows are sliced to the conditional half, caches included. The returned
    logits are those of the concatenated scales (B, L, vocab).
    """
    cond = check_labels(cond, model.num_classes)
    check_choice(cfg_schedule, "cfg_schedule", ("constant", "linear"))
    if quantizer.scales != tuple(model.scales):
        raise ValueError(
            f"the quantizer's scales {quantizer.scales} differ from the model's {model.scales}"
        )
    n_scales = len(model.scales)
    if cfg_off_from is not None and not 0 <= cfg_off_from <= n_scales:
        raise ValueError(
            f"cfg_off_from must be a scale index in [0, {n_scales}], got {cfg_off_from!r}"
        )
    b, guided = len(cond), cfg != 1.0
    labels = torch.cat([cond, torch.full_like(cond, -1)]) if guided else cond
    c = model.label(labels, len(labels))
    cache = KVCache(model.transformer.depth) if model.attention == "causal" else None
    stats = GenerationStats()
    h = (model.start + c[:, None]).expand(-1, model.scales[0] ** 2, -1)
    f_hat = quantizer.start(b)
    tokens, all_logits = [], []
    for k, side in enumerate(model.scales):
        if guided and cfg_off_from is not None and k >= cfg_off_from and len(c) == 2 * b:
            c, h = c[:b], h[:b]
            if cache is not None:
                cache.select(slice(0, b))
        logits = model.scale_logits(k, h, c, cache)
        stats.add(len(c), side * side, len(cache) if cache is not None else side * side)
        if len(c) == 2 * b:
            logits = cfg_logits(logits[:b], logits[b:], _cfg_scale(cfg, cfg_schedule, k, n_scales))
        idx = sample_logits(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        ).reshape(b, side, side)
        tokens.append(idx)
        all_logits.append(logits)
        f_hat, nxt = quantizer.step(k, f_hat, idx)
        if nxt is not None:
            h = model.word(nxt)
            h = torch.cat([h, h]) if len(c) == 2 * b else h
    return ARSample(tokens, torch.cat(all_logits, 1), stats, f_hat)
