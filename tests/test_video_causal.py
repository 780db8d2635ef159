"""The causal video DiT's caches against recomputation (float32, random weights):

* cached chunkwise generation = full block-causal recomputation (≤ 1e-5), with and without
  context, for 1- and 2-frame chunks and both samplers; dropping the absolute frame offset of
  RoPE breaks it loudly (> 1e-2);
* after every chunk the cache holds exactly the keys and values of a fresh clean pass over
  the frames generated so far (≤ 1e-6);
* the rolling cache = sliding-window recomputation (≤ 1e-5) and never holds more than
  (sink + window) × tokens-per-frame entries;
* token-forward counts of cached and recomputed sampling are the closed forms;
* the cross-attention cache is computed once per video; the memory estimate is exact;
* the caches passed as tensors (``ExplicitCacheModel``, homework 7) give what the library's
  cache gives, also after eviction, where the chunk's position comes from ``start_frame``;

and what each training method feeds the causal model:

* teacher forcing's one-pass [clean; noisy] prediction = cached inference with the clean
  ground-truth past in the KV cache (≤ 1e-5);
* diffusion forcing draws one level per chunk, and the block-causal pass never lets a frame
  see the future;
* Self-Forcing's training rollout *is* the inference sampler (same generator → same clip),
  and gradient truncation keeps exactly one network evaluation per chunk in the graph, none
  through the cache;
* CausVid's student clip is one block-causal pass over data noised at the few-step levels.
"""

from __future__ import annotations

import pytest
import torch

from visgen.sampling import uniform
from visgen.video import VideoDiT
from visgen.video.distill import FEW_STEPS, CausVid, rollout
from visgen.video.dit import randomize_zero_init
from visgen.video.forcing import Forcing, chunk_times
from visgen.video.sampling import (
    ExplicitCacheModel,
    denoise_chunk,
    generate,
    generate_recompute,
    kv_cache_bytes,
    token_forwards,
)

CHANNELS, SIZE = 1, 16
STEPS = 3
TS = uniform(STEPS)


def causal_model(chunk: int, seed: int = 0, **options) -> VideoDiT:
    """A frame-block-causal DiT whose zero-initialised weights are randomised too (a fresh
    adaLN-Zero DiT predicts exactly 0, which would make every comparison trivial)."""
    kw = dict(patch_size=4, dim=32, depth=2, heads=2, chunk=chunk, text_vocab=12, text_len=3)
    return randomize_zero_init(VideoDiT(CHANNELS, SIZE, **{**kw, **options}).eval(), seed)


def captions(batch: int) -> torch.Tensor:
    return torch.tensor([[1, 4, -1], [2, -1, -1], [0, 3, 5]])[:batch]


class TokenCounter:
    """Counts the tokens entering the network per video: a hook on the patch embedding."""

    def __init__(self, model: VideoDiT, batch: int):
        self.count, self.batch = 0, batch
        model.embed.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.count += output.shape[0] * output.shape[1] // self.batch


def run(sampler_fn, model, frames, **kw):
    kw.setdefault("generator", torch.Generator().manual_seed(7))
    return sampler_fn(model, frames, TS, cond=captions(2), **kw)


@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("sampler", ["multistep", "euler"])
def test_cached_generation_equals_block_causal_recomputation(chunk, sampler):
    model = causal_model(chunk)
    context = torch.randn(
        2, 2 * chunk, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(3)
    )
    for ctx in (None, context):
        batch = None if ctx is not None else 2
        cached = run(generate, model, 6 * chunk, batch=batch, context=ctx, sampler=sampler)
        full = run(generate_recompute, model, 6 * chunk, batch=batch, context=ctx, sampler=sampler)
        assert cached.shape == (2, 6 * chunk, CHANNELS, SIZE, SIZE)
        assert (cached - full).abs().max() <= 1e-5
        assert cached.abs().mean() > 0.1  # a real video, not zeros
        if ctx is not None:
            assert torch.equal(cached[:, : ctx.shape[1]], ctx)


def generate_without_offset(model, frames, generator, monkeypatch):
    """The RoPE-offset bug: every chunk's queries and keys rotated at chunk-relative frames
    0 … k − 1 instead of its absolute frames (the cache still advances by k frames)."""
    k = model.cfg.chunk
    text = model.encode_condition(captions(2), 2)
    cache, out = model.new_cache(), []
    rope = model.rope
    for s in range(0, frames, k):
        monkeypatch.setattr(model, "rope", lambda f, per_token, s=s: rope(f - s, per_token))
        noise = torch.randn(2, k, CHANNELS, SIZE, SIZE, generator=generator)
        chunk = denoise_chunk(model, noise, TS, cache, start_frame=s, text=text,
                              generator=generator)  # fmt: skip
        model.forward_chunk(chunk, 0.0, cache, start_frame=s, text=text, commit=True)
        out.append(chunk)
    monkeypatch.undo()
    return torch.cat(out, 1)


