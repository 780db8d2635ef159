# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Seminar 9 — a causal video model and its caches, step by step
#
# Streaming video generators (CausVid, Self-Forcing) generate a video **chunk by chunk** with
# a frame-block-causal transformer and two caches: the keys and values of the frames already
# generated (the **KV cache**) and those of the prompt (the **cross-attention cache**). This
# seminar takes one such model apart on a CPU-sized toy — one shape bouncing in a 16×16 frame
# — and checks every step against recomputation:
#
# 1. the data and its physics;
# 2. the causal video DiT: tokens, the block-causal mask, RoPE at absolute frame positions;
# 3. generating one chunk: read the cache while denoising, write it with a clean t = 0 pass;
# 4. the whole video: cached = recomputed, the cost in token-forwards, the RoPE-offset bug;
# 5. the rolling cache with an attention sink, and the KV memory of a real model;
# 6. a trained few-step student (Self-Forcing) continuing a clip beyond its training length.
#
# Everything runs in a minute on a laptop CPU (`VISGEN_FAST=1`: smaller budgets). Code:
# `visgen.video` (slides: `lectures/09-video/slides.pdf`; homework 7 builds on the same model).

# %%
import matplotlib.pyplot as plt
import torch

import visgen
from visgen.data import tokenize_captions
from visgen.data.video import bouncing_shapes
from visgen.nn.attention import apply_rope, rope_1d
from visgen.train import asset
from visgen.video import VideoDiT
from visgen.video.dit import chunk_mask, randomize_zero_init
from visgen.video.evaluation import eval_clips, rollout_metrics
from visgen.video.sampling import (
    denoise_chunk,
    generate,
    generate_recompute,
    kv_cache_bytes,
    token_forwards,
)

visgen.set_threads(1)
print("FAST budgets" if visgen.config.is_fast() else "full budgets")


