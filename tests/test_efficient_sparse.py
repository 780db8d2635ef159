"""Sparse video attention (lecture 10): mask densities in closed form, the block-sparse
layout, FLOP accounting, and Sparse VideoGen's online head profiling.

Synthetic clips (``video_heads_problem``: 8 frames of 4×4 tokens, 8 heads, half built
spatial, half temporal, sharpness 4) over seeds 0–4: profiling names every head right
(bar ≥ 90 %) and the profiled masks keep 9.4 % of the pairs at 1.3–2.2 % output error
(bars ≤ 30 % density, ≤ 5 % error).
"""

import pytest
import torch

from visgen.efficient import (
    attention_flops,
    block_density,
    block_mask,
    density,
    frame_attention,
    masked_attention,
    masked_flops,
    position_major,
    profile_heads,
    profile_video_dit,
    sliding_tile_mask,
    spatial_mask,
    temporal_mask,
    topk_mask,
    video_attention_inputs,
    video_heads_problem,
)

F, H, W = 8, 4, 4
N = F * H * W


def test_mask_densities_in_closed_form():
    assert density(spatial_mask(F, H, W)) == 1 / F
    assert density(temporal_mask(F, H, W)) == 1 / (H * W)
    # window w: pairs with |Δ| < w on a line of n points: n + 2 Σ_{k<w} (n − k)
    for n, mask in ((F, spatial_mask(F, H, W, window=2)), (H * W, temporal_mask(F, H, W, 3))):
        w = 2 if n == F else 3
        pairs = n + 2 * sum(n - k for k in range(1, w))
        assert density(mask) == pytest.approx(pairs / n**2)
    # sliding tiles of 2×2×2 tokens, window 3 tiles per axis: per axis count pairs of tiles
    sta = sliding_tile_mask(F, H, W, tile=(2, 2, 2), window=(3, 3, 3))
    per_axis = [(n + 2 * (n - 1)) / n**2 for n in (F // 2, H // 2, W // 2)]
    assert density(sta) == pytest.approx(per_axis[0] * per_axis[1] * per_axis[2])
    # a window covering the whole clip is full attention
    assert sliding_tile_mask(F, H, W, (1, 1, 1), (2 * F - 1, 2 * H - 1, 2 * W - 1)).all()


def test_block_sparse_layout_and_flops():
    spatial, temporal = spatial_mask(F, H, W), temporal_mask(F, H, W)
    # frame-major: a spatial head is block-diagonal in blocks of one frame (no wasted tile)
    assert block_density(spatial, H * W) == density(spatial)
    # a temporal head is not block-sparse in frame-major order (tiles of 8 queries × 8 keys,
    # half a frame each, hold a same-position pair iff the halves agree: 8× the density) …
    assert block_density(temporal, F) == 0.5 == 8 * density(temporal)
    # … but is after reordering the tokens position-major
    perm = position_major(F, H, W)
    assert sorted(perm.tolist()) == list(range(N))
    reordered = temporal[perm][:, perm]
    assert block_density(reordered, F) == density(temporal)
    assert torch.equal(block_mask(reordered, F), torch.eye(H * W, dtype=torch.bool))
    assert block_density(spatial, 4) >= density(spatial)
    heads = torch.stack([spatial, temporal])
    full = attention_flops(2 * N * N, 16)
    assert masked_flops(heads, 16) == pytest.approx(
        full * (density(spatial) + density(temporal)) / 2
    )


def test_frame_attention_is_the_same_frame_mask(gen):
    q, k, v = torch.randn(3, 2, 2, N, 16, generator=gen)
    ref = masked_attention(q, k, v, spatial_mask(F, H, W))
    assert torch.allclose(frame_attention(q, k, v, F), ref, atol=1e-5)
    with pytest.raises(ValueError, match="no key"):
        masked_attention(q, k, v, torch.zeros(N, N, dtype=torch.bool))


@pytest.mark.parametrize("seed", range(5))
def test_online_profiling_finds_head_types(seed):
    g = torch.Generator().manual_seed(seed)
    kinds = ("spatial", "temporal") * 4
    q, k, v = video_heads_problem(F, H, W, kinds, generator=g)
    masks = {"spatial": spatial_mask(F, H, W), "temporal": temporal_mask(F, H, W)}
    names, errors = profile_heads(q, k, v, masks, queries=32, generator=g)
    correct = sum(a == b for a, b in zip(names, kinds)) / len(kinds)
    assert correct >= 0.9, (names, errors)
    chosen = torch.stack([masks[n] for n in names])
    out, exact = masked_attention(q, k, v, chosen), masked_attention(q, k, v)
    assert density(chosen) <= 0.30
    assert float((out - exact).norm() / exact.norm()) <= 0.05
    # the opposite choice for every head is far worse: the profiling matters
    other = torch.stack([masks["temporal" if n == "spatial" else "spatial"] for n in names])
    assert float((masked_attention(q, k, v, other) - exact).norm() / exact.norm()) > 0.3


def test_bad_input():
    with pytest.raises(ValueError, match="tile"):
        sliding_tile_mask(F, H, W, tile=(3, 2, 2))
    with pytest.raises(ValueError, match="odd"):
        sliding_tile_mask(F, H, W, window=(2, 3, 3))
    with pytest.raises(ValueError, match="window"):
        spatial_mask(F, H, W, window=0)
    with pytest.raises(ValueError, match="masks"):
        profile_heads(*torch.randn(3, 1, 2, N, 8), {})


def test_video_dit_profiling_reads_every_full_attention_block():
    from visgen.nn import DiT
    from visgen.video.dit import VideoDiT

    torch.manual_seed(0)
    model = VideoDiT(1, 8, patch_size=4, dim=16, depth=2, heads=2).eval()  # 4 tokens per frame
    x, t = torch.randn(2, 4, 1, 8, 8), torch.full((2,), 0.5)
    qkv = video_attention_inputs(model, x, t)
    assert len(qkv) == 2 and qkv[0][0].shape == (2, 2, 16, 8)
    assert "qkv" not in vars(model.blocks[0])  # the capture is undone
    rows = profile_video_dit(model, x, t, generator=torch.Generator().manual_seed(0))
    for r in rows:  # all 16 queries profiled: the per-head choice is the best of the two
        assert r["error"] <= min(r["error_spatial"], r["error_temporal"]) + 1e-6
        assert r["density"] == 1 / 4  # 4 frames of 4 tokens: spatial and temporal both 1/4
    with pytest.raises(TypeError, match="video DiT"):
        video_attention_inputs(DiT(1, 8, patch_size=2, dim=16, depth=1, heads=2), x, t)


def test_topk_oracle_keeps_the_most_attention_mass():
    q, k, v = video_heads_problem(
        F, H, W, sharpness=1.0, generator=torch.Generator().manual_seed(3)
    )
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1)
    oracle = topk_mask(q, k, 1 / F)  # as many keys per query as the spatial mask keeps
    assert oracle.shape == weights.shape and (oracle.sum(-1) == N // F).all()
    assert density(oracle) == density(spatial_mask(F, H, W))
    kept = (weights * oracle).sum(-1)
    for mask in (spatial_mask(F, H, W), sliding_tile_mask(F, H, W, (4, 2, 2), (1, 1, 1))):
        assert (mask.sum(-1) == N // F).all()  # same count per query: the oracle keeps more
        assert (kept >= (weights * mask).sum(-1) - 1e-6).all()
    assert torch.equal(topk_mask(q, k, 1.0), torch.ones_like(oracle))
    with pytest.raises(ValueError, match="density"):
        topk_mask(q, k, 0.0)
