r"""Chunk-by-chunk autoregressive sampling of a frame-block-causal :class:`VideoDiT`.

A video of T frames is generated in chunks of k frames (CausVid, arXiv 2412.07772, §4.4;
Self-Forcing, arXiv 2506.08009, Alg. 1 at inference). For chunk i, starting at frame
s_i = i·k (plus any clean context frames):

1. draw noise for the chunk from the **one** generator of the video;
2. denoise it with S network evaluations while the queries read the KV cache of frames < s_i
   (``commit=False``): a Denoiser over the chunk (:func:`chunk_denoiser`) driven by any
   sampler of the course — Euler for many-step models, the stochastic multistep sampler
   x̂0 = f(x_{t_j}, t_j), x_{t_{j+1}} = (1 − t_{j+1}) x̂0 + t_{j+1} ε for few-step students
   (:func:`visgen.fewstep.sample_consistency`);
3. run the clean chunk once more at t = 0 with ``commit=True``: the cache stores *clean* keys
   and values (never the noisy ones of step 2), rotated at the chunk's absolute frames.

The caption's cross-attention keys and values are computed once per video
(:meth:`VideoDiT.encode_condition`). :func:`generate_recompute` is the same loop without a
cache — every step runs the network over all frames so far under the block-causal (or
sliding-window) mask — and must give the same video: the oracle of the cache. Per video the
network processes

.. math::
    N_\text{cached} = P\,\big(C + (T − C)(S + 1)\big), \qquad
    N_\text{recompute} = S\,P \sum_{i=0}^{n−1} (C + (i + 1) k), \; n = (T − C)/k,

token-forwards (P tokens per frame, C clean context frames; :func:`token_forwards`); with
C = 0, k = 1 these are T·P·(S + 1) and S·P·T(T + 1)/2. With a rolling cache the attention of
a chunk spans at most (sink + window + k) frames, so its cost per step no longer grows with T
(:func:`kv_cache_bytes` gives the memory).

:class:`ExplicitCacheModel` is the same network with the caches passed in and handed back as
tensors (``past_key_values`` style): the caller holds the cache — homework 7's interface.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice, check_positive
from visgen.fewstep.sampling import sample_consistency
from visgen.nn.attention import KVCache
from visgen.param import Denoiser
from visgen.sampling import sample_euler
from visgen.sampling.grids import check_grid
from visgen.video.dit import TextCache, VideoDiT, check_window

__all__ = [
    "PREDICTION",
    "ExplicitCacheModel",
    "SCHEDULE",
    "check_rollout",
    "chunk_denoiser",
    "denoise_chunk",
    "generate",
    "generate_recompute",
    "kv_cache_bytes",
    "token_forwards",
    "video_denoiser",
]

SCHEDULE = "linear"  # every video model of lecture 9 is trained by flow matching …
PREDICTION = "x0"  # … and predicts the clean frames (JiT's x-prediction with the v-loss)
SAMPLERS = ("euler", "multistep")


def video_denoiser(model: VideoDiT) -> Denoiser:
    """A whole-clip :class:`~visgen.param.Denoiser` (bidirectional teachers, fake scores)."""
    return Denoiser(model, SCHEDULE, PREDICTION)


def chunk_denoiser(
    model: VideoDiT, cache: KVCache, start_frame: int, text: TextCache | None
) -> Denoiser:
    """A Denoiser over one chunk (B, k, C, H, W) at absolute frame ``start_frame`` that reads
    ``cache`` and never writes it: every sampler of the course can denoise a chunk."""

    def chunk_model(x, t, cond=None):
        if cond is not None:
            raise ValueError("the caption enters through the text cache, not cond")
        return model.forward_chunk(x, t, cache, start_frame=start_frame, text=text)

    return Denoiser(chunk_model, SCHEDULE, PREDICTION)


def _sample(den: Denoiser, x, ts, sampler: str, generator):
    if sampler == "euler":
        return sample_euler(den, x, ts)
    return sample_consistency(den, x, ts, generator=generator)


def denoise_chunk(
    model: VideoDiT,
    noise: torch.Tensor,
    ts,
    cache: KVCache,
    *,
    start_frame: int,
    text: TextCache | None = None,
    sampler: str = "multistep",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The clean chunk from ``noise`` (B, k, C, H, W) at t = ts[0], denoised over the grid
    ``ts`` (len(ts) − 1 NFE) against the frames in ``cache`` (read only).

    ``sampler``: ``multistep`` (few-step stochastic: re-noise x̂0 with fresh noise from
    ``generator`` at each level) or ``euler`` (the PF-ODE, deterministic).
    """
    check_choice(sampler, "sampler", SAMPLERS)
    ts = check_grid(ts)
    if ts[-1] != 0:
        raise ValueError(f"ts must end at 0 (clean frames), got {ts[-1].item()}")
    den = chunk_denoiser(model, cache, start_frame, text)
    return _sample(den, noise, ts, sampler, generator)