def show(video, title="", n=None):
    """Frames of one video (F, 1, H, W) in a row."""
    frames = video[:n] if n else video
    fig, axes = plt.subplots(1, len(frames), figsize=(0.8 * len(frames), 1.0))
    for ax, frame in zip(axes, frames):
        ax.imshow(frame[0].numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    plt.show()


# %% [markdown]
# ## 1. Data with exact physics
#
# `bouncing_shapes` simulates each object (p ← p + v, mirrored at the walls) and renders it;
# the clip keeps the true centre and velocity of every frame. Videos are tensors
# (B, F, C, H, W) in [−1, 1].

# %%
clips = bouncing_shapes(4, 16, 16, seed=0, channels=1, sizes=("medium",))
print(clips.video.shape, clips.captions[0])
show(clips.video[0], "a real clip")
plt.plot(clips.position[0, :, 0, 0], label="x")
plt.plot(clips.position[0, :, 0, 1], label="y")
for f in torch.nonzero(clips.bounce[0, :, 0]).flatten():
    plt.axvline(f - 0.5, color="grey", lw=0.8)
plt.xlabel("frame")
plt.ylabel("centre (px)")
plt.legend()
plt.show()

# %% [markdown]
# ## 2. The frame-block-causal DiT
#
# Every 16×16 frame is cut into P = 4 patches of 8×8 (one token each), so F frames are F·P
# tokens. With chunks of k frames, a token of chunk i attends to the tokens of chunks ≤ i —
# the **block-causal mask** (CausVid eq. 5). We use random weights first: the cache must be
# exact for *any* network.

# %%
model = randomize_zero_init(
    VideoDiT(1, 16, patch_size=8, dim=48, depth=3, heads=4, chunk=2, text_vocab=20, text_len=8),
    seed=0,
).eval()
P = model.cfg.tokens_per_frame
frames_of_tokens = torch.arange(6).repeat_interleave(P)
plt.imshow(chunk_mask(frames_of_tokens, frames_of_tokens, chunk=2).numpy(), cmap="Greys")
plt.title("block-causal mask: 6 frames × 4 tokens, chunks of 2")
plt.xlabel("key token")
plt.ylabel("query token")
plt.show()

# %% [markdown]
# The frame index enters only through **RoPE**: queries and keys of frame f are rotated by
# f·ω_i, so a score depends on the frame *offset*. Keys are rotated before they are cached;
# a chunk generated later must therefore be rotated at its **absolute** frame index.

# %%
cos, sin = rope_1d(torch.arange(40), model.head_dim, base=model.cfg.rope_base)
q, k = torch.randn(12), torch.randn(12)
for m, n in [(3, 1), (13, 11), (33, 31), (3, 3)]:
    score = (apply_rope(q, cos[m], sin[m]) * apply_rope(k, cos[n], sin[n])).sum()
    print(f"query at frame {m:2d}, key at frame {n:2d}: score {score:+.4f}")

# %% [markdown]
# ## 3. One chunk: read while denoising, write at t = 0
#
# The caption's cross-attention keys and values are computed **once per video**
# (`encode_condition`). The KV cache starts empty. Chunk 0 is denoised with `commit=False`
# (the cache is only read), then the clean chunk runs once more at **t = 0** with
# `commit=True`: only clean keys and values stay in the cache.

# %%
cond = tokenize_captions(clips.captions[:2])
text = model.encode_condition(cond, 2)  # the cross-attention cache, once per video
print("cross-attention keys of block 0:", tuple(text.keys[0].shape))
cache = model.new_cache()
g = torch.Generator().manual_seed(0)
ts = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])  # 4 steps of the stochastic multistep sampler
noise = torch.randn(2, 2, 1, 16, 16, generator=g)
chunk0 = denoise_chunk(model, noise, ts, cache, start_frame=0, text=text, generator=g)
print("after denoising chunk 0, tokens in the cache:", len(cache))
model.forward_chunk(chunk0, 0.0, cache, start_frame=0, text=text, commit=True)
print("after the clean pass:", len(cache), "tokens per layer =", 2, "frames ×", P, "tokens")

# %% [markdown]
# Chunk 1 (frames 2–3) now reads the cache. The same numbers come out of the network run on
# frames 0–3 at once under the block-causal mask, frames 0–1 clean (t = 0).

# %%
x = torch.randn(2, 2, 1, 16, 16, generator=g)
cached = model.forward_chunk(x, 0.5, cache, start_frame=2, text=text)
times = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2)
full = model(torch.cat([chunk0, x], 1), times, text=text)[:, 2:]
print("max |cached − full pass|:", float((cached - full).abs().max()))

# %% [markdown]
# ## 4. The whole video
#
# `generate` repeats this for every chunk with **one** generator (chunk noise, every
# re-noising), so the video is reproducible; `generate_recompute` runs the same loop without
# a cache — every step over all frames so far. They agree to float32 rounding.

# %%
video = generate(model, 12, ts, cond=cond, generator=torch.Generator().manual_seed(1))
again = generate_recompute(model, 12, ts, cond=cond, generator=torch.Generator().manual_seed(1))
print("max |cached − recomputed| over 12 frames:", float((video - again).abs().max()))
for cached_ in (True, False):
    n = token_forwards(12, 2, 4, P, cached=cached_)
    print(f"{'cached    ' if cached_ else 'recomputed'}: {n} token-forwards per video")

# %% [markdown]
# **Cache contents.** After every chunk the cache holds exactly the keys and values that a
# fresh clean pass over the frames generated so far computes (the official code overwrites
# the noisy keys of the denoising calls in place, so it is the *contents* that matter).


# %%
def check_contents(start, chunk, cache):
    frames = video[:, : start + 2]
    fresh = []
    model(frames, 0.0, text=text, kv_out=fresh)
    worst = max(float((cache.keys[i] - k).abs().max()) for i, (k, _) in enumerate(fresh))
    print(f"after frames 0–{start + 1}: max |cache − fresh clean pass| = {worst:.1e}")


