r"""Next-token autoregression in raster order (LlamaGen, Sun et al. 2024, arXiv 2406.06525, §2–3):
a decoder-only transformer over the h·w code indices of a tokenizer, read row by row,

.. math:: p(r_1, …, r_L \mid y) = \prod_{i=1}^{L} p(r_i \mid r_{<i}, y),

trained by teacher forcing with the cross-entropy of every position under a token-causal mask;
the class y is the first ("prefilling") token, replaced by a null class with probability 0.1
so that one network gives both halves of classifier-free guidance. Positions enter by 1D
rotary embeddings of the absolute index (RoPE, arXiv 2104.09864).

Generation (:func:`generate_raster`) needs **L sequential forward passes**: pass i feeds one
token and reads its keys and values of the i earlier tokens from the KV cache
(:class:`~visgen.nn.attention.KVCache`), so decoding costs O(L) token evaluations, not O(L²);
CFG doubles the rows of every pass; the token is drawn by :func:`~visgen.ar.sampling.sample_logits`.

CPU-scale simplifications: LayerNorm/GELU blocks (:class:`~visgen.ar.transformer.TokenTransformer`)
in place of Llama's RMSNorm/SwiGLU; 1D RoPE over the raster index (LlamaGen uses 2D RoPE); the
class also modulates every block by adaLN, as in VAR (:mod:`visgen.ar.var`), so that at two
blocks the raster and the next-scale model are conditioned alike and differ only in what they
predict.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from visgen._checks import check_positive
from visgen.ar.sampling import GenerationStats, cfg_logits, sample_logits
from visgen.ar.transformer import TokenTransformer
from visgen.nn.attention import KVCache, group_mask, rope_1d
from visgen.nn.dit import FinalLayer
from visgen.nn.embeddings import LabelEmbedding

__all__ = ["ARSample", "RasterAR", "check_labels", "generate_raster"]


@dataclass
class ARSample:
    """Generated token indices, the logits each token was drawn from (after CFG, before
    temperature and filtering) and the generation's cost; next-scale models also return the
    final latent f̂_K they built scale by scale (decoded directly, as VAR's sampler does)."""

    tokens: torch.Tensor | list[torch.Tensor]
    logits: torch.Tensor
    stats: GenerationStats
    latents: torch.Tensor | None = None


def check_labels(cond, num_classes: int) -> torch.Tensor:
    """Class labels (B,) in [0, num_classes) of the samples to generate; −1 = unconditional
    (the null class every model of this package learns by label dropout)."""
    if not isinstance(cond, torch.Tensor) or cond.is_floating_point() or cond.dim() != 1:
        raise TypeError("cond must be a 1-D integer tensor of class labels (one per sample)")
    if len(cond) == 0 or (cond < -1).any() or (cond >= num_classes).any():
        raise ValueError(
            f"cond must hold at least one label, each in [-1, {num_classes - 1}] (-1 = unconditional)"
        )
    return cond


class RasterAR(nn.Module):
    """``RasterAR(vocab, length, num_classes, dim=64, depth=2, heads=4)``: logits of a token
    sequence (B, length) in [0, vocab) given class labels."""

    def __init__(
        self,
        vocab: int,
        length: int,
        num_classes: int,
        dim: int = 64,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        for name, value in (("vocab", vocab), ("length", length), ("num_classes", num_classes)):
            check_positive(value, name, integer=True)
        self.config = {
            "name": "raster_ar",
            "vocab": vocab,
            "length": length,
            "num_classes": num_classes,
            "dim": dim,
            "depth": depth,
            "heads": heads,
            "mlp_ratio": mlp_ratio,
        }
        self.vocab, self.length, self.num_classes = vocab, length, num_classes
        self.label = LabelEmbedding(num_classes, dim)  # the prefilling token; row K = null
        self.token = nn.Embedding(vocab, dim)
        self.transformer = TokenTransformer(dim, depth, heads, mlp_ratio, adaptive=True)
        self.final = FinalLayer(dim, vocab)
        cos, sin = rope_1d(torch.arange(length), self.transformer.head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def _check_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point():
            raise TypeError("tokens must be an integer tensor of code indices")
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(
                f"tokens must have shape (B, {self.length}), got {tuple(tokens.shape)}"
            )
        if (tokens < 0).any() or (tokens >= self.vocab).any():
            raise ValueError(f"tokens must lie in [0, {self.vocab - 1}]")
        return tokens

    def logits(
        self, h: torch.Tensor, c: torch.Tensor, start: int, cache: KVCache | None = None
    ) -> torch.Tensor:
        """Logits of the next token at positions start … start + n − 1 for inputs h (B, n, dim)
        (the label token at position 0, then tokens) and class embeddings c (B, dim); with a
        ``cache`` the new positions attend to the cached ones and are committed."""
        n = h.shape[1]
        rope = (self.rope_cos[start : start + n], self.rope_sin[start : start + n])
        mask = None
        if cache is None:
            mask = group_mask(torch.arange(n), torch.arange(n), "causal").to(h.device)
        elif n > 1:
            raise ValueError("cached decoding feeds one token per pass")
        return self.final(self.transformer(h, c, mask=mask, rope=rope, cache=cache), c)

    def forward(self, tokens: torch.Tensor, cond=None) -> torch.Tensor:
        """Teacher forcing: logits (B, L, vocab) of every token given the ones before it."""
        tokens = self._check_tokens(tokens)
        c = self.label(cond, tokens.shape[0])
        return self.logits(torch.cat([c[:, None], self.token(tokens[:, :-1])], 1), c, 0)


@torch.no_grad()
def generate_raster(
    model: RasterAR,
    cond: torch.Tensor,
    *,
    cfg: float = 1.0,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> ARSample:
    """Sample token sequences (B, L) for class labels ``cond`` (B,) with a KV cache.

    ``cfg`` = w (1 = conditional only): each pass runs the batch [cond; null] (2B rows) and
    guides the logits, ℓ_∅ + w(ℓ_c − ℓ_∅). Exactly L passes.
    """
    cond = check_labels(cond, model.num_classes)
    b, guided = len(cond), cfg != 1.0
    labels = torch.cat([cond, torch.full_like(cond, -1)]) if guided else cond
    cache = KVCache(model.transformer.depth)
    stats = GenerationStats()
    c = model.label(labels, len(labels))
    h = c[:, None]
    tokens, all_logits = [], []
    for i in range(model.length):
        logits = model.logits(h, c, i, cache)[:, -1]
        stats.add(len(labels), 1, len(cache))
        if guided:
            logits = cfg_logits(logits[:b], logits[b:], cfg)
        token = sample_logits(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        tokens.append(token)
        all_logits.append(logits)
        h = model.token(torch.cat([token, token]) if guided else token)[:, None]
    return ARSample(torch.stack(tokens, 1), torch.stack(all_logits, 1), stats)