def check_rollout(model, frames, batch, context=None, cond=None, window=None, sink=0):
    """The checks of a chunkwise rollout, shared by :func:`generate` and Self-Forcing's
    training rollout: a causal model, whole chunks (``frames``, ``context``, ``window``,
    ``sink``), the batch (given, or taken from ``context`` or ``cond``). Returns the first
    generated frame, the batch and the shape of one chunk of noise."""
    if not isinstance(model, VideoDiT) or not model.cfg.chunk:
        raise TypeError("model must be a frame-block-causal VideoDiT (chunk > 0)")
    cfg = model.cfg
    k = cfg.chunk
    check_positive(frames, "frames", integer=True)
    if frames % k:
        raise ValueError(f"frames={frames} must be divisible by the chunk size {k}")
    check_window(k, window, sink)
    start = 0
    if context is not None:
        model._check_video(context, "context")
        start = context.shape[1]
        if start % k or start >= frames:
            raise ValueError(f"context must hold whole chunks of {k} frames, fewer than "
                             f"frames={frames}; got {start}")  # fmt: skip
        if batch is not None and batch != context.shape[0]:
            raise ValueError(f"batch={batch} but context holds {context.shape[0]} videos")
        batch = context.shape[0]
    if batch is None and cond is not None:
        batch = len(cond)
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int (or give context or cond), got {batch!r}")
    shape = (batch, k, cfg.channels, cfg.size, cfg.size)
    return start, batch, shape


def _context(x: torch.Tensor, context_noise: float, generator) -> torch.Tensor:
    """What the cache sees of clean frames x: x itself, or x re-noised to ``context_noise``."""
    if not context_noise:
        return x
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (1 - context_noise) * x + context_noise * noise


def _check_context_noise(context_noise) -> float:
    if not isinstance(context_noise, (int, float)) or not 0 <= context_noise < 1:
        raise ValueError(f"context_noise must be a float in [0, 1), got {context_noise!r}")
    return float(context_noise)


@torch.no_grad()
def generate(
    model: VideoDiT,
    frames: int,
    ts,
    *,
    batch: int | None = None,
    cond=None,
    context: torch.Tensor | None = None,
    sampler: str = "multistep",
    window: int | None = None,
    sink: int = 0,
    context_noise: float = 0.0,
    generator: torch.Generator | None = None,
    callback=None,
) -> torch.Tensor:
    """A video (B, frames, C, H, W) generated chunk by chunk with a KV cache.

    Args:
        ts: the denoising grid of every chunk (decreasing, ending at 0).
        batch: number of videos (or taken from ``context`` or ``cond``).
        cond: captions (B, text_len) for the cross-attention (encoded once).
        context: clean first frames (B, C_f, …), whole chunks: written to the cache by one
            pass and returned unchanged as the first frames.
        window, sink: a rolling cache of the last ``window`` frames and the first ``sink``
            frames (multiples of the chunk).
        context_noise: the time of the pass that writes the cache: 0 (clean K/V, the
            default) or a small t > 0 at which the frames are re-noised first — diffusion
            forcing's stabilisation of long rollouts (arXiv 2407.01392, §3.4; Self-Forcing's
            ``context_noise``).
        generator: the one source of randomness (chunk noise, re-noising, context noise).
        callback: ``callback(start_frame, chunk, cache)`` after each chunk is committed.
    """
    check_choice(sampler, "sampler", SAMPLERS)
    context_noise = _check_context_noise(context_noise)
    start, batch, shape = check_rollout(model, frames, batch, context, cond, window, sink)
    text = model.encode_condition(cond, batch)
    cache = model.new_cache(window=window, sink=sink)
    video = []
    if context is not None:
        seen = _context(context, context_noise, generator)
        model.forward_chunk(seen, context_noise, cache, start_frame=0, text=text, commit=True)
        video.append(context)
    for s in range(start, frames, model.cfg.chunk):
        noise = torch.randn(shape, generator=generator)
        chunk = denoise_chunk(model, noise, ts, cache, start_frame=s, text=text,
                              sampler=sampler, generator=generator)  # fmt: skip
        seen = _context(chunk, context_noise, generator)
        model.forward_chunk(seen, context_noise, cache, start_frame=s, text=text, commit=True)
        video.append(chunk)
        if callback is not None:
            callback(s, chunk, cache)
    return torch.cat(video, 1)