_ = generate(model, 12, ts, cond=cond, generator=torch.Generator().manual_seed(1),
             callback=check_contents)  # fmt: skip

# %% [markdown]
# **The RoPE-offset bug.** Rotate each chunk as if it started at frame 0 (positions relative
# to the chunk) and the cached keys of earlier frames are at the wrong distance:

# %%
rope = model.rope
model.rope = lambda frames, per_token: rope(frames % 2, per_token)  # chunk-relative frames
buggy = generate(model, 12, ts, cond=cond, generator=torch.Generator().manual_seed(1))
model.rope = rope
print("max |buggy − correct|:", float((buggy - video).abs().max()))

# %% [markdown]
# ## 5. Rolling cache with an attention sink, and the memory of a real model
#
# Keep the first `sink` frames and the last `window` frames; the cache never exceeds
# (sink + window)·P tokens, and the result equals recomputation under the sliding-window mask.

# %%
sizes = []
rolled = generate(model, 16, ts, cond=cond, window=4, sink=2,
                  generator=torch.Generator().manual_seed(2),
                  callback=lambda s, c, cache: sizes.append(len(cache)))  # fmt: skip
sliding = generate_recompute(model, 16, ts, cond=cond, window=4, sink=2,
                             generator=torch.Generator().manual_seed(2))  # fmt: skip
print("cache sizes after each chunk:", sizes, "bound:", (2 + 4) * P)
print("max |rolling − sliding-window recomputation|:", float((rolled - sliding).abs().max()))

# %% [markdown]
# Memory = 2 (K and V) × layers × tokens × heads × head width × bytes per value. For
# Self-Forcing's Wan2.1-1.3B (30 blocks, 12 heads of 128, 1560 tokens per latent frame, 21
# latent frames, bf16):

# %%
wan = type("Wan", (), dict(depth=30, tokens_per_frame=1560, heads=12, dim=1536))
print(f"toy model, 32 frames: {kv_cache_bytes(model, 32) / 1e3:.0f} kB")
print(f"Wan-1.3B, 21 frames: {kv_cache_bytes(wan, 21, bytes_per_value=2) / 1e9:.2f} GB")
print(f"Wan-1.3B, rolling 6 + sink 2: "
      f"{kv_cache_bytes(wan, 21, bytes_per_value=2, window=6, sink=2) / 1e9:.2f} GB")  # fmt: skip

# %% [markdown]
# ## 6. A trained few-step student beyond its training length
#
# `asset("video_sf_c4")` is the Self-Forcing student (4 steps, chunks of 4 frames) trained on
# 8-frame clips. Give it 4 real frames and let it continue to 16 frames (2× its training
# length) with a rolling cache of 4 frames; track the object and compare with the physics.

# %%
student = asset("video_sf_c4", progress=False)
test = eval_clips(16)
result = rollout_metrics(student.model, test, frames=16)
show(test.video[0, :16], "real")
show(result["video"][0], "Self-Forcing student (first 4 frames are the real context)")
plt.plot(result["curve"], marker="o")
plt.axvline(7.5, color="k", ls="--", lw=0.8)
plt.xlabel("frame")
plt.ylabel("position error (px)")
plt.title("drift beyond the training length (dashed)")
plt.show()
print(f"mean error beyond the training length: {result['drift'][2]:.2f} px")

# %% [markdown]
# ## Discussion
#
# * Why must the clean pass run at t = 0, and what would go wrong if the cache kept the keys
#   of the last denoising step?
# * The rolling cache keeps the sink frames at their original RoPE positions. How far apart
#   are a query and a sink key after 100 frames, and has the model seen such offsets?
# * Count the token-forwards of recomputation with a rolling window: does caching still win?
# * What does Self-Forcing change in *training* so that the student's context at inference
#   is no longer a surprise?
