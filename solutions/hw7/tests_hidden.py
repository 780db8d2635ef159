"""Hidden tests of homework 7. Each test takes `sub`, the notebook's definitions.

Oracles: visgen's consistency sampler (`sample_consistency`), chunkwise sampler with a KV
cache (`denoise_chunk`, `generate`) and its recomputation oracle (`generate_recompute`: every
step over all frames so far under the block-causal or sliding-window mask), the keys and
values of a fresh clean pass (`VideoDiT.forward(kv_out=...)`), the memory estimate
(`kv_cache_bytes`) and the bytes a library cache really holds (`KVCache.nbytes`). The
networks are random-weight causal video DiTs of the homework model's architecture (every
zero-initialised weight drawn, so that every block acts); the model stays in the grader and
the notebook calls it through `ExplicitCacheModel`. Each graded function is tested on its
own: the `_ref_*` functions below stand in for every other graded function.
"""

import torch

from visgen.course.testing import as_float64, assert_close, check
from visgen.fewstep import sample_consistency
from visgen.param import Denoiser
from visgen.video import VideoDiT
from visgen.video.assets import architecture
from visgen.video.dit import randomize_zero_init
from visgen.video.sampling import (
    ExplicitCacheModel,
    denoise_chunk,
    generate,
    generate_recompute,
    kv_cache_bytes,
)

FEW_STEPS = (1.0, 0.75, 0.5, 0.25, 0.0)
FRAME = (1, 16, 16)  # channels, height, width of the homework model's frames
ATOL = 1e-5  # float32 networks with outputs of size ≈ 10: rounding differences stay < 1e-5


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _net(chunk, seed=0):
    """A causal video DiT of the homework model's architecture with random weights."""
    config = architecture(chunk)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = VideoDiT(**{key: value for key, value in config.items() if key != "name"})
    return randomize_zero_init(net, seed).eval()


def _cond(batch, seed=0):
    """Caption word ids (B, text_len) with padding (−1) at the end of each caption."""
    words, length = architecture()["text_vocab"], architecture()["text_len"]
    ids = torch.randint(0, words, (batch, length), generator=_gen(seed))
    lengths = torch.randint(2, length, (batch,), generator=_gen(seed + 1))
    return ids.masked_fill(torch.arange(length) >= lengths[:, None], -1)