def test_dropping_the_absolute_frame_offset_fails_loudly(monkeypatch):
    model = causal_model(1)
    full = run(generate_recompute, model, 6, batch=2)
    buggy = generate_without_offset(model, 6, torch.Generator().manual_seed(7), monkeypatch)
    assert (buggy[:, 0] - full[:, 0]).abs().max() <= 1e-5  # chunk 0 starts at frame 0 anyway
    assert (buggy - full).abs().max() > 1e-2


def test_cache_holds_the_keys_and_values_of_a_fresh_clean_pass():
    model = causal_model(2)
    checked = []

    def compare(start, chunk, cache):
        frames = torch.cat([*videos, chunk], 1)
        videos.append(chunk)
        fresh: list = []
        model(frames, 0.0, text=cache_text, kv_out=fresh)  # one clean pass, full mask
        for layer, (k, v) in enumerate(fresh):
            assert cache.keys[layer].shape == k.shape
            assert (cache.keys[layer] - k).abs().max() <= 1e-6
            assert (cache.values[layer] - v).abs().max() <= 1e-6
        checked.append(start)

    videos: list = []
    cache_text = model.encode_condition(captions(2), 2)
    generate(model, 8, TS, cond=captions(2), generator=torch.Generator().manual_seed(1),
             callback=compare)  # fmt: skip
    assert checked == [0, 2, 4, 6]


@pytest.mark.parametrize("window, sink", [(2, 0), (4, 2), (2, 2)])
def test_rolling_cache_equals_sliding_window_recomputation_and_stays_bounded(window, sink):
    model = causal_model(2)
    p = model.cfg.tokens_per_frame
    sizes = []
    cached = run(generate, model, 12, batch=2, window=window, sink=sink,
                 callback=lambda s, chunk, cache: sizes.append(len(cache)))  # fmt: skip
    full = run(generate_recompute, model, 12, batch=2, window=window, sink=sink)
    assert (cached - full).abs().max() <= 1e-5
    assert max(sizes) == (sink + window) * p  # the bound is reached and never exceeded
    unbounded = run(generate, model, 12, batch=2)
    assert (unbounded - cached).abs().max() > 1e-2  # the window does change the video


@pytest.mark.parametrize("chunk, context", [(1, 0), (2, 0), (2, 4)])
def test_token_forward_counts_are_the_closed_forms(chunk, context):
    model = causal_model(chunk)
    frames, p = 8, model.cfg.tokens_per_frame
    ctx = torch.zeros(2, context, CHANNELS, SIZE, SIZE) if context else None
    batch = None if context else 2
    counted = {}
    for name, fn in (("cached", generate), ("recompute", generate_recompute)):
        model = causal_model(chunk)
        counter = TokenCounter(model, 2)
        run(fn, model, frames, batch=batch, context=ctx)
        counted[name] = counter.count
    assert counted["cached"] == token_forwards(frames, chunk, STEPS, p, context=context)
    assert counted["recompute"] == token_forwards(frames, chunk, STEPS, p, context=context,
                                                  cached=False)  # fmt: skip
    if chunk == 1 and not context:  # the closed forms T·P·(S+1) and P·S·T(T+1)/2
        assert counted["cached"] == frames * p * (STEPS + 1)
        assert counted["recompute"] == p * STEPS * frames * (frames + 1) // 2


def test_cross_attention_keys_are_computed_once_per_video(monkeypatch):
    model = causal_model(1)
    calls = []
    original = model.encode_condition
    monkeypatch.setattr(model, "encode_condition", lambda *a: calls.append(1) or original(*a))
    run(generate, model, 6, batch=2)
    assert calls == [1]
    with pytest.raises(ValueError, match="text"):
        model.forward_chunk(torch.zeros(2, 1, CHANNELS, SIZE, SIZE), 0.5, model.new_cache(),
                            start_frame=0)  # fmt: skip


def test_kv_memory_estimate_is_exact():
    model = causal_model(2)
    sizes = []
    run(generate, model, 12, batch=2, window=4, sink=2,
        callback=lambda s, chunk, c: sizes.append((s + 2, c.nbytes())))  # fmt: skip
    for frames, nbytes in sizes:
        assert nbytes == kv_cache_bytes(model, frames, batch=2, window=4, sink=2)
    assert sizes[-1][1] < kv_cache_bytes(model, 12, batch=2)  # the window saves memory
    # Self-Forcing's Wan2.1-1.3B: 30 blocks, 12 heads × 128, 1560 tokens per latent frame,
    # 21 frames in bf16 → 2 × 30 × 32 760 × 1536 × 2 bytes ≈ 6.0 GB per video
    wan = type("Cfg", (), dict(depth=30, tokens_per_frame=1560, heads=12, dim=1536))
    assert kv_cache_bytes(wan, 21, bytes_per_value=2) == 2 * 30 * 21 * 1560 * 1536 * 2