@torch.no_grad()
def generate_recompute(
    model: VideoDiT,
    frames: int,
    ts,
    *,
    batch: int | None = None,
    cond=None,
    context: torch.Tensor | None = None,
    sampler: str = "multistep",
    window: int | None = None,
    sink: int = 0,
    context_noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """:func:`generate` without a cache: each step runs the network on all frames so far
    (earlier frames at t = ``context_noise``) under the block-causal mask (sliding-window with
    ``window``); the same randomness in the same order, so the same video."""
    check_choice(sampler, "sampler", SAMPLERS)
    context_noise = _check_context_noise(context_noise)
    start, batch, shape = check_rollout(model, frames, batch, context, cond, window, sink)
    text = model.encode_condition(cond, batch)
    ts = check_grid(ts)
    if ts[-1] != 0:
        raise ValueError(f"ts must end at 0 (clean frames), got {ts[-1].item()}")
    empty = torch.zeros(batch, 0, *shape[2:])
    video = context if context is not None else empty
    seen = _context(context, context_noise, generator) if context is not None else empty
    for _ in range(start, frames, model.cfg.chunk):

        def full_model(x, t, cond=None, past=seen):
            times = torch.cat(
                [
                    torch.full((batch, past.shape[1]), context_noise),
                    t[:, None].expand(-1, x.shape[1]),
                ],
                1,
            )
            out = model(torch.cat([past, x], 1), times, text=text, window=window, sink=sink)
            return out[:, past.shape[1] :]

        den = Denoiser(full_model, SCHEDULE, PREDICTION)
        noise = torch.randn(shape, generator=generator)
        chunk = _sample(den, noise, ts, sampler, generator)
        video = torch.cat([video, chunk], 1)
        seen = torch.cat([seen, _context(chunk, context_noise, generator)], 1)
    return video


class ExplicitCacheModel:
    """A causal :class:`VideoDiT` that takes its caches as tensors and hands back the new
    keys and values, like ``past_key_values`` in Hugging Face transformers and the
    ``kv_cache`` buffers Self-Forcing's pipeline passes into CausalWanModel (arXiv 2506.08009,
    Alg. 1): the caller holds the cache and decides what is stored (homework 7).

    * ``encode(cond)`` — the cross-attention cache of captions ``cond`` (B, text_len) as
      plain tensors ``(keys, values, keep)`` (:class:`~visgen.video.dit.TextCache`'s fields);
    * ``model(x, t, past, start_frame=s, text=text)`` — the x0-prediction for the chunk x
      (B, k, C, H, W) at absolute frames s … s + k − 1 at time t, its queries attending to
      ``past`` (None, or one ``(keys, values)`` pair per layer, (B, heads, N, head_dim), keys
      rotated at their own frames) and to the chunk itself; returns ``(x0, present)`` with
      ``present`` the chunk's own pairs (k·P tokens), rotated at frames s … s + k − 1. The
      frames before s may have been evicted from ``past`` (a rolling cache), so the RoPE
      offset comes from ``start_frame``, never from the length of ``past``; a wrong
      ``start_frame`` is not an error, it silently places the chunk at the wrong distance
      from every cached key (the bug the homework's tests catch by value).

    Inference only (no gradients). Several chunks at once (clean context frames) need the
    whole past, nothing evicted (their block-causal mask reads its positions).
    """

    def __init__(self, model: VideoDiT):
        if not isinstance(model, VideoDiT) or not model.cfg.chunk:
            raise TypeError("model must be a frame-block-causal VideoDiT (chunk > 0)")
        self.model = model

    @property
    def tokens_per_frame(self) -> int:
        return self.model.cfg.tokens_per_frame

    @torch.no_grad()
    def encode(self, cond) -> tuple | None:
        """The cross-attention cache of ``cond`` as ``(keys, values, keep)``, or None for a
        model without captions."""
        if cond is None and self.model.text is not None:
            raise ValueError("cond must hold the captions (B, text_len); all −1 = null caption")
        text = self.model.encode_condition(cond, None if cond is None else len(cond))
        return None if text is None else (text.keys, text.values, text.keep)

    def _cache(self, past, start_frame: int, frames: int) -> KVCache:
        cfg, p = self.model.cfg, self.tokens_per_frame
        if not isinstance(start_frame, int) or isinstance(start_frame, bool) or start_frame < 0:
            raise ValueError(f"start_frame must be a non-negative int, got {start_frame!r}")
        cache = self.model.new_cache()
        held = 0
        if past is not None:
            if not isinstance(past, (list, tuple)) or len(past) != cfg.depth:
                raise ValueError(f"past must be None or {cfg.depth} (keys, values) pairs, one "
                                 "per layer")  # fmt: skip
            if not all(isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in past):
                raise ValueError("past must hold one (keys, values) pair per layer")
            held = past[0][0].shape[-2]
            if any(k.shape[-2] != held or v.shape != k.shape for k, v in past):
                raise ValueError("every layer of past must hold keys and values of the same "
                                 "tokens")  # fmt: skip
            cache.keys, cache.values = [k for k, _ in past], [v for _, v in past]
        if frames > cfg.chunk and held != start_frame * p:
            raise ValueError("several chunks at once need the whole past (nothing evicted)")
        cache.committed = start_frame * p  # the absolute position: RoPE reads start_frame
        return cache

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, t, past=None, *, start_frame: int, text=None):
        """``(x0, present)`` for the chunk x at absolute frame ``start_frame`` (class doc)."""
        self.model._check_video(x)
        cache = self._cache(past, start_frame, x.shape[1])
        held = len(cache)
        if text is not None:
            if not isinstance(text, (list, tuple)) or len(text) != 3:
                raise ValueError("text must be the (keys, values, keep) of encode(cond)")
            text = TextCache(list(text[0]), list(text[1]), text[2])
        out = self.model.forward_chunk(x, t, cache, start_frame=start_frame, text=text,
                                       commit=True)  # fmt: skip
        present = [(k[..., held:, :], v[..., held:, :]) for k, v in zip(cache.keys, cache.values)]
        return out, present


