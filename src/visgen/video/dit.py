r"""Video Diffusion Transformers: full 3D or factorised space–time attention, bidirectional or
frame-block-causal with a KV cache.

A video x (B, F, C, H, W) is cut frame by frame into P = (H/p)² patches
(:func:`visgen.nn.dit.patchify`), so the sequence has F·P tokens of width ``dim``. A learned
embedding gives each token its position inside the frame; the **frame index enters only
through RoPE** (:func:`visgen.nn.attention.rope_1d`, arXiv 2104.09864): the queries and keys of
frame f are rotated by the angles f ω_i, so attention scores depend on frame *offsets*, and a
chunk generated later must be rotated by its **absolute** frame index (Self-Forcing's
``start_frame``; a classic lecture-9 pitfall). The time t — one per video (B,) or one
per frame (B, F) for diffusion forcing — conditions every block by adaLN-Zero per frame (DiT,
arXiv 2212.09748, §3.2; the blocks are :class:`visgen.nn.dit.Stream`).

**Attention.** ``attention="full"`` attends over all F·P tokens (Wan, arXiv 2503.20314;
CausVid and Self-Forcing build on it); ``"factorised"`` alternates spatial blocks (the P
tokens of one frame) and temporal blocks (the F tokens of one patch position), as Latte
(arXiv 2401.03048, variant 1): cost F·P² + P·F² query–key pairs instead of (F·P)².

**Frame-block causality.** With ``chunk = k`` the frames are grouped into chunks of k, and a
token of chunk i attends to the tokens of chunks j ≤ i (:func:`visgen.nn.attention.group_mask`;
CausVid, arXiv 2412.07772, §3.1). An optional window of W frames (W a multiple of k) and a sink
of S frames restrict chunk i to its own frames, the W frames before it and the first S frames
(attention sink, arXiv 2309.17453). The same network then runs in three ways:

* :meth:`VideoDiT.forward` — the whole clip at once under the mask (training; the oracle of
  the cached sampler). ``clean=`` gives teacher forcing: the sequence is [clean frames at
  t = 0; noisy frames], the noisy chunk i sees the clean chunks < i and itself (Self-Forcing's
  teacher-forcing baseline, arXiv 2506.08009, §3).
* :meth:`VideoDiT.forward_chunk` — new frames against a :class:`~visgen.nn.attention.KVCache`
  of earlier ones: ``commit=False`` while a chunk is denoised (the cache is read), then one
  pass at t = 0 with ``commit=True`` stores the chunk's clean keys and values (CausVid §3.3).
* the cross-attention to a caption (Wan's text cross-attention; the caption is encoded by
  :class:`visgen.nn.dit.TextEncoder`): :meth:`VideoDiT.encode_condition` computes every layer's
  keys and values once per video (:class:`TextCache`, the *cross-attention cache*).

Hook points for lecture 10: each block's :meth:`VideoBlock.self_attention` and
:meth:`VideoBlock.cross_attention` return the residual branches before their gates (attention
broadcast replaces them); :meth:`VideoBlock.qkv` returns the rotated heads (head profiling).

CPU-scale simplifications: a few blocks of width 32–128; learned spatial positions instead of
Wan's 3D RoPE (the frame axis keeps RoPE, which is what caching needs); no QK-norm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from visgen._checks import check_choice, check_positive
from visgen.nn import MODELS
from visgen.nn.attention import KVCache, apply_rope, group_mask, rope_1d
from visgen.nn.dit import FinalLayer, Stream, TextEncoder, _modulate, _zero, patchify, unpatchify
from visgen.nn.embeddings import SinusoidalEmbedding

__all__ = [
    "TextCache",
    "VideoBlock",
    "VideoDiT",
    "VideoDiTConfig",
    "chunk_mask",
    "randomize_zero_init",
]


@dataclass(frozen=True)
class VideoDiTConfig:
    """Architecture of a :class:`VideoDiT` (stored in checkpoints as ``model.config``).

    Args:
        channels, size: frames are (channels, size, size).
        patch_size: p; tokens per frame P = (size/p)².
        dim, depth, heads, mlp_ratio: token width, blocks, heads, MLP width ratio.
        attention: ``full`` (3D) or ``factorised`` (spatial and temporal blocks alternate;
            bidirectional only).
        chunk: 0 = bidirectional; k ≥ 1 = frame-block-causal with chunks of k frames.
        text_vocab, text_len, text_depth: > 0 adds cross-attention to captions of
            ``text_len`` word ids in [0, text_vocab) (−1 = padding; all −1 = the null caption).
        rope_base: RoPE's base b, frequencies ω_i = b^{−2i/head_dim}; 100 (not 10 000) so
            that offsets of a few frames to a few dozen turn the head's channels measurably.
    """

    channels: int
    size: int
    patch_size: int = 4
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    attention: str = "full"
    chunk: int = 0
    text_vocab: int = 0
    text_len: int = 0
    text_depth: int = 1
    rope_base: float = 100.0

    def __post_init__(self):
        for name in ("channels", "size", "patch_size", "dim", "depth", "heads", "text_depth"):
            check_positive(getattr(self, name), name, integer=True)
        check_positive(self.mlp_ratio, "mlp_ratio")
        check_positive(self.rope_base, "rope_base")
        check_choice(self.attention, "attention", ("full", "factorised"))
        for name in ("chunk", "text_vocab", "text_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if self.size % self.patch_size:
            raise ValueError(f"patch_size {self.patch_size} must divide the frame size {self.size}")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(
                f"dim {self.dim} must be divisible by heads {self.heads} with an even head width"
            )
        if self.attention == "factorised" and self.chunk:
            raise ValueError("factorised attention is bidirectional here: set chunk=0")
        if (self.text_vocab > 0) != (self.text_len > 0):
            raise ValueError("text_vocab and text_len must both be set for caption conditioning")

    @property
    def tokens_per_frame(self) -> int:
        return (self.size // self.patch_size) ** 2


@dataclass
class TextCache:
    """The caption's keys and values for every block's cross-attention, computed once per
    video by :meth:`VideoDiT.encode_condition`: ``keys[ℓ]``, ``values[ℓ]`` (B, heads, L + 1,
    head_dim) and ``keep`` (B, L + 1), False at padding."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    keep: torch.Tensor

    @property
    def batch(self) -> int:
        return self.keep.shape[0]