def test_explicit_cache_model_is_the_library_cache_held_by_the_caller():
    model = causal_model(2)
    step = ExplicitCacheModel(model)
    text, lib_text = step.encode(captions(2)), model.encode_condition(captions(2), 2)
    cache = model.new_cache(window=2, sink=2)  # the library's rolling cache …
    past, frames, p = None, clip(10, seed=4), model.cfg.tokens_per_frame
    for s in range(0, 10, 2):
        x = frames[:, s : s + 2]
        out, _ = step(x, 0.3, past, start_frame=s, text=text)
        expected = model.forward_chunk(x, 0.3, cache, start_frame=s, text=lib_text)
        assert (out - expected).abs().max() <= 1e-6
        model.forward_chunk(x, 0.0, cache, start_frame=s, text=lib_text, commit=True)
        _, present = step(x, 0.0, past, start_frame=s, text=text)
        assert present[0][0].shape[-2] == 2 * p  # the chunk's own keys only
        if past is not None:  # append the chunk block by block: [keys; new keys], [values; …]
            present = [tuple(torch.cat(kv, -2) for kv in zip(*pair)) for pair in zip(past, present)]
        past = present
        if past[0][0].shape[-2] > 4 * p:  # … and the same eviction by the caller
            past = [(torch.cat([k[..., : 2 * p, :], k[..., -2 * p :, :]], -2),
                     torch.cat([v[..., : 2 * p, :], v[..., -2 * p :, :]], -2)) for k, v in past]  # fmt: skip
        for layer, (k, v) in enumerate(past):
            assert (k - cache.keys[layer]).abs().max() <= 1e-6
            assert (v - cache.values[layer]).abs().max() <= 1e-6
    assert len(cache) < cache.committed  # frames were evicted: positions came from start_frame
    x = frames[:, :2]
    with pytest.raises(ValueError, match="past must be None or 2"):
        step(x, 0.5, past[:1], start_frame=10, text=text)
    with pytest.raises(ValueError, match="several chunks at once need the whole past"):
        step(frames[:, :4], 0.0, past, start_frame=10, text=text)
    with pytest.raises(ValueError, match="start_frame must be a non-negative int"):
        step(x, 0.5, None, start_frame=-2, text=text)
    with pytest.raises(ValueError, match="text must be the"):
        step(x, 0.5, None, start_frame=0, text=text[0])
    with pytest.raises(ValueError, match="cond must hold the captions"):
        step.encode(None)
    with pytest.raises(TypeError, match="frame-block-causal"):
        ExplicitCacheModel(VideoDiT(1, 16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frames=7), "frames=7 must be divisible by the chunk size 2"),
        (dict(window=1), "window must be an int of at least chunk=2"),
        (dict(window=3), "window=3 frames must be a multiple of chunk=2"),
        (dict(window=4, sink=1), "sink must be a non-negative multiple of chunk=2"),
        (dict(sink=2), "sink needs a window"),
        (dict(context=torch.zeros(2, 3, 1, 16, 16)), "context must hold whole chunks"),
        (dict(context=torch.zeros(2, 2, 3, 16, 16)), "context must have frames of shape"),
        (dict(context_noise=1.0), "context_noise"),
        (dict(sampler="heun"), "sampler"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    model = causal_model(2)
    frames = kwargs.pop("frames", 8)
    if "context" not in kwargs:
        kwargs["batch"] = 2
    with pytest.raises(ValueError, match=match):
        run(generate, model, frames, **kwargs)


def test_model_input_errors_name_the_argument():
    model = causal_model(2)
    x = torch.zeros(2, 4, CHANNELS, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"x must be a video \(B, F, C, H, W\)"):
        model(x[0], 0.5)
    with pytest.raises(ValueError, match="frames F=3 must be divisible by chunk=2"):
        model(x[:, :3], 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar, \(B,\)"):
        model(x, torch.zeros(3))
    with pytest.raises(ValueError, match="start_frame=2 but the cache has seen 0 frames"):
        model.forward_chunk(x[:, :2], 0.5, model.new_cache(), start_frame=2,
                            text=model.encode_condition(None, 2))  # fmt: skip
    with pytest.raises(ValueError, match="x holds 1 frames; it must be whole chunks of 2"):
        model.forward_chunk(x[:, :1], 0.5, model.new_cache(), start_frame=0,
                            text=model.encode_condition(None, 2))  # fmt: skip
    with pytest.raises(ValueError, match="window"):
        model.new_cache(window=1)
    with pytest.raises(ValueError, match="factorised attention is bidirectional"):
        VideoDiT(1, 16, attention="factorised", chunk=2)


def clip(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(
        2, frames, CHANNELS, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)
    )


def test_teacher_forcing_equals_cached_inference_with_the_clean_past():
    model = causal_model(2)
    x0, noise = clip(6, 1), clip(6, 2)
    t = chunk_times(2, 6, 2, torch.Generator().manual_seed(3))
    tt = t[:, :, None, None, None]
    xt = (1 - tt) * x0 + tt * noise
    text = model.encode_condition(captions(2), 2)
    forced = model(xt, t, clean=x0, text=text)
    cache = model.new_cache()
    for s in (0, 2, 4):
        pred = model.forward_chunk(
            xt[:, s : s + 2], t[:, s : s + 2], cache, start_frame=s, text=text
        )
        assert (pred - forced[:, s : s + 2]).abs().max() <= 1e-5
        model.forward_chunk(x0[:, s : s + 2], 0.0, cache, start_frame=s, text=text, commit=True)
    # the noisy chunks never see each other: changing chunk 0's noise leaves chunk 1 alone
    other = xt.clone()
    other[:, :2] += 1
    changed = model(other, t, clean=x0, text=text) - forced
    assert changed[:, :2].abs().max() > 1e-2 and changed[:, 2:].abs().max() <= 1e-6


def test_diffusion_forcing_levels_per_chunk_and_causality():
    t = chunk_times(4, 8, 4, torch.Generator().manual_seed(0))
    assert torch.equal(t[:, :4], t[:, :1].expand(-1, 4)) and not torch.equal(t[:, 0], t[:, 4])
    model = causal_model(2)
    x, times = clip(6, 4), chunk_times(2, 6, 2, torch.Generator().manual_seed(5))
    out = model(x, times, captions(2))
    future = x.clone()
    future[:, 4:] = 0
    assert (model(future, times, captions(2))[:, :4] - out[:, :4]).abs().max() <= 1e-6
    method = Forcing("diffusion", chunk=2)
    batch = method.draw({"x0": clip(6), "cond": captions(2)}, torch.Generator().manual_seed(6))
    loss = method.loss(model, batch)
    assert loss.shape == (2,) and (loss > 0).all()


def test_self_forcing_rollout_is_the_inference_sampler():
    model = causal_model(2)
    ts = torch.tensor(FEW_STEPS)
    sampled = generate(model, 6, ts, cond=captions(2), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        rolled = rollout(model, 6, ts, batch=2, cond=captions(2),
                         generator=torch.Generator().manual_seed(9))  # fmt: skip
    assert (rolled - sampled).abs().max() <= 1e-5


def test_self_forcing_rollout_from_real_context_is_the_inference_sampler():
    model = causal_model(2)
    ts = torch.tensor(FEW_STEPS)
    context = clip(4, seed=3)
    sampled = generate(model, 6, ts, cond=captions(2), context=context,
                       generator=torch.Generator().manual_seed(9))  # fmt: skip
    with torch.no_grad():
        rolled = rollout(model, 6, ts, batch=2, cond=captions(2), context=context,
                         generator=torch.Generator().manual_seed(9))  # fmt: skip
    assert torch.equal(rolled[:, :4], context)
    assert (rolled - sampled).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="context must hold whole chunks"):
        rollout(model, 6, ts, batch=2, cond=captions(2), context=clip(3))


def test_gradient_truncation_keeps_one_evaluation_per_chunk():
    model = causal_model(2).train().requires_grad_(True)
    ts = torch.tensor(FEW_STEPS)
    graphs = []
    model.embed.register_forward_hook(lambda m, i, o: graphs.append(o.requires_grad))
    video = rollout(model, 6, ts, batch=2, cond=captions(2), exit_step=2,
                    generator=torch.Generator().manual_seed(1))  # fmt: skip
    # per chunk: 3 evaluations up to the exit step (only the last with a graph) + 1 clean write
    assert graphs == [False, False, True, False] * 3
    video.pow(2).mean().backward()
    assert model.embed.weight.grad.abs().sum() > 0
    assert video.shape == (2, 6, CHANNELS, SIZE, SIZE)


def test_causvid_student_clip_is_one_block_causal_pass_at_the_few_step_levels(monkeypatch):
    model = causal_model(2)
    method = CausVid.__new__(CausVid)  # the clip needs no assets
    method.ts = list(FEW_STEPS)
    seen = []
    original = model.forward
    monkeypatch.setattr(
        model, "forward", lambda x, t, *a, **k: seen.append(t) or original(x, t, *a, **k)
    )
    x0 = clip(6)
    out = method.student_clip(model, x0, captions(2), torch.Generator().manual_seed(2))
    (t,) = seen
    assert out.shape == x0.shape and t.shape == (2, 6)
    assert set(t.unique().tolist()) <= set(FEW_STEPS[:-1])
    assert torch.equal(t[:, ::2], t[:, 1::2])  # one level per chunk of 2 frames