def token_forwards(
    frames: int,
    chunk: int,
    steps: int,
    tokens_per_frame: int,
    *,
    context: int = 0,
    cached: bool = True,
) -> int:
    """Tokens the network processes per video: :func:`generate` (``cached``) or
    :func:`generate_recompute` (see the module docstring)."""
    for name, value in dict(frames=frames, chunk=chunk, steps=steps,
                            tokens_per_frame=tokens_per_frame).items():  # fmt: skip
        check_positive(value, name, integer=True)
    if frames % chunk or context % chunk or not 0 <= context < frames:
        raise ValueError("frames and context must be whole chunks, context < frames")
    p, n = tokens_per_frame, (frames - context) // chunk
    if cached:
        return p * (context + (frames - context) * (steps + 1))
    return steps * p * sum(context + (i + 1) * chunk for i in range(n))


def kv_cache_bytes(
    model_or_config,
    frames: int,
    *,
    batch: int = 1,
    bytes_per_value: int = 4,
    window: int | None = None,
    sink: int = 0,
) -> int:
    """Memory of the self-attention cache after ``frames`` frames: 2 (K, V) × layers × batch ×
    cached tokens × heads × head_dim × bytes, with cached tokens = P·min(frames, sink + window)
    for a rolling cache (:meth:`visgen.nn.attention.KVCache.estimate_bytes`)."""
    cfg = getattr(model_or_config, "cfg", model_or_config)
    check_positive(frames, "frames", integer=True)
    held = frames if window is None else min(frames, sink + window)
    return KVCache.estimate_bytes(
        layers=cfg.depth,
        tokens=held * cfg.tokens_per_frame,
        batch=batch,
        heads=cfg.heads,
        head_dim=cfg.dim // cfg.heads,
        bytes_per_value=bytes_per_value,
    )
