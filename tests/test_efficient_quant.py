"""Quantisation (lecture 10): fake-quant oracles, SVDQuant / SmoothQuant on the outlier toy,
SageAttention's key smoothing, the real INT8 linear layer.

Bars measured over seeds 0–4 (``outlier_problem``: 1024 tokens, 256 → 256, 1 % of input
channels ×20, 0.1 % of weights ×10; W4A4 with groups of 64, α = 0.5): SVDQuant rank 32 /
naive W4A4 = 0.29–0.30 (bar 0.5), / smoothing alone = 0.60–0.63 (bar 0.75). SageAttention
(256 tokens, d = 32, keys with a shared 5σ channel offset, INT8 blocks of 64): smoothing
cuts the output error 2.5–3.4× (bar 2×) and moves softmax by ≤ 2.6e-7 (bar 1e-6).
"""

import math

import pytest
import torch
from torch import nn

from visgen.efficient import (
    Int8Linear,
    QuantLinear,
    fake_quant,
    int8_linears,
    int8_matmul,
    key_offset_problem,
    outlier_problem,
    quantize_linears,
    quantized_scores,
    relative_error,
    sage_attention,
    smooth_keys,
    smoothing_factors,
)
from visgen.nn import DiT

SEEDS = range(5)
W4A4 = {"w_bits": 4, "a_bits": 4, "w_granularity": "group", "a_granularity": "group"}


@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
def test_fake_quant_is_a_rounding_projection(granularity, gen):
    x = torch.randn(6, 128, generator=gen) * torch.linspace(0.1, 10, 128)
    for bits in (2, 4, 8):
        q = fake_quant(x, bits, granularity, group_size=32)
        sets = {"tensor": x.reshape(1, -1), "channel": x, "group": x.reshape(-1, 32)}[granularity]
        step = sets.abs().amax(1, keepdim=True) / (2 ** (bits - 1) - 1)
        err = (q - x).reshape(sets.shape).abs()
        assert bool((err <= step / 2 * (1 + 1e-6)).all())  # |Q(x) − x| ≤ s/2
        again = fake_quant(q, bits, granularity, group_size=32)
        assert torch.allclose(again, q, rtol=1e-6, atol=0)  # idempotent (up to the last ulp)
        kept = q.reshape(sets.shape).abs().amax(1)
        assert torch.allclose(kept, sets.abs().amax(1), rtol=1e-6, atol=0)  # the max is a level
    errors = [relative_error(fake_quant(x, b, granularity, 32), x) for b in range(2, 9)]
    assert all(a > b for a, b in zip(errors, errors[1:]))  # one bit more, less error
    assert torch.equal(fake_quant(torch.zeros(3, 32), 4, granularity, 32), torch.zeros(3, 32))


def test_sixteen_bits_means_floating_point_and_is_bit_identical(gen):
    x = torch.randn(4, 7, 64, generator=gen)
    assert fake_quant(x, 16) is x
    layer = nn.Linear(64, 48)
    assert torch.equal(QuantLinear(layer, w_bits=16, a_bits=16)(x), layer(x))
    dit = DiT(1, 8, patch_size=2, dim=32, depth=2, heads=2, num_classes=10)
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    w16a16 = quantize_linears(dit, w_bits=16, a_bits=16)
    assert any(isinstance(m, QuantLinear) for m in w16a16.modules())
    args = torch.randn(5, 1, 8, 8, generator=gen), torch.rand(5, generator=gen), torch.arange(5)
    assert torch.equal(w16a16(*args), dit(*args))
    assert not torch.equal(quantize_linears(dit, w_bits=8, a_bits=8)(*args), dit(*args))
    for bad in (1, 9, 15, 32, 4.0):
        with pytest.raises(ValueError, match="bits"):
            fake_quant(x, bad)


