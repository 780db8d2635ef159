"""visgen.nn.attention: RoPE relativity, group masks (exact pair counts), KV cache = recompute."""

import pytest
import torch
import torch.nn.functional as F

from visgen.nn.attention import KVCache, apply_rope, group_mask, rope_1d, rope_2d


def test_rope_1d_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g), torch.randn(8, generator=g)
    cos, sin = rope_1d(torch.arange(40), 8)

    def score(m, n):
        return (apply_rope(q, cos[m], sin[m]) * apply_rope(k, cos[n], sin[n])).sum()

    for offset in (0, 1, 7):
        ref = score(offset, 0)
        for start in (3, 11, 29):
            assert abs(score(start + offset, start) - ref) < 1e-5
    assert abs(score(5, 0) - score(0, 0)) > 1e-3  # positions matter


def test_rope_1d_at_position_zero_is_the_identity_and_rope_2d_row_zero_matches():
    x = torch.randn(3, 2, 5, 16)
    cos, sin = rope_1d(torch.zeros(5), 16)
    assert torch.equal(apply_rope(x, cos, sin), x)
    cos2, sin2 = rope_2d(4, 16)
    cos1, sin1 = rope_1d(torch.arange(4), 8)
    # token (row 0, column c) rotates the column half by c ω with the 1-D frequencies of d/2
    assert torch.allclose(cos2[:4, 4:], cos1[:, :4])
    assert torch.allclose(sin2[:4, 4:], sin1[:, :4])


@pytest.mark.parametrize("bad", [0, 3, -2, 2.0])
def test_rope_1d_rejects_bad_head_dim(bad):
    with pytest.raises(ValueError, match="head_dim"):
        rope_1d(torch.arange(3), bad)


def scale_groups(sides):
    return torch.cat([torch.full((s * s,), i) for i, s in enumerate(sides)])


def test_group_mask_pair_counts_of_var_and_switti():
    groups = scale_groups((1, 2, 3, 4))  # VAR's 30 tokens over four scales
    assert int(group_mask(groups, groups, "causal").sum()) == 1 * 1 + 4 * 5 + 9 * 14 + 16 * 30
    assert int(group_mask(groups, groups, "diagonal").sum()) == 1 + 16 + 81 + 256
    assert int(group_mask(groups, groups, "full").sum()) == 30 * 30
    tokens = torch.arange(16)  # every token its own group: the token-causal mask
    assert torch.equal(group_mask(tokens, tokens), torch.ones(16, 16, dtype=torch.bool).tril())


def test_group_mask_window_and_sink():
    frames = torch.arange(6)
    mask = group_mask(frames, frames, "causal", window=2, sink=1)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 0, 1, 1, 0, 0],
            [1, 0, 0, 1, 1, 0],
            [1, 0, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    with pytest.raises(ValueError, match="rule"):
        group_mask(frames, frames, "blockwise")
    with pytest.raises(ValueError, match="window"):
        group_mask(frames, frames, window=0)


def qkv(n, generator, batch=2, heads=2, dim=8):
    return [torch.randn(batch, heads, n, dim, generator=generator) for _ in range(3)]


def test_cached_causal_attention_equals_masked_full_attention():
    g = torch.Generator().manual_seed(1)
    groups = scale_groups((1, 2, 3, 4))
    q, k, v = qkv(len(groups), g)
    full = F.scaled_dot_product_attention(q, k, v, attn_mask=group_mask(groups, groups))
    cache, outs, start = KVCache(1), [], 0
    for side in (1, 2, 3, 4):
        sl = slice(start, start + side * side)
        outs.append(cache.attend(0, q[:, :, sl], k[:, :, sl], v[:, :, sl], commit=True))
        start += side * side
    assert torch.allclose(torch.cat(outs, 2), full, atol=1e-6)
    assert len(cache) == cache.committed == 30
    assert cache.nbytes() == 2 * 2 * 2 * 30 * 8 * 4


def test_read_mode_does_not_change_the_cache():
    g = torch.Generator().manual_seed(2)
    q, k, v = qkv(4, g)
    cache = KVCache(2)
    for layer in range(2):
        cache.attend(layer, q, k, v, commit=True)
    before = [t.clone() for t in cache.keys + cache.values]
    noisy = qkv(4, g)
    for layer in range(2):
        cache.attend(layer, *noisy, commit=False)
    assert all(torch.equal(a, b) for a, b in zip(before, cache.keys + cache.values))
    assert cache.committed == 4


def test_rolling_cache_keeps_sink_and_window_and_equals_windowed_attention():
    g = torch.Generator().manual_seed(3)
    per_frame, frames, window, sink = 3, 7, 2, 1
    groups = torch.arange(frames).repeat_interleave(per_frame)
    q, k, v = qkv(frames * per_frame, g)
    cache = KVCache(1, window_tokens=window * per_frame, sink_tokens=sink * per_frame)
    for f in range(frames):
        sl = slice(f * per_frame, (f + 1) * per_frame)
        out = cache.attend(0, q[:, :, sl], k[:, :, sl], v[:, :, sl], commit=True)
        # the new frame sees the sink frames and the `window` frames before it, and itself
        visible = group_mask(groups[sl], groups[: (f + 1) * per_frame], window=window + 1, sink=1)
        ref = F.scaled_dot_product_attention(
            q[:, :, sl], k[:, :, : (f + 1) * per_frame], v[:, :, : (f + 1) * per_frame], visible
        )
        assert torch.allclose(out, ref, atol=1e-6)
        assert len(cache) <= (sink + window) * per_frame
        # the absolute positions held: the sink frames and the last `window` frames
        held = torch.arange((f + 1) * per_frame)
        held = held[(held < sink * per_frame) | (held >= (f + 1 - window) * per_frame)]
        assert torch.equal(cache.positions(), held)
    assert cache.committed == frames * per_frame


def test_kv_cache_errors_and_memory_estimate():
    with pytest.raises(ValueError, match="layers"):
        KVCache(0)
    with pytest.raises(ValueError, match="sink_tokens"):
        KVCache(1, sink_tokens=2)
    cache = KVCache(1)
    g = torch.Generator().manual_seed(4)
    q, k, v = qkv(3, g)
    with pytest.raises(ValueError, match="layer"):
        cache.attend(1, q, k, v, commit=True)
    with pytest.raises(ValueError, match="mask"):
        cache.attend(0, q, k, v, commit=True, mask=torch.ones(3, 4, dtype=torch.bool))
    assert (
        KVCache.estimate_bytes(
            layers=30, tokens=32_760, batch=1, heads=12, head_dim=128, bytes_per_value=2
        )
        == 2 * 30 * 32_760 * 12 * 128 * 2
    )
    with pytest.raises(ValueError, match="tokens"):
        KVCache.estimate_bytes(layers=1, tokens=-1, batch=1, heads=1, head_dim=1, bytes_per_value=2)
