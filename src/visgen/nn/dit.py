r"""Diffusion Transformers: DiT (Peebles & Xie 2023, arXiv 2212.09748) and MMDiT-style joint
text–image blocks (Esser et al. 2024, arXiv 2403.03206, §4.1), in one file.

**DiT.** x (B, C, H, W) is cut into N = (H/p)(W/p) patches of p·p·C values
(:func:`patchify`), each linearly embedded to a token of width ``dim``; positions enter as
embeddings added to the tokens (learned, or DiT's fixed sin-cos table :func:`sincos_2d`) or
as 2D rotary embeddings inside attention (:func:`rope_2d`). ``depth``
blocks follow, each conditioned on c = MLP(sin(t)) + E[y] (time and class, the null class −1
for classifier-free guidance) by adaptive layer norm (DiT §3.2):

.. math::
    h ← h + α_1 ⊙ \mathrm{Attn}\big((1 + γ_1) ⊙ \mathrm{LN}(h) + β_1\big), \qquad
    h ← h + α_2 ⊙ \mathrm{MLP}\big((1 + γ_2) ⊙ \mathrm{LN}(h) + β_2\big),

where (β_1, γ_1, α_1, β_2, γ_2, α_2) = W SiLU(c) + b per block. **adaLN-Zero**: W and b start
at zero, so every gate α is 0 and each block starts as the identity; the final layer (adaLN
shift/scale, then a linear map back to p·p·C values) is zero-initialised too, so a fresh DiT
predicts exactly 0. :func:`unpatchify` reassembles the image.

**Text conditioning.** With ``text_vocab`` > 0 the condition is a caption (token ids (B, L),
−1 = padding) read by a tiny word-level :class:`TextEncoder`; ``text_mode`` says how the
generator reads it (lecture 11 compares the three at equal compute):

* ``joint`` (**MMDiT**, the default): every block is a *joint* block: text and image tokens
  have separate weights (modulation, QKV, output projection, MLP) but attend jointly over the
  concatenated sequence, and the encoder's pooled start token is added to c (SD3 adds a
  pooled CLIP vector the same way). RoPE rotates image tokens only.
* ``cross`` (**cross-attention**, as in Stable Diffusion and PixArt-α, arXiv 2310.00426 §2.3):
  after self-attention each block adds h ← h + W_o Attn(W_q LN(h), W_k s, W_v s) over the
  text tokens s; W_o starts at zero. The text enters nowhere else. The same layer takes
  IP-Adapter's decoupled image attention (``image_prompt``, :mod:`visgen.conditioning`).
* ``pooled`` (adaLN only): c = MLP(sin(t)) + W s_0, the pooled start token — one vector
  for the whole caption, the way class labels enter.

**Hooks.** ``model(x, t, cond, return_hidden=(ℓ, …))`` also returns the image tokens after
block ℓ (1-based), the features REPA aligns (:mod:`visgen.objectives.repa`) and later lectures
read; :meth:`DiT.project` is REPA's projector (an MLP on tokens, or iREPA's 3×3 convolution
on the token grid), trained with the model and unused when sampling. ``control`` adds
ControlNet residuals to the image tokens after the first blocks and ``image_prompt`` feeds
IP-Adapter's keys and values to the cross-attention (:mod:`visgen.conditioning`).

CPU-scale simplifications: a few blocks of width 64–256; positions are 2D RoPE by default;
no QK-norm; attention through
``torch.nn.functional.scaled_dot_product_attention``.

Parameter counts (:func:`~visgen.nn.count_parameters`; checked by ``tests/test_dit.py``):

==============================================================================================  ==========
configuration                                                                                   parameters
==============================================================================================  ==========
``DiT(3, 16, patch_size=4, dim=64, depth=4, num_classes=12)`` (pixels)                             322 480
``DiT(4, 4, patch_size=1, dim=64, depth=4, num_classes=12)`` (latents)                             316 804
``DiT(3, 16, patch_size=4, dim=64, depth=4, text_vocab=20, text_len=8)`` (MMDiT)                   622 448
``DiT(3, 16, patch_size=4, dim=64, depth=4, text_vocab=20, text_len=8, text_mode="cross")``        439 472
``DiT(3, 16, patch_size=4, dim=64, depth=4, text_vocab=20, text_len=8, text_mode="pooled")``       377 584
``DiT(3, 16, patch_size=2, dim=128, depth=4, num_classes=12)``                                   1 258 252
==============================================================================================  ==========
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.nn.attention import apply_rope, rope_2d
from visgen.nn.embeddings import ConditionEmbedding, SinusoidalEmbedding

__all__ = [
    "TEXT_MODES",
    "CrossAttention",
    "DiT",
    "DiTConfig",
    "TextEncoder",
    "patchify",
    "unpatchify",
]

TEXT_MODES = ("joint", "cross", "pooled")


@dataclass(frozen=True)
class DiTConfig:
    """Architecture of a :class:`DiT` (stored in checkpoints as ``model.config``).

    Args:
        in_channels, size: the input x is (B, in_channels, size, size) — pixels or latents.
        patch_size: p; must divide ``size``. Tokens N = (size/p)², each p·p·in_channels values.
        dim, depth, heads, mlp_ratio: token width, number of blocks, attention heads, MLP width
            ratio.
        num_classes: > 0 for class conditioning (null label −1 for CFG).
        pos: ``rope`` (2D rotary embedding; dim/heads divisible by 4), ``learned`` or
            ``sincos`` (DiT's fixed 2D sin-cos table, :func:`sincos_2d`).
        text_vocab, text_len, text_depth: > 0 conditions on captions of ``text_len`` token
            ids in [0, text_vocab) (−1 = padding), read by a ``text_depth`` layer
            :class:`TextEncoder`.
        text_mode: how captions enter: ``joint`` (MMDiT), ``cross`` (cross-attention) or
            ``pooled`` (adaLN with the pooled text vector); see the module docstring.
        repa_dim: > 0 adds REPA's projector from tokens to ``repa_dim`` target features;
            ``repa_projector`` is ``mlp`` (REPA) or ``conv`` (iREPA's 3×3 convolution).
    """

    in_channels: int
    size: int
    patch_size: int = 2
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_classes: int = 0
    pos: str = "rope"
    text_vocab: int = 0
    text_len: int = 0
    text_depth: int = 1
    text_mode: str = "joint"
    repa_dim: int = 0
    repa_projector: str = "mlp"

    def __post_init__(self):
        for name in ("in_channels", "size", "patch_size", "dim", "depth", "heads"):
            check_positive(getattr(self, name), name, integer=True)
        for name in ("num_classes", "text_vocab", "text_len", "repa_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        check_positive(self.text_depth, "text_depth", integer=True)
        check_positive(self.mlp_ratio, "mlp_ratio")
        check_choice(self.pos, "pos", ("rope", "learned", "sincos"))
        check_choice(self.repa_projector, "repa_projector", ("mlp", "conv"))
        check_choice(self.text_mode, "text_mode", TEXT_MODES)
        if self.text_mode != "joint" and not self.text_vocab:
            raise ValueError(
                f"text_mode={self.text_mode!r} needs caption conditioning (text_vocab)"
            )
        if self.size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide the input size {self.size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.pos == "rope" and (self.dim // self.heads) % 4:
            raise ValueError(f"2D RoPE needs dim/heads divisible by 4, got {self.dim}/{self.heads}")
        if (self.text_vocab > 0) != (self.text_len > 0):
            raise ValueError("text_vocab and text_len must both be set for caption conditioning")
        if self.text_vocab and self.num_classes:
            raise ValueError("a DiT is conditioned on classes or on captions, not both")

    @property
    def grid(self) -> int:
        """Tokens per side, size / patch_size."""
        return self.size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.grid**2


# --- patches and positions ----------------------------------------------------------------


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, (H/p)(W/p), p·p·C): row-major patches, values ordered (row, col, channel)."""
    check_positive(patch_size, "patch_size", integer=True)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"x must be an image batch (B, C, H, W), got {getattr(x, 'shape', x)}")
    h, w = x.shape[-2:]
    if h % patch_size or w % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the image size {h}×{w}")
    return rearrange(x, "b c (h p) (w q) -> b (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, size) -> torch.Tensor:
    """The inverse of :func:`patchify`: (B, N, p·p·C) → (B, C, H, W) with ``size`` = H or (H, W)."""
    check_positive(patch_size, "patch_size", integer=True)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h % patch_size or w % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the image size {h}×{w}")
    expected = ((h // patch_size) * (w // patch_size), patch_size * patch_size * channels)
    if tokens.dim() != 3 or tuple(tokens.shape[1:]) != expected:
        raise ValueError(
            f"tokens must have shape (B, {expected[0]}, {expected[1]}) for {channels}×{h}×{w} "
            f"images and patch_size {patch_size}, got {tuple(tokens.shape)}"
        )
    return rearrange(
        tokens, "b (h w) (p q c) -> b c (h p) (w q)", h=h // patch_size, p=patch_size, q=patch_size
    )


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """DiT's fixed position table (grid², dim) (MAE/DiT ``get_2d_sincos_pos_embed``): the first
    half of the channels code the row, the second half the column, each as
    [sin(p ω_i), cos(p ω_i)] with ω_i = 10000^{−i/(dim/4)}."""
    if dim % 4:
        raise ValueError(f"sin-cos positions need dim divisible by 4, got {dim}")
    omega = 10_000 ** (-torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def code(p):
        angles = p.reshape(-1, 1).double() * omega
        return torch.cat([angles.sin(), angles.cos()], 1)

    return torch.cat([code(rows), code(cols)], 1).float()


# --- blocks -------------------------------------------------------------------------------


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _modulate(x, shift, scale):
    return x * (1 + scale) + shift


class Stream(nn.Module):
    """The weights of one modality in a block: adaLN modulation, QKV, output projection, MLP.

    Without a condition (``adaptive=False``, the text encoder) the modulation is the identity:
    shift 0, scale 0, gate 1 — a plain pre-LN transformer block. A ``context_only`` stream
    (the text in MMDiT's last block, whose output nobody reads) has only its keys and values.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        adaptive: bool = True,
        context_only: bool = False,
    ):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        chunks = 2 if context_only else 6
        self.ada = (
            nn.Sequential(nn.SiLU(), _zero(nn.Linear(dim, chunks * dim))) if adaptive else None
        )
        if context_only:
            return
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
        )

    def modulation(self, c: torch.Tensor | None, x: torch.Tensor):
        if self.ada is None:
            zero, one = x.new_zeros(()), x.new_ones(())
            return zero, zero, one, zero, zero, one
        mod = self.ada(c)[:, None]
        return mod.chunk(mod.shape[-1] // x.shape[-1], -1)

    def modulated_input(self, x, mod):
        """(1 + γ_1) ⊙ LN(x) + β_1: what attention reads (TeaCache watches it change)."""
        return _modulate(self.norm1(x), mod[0], mod[1])

    def qkv_heads(self, x, mod):
        h = self.qkv(self.modulated_input(x, mod))
        return rearrange(h, "b n (three h d) -> three b h n d", three=3, h=self.heads).unbind(0)

    def attention_output(self, attended):
        """The attention branch before its gate α_1: proj(heads concatenated)."""
        return self.proj(rearrange(attended, "b h n d -> b n (h d)"))

    def feed_forward(self, x, mod):
        """The MLP branch before its gate α_2: MLP((1 + γ_2) ⊙ LN(x) + β_2)."""
        return self.mlp(_modulate(self.norm2(x), mod[3], mod[4]))

    def finish(self, x, attended, mod):
        x = x + mod[2] * self.attention_output(attended)
        return x + mod[5] * self.feed_forward(x, mod)


class CrossAttention(nn.Module):
    r"""Image tokens read the text: h ← h + W_o Attn(W_q LN(h), W_k s, W_v s).

    Stable Diffusion's and PixArt-α's text conditioning (arXiv 2310.00426, §2.3); W_o starts
    at zero (set by :class:`DiT`). Keys and values have no bias, as in Stable Diffusion, so
    IP-Adapter can copy them. ``image_prompt`` = (K_img, V_img, λ) adds IP-Adapter's decoupled
    cross-attention before W_o (arXiv 2308.06721, eq. 5):
    Attn(Q, K_txt, V_txt) + λ Attn(Q, K_img, V_img).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, dim) → (B, heads, N, dim/heads)."""
        return rearrange(x, "b n (h d) -> b h n d", h=self.heads)

    def forward(self, x, text, keep, image_prompt=None):
        q = self.split(self.q(self.norm(x)))
        k, v = self.split(self.k(text)), self.split(self.v(text))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None])
        if image_prompt is not None:
            k_img, v_img, scale = image_prompt
            a = a + scale * F.scaled_dot_product_attention(q, k_img, v_img)
        return x + self.proj(rearrange(a, "b h n d -> b n (h d)"))


class Block(nn.Module):
    """A DiT block (one stream), a block with cross-attention to the text (``text="cross"``)
    or an MMDiT joint block (``text="joint"``: text and image streams); the text of the
    ``last`` joint block only provides keys and values (its output would be unused)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        text: str | None = None,
        last: bool = False,
    ):
        super().__init__()
        self.image = Stream(dim, heads, mlp_ratio)
        joint = text == "joint"
        self.text = Stream(dim, heads, mlp_ratio, context_only=last) if joint else None
        self.cross = CrossAttention(dim, heads) if text == "cross" else None

    def self_attention(self, x, mod, rope=None):
        """The image stream's self-attention branch before its gate: proj(Attn(modulated x))."""
        q, k, v = self.image.qkv_heads(x, mod)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return self.image.attention_output(F.scaled_dot_product_attention(q, k, v))

    def forward(self, x, c, rope=None, text=None, keep=None, image_prompt=None):
        mod_x = self.image.modulation(c, x)
        if self.text is None:
            x = x + mod_x[2] * self.self_attention(x, mod_x, rope)
            if self.cross is not None:
                x = self.cross(x, text, keep, image_prompt)
            return x + mod_x[5] * self.image.feed_forward(x, mod_x), text
        q, k, v = self.image.qkv_heads(x, mod_x)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        mod_t = self.text.modulation(c, text)
        qt, kt, vt = self.text.qkv_heads(text, mod_t)
        n_text = text.shape[1]
        mask = torch.cat([keep, keep.new_ones(keep.shape[0], x.shape[1])], 1)[:, None, None]
        a = F.scaled_dot_product_attention(
            torch.cat([qt, q], 2), torch.cat([kt, k], 2), torch.cat([vt, v], 2), attn_mask=mask
        )
        x = self.image.finish(x, a[:, :, n_text:], mod_x)
        if len(mod_t) == 2:  # context only
            return x, None
        return x, self.text.finish(text, a[:, :, :n_text], mod_t)


class TextEncoder(nn.Module):
    """A tiny word-level transformer over captions: token ids (B, L) in [−1, vocab) → tokens.

    A learned start token is prepended; −1 marks padding (masked out of attention), so the
    empty caption (all −1) is the null condition of classifier-free guidance. Returns the
    encoded tokens (B, L + 1, dim) and the mask of real tokens (B, L + 1).
    """

    def __init__(self, vocab: int, length: int, dim: int, depth: int, heads: int):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.embed = nn.Embedding(vocab + 1, dim)  # row `vocab` is the start token
        self.pos = nn.Parameter(torch.randn(1, length + 1, dim) * 0.02)
        self.layers = nn.ModuleList(Stream(dim, heads, 4.0, adaptive=False) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor):
        if not isinstance(tokens, torch.Tensor) or tokens.is_floating_point():
            raise TypeError("cond must be a tensor of caption token ids (B, L), -1 = padding")
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(
                f"cond must have shape (B, {self.length}) (caption token ids), "
                f"got {tuple(tokens.shape)}"
            )
        if ((tokens < -1) | (tokens >= self.vocab)).any():
            raise ValueError(f"caption token ids must lie in [-1, {self.vocab - 1}]")
        start = tokens.new_full((tokens.shape[0], 1), self.vocab)
        ids = torch.cat([start, tokens.clamp_min(0)], 1)
        keep = torch.cat([torch.ones_like(start, dtype=torch.bool), tokens >= 0], 1)
        h = self.embed(ids) + self.pos
        mask = keep[:, None, None]
        for layer in self.layers:
            mod = layer.modulation(None, h)
            q, k, v = layer.qkv_heads(h, mod)
            h = layer.finish(h, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), mod)
        return self.norm(h), keep


class FinalLayer(nn.Module):
    """adaLN (shift, scale) + linear to p·p·C values; both zero-initialised."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), _zero(nn.Linear(dim, 2 * dim)))
        self.linear = _zero(nn.Linear(dim, out))

    def forward(self, x, c):
        shift, scale = self.ada(c)[:, None].chunk(2, -1)
        return self.linear(_modulate(self.norm(x), shift, scale))


# --- the model ----------------------------------------------------------------------------


class DiT(nn.Module):
    """``DiT(in_channels, size, patch_size=2, dim=128, depth=4, heads=4, ...)``; see
    :class:`DiTConfig` for every option. Called as ``model(x, t, cond=None)`` with
    x (B, in_channels, size, size), t (B,) in [0, 1] and cond class labels (B,) or caption
    token ids (B, text_len); returns a tensor shaped like x.
    """

    def __init__(self, in_channels: int, size: int, **options):
        super().__init__()
        cfg = DiTConfig(in_channels, size, **options)
        self.cfg = cfg
        self.config = {"name": "dit", **asdict(cfg)}
        if cfg.text_mode == "joint":  # the default is not written: earlier cache keys hold
            del self.config["text_mode"]
        p, dim = cfg.patch_size, cfg.dim
        self.embed = nn.Linear(p * p * in_channels, dim)
        if cfg.pos == "learned":
            self.pos = nn.Parameter(torch.randn(1, cfg.num_tokens, dim) * 0.02)
        elif cfg.pos == "sincos":
            self.register_buffer("pos", sincos_2d(cfg.grid, dim)[None], persistent=False)
        else:
            self.pos = None
        if cfg.pos == "rope":
            cos, sin = rope_2d(cfg.grid, dim // cfg.heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.text_vocab:
            self.time = nn.Sequential(
                SinusoidalEmbedding(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim)
            )
            self.text = TextEncoder(cfg.text_vocab, cfg.text_len, dim, cfg.text_depth, cfg.heads)
            self.pooled = nn.Linear(dim, dim) if cfg.text_mode != "cross" else None
        else:
            self.cond = ConditionEmbedding(dim, cfg.num_classes)
        reads = cfg.text_mode if cfg.text_vocab and cfg.text_mode != "pooled" else None
        self.blocks = nn.ModuleList(
            Block(dim, cfg.heads, cfg.mlp_ratio, reads, last=i == cfg.depth - 1)
            for i in range(cfg.depth)
        )
        self.final = FinalLayer(dim, p * p * in_channels)
        self.projector = self._projector() if cfg.repa_dim else None
        self._init_weights()

    def _projector(self) -> nn.Module:
        cfg = self.cfg
        if cfg.repa_projector == "conv":
            return nn.Conv2d(cfg.dim, cfg.repa_dim, 3, padding=1)
        width = 2 * cfg.dim
        return nn.Sequential(
            nn.Linear(cfg.dim, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, cfg.repa_dim),
        )

    def _init_weights(self):
        # DiT's initialisation: Xavier-uniform linear layers, then adaLN and output at zero
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (Stream, FinalLayer)) and module.ada is not None:
                _zero(module.ada)
            if isinstance(module, CrossAttention):
                _zero(module.proj)
        _zero(self.final.linear)

    @property
    def rope(self):
        """(cos, sin) of the image tokens' 2D RoPE, or None with additive positions."""
        return (self.rope_cos, self.rope_sin) if self.cfg.pos == "rope" else None

    def condition(self, t: torch.Tensor, cond=None):
        """(c, text tokens, text mask): the adaLN vector c = time + class (or pooled caption)
        embedding (B, dim) and, for captions, the encoded text (B, L + 1, dim) with its mask
        of real tokens (None, None for class labels)."""
        if self.cfg.text_vocab:
            if cond is None:
                cond = torch.full((t.shape[0], self.cfg.text_len), -1, device=t.device)
            text, keep = self.text(cond)
            if text.shape[0] != t.shape[0]:
                raise ValueError(f"cond must have {t.shape[0]} captions, got {text.shape[0]}")
            c = self.time(t)
            if self.pooled is not None:
                c = c + self.pooled(text[:, 0])
            return c, text, keep
        return self.cond(t, cond), None, None

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The embedded patches of x (B, N, dim), with additive positions if the DiT has them."""
        cfg = self.cfg
        if x.dim() != 4 or tuple(x.shape[1:]) != (cfg.in_channels, cfg.size, cfg.size):
            raise ValueError(
                f"x must have shape (B, {cfg.in_channels}, {cfg.size}, {cfg.size}) for this "
                f"DiT, got {tuple(x.shape)}"
            )
        h = self.embed(patchify(x, cfg.patch_size))
        return h + self.pos if self.pos is not None else h

    def decode(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Tokens after the last block → the prediction (B, C, H, W) (final adaLN layer)."""
        cfg = self.cfg
        return unpatchify(self.final(h, c), cfg.patch_size, cfg.in_channels, cfg.size)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond=None,
        *,
        return_hidden=(),
        control=None,
        image_prompt=None,
    ):
        """The prediction (B, C, H, W); with ``return_hidden`` = (ℓ, …) also a dict ℓ → the
        image tokens (B, N, dim) after block ℓ (1 ≤ ℓ ≤ depth).

        ``control``: ControlNet residuals, a list of (B, N, dim) tensors added to the image
        tokens after blocks 1, 2, …; ``image_prompt``: per block (K_img, V_img) and a scale λ,
        ``(pairs, λ)``, for the cross-attention (IP-Adapter).
        """
        cfg = self.cfg
        wanted = (return_hidden,) if isinstance(return_hidden, int) else tuple(return_hidden)
        for layer in wanted:
            if not isinstance(layer, int) or not 1 <= layer <= cfg.depth:
                raise ValueError(f"return_hidden must hold block indices in [1, {cfg.depth}]")
        control = list(control) if control is not None else []
        if len(control) > cfg.depth:
            raise ValueError(f"control has {len(control)} residuals for {cfg.depth} blocks")
        pairs, scale = [None] * cfg.depth, 0.0
        if image_prompt is not None:
            if cfg.text_mode != "cross" or not cfg.text_vocab:
                raise ValueError("image_prompt needs a DiT with text_mode='cross'")
            pairs, scale = image_prompt
            if len(pairs) != cfg.depth:
                raise ValueError(f"image_prompt needs keys and values for {cfg.depth} blocks")
        h = self.tokens(x)
        c, text, keep = self.condition(t, cond)
        hidden = {}
        for i, block in enumerate(self.blocks, 1):
            prompt = None if pairs[i - 1] is None else (*pairs[i - 1], scale)
            h, text = block(h, c, self.rope, text, keep, prompt)
            if i <= len(control):
                h = h + control[i - 1]
            if i in wanted:
                hidden[i] = h
        out = self.decode(h, c)
        return (out, hidden) if wanted else out

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        """REPA's projector: hidden tokens (B, N, dim) → (B, N, repa_dim)."""
        if self.projector is None:
            raise ValueError("this DiT has no REPA projector (set repa_dim > 0)")
        if tokens.dim() != 3 or tokens.shape[1:] != (self.cfg.num_tokens, self.cfg.dim):
            raise ValueError(
                f"tokens must have shape (B, {self.cfg.num_tokens}, {self.cfg.dim}), "
                f"got {tuple(tokens.shape)}"
            )
        if self.cfg.repa_projector == "mlp":
            return self.projector(tokens)
        grid = rearrange(tokens, "b (h w) d -> b d h w", h=self.cfg.grid)
        return rearrange(self.projector(grid), "b d h w -> b (h w) d")