class _Recorder:
    """Calls an ExplicitCacheModel and records what the notebook passed."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, x, t, past=None, *, start_frame, text=None):
        held = 0 if past is None else int(past[0][0].shape[-2])
        self.calls.append({"t": float(torch.as_tensor(t).flatten()[0]), "start": start_frame,
                           "held": held, "x": x.detach().clone()})  # fmt: skip
        return self.model(x, t, past, start_frame=start_frame, text=text)


class _Encoder:
    """Counts how often the notebook computes the cross-attention cache."""

    def __init__(self, model):
        self.model = model
        self.calls = 0

    def __call__(self, cond):
        self.calls += 1
        return self.model.encode(cond)


# --- references of the graded functions ----------------------------------------------
def _ref_sample_chunk(denoise, noise, ts, generator=None):
    den = Denoiser(lambda x, t, cond: denoise(x, float(t.flatten()[0])), "linear", "x0")
    return sample_consistency(den, noise, torch.as_tensor(ts, dtype=torch.float64),
                              generator=generator)  # fmt: skip


def _ref_generate_chunk(model, noise, ts, past, start_frame, text, generator=None):
    chunk = _ref_sample_chunk(
        lambda x, t: model(x, t, past, start_frame=start_frame, text=text)[0], noise, ts, generator
    )
    _, present = model(chunk, 0.0, past, start_frame=start_frame, text=text)
    if past is None:
        return chunk, present
    return chunk, [(torch.cat([pk, k], -2), torch.cat([pv, v], -2))
                   for (pk, pv), (k, v) in zip(past, present)]  # fmt: skip


def _ref_roll_cache(past, window_tokens, sink_tokens=0):
    n = past[0][0].shape[-2]
    if n <= sink_tokens + window_tokens:
        return past
    keep = list(range(sink_tokens)) + list(range(n - window_tokens, n))
    return [(k[..., keep, :], v[..., keep, :]) for k, v in past]


REFERENCES = {
    "sample_chunk": _ref_sample_chunk,
    "generate_chunk": _ref_generate_chunk,
    "roll_cache": _ref_roll_cache,
}


def _others(*graded):
    """Reference versions of every graded function except the ones under test."""
    return {k: v for k, v in REFERENCES.items() if k not in graded}


def _check_cache(past, layers, what):
    check(
        isinstance(past, (list, tuple)) and len(past) == layers,
        f"{what} must be a list of {layers} (keys, values) pairs, one per block",
    )
    for pair in past:
        check(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and all(map(torch.is_tensor, pair)),
            f"every block of {what} must be a (keys, values) pair of tensors",
        )


# --- 1.1 the stochastic multistep sampler -----------------------------------------------
class _Denoise:
    """A smooth x0-predictor of (x, t) that records the times it is called at."""

    def __init__(self):
        self.times = []

    def __call__(self, x, t):
        t = float(torch.as_tensor(t, dtype=torch.float64).flatten()[0])
        self.times.append(t)
        return torch.tanh(1.3 * x + t) * (1 - 0.4 * t) + 0.1 * t


def test_sample_chunk(sub):
    for ts, seed in ((FEW_STEPS, 0), ((1.0, 0.0), 1), ((0.9, 0.6, 0.2, 0.0), 2)):
        noise = torch.randn(2, 4, *FRAME, generator=_gen(10 + seed))
        denoise, g = _Denoise(), _gen(seed)
        got = sub.sample_chunk(denoise, noise, ts, g)
        g_ref = _gen(seed)
        expected = _ref_sample_chunk(_Denoise(), noise, ts, g_ref)
        check(torch.is_tensor(got), f"sample_chunk must return a tensor, got {type(got).__name__}")
        assert_close(got, expected, f"sample_chunk over the grid {list(ts)}", atol=1e-6)
        levels = [float(t) for t in ts[:-1]]
        check(
            len(denoise.times) == len(levels)
            and all(abs(a - b) < 1e-6 for a, b in zip(denoise.times, levels)),
            f"over the grid {list(ts)} the network must be called once at each level but the "
            f"last (t = {levels}), in order; it was called at "
            f"{[round(t, 4) for t in denoise.times]}",
        )
        check(
            torch.equal(g.get_state(), g_ref.get_state()),
            "sample_chunk must draw the re-noising noise from `generator`, exactly one "
            "torch.randn(x.shape) per level before the last",
        )
    tensor_ts = torch.tensor(FEW_STEPS)  # the grid may also come as a tensor
    noise = torch.randn(1, 4, *FRAME, generator=_gen(20))
    got = sub.sample_chunk(_Denoise(), noise, tensor_ts, _gen(3))
    expected = _ref_sample_chunk(_Denoise(), noise, FEW_STEPS, _gen(3))
    assert_close(got, expected, "sample_chunk with a tensor grid", atol=1e-6)


# --- 1.2 one chunk: read while denoising, write at t = 0 ------------------------------
def test_generate_chunk(sub):
    chunk = 2
    model = _Recorder(ExplicitCacheModel(_net(chunk, seed=1)))
    ref_net = _net(chunk, seed=1)
    cond = _cond(2, seed=3)
    text = ExplicitCacheModel(ref_net).encode(cond)
    ref_text = ref_net.encode_condition(cond, 2)
    frames = torch.rand(2, 4, *FRAME, generator=_gen(4)) * 2 - 1  # clean frames 0–3
    past = ExplicitCacheModel(ref_net)(frames, 0.0, None, start_frame=0, text=text)[1]

    # the first chunk (empty cache), then a chunk at frames 4–5 against frames 0–3
    for before, start in ((None, 0), (frames, 4)):
        cache_in = None if before is None else past
        noise = torch.randn(2, chunk, *FRAME, generator=_gen(5 + start))
        g, g_ref = _gen(6), _gen(6)
        model.calls.clear()
        with sub.replaced(**_others("generate_chunk")):
            got = sub.generate_chunk(model, noise, FEW_STEPS, cache_in, start, text, g)
        check(
            isinstance(got, (list, tuple)) and len(got) == 2,
            "generate_chunk must return (chunk, past)",
        )
        got_chunk, got_past = got
        cache = ref_net.new_cache()
        if before is not None:
            ref_net.forward_chunk(before, 0.0, cache, start_frame=0, text=ref_text, commit=True)
        expected = denoise_chunk(ref_net, noise, torch.tensor(FEW_STEPS), cache,
                                 start_frame=start, text=ref_text, generator=g_ref)  # fmt: skip
        where = f"the chunk at frame {start}" + ("" if before is None else " (4 frames cached)")
        assert_close(got_chunk, expected, where, atol=ATOL)
        check(torch.equal(g.get_state(), g_ref.get_state()),
              "generate_chunk must draw its noise from `generator` (through sample_chunk)")  # fmt: skip

        calls = model.calls
        steps = len(FEW_STEPS) - 1
        check(len(calls) == steps + 1,
              f"generate_chunk must call the model {steps} times to denoise and once to write "
              f"the cache, got {len(calls)} calls")  # fmt: skip
        held = 0 if before is None else before.shape[1] * 4
        check(all(c["held"] == held for c in calls),
              f"every call must attend to the cache it was given ({held} tokens): the cache is "
              "only read while the chunk is denoised")  # fmt: skip
        check(all(c["start"] == start for c in calls),
              f"every call must place the chunk at start_frame = {start}")  # fmt: skip
        last = calls[-1]
        check(last["t"] == 0.0 and torch.equal(last["x"], got_chunk.detach()),
              "the last call must be the clean pass: the generated chunk at t = 0")  # fmt: skip

        # the cache now holds exactly the keys and values of a fresh clean pass
        fresh = []
        clip = expected if before is None else torch.cat([before, expected], 1)
        with torch.no_grad():
            ref_net(clip, 0.0, text=ref_text, kv_out=fresh)
        _check_cache(got_past, len(fresh), "the returned past")
        for layer, ((k, v), (fk, fv)) in enumerate(zip(got_past, fresh)):
            assert_close(k, fk, f"the cached keys of block {layer} after {where}", atol=ATOL)
            assert_close(v, fv, f"the cached values of block {layer} after {where}", atol=ATOL)


# --- 2.1 the rolling cache ------------------------------------------------------------------
def test_roll_cache(sub):
    g = _gen(7)
    for tokens, window, sink in ((40, 16, 8), (40, 16, 0), (24, 16, 8), (20, 16, 8), (25, 4, 4)):
        past = [(torch.randn(2, 4, tokens, 12, generator=g), torch.randn(2, 4, tokens, 12, generator=g))
                for _ in range(3)]  # fmt: skip
        got = sub.roll_cache(past, window, sink)
        expected = _ref_roll_cache(past, window, sink)
        what = f"roll_cache of {tokens} tokens (window {window}, sink {sink})"
        _check_cache(got, 3, what)
        for (k, v), (ek, ev) in zip(got, expected):
            check(k.shape == ek.shape and v.shape == ev.shape,
                  f"{what} must hold {ek.shape[-2]} tokens per block, got {k.shape[-2]}")  # fmt: skip
            check(torch.equal(k, ek) and torch.equal(v, ev),
                  f"{what}: the tokens kept must be the first {sink} and the last {window}, in "
                  "order")  # fmt: skip


# --- 2.2 the whole video ------------------------------------------------------------------
def _video_case(sub, chunk, frames, seed, *, context_frames=0, window=None, sink=0):
    """The notebook's video against the library's cached sampler (same generator seed) and
    against recomputation (the oracle); returns what the model saw."""
    batch = 2
    model = _Recorder(ExplicitCacheModel(_net(chunk, seed)))
    encoder = _Encoder(model.model)
    ref_net = _net(chunk, seed)
    cond = _cond(batch, seed)
    context = None
    if context_frames:
        context = torch.rand(batch, context_frames, *FRAME, generator=_gen(seed + 9)) * 2 - 1
    g = _gen(seed + 5)
    with sub.replaced(**_others("generate_video")):
        got = sub.generate_video(model, encoder, cond, (batch, frames, *FRAME), chunk, FEW_STEPS,
                                 g, context, window, sink)  # fmt: skip
    options = dict(cond=cond, context=context, window=window, sink=sink)
    g_ref = _gen(seed + 5)
    ts = torch.tensor(FEW_STEPS)
    expected = generate(ref_net, frames, ts, generator=g_ref, **options)
    oracle = generate_recompute(ref_net, frames, ts, generator=_gen(seed + 5), **options)
    what = (f"the video of {frames} frames in chunks of {chunk}"
            + (f", {context_frames} context frames" if context_frames else "")
            + (f", rolling cache (window {window}, sink {sink})" if window else ""))  # fmt: skip
    check(torch.is_tensor(got), f"generate_video must return a tensor, got {type(got).__name__}")
    check(encoder.calls == 1,
          f"the cross-attention cache must be computed once per video, encode was called "
          f"{encoder.calls} times")  # fmt: skip
    starts = sorted({c["start"] for c in model.calls if c["x"].shape[1] == chunk} - {0})
    first = context_frames or chunk
    check(starts == list(range(first, frames, chunk)),
          f"{what}: each chunk's start_frame must be its absolute frame index in the video "
          f"(the RoPE offset), got chunks at frames {[0, *starts] if not context_frames else starts}")  # fmt: skip
    assert_close(got, oracle, f"{what} against recomputation without a cache", atol=ATOL)
    assert_close(got, expected, f"{what} against the reference video (same seed)", atol=ATOL)
    check(torch.equal(g.get_state(), g_ref.get_state()),
          "one generator draws everything: the chunk noise, then the sampler's re-noising")  # fmt: skip
    return model.calls


def test_generate_video(sub):
    calls = _video_case(sub, chunk=2, frames=8, seed=0)
    check(sum(c["t"] == 0.0 for c in calls) == 4, "one clean t = 0 pass per chunk")
    calls = _video_case(sub, chunk=1, frames=9, seed=1, context_frames=2, window=2, sink=1)
    context_pass = [c for c in calls if c["start"] == 0]
    check(len(context_pass) == 1 and context_pass[0]["x"].shape[1] == 2 and context_pass[0]["t"] == 0,
          "the context frames must be written by one pass at t = 0 from frame 0")  # fmt: skip
    check(max(c["held"] for c in calls) <= (1 + 2) * 4,
          "the rolling cache must never hold more than (sink + window) frames")  # fmt: skip
    _video_case(sub, chunk=2, frames=10, seed=2, context_frames=4, window=2)


# --- 2.3 KV memory ----------------------------------------------------------------------------
def test_kv_memory(sub):
    wan = type("Wan", (), dict(depth=30, tokens_per_frame=1560, heads=12, dim=1536))
    cases = [
        ((30, 12, 128, 1560, 42, 2), {}, kv_cache_bytes(wan, 42, bytes_per_value=2)),
        ((30, 12, 128, 1560, 21, 2), {}, kv_cache_bytes(wan, 21, bytes_per_value=2)),
        ((30, 12, 128, 1560, 42, 2), dict(window=21), kv_cache_bytes(wan, 42, bytes_per_value=2, window=21)),
        ((30, 12, 128, 1560, 42, 2), dict(window=18, sink=3),
         kv_cache_bytes(wan, 42, bytes_per_value=2, window=18, sink=3)),
        ((30, 12, 128, 1560, 12, 2), dict(window=18, sink=3),
         kv_cache_bytes(wan, 12, bytes_per_value=2, window=18, sink=3)),
        ((3, 4, 12, 4, 32, 4), dict(batch=8), kv_cache_bytes(_net(4), 32, batch=8)),
    ]  # fmt: skip
    for args, kwargs, expected in cases:
        got = as_float64(sub.kv_memory(*args, **kwargs), "kv_memory")
        check(got.numel() == 1 and float(got) == expected,
              f"kv_memory{args} with {kwargs or 'no rolling'} is not the exact size of the cache")  # fmt: skip
    # … and the bytes a rolling library cache really holds after 12 frames
    net = _net(2)
    held = []
    generate(net, 12, torch.tensor(FEW_STEPS), cond=_cond(3), window=4, sink=2, generator=_gen(0),
             callback=lambda s, c, cache: held.append(cache.nbytes()))  # fmt: skip
    got = as_float64(sub.kv_memory(3, 4, 12, 4, 12, 4, batch=3, window=4, sink=2), "kv_memory")
    check(float(got) == held[-1], "kv_memory must equal the bytes the rolling cache holds")