def _errors(seed):
    x, layer = outlier_problem(generator=torch.Generator().manual_seed(seed))
    y = layer(x).detach()
    s = smoothing_factors(x.abs().amax(0), layer.weight, 0.5)

    def err(**kw):
        return relative_error(QuantLinear(layer, **W4A4, **kw)(x), y)

    return {"naive": err(), "lowrank": err(rank=32), "smooth": err(smooth=s),
            **{f"svdq{r}": err(smooth=s, rank=r) for r in (4, 8, 16, 32, 64)}}  # fmt: skip


@pytest.mark.parametrize("seed", SEEDS)
def test_svdquant_low_rank_branch_absorbs_outliers(seed):
    e = _errors(seed)
    assert e["svdq32"] <= 0.5 * e["naive"], e
    assert e["svdq32"] <= 0.75 * e["smooth"], e
    assert e["naive"] > e["lowrank"] > e["smooth"] > e["svdq32"], e  # the paper's ordering
    ranks = [e[f"svdq{r}"] for r in (4, 8, 16, 32, 64)]
    assert all(a >= b for a, b in zip(ranks, ranks[1:])), ranks  # more rank, less error


def test_smoothing_is_exact_before_rounding(gen):
    x, layer = outlier_problem(256, 64, 32, generator=gen)
    s = smoothing_factors(x.abs().amax(0), layer.weight, 0.5).double()
    x, layer = x.double(), layer.double()
    ref = layer(x)
    same = QuantLinear(layer, w_bits=16, a_bits=16, smooth=s)(x)
    assert (same - ref).abs().max() < 1e-10  # (X/s)(sW)ᵀ = XWᵀ
    full = QuantLinear(layer, w_bits=16, a_bits=16, rank=32)(x)
    assert (full - ref).abs().max() < 1e-10  # rank = min(out, in): the branch is all of W


@pytest.mark.parametrize("seed", SEEDS)
def test_sage_key_smoothing(seed):
    q, k, v = key_offset_problem(generator=torch.Generator().manual_seed(seed))
    scale = 1 / math.sqrt(q.shape[-1])
    p = torch.softmax(q @ k.transpose(-1, -2) * scale, -1)
    p_smooth = torch.softmax(q @ smooth_keys(k).transpose(-1, -2) * scale, -1)
    assert (p_smooth - p).abs().max() <= 1e-6  # softmax is shift-invariant per row
    exact = p @ v
    plain = relative_error(sage_attention(q, k, v, smooth_k=False), exact)
    smoothed = relative_error(sage_attention(q, k, v), exact)
    assert smoothed * 2 <= plain, (plain, smoothed)
    # with 16-bit-free exact arithmetic the integer scores are exact: 8 bits ≈ float scores
    assert (quantized_scores(q, k) - q @ smooth_keys(k).transpose(-1, -2) * scale).abs().max() < 0.5


def test_int8_linear_is_w8a8_and_exact_integer_matmul(gen):
    layer = nn.Linear(96, 40)
    x = torch.randn(3, 50, 96, generator=gen)
    real = Int8Linear(layer)(x)
    fake = QuantLinear(layer, w_bits=8, a_bits=8)(x)
    assert real.shape == (3, 50, 40)
    assert relative_error(real, fake) < 1e-5  # the same W8A8 numbers, rescaled differently
    assert relative_error(real, layer(x)) < 0.02
    a = torch.randint(-127, 128, (37, 96), generator=gen, dtype=torch.int8)
    b = torch.randint(-127, 128, (96, 40), generator=gen, dtype=torch.int8)
    exact = a.long() @ b.long()
    assert torch.equal(int8_matmul(a, b).long(), exact)
    assert torch.equal((a.float() @ b.float()).long(), exact)  # the fallback is exact too
    dit = DiT(1, 8, patch_size=2, dim=32, depth=2, heads=2, num_classes=10)
    swapped = int8_linears(dit)
    assert sum(isinstance(m, Int8Linear) for m in swapped.modules()) == 2 * 4  # qkv proj mlp×2
    with pytest.raises(TypeError, match="int8"):
        int8_matmul(a.float(), b)