def chunk_mask(
    query_frames, key_frames, chunk: int, *, window: int | None = None, sink: int = 0
) -> torch.Tensor:
    """Frame-block-causal mask (Nq, Nk) between tokens at absolute frame indices.

    A query of chunk i = ⌊f/chunk⌋ sees a key of chunk j ≤ i whose frame lies in the first
    ``sink`` frames or in the ``window`` frames before chunk i, or in chunk i itself.
    """
    q = torch.as_tensor(query_frames) // chunk
    k = torch.as_tensor(key_frames) // chunk
    if window is None:
        return group_mask(q, k, "causal")
    return group_mask(q, k, "causal", window=window // chunk + 1, sink=sink // chunk)


def check_window(chunk: int, window, sink: int) -> None:
    """Window and sink (frames) must be whole chunks, the window at least one chunk."""
    if window is None:
        if sink:
            raise ValueError("sink needs a window (a rolling cache); set window")
        return
    if not isinstance(window, int) or isinstance(window, bool) or window < chunk:
        raise ValueError(f"window must be an int of at least chunk={chunk} frames, got {window!r}")
    if window % chunk:
        raise ValueError(f"window={window} frames must be a multiple of chunk={chunk}")
    if not isinstance(sink, int) or isinstance(sink, bool) or sink < 0 or sink % chunk:
        raise ValueError(f"sink must be a non-negative multiple of chunk={chunk}, got {sink!r}")


def _heads(x: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """(B·F, h, P, d) → (B, h, F·P, d): one sequence over all frames."""
    return rearrange(x, "(b f) h p d -> b h (f p) d", b=batch, f=frames)


def _frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, h, F·P, d) → (B·F, h, P, d)."""
    return rearrange(x, "b h (f p) d -> (b f) h p d", f=frames)


class VideoBlock(nn.Module):
    """One block: adaLN-Zero self-attention (``kind`` full, spatial or temporal), optional
    cross-attention to the caption (pre-LN, no gate, as Wan), adaLN-Zero MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, kind: str, text: bool):
        super().__init__()
        self.kind = kind
        self.heads = heads
        self.stream = Stream(dim, heads, mlp_ratio)
        if text:
            self.norm_cross = nn.LayerNorm(dim, eps=1e-6)
            self.q_cross = nn.Linear(dim, dim)
            self.kv_cross = nn.Linear(dim, 2 * dim)
            self.proj_cross = nn.Linear(dim, dim)
        else:
            self.q_cross = None

    def text_keys_values(self, text: torch.Tensor):
        """The caption's cross-attention keys and values (B, heads, L + 1, head_dim)."""
        kv = self.kv_cross(text)
        return rearrange(kv, "b l (two h d) -> two b h l d", two=2, h=self.heads).unbind(0)

    def qkv(self, h: torch.Tensor, mod, rope, batch: int, frames: int):
        """Queries, keys, values of the self-attention, (B, heads, F·P, head_dim), keys and
        queries rotated by the frame RoPE (``rope`` = (cos, sin) per token, or None)."""
        q, k, v = (_heads(a, batch, frames) for a in self.stream.qkv_heads(h, mod))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q, k, v

    def self_attention(self, h, mod, rope, batch, frames, *, mask=None, cache=None, layer=0,
                       commit=False, kv_out=None):  # fmt: skip
        """The self-attention branch (before its gate), tokens (B·F, P, dim)."""
        stream = self.stream
        if self.kind == "full":
            q, k, v = self.qkv(h, mod, rope, batch, frames)
            if kv_out is not None:
                kv_out.append((k, v))
            if cache is None:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            else:
                out = cache.attend(layer, q, k, v, commit=commit, mask=mask)
            out = _frames(out, frames)
        elif self.kind == "spatial":
            q, k, v = stream.qkv_heads(h, mod)
            out = F.scaled_dot_product_attention(q, k, v)
        else:  # temporal: the F tokens of one patch position attend to each other
            q, k, v = (
                rearrange(a, "(b f) h p d -> (b p) h f d", b=batch)
                for a in stream.qkv_heads(h, mod)
            )
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out = rearrange(out, "(b p) h f d -> (b f) h p d", b=batch)
        return stream.proj(rearrange(out, "n h p d -> n p (h d)"))

    def cross_attention(self, h, text: TextCache, layer: int, frames: int):
        """The cross-attention branch: LN(h) queries the cached caption keys and values."""
        q = rearrange(self.q_cross(self.norm_cross(h)), "(b f) p (h d) -> b h (f p) d",
                      f=frames, h=self.heads)  # fmt: skip
        mask = text.keep[:, None, None, :]
        out = F.scaled_dot_product_attention(q, text.keys[layer], text.values[layer], mask)
        return self.proj_cross(rearrange(out, "b h (f p) d -> (b f) p (h d)", f=frames))

    def forward(self, h, c, rope, batch, frames, text=None, layer=0, **attend):
        mod = self.stream.modulation(c, h)
        h = h + mod[2] * self.self_attention(h, mod, rope, batch, frames, layer=layer, **attend)
        if self.q_cross is not None:
            h = h + self.cross_attention(h, text, layer, frames)
        return h + mod[5] * self.stream.mlp(_modulate(self.stream.norm2(h), mod[3], mod[4]))


class VideoDiT(nn.Module):
    """``VideoDiT(channels, size, patch_size=4, dim=64, depth=4, ...)``; see
    :class:`VideoDiTConfig`. Called as ``model(x, t, cond=None)`` with x (B, F, C, H, W),
    t (B,) or (B, F) in [0, 1] and cond caption word ids (B, text_len); returns a tensor
    shaped like x."""

    def __init__(self, channels: int, size: int, **options):
        super().__init__()
        cfg = VideoDiTConfig(channels, size, **options)
        self.cfg = cfg
        self.config = {"name": "video_dit", **asdict(cfg)}
        p, dim = cfg.patch_size, cfg.dim
        self.embed = nn.Linear(p * p * channels, dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.tokens_per_frame, dim) * 0.02)
        self.time = nn.Sequential(
            SinusoidalEmbedding(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        text = cfg.text_vocab > 0
        self.text = (
            TextEncoder(cfg.text_vocab, cfg.text_len, dim, cfg.text_depth, cfg.heads)
            if text
            else None
        )
        kinds = ["full"] * cfg.depth
        if cfg.attention == "factorised":
            kinds = ["spatial" if i % 2 == 0 else "temporal" for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            VideoBlock(dim, cfg.heads, cfg.mlp_ratio, kind, text) for kind in kinds
        )
        self.final = FinalLayer(dim, p * p * channels)
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, (Stream, FinalLayer)) and module.ada is not None:
                _zero(module.ada)
        _zero(self.final.linear)

    @property
    def head_dim(self) -> int:
        return self.cfg.dim // self.cfg.heads

    # --- inputs ---------------------------------------------------------------------------
    def _check_video(self, x: torch.Tensor, name: str = "x") -> None:
        cfg = self.cfg
        if not isinstance(x, torch.Tensor) or x.dim() != 5:
            raise ValueError(
                f"{name} must be a video (B, F, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}"
            )
        if tuple(x.shape[2:]) != (cfg.channels, cfg.size, cfg.size):
            raise ValueError(
                f"{name} must have frames of shape ({cfg.channels}, {cfg.size}, {cfg.size}), "
                f"got {tuple(x.shape[2:])}"
            )

    def _frame_times(self, t, x: torch.Tensor) -> torch.Tensor:
        b, f = x.shape[:2]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if t.dim() == 0:
            t = t.expand(b)
        if t.dim() == 1 and t.shape[0] == b:
            t = t[:, None].expand(b, f)
        if t.shape != (b, f):
            raise ValueError(f"t must be a scalar, (B,) = ({b},) or (B, F) = ({b}, {f}), got "
                             f"{tuple(t.shape)}")  # fmt: skip
        if not ((t >= 0) & (t <= 1)).all():
            raise ValueError("t must lie in [0, 1] (t = 0 is data, t = 1 is noise)")
        return t

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) → (B·F, P, dim)."""
        return self.embed(patchify(x.flatten(0, 1), self.cfg.patch_size)) + self.pos

    def rope(self, frames: torch.Tensor, per_token: bool = True):
        """(cos, sin) of the RoPE rotation at the absolute frame indices ``frames``: one row
        per token (``per_token``, the P tokens of a frame share it) or per frame."""
        pos = frames.repeat_interleave(self.cfg.tokens_per_frame) if per_token else frames
        cos, sin = rope_1d(pos, self.head_dim, base=self.cfg.rope_base)
        return cos.to(self.pos.dtype), sin.to(self.pos.dtype)

    def encode_condition(self, cond, batch: int) -> TextCache | None:
        """Every block's cross-attention keys and values of the caption ``cond`` (B, text_len)
        (None = the null caption): the cross-attention cache, computed once per video."""
        if self.text is None:
            if cond is not None:
                raise ValueError("this VideoDiT has no caption conditioning but cond was given")
            return None
        if cond is None:
            cond = torch.full((batch, self.cfg.text_len), -1, device=self.pos.device)
        text, keep = self.text(cond)
        if text.shape[0] != batch:
            raise ValueError(f"cond must hold {batch} captions, got {text.shape[0]}")
        pairs = [block.text_keys_values(text) for block in self.blocks]
        return TextCache([k for k, _ in pairs], [v for _, v in pairs], keep)

    def _text(self, cond, text: TextCache | None, batch: int) -> TextCache | None:
        if text is not None:
            if cond is not None:
                raise ValueError("give cond or a precomputed text cache, not both")
            if text.batch != batch:
                raise ValueError(f"the text cache holds {text.batch} videos, x has {batch}")
            return text
        return self.encode_condition(cond, batch)

    def _output(self, h, c, batch, frames):
        cfg = self.cfg
        out = unpatchify(self.final(h, c), cfg.patch_size, cfg.channels, cfg.size)
        return out.reshape(batch, frames, *out.shape[1:])

    # --- whole clips ----------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        t,
        cond=None,
        *,
        clean: torch.Tensor | None = None,
        window: int | None = None,
        sink: int = 0,
        text: TextCache | None = None,
        kv_out: list | None = None,
    ) -> torch.Tensor:
        """The prediction for the whole clip x_t (B, F, C, H, W) at frame 0 onwards.

        Args:
            t: (B,) or per frame (B, F) (diffusion forcing; 0 for clean context frames).
            clean: the clean clip (same shape) for teacher forcing (causal models only).
            window, sink: the causal mask's window and sink in frames (multiples of chunk).
            text: a :class:`TextCache` instead of ``cond``.
            kv_out: a list that receives every full-attention layer's (keys, values) of the
                sequence, keys rotated (what a KV cache would hold).
        """
        cfg = self.cfg
        self._check_video(x)
        b, f = x.shape[:2]
        t = self._frame_times(t, x)
        if cfg.chunk == 0 and (window is not None or clean is not None):
            raise ValueError("window, sink and clean (teacher forcing) need a causal model")
        if cfg.chunk:
            if f % cfg.chunk:
                raise ValueError(f"frames F={f} must be divisible by chunk={cfg.chunk}")
            check_window(cfg.chunk, window, sink)
        frames = torch.arange(f, device=x.device)
        if clean is not None:
            if clean.shape != x.shape:
                raise ValueError(f"clean must have the shape of x {tuple(x.shape)}, got "
                                 f"{tuple(clean.shape)}")  # fmt: skip
            return self._teacher_forced(x, t, clean, cond, text, window, sink)
        text = self._text(cond, text, b)
        c = self.time(t.reshape(-1))
        h = self._tokens(x)
        mask = None
        if cfg.chunk:
            tokens = frames.repeat_interleave(cfg.tokens_per_frame)
            mask = chunk_mask(tokens, tokens, cfg.chunk, window=window, sink=sink)
        ropes = {"full": self.rope(frames, True), "temporal": self.rope(frames, False)}
        for layer, block in enumerate(self.blocks):
            rope = ropes.get(block.kind)  # spatial blocks: positions are the learned embedding
            h = block(h, c, rope, b, f, text, layer, mask=mask, kv_out=kv_out)
        return self._output(h, c, b, f)

    def _teacher_forced(self, x, t, clean, cond, text, window, sink):
        """[clean; noisy] in one pass: clean chunk i sees clean chunks ≤ i, noisy chunk i sees
        clean chunks < i and itself; returns the noisy half's prediction."""
        cfg = self.cfg
        b, f = x.shape[:2]
        text = self._text(cond, text, b)
        both = torch.cat([clean, x], 1)
        times = torch.cat([torch.zeros_like(t), t], 1)
        c = self.time(times.reshape(-1))
        frames = torch.arange(f, device=x.device).repeat(2)
        tokens = frames.repeat_interleave(cfg.tokens_per_frame)
        half = f * cfg.tokens_per_frame
        causal = chunk_mask(tokens[:half], tokens[:half], cfg.chunk, window=window, sink=sink)
        chunks = tokens[:half] // cfg.chunk
        same = chunks[:, None] == chunks[None, :]
        mask = torch.cat(
            [
                torch.cat([causal, torch.zeros_like(causal)], 1),
                torch.cat([causal & ~same, same], 1),
            ],
            0,
        )
        h = self._tokens(both)
        rope = self.rope(frames, per_token=True)
        for layer, block in enumerate(self.blocks):
            h = block(h, c, rope, b, 2 * f, text, layer, mask=mask)
        out = self._output(h, c, b, 2 * f)
        return out[:, f:]

    # --- new frames against a KV cache ----------------------------------------------------
    def new_cache(self, *, window: int | None = None, sink: int = 0) -> KVCache:
        """An empty self-attention cache; ``window``/``sink`` in frames make it rolling."""
        cfg = self.cfg
        if not cfg.chunk:
            raise ValueError("a KV cache needs a frame-block-causal model (chunk > 0)")
        check_window(cfg.chunk, window, sink)
        p = cfg.tokens_per_frame
        if window is None:
            return KVCache(cfg.depth)
        return KVCache(cfg.depth, window_tokens=window * p, sink_tokens=sink * p)

    def forward_chunk(
        self,
        x: torch.Tensor,
        t,
        cache: KVCache,
        *,
        start_frame: int,
        text: TextCache | None = None,
        commit: bool = False,
    ) -> torch.Tensor:
        """The prediction for new frames x (B, F_new, C, H, W) at absolute frames
        ``start_frame`` … ``start_frame`` + F_new − 1, attending to the frames in ``cache``.

        ``commit=True`` stores the new frames' keys and values (call it at t = 0, on clean
        frames); F_new and ``start_frame`` must be whole chunks, and ``start_frame`` must be
        the number of frames the cache has seen (its absolute position).
        """
        cfg = self.cfg
        self._check_video(x)
        b, f = x.shape[:2]
        if not cfg.chunk:
            raise ValueError("forward_chunk needs a frame-block-causal model (chunk > 0)")
        if not isinstance(cache, KVCache) or cache.layers != cfg.depth:
            raise TypeError(f"cache must be a KVCache with {cfg.depth} layers (model.new_cache())")
        if f % cfg.chunk:
            raise ValueError(f"x holds {f} frames; it must be whole chunks of {cfg.chunk}")
        p = cfg.tokens_per_frame
        if not isinstance(start_frame, int) or start_frame < 0 or start_frame % cfg.chunk:
            raise ValueError(f"start_frame must be a non-negative multiple of chunk={cfg.chunk}, "
                             f"got {start_frame!r}")  # fmt: skip
        if cache.committed != start_frame * p:
            raise ValueError(
                f"start_frame={start_frame} but the cache has seen {cache.committed // p} frames"
            )
        t = self._frame_times(t, x)
        if self.text is not None and text is None:
            raise ValueError(
                "text must be the cross-attention cache model.encode_condition(cond, B), "
                "computed once per video"
            )
        if text is not None:
            text = self._text(None, text, b)
        frames = torch.arange(start_frame, start_frame + f, device=x.device)
        mask = None
        if f > cfg.chunk:  # several chunks at once: causal among them and to the cache
            window = cache.window_tokens // p if cache.window_tokens else None
            held = cache.positions() // p
            new = frames.repeat_interleave(p)
            mask = chunk_mask(new, torch.cat([held, new]), cfg.chunk, window=window,
                              sink=cache.sink_tokens // p)  # fmt: skip
        c = self.time(t.reshape(-1))
        h = self._tokens(x)
        rope = self.rope(frames, per_token=True)
        for layer, block in enumerate(self.blocks):
            h = block(h, c, rope, b, f, text, layer, mask=mask, cache=cache, commit=commit)
        return self._output(h, c, b, f)


MODELS["video_dit"] = VideoDiT


@torch.no_grad()
def randomize_zero_init(model: nn.Module, seed: int = 0, std: float = 0.3) -> nn.Module:
    """Draw every all-zero parameter from N(0, std²): a fresh adaLN-Zero DiT predicts exactly
    0, so checks of caches, masks and positions need weights that make every block act."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.abs().sum() == 0:
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return model
