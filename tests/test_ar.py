"""visgen.ar oracles that need no training: quantisers, cached decoding = the masked full
forward, attention pair counts, MAR's round trip / zero-init head / masked loss / schedules,
spectra, and the error messages of bad input."""

import math

import pytest
import torch

import visgen.ar as ar
from visgen.ar.training import MARTraining
from visgen.nn.attention import KVCache


def randomise(model, seed=0, std=0.3):
    """Every parameter random (adaLN-Zero would otherwise make blocks the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(std * torch.randn(p.shape, generator=g))
    return model.eval()


# --- quantisers -------------------------------------------------------------------------------
def test_vq_picks_the_nearest_code_and_passes_gradients_straight_through():
    vq = ar.VectorQuantizer(5, 3, beta=0.25)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # the init draws from the global RNG: fix it, whatever ran before
        vq.codebook.copy_(torch.rand(5, 3, generator=g) * 0.4 - 0.2)
    z = torch.randn(4, 3, 2, 2, generator=g, requires_grad=True)
    out = vq(z)
    flat = z.detach().movedim(1, -1).reshape(-1, 3)
    brute = torch.cdist(flat, vq.codebook.detach()).argmin(1)
    assert torch.equal(out.indices.flatten(), brute)
    # z + (q − z) is q up to the rounding of that sum (|z| ≫ |q|: a few ulps of z, not of q)
    assert torch.allclose(
        out.z_q.detach().movedim(1, -1).reshape(-1, 3), vq.codebook[brute], rtol=0, atol=1e-6
    )
    (out.z_q * torch.arange(3.0).reshape(1, 3, 1, 1)).sum().backward()
    assert torch.equal(z.grad, torch.arange(3.0).reshape(1, 3, 1, 1).expand_as(z))
    # codebook term moves codes only, commitment term moves the encoder only (β-weighted)
    q = vq.codebook[brute].reshape(4, 2, 2, 3).movedim(-1, 1)
    assert torch.allclose(out.commitment_loss, 0.25 * (z - q).pow(2).flatten(1).mean(1))
    assert torch.allclose(out.codebook_loss, (z - q).pow(2).flatten(1).mean(1))


def test_ema_codebook_moves_codes_to_the_mean_of_their_vectors_and_restarts_dead_ones():
    z = torch.tensor([[1.0, 0.0], [-1.0, 2.0], [9.0, 9.0], [11.0, 13.0]])
    start = torch.tensor([[0.0, 0.0], [10.0, 10.0], [50.0, 50.0]])
    for restart in (0.0, 0.6):
        vq = ar.VectorQuantizer(3, 2, ema_decay=0.5, restart_below=restart).train()
        with torch.no_grad():
            vq.codebook.copy_(start)
            vq.code_sum.copy_(start)
            vq.cluster_size.fill_(1.0)
        vq(z)
        if restart:  # code 2 was never selected: moved onto a vector of the batch
            assert any(torch.equal(vq.codebook[2], row) for row in z)
            continue
        for _ in range(8):
            vq(z)
        assert torch.allclose(vq.codebook[0], torch.tensor([0.0, 1.0]), atol=0.05)
        assert torch.allclose(vq.codebook[1], torch.tensor([10.0, 11.0]), atol=0.05)
        # a dead code only decays (towards 0, once its count is below the Laplace smoothing)
        assert torch.allclose(vq.codebook[2], start[2], rtol=0.05)


def test_kmeans_init_and_usage_and_perplexity():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]])
    x = centres.repeat(50, 1) + 0.1 * torch.randn(200, 2, generator=g)
    found = ar.kmeans(x, 4, generator=torch.Generator().manual_seed(3))
    assert torch.cdist(found, centres).min(0).values.max() < 0.1
    idx = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert ar.perplexity(idx, 8) == pytest.approx(4.0)
    assert ar.codebook_usage(idx, 8) == 0.5
    assert ar.perplexity(torch.zeros(10, dtype=torch.long), 8) == pytest.approx(1.0)
    assert ar.psnr(torch.zeros(2, 3), torch.full((2, 3), 0.2)) == pytest.approx(
        10 * math.log10(4 / 0.04)
    )


def test_fsq_rounds_to_the_level_grid_and_indices_round_trip():
    fsq = ar.FSQ([8, 5, 4])
    assert fsq.num_codes == 160
    codes = torch.arange(160)
    assert torch.equal(
        fsq.indices((fsq.lookup(codes) * torch.tensor([4, 2, 2])).T[None]), codes[None]
    )
    g = torch.Generator().manual_seed(2)
    z = (3 * torch.randn(64, 3, 2, 2, generator=g)).requires_grad_()
    out = fsq(z)
    values = out.z_q.detach() * torch.tensor([4.0, 2.0, 2.0]).reshape(1, 3, 1, 1)
    assert torch.equal(values, values.round())  # on the grid
    assert torch.allclose(fsq.lookup(out.indices).movedim(-1, 1), out.z_q.detach())
    assert len(out.indices.unique()) > 40  # the grid is used, no codebook to collapse
    z = torch.randn(8, 3, generator=g, requires_grad=True)
    fsq(z).z_q.sum().backward()  # straight-through rounding: the gradient of the bound
    assert (z.grad > 0).all()


def test_multiscale_residuals_shrink_and_the_last_scale_is_exact_without_refinement():
    q = ar.MultiScaleQuantizer(64, 2, (1, 2, 4), 4, ratio=0.0).eval()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        q.vq.codebook.copy_(torch.randn(64, 2, generator=g))
    f = torch.randn(6, 2, 4, 4, generator=g)
    out = q(f)
    assert [tuple(i.shape) for i in out.indices] == [(6, 1, 1), (6, 2, 2), (6, 4, 4)]
    # teacher-forced inputs and the reconstruction come from the same map as the encoder's
    recon = q.reconstruct(out.indices)
    for a, b in zip(recon, out.cumulative):
        assert torch.allclose(a, b, atol=1e-6)
    assert q.next_scale_inputs(out.indices).shape == (6, 1 + 4 + 16 - 1, 2)
    errors = [float((f - c.detach()).pow(2).mean()) for c in out.cumulative]
    assert errors[-1] < errors[0]


def test_centred_multiscale_starts_from_the_running_mean_latent():
    g = torch.Generator().manual_seed(5)
    f = torch.randn(8, 2, 4, 4, generator=g) + torch.tensor([3.0, -2.0])[:, None, None]
    plain = ar.MultiScaleQuantizer(16, 2, (1, 2, 4), 4, ema_decay=0.9)
    q = ar.MultiScaleQuantizer(16, 2, (1, 2, 4), 4, ema_decay=0.9, centered=True)
    plain(f), q(f)  # one training step each
    assert torch.equal(plain.start(3), torch.zeros(3, 2, 4, 4))  # VAR: f̂_0 = 0
    mean = f.mean((0, 2, 3))
    assert torch.allclose(q.offset, mean) and torch.allclose(q.start(1)[0, :, 2, 3], mean)
    q(f + 1.0)  # later steps move μ by the EMA: μ + (1 − 0.9) · 1
    assert torch.allclose(q.offset, mean + 0.1, atol=1e-6)
    q.eval()
    out = q(f)
    # the 1×1 code quantises the deviation from μ, and every f̂_k = μ + Σ_{j≤k} refinements
    for a, b in zip(q.reconstruct(out.indices), out.cumulative):
        assert torch.allclose(a, b, atol=1e-6)
    with torch.no_grad():
        frozen = q.offset.clone()
        q(f + 5.0)
    assert torch.equal(q.offset, frozen)  # eval mode never moves μ
    with pytest.raises(ValueError, match="centered needs quantizer 'multiscale'"):
        ar.Tokenizer(1, 8, centered=True)


def test_centred_multiscale_with_a_gradient_codebook_keeps_the_running_mean():
    g = torch.Generator().manual_seed(6)
    batches = [torch.randn(4, 2, 4, 4, generator=g) + k for k in range(3)]
    q = ar.MultiScaleQuantizer(16, 2, (1, 2, 4), 4, centered=True)  # ema_decay 0
    for f in batches:
        q(f)
    expected = torch.stack([f.mean((0, 2, 3)) for f in batches]).mean(0)
    assert torch.allclose(q.offset, expected, atol=1e-6)


def test_tokenizer_round_trip_shapes_and_bad_input():
    tok = ar.Tokenizer(1, 8, num_codes=16, latent_dim=4, width=8).eval()
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    idx = tok.tokenize(x)
    assert idx.shape == (3, 4, 4) and idx.dtype == torch.long
    assert torch.allclose(tok.decode_tokens(idx), tok.reconstruct(x))
    with pytest.raises(ValueError, match="num_codes"):
        ar.Tokenizer(1, 8, num_codes=0)
    with pytest.raises(ValueError, match="x contains NaN"):
        tok.tokenize(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="x must have shape"):
        tok.tokenize(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="indices must have shape"):
        tok.decode_tokens(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="indices must lie"):
        tok.decode_tokens(torch.full((2, 4, 4), 16))
    with pytest.raises(ValueError, match="scales .* do not fit the latent"):
        ar.Tokenizer(1, 8, quantizer="multiscale", scales=(1, 2, 3))
    with pytest.raises(ValueError, match="scales must be strictly increasing"):
        ar.Tokenizer(1, 8, quantizer="multiscale", scales=(1, 3, 2, 4))


# --- cached decoding = the masked full forward ---------------------------------------------------
def test_raster_ar_cached_generation_equals_the_causal_full_forward():
    model = randomise(ar.RasterAR(32, 16, 10, dim=32, depth=2, heads=4))
    cond = torch.tensor([0, 3, 7, 9])
    for cfg in (1.0, 2.5):
        out = ar.generate_raster(model, cond, cfg=cfg, generator=torch.Generator().manual_seed(5))
        assert out.stats.passes == 16  # one pass per token
        full = model(out.tokens, cond)
        if cfg != 1.0:
            full = ar.cfg_logits(full, model(out.tokens, torch.full_like(cond, -1)), cfg)
        assert (full - out.logits).abs().max() <= 1e-5
    assert out.stats.token_evals == 2 * 4 * 16 and out.stats.attention_pairs == sum(range(1, 17))


def test_next_scale_cached_generation_equals_the_block_causal_full_forward():
    q = randomise(ar.MultiScaleQuantizer(32, 4, (1, 2, 3, 4), 4), seed=1)
    for attention in ("causal", "diagonal"):
        model = randomise(
            ar.NextScaleAR(32, (1, 2, 3, 4), 4, 10, dim=32, depth=2, attention=attention)
        )
        cond = torch.tensor([1, 2, 5])
        for cfg, off in ((1.0, None), (2.0, None), (2.0, 2)):
            out = ar.generate_next_scale(
                model, q, cond, cfg=cfg, cfg_schedule="linear", cfg_off_from=off,
                generator=torch.Generator().manual_seed(6),
            )  # fmt: skip
            assert out.stats.passes == 4
            inputs = q.next_scale_inputs(out.tokens)
            full = model(inputs, cond)
            if cfg != 1.0:
                uncond = model(inputs, torch.full_like(cond, -1))
                w = torch.cat(
                    [
                        torch.full((s * s,), 1 + (cfg - 1) * k / 3)
                        for k, s in enumerate((1, 2, 3, 4))
                    ]
                )
                guided = ar.cfg_logits(full, uncond, w[None, :, None])
                on = torch.arange(30) < (30 if off is None else 5)
                full = torch.where(on[None, :, None], guided, full)
            assert (full - out.logits).abs().max() <= 1e-5, (attention, cfg, off)
            # the latent built while sampling is the one the token maps reconstruct
            assert (out.latents - q.reconstruct(out.tokens)[-1]).abs().max() <= 1e-6


def test_attention_pair_counts_and_token_evaluations_of_var_and_switti():
    scales = (1, 2, 3, 4)
    assert ar.attention_pairs(scales, "causal") == 627
    assert ar.attention_pairs(scales, "diagonal") == 354
    q = randomise(ar.MultiScaleQuantizer(32, 4, scales, 4))
    cond = torch.arange(5)
    var = randomise(ar.NextScaleAR(32, scales, 4, 10, dim=32, depth=1))
    switti = randomise(ar.NextScaleAR(32, scales, 4, 10, dim=32, depth=1, attention="diagonal"))
    assert ar.generate_next_scale(var, q, cond).stats.attention_pairs == 627
    on = ar.generate_next_scale(switti, q, cond, cfg=2.0).stats
    off = ar.generate_next_scale(switti, q, cond, cfg=2.0, cfg_off_from=3).stats
    assert on.attention_pairs == off.attention_pairs == 354
    assert on.token_evals == 2 * 5 * 30 and off.token_evals == 5 * (2 * 14 + 16)
    assert 1 - off.token_evals / on.token_evals >= 0.25  # Switti's CFG-off saving
    assert on.passes == off.passes == 4


def test_kv_cache_slicing_keeps_the_conditional_rows():
    cache = KVCache(1)
    k = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 1, 2, 2)
    cache.attend(0, k, k, k, commit=True)
    cache.select(slice(0, 2))
    assert torch.equal(cache.keys[0][:, 0, 0, 0], torch.tensor([0.0, 1.0]))


def test_logit_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(ar.filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(ar.filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(ar.filter_logits(logits, top_p=0.5)).tolist() == [[False, True, True, True]]
    g = torch.Generator().manual_seed(0)
    draws = ar.sample_logits(logits.expand(4000, 4), temperature=1.0, generator=g)
    assert abs(float((draws == 0).double().mean()) - 0.5) < 0.03
    cold = ar.sample_logits(logits.expand(100, 4), temperature=1e-3, generator=g)
    assert (cold == 0).all()
    with pytest.raises(ValueError, match="top_p"):
        ar.filter_logits(logits, top_p=0.0)


# --- MAR ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [1, 2])
def test_mar_patchify_round_trip_is_exact(p):
    mar = ar.MAR(3, 4, p, 5)
    x = torch.randn(2, 3, 4, 4)
    tokens = mar.tokens(x)
    assert tokens.shape == (2, (4 // p) ** 2, 3 * p * p)
    assert torch.equal(mar.images(tokens), x)


def test_fresh_head_outputs_exactly_zero():
    head = ar.TokenHead(4, 16, width=32, depth=3)
    out = head(torch.randn(7, 4), torch.rand(7), torch.randn(7, 16))
    assert torch.equal(out, torch.zeros(7, 4))
    assert torch.equal(
        head.cfg_forward(torch.randn(6, 4), torch.rand(6), torch.randn(6, 16), 3.0),
        torch.zeros(6, 4),
    )


def test_masked_head_loss_never_reads_unmasked_targets():
    g = torch.Generator().manual_seed(7)
    head = randomise(ar.TokenHead(4, 8, width=16, depth=2))
    b, n, m = 3, 6, 2
    z, target = torch.randn(b, n, 8, generator=g), torch.randn(b, n, 4, generator=g)
    mask = torch.zeros(b, n, dtype=torch.bool)
    mask[:, :2] = True
    t, noise = torch.rand(b, m, n, generator=g), torch.randn(b, m, n, 4, generator=g)
    loss = ar.masked_head_loss(head, z, target, mask, t, noise)
    changed = target.clone()
    changed[:, 2:] += 100.0  # unmasked targets
    assert torch.equal(ar.masked_head_loss(head, z, changed, mask, t, noise), loss)
    changed = target.clone()
    changed[1, 0] += 1.0  # one masked target of sample 1
    other = ar.masked_head_loss(head, z, changed, mask, t, noise)
    assert other[1] != loss[1] and other[0] == loss[0] and other[2] == loss[2]
    # it is the mean head loss over the masked tokens and repeats
    rows = [ar.head_loss(head, target[0, j][None], z[0, j][None], t[0, r, j][None], noise[0, r, j][None])
            for r in range(m) for j in range(2)]  # fmt: skip
    assert torch.allclose(loss[0], torch.cat(rows).mean())


def test_mar_loss_masks_a_ratio_of_each_order():
    mar = randomise(ar.MAR(1, 8, 2, 10, dim=16, depth=1, head_width=16, head_depth=1))
    orders = ar.random_orders(4, 16, torch.Generator().manual_seed(8))
    assert all(sorted(o.tolist()) == list(range(16)) for o in orders)
    mask = ar.mask_from_order(orders, torch.tensor([16, 12, 1, 0]))
    assert mask.sum(1).tolist() == [16, 12, 1, 0]
    assert mask[1, orders[1, :12]].all() and not mask[1, orders[1, 12:]].any()
    ratios = ar.sample_mask_ratio(10_000, torch.Generator().manual_seed(9))
    assert ratios.min() >= 0.7 and ratios.max() <= 1.0
    # the truncated normal N(1, 0.25²) on [0.7, 1]: mean 1 − 0.25 (φ(0) − φ(−1.2)) / (Φ(0) − Φ(−1.2))
    density, cdf = (
        math.exp(-(1.2**2) / 2) / math.sqrt(2 * math.pi),
        0.5 * (1 + math.erf(-1.2 / 2**0.5)),
    )
    mean = 1 - 0.25 * (1 / math.sqrt(2 * math.pi) - density) / (0.5 - cdf)
    assert abs(float(ratios.mean()) - mean) < 3 * float(ratios.std()) / 100
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    t, noise = torch.rand(4, 2, 16), torch.randn(4, 2, 16, 4)
    loss = ar.mar_loss(
        mar, x, torch.arange(4), orders, torch.tensor([1.0, 0.75, 0.7, 0.9]), t, noise
    )
    assert loss.shape == (4,) and torch.isfinite(loss).all()
    # the digits recipe's wider law (σ 0.5 on [1/16, 1]) stays in range; bad values are named
    wide = ar.sample_mask_ratio(10_000, torch.Generator().manual_seed(9), low=0.05, std=0.5)
    assert wide.min() >= 0.05 and wide.max() <= 1.0 and float(wide.mean()) < float(ratios.mean())
    with pytest.raises(ValueError, match="mask_min"):
        MARTraining(mask_min=0.0)
    with pytest.raises(ValueError, match="mask_std"):
        MARTraining(mask_std=0.0)


@pytest.mark.parametrize("n,steps", [(16, 1), (16, 4), (16, 16), (256, 64), (17, 5)])
def test_cosine_schedule_counts_sum_to_the_token_count(n, steps):
    counts = ar.cosine_mask_schedule(n, steps)
    assert len(counts) == steps and sum(counts) == n and min(counts) >= 1
    masked, expected = n, []
    for s in range(steps - 1):
        after = max(1, min(masked - 1, math.floor(n * math.cos(math.pi / 2 * (s + 1) / steps))))
        expected.append(masked - after)
        masked = after
    assert counts[:-1] == expected


def test_cfg_schedules_per_step_scales():
    n, steps, w = 16, 4, 3.0
    counts = ar.cosine_mask_schedule(n, steps)
    after = [n - sum(counts[: s + 1]) for s in range(steps)]
    const = [ar.cfg_scale("constant", w, s, steps, a, n) for s, a in enumerate(after)]
    linear = [ar.cfg_scale("linear", w, s, steps, a, n) for s, a in enumerate(after)]
    interval = [ar.cfg_scale("interval", w, s, steps, a, n, start=2) for s, a in enumerate(after)]
    assert const == [w] * steps
    assert linear == [1 + (w - 1) * (n - a) / n for a in after] and linear[-1] == w
    assert all(a < b for a, b in zip(linear, linear[1:]))
    assert interval == [1.0, 1.0, w, w]
    with pytest.raises(ValueError, match="cfg_schedule"):
        ar.cfg_scale("cosine", w, 0, steps, 0, n)


def test_mar_sampling_counts_passes_and_bad_input():
    mar = randomise(ar.MAR(1, 8, 2, 10, dim=16, depth=1, head_width=16, head_depth=1), std=0.05)
    out = ar.sample_tokens(mar, torch.arange(3), 4, cfg=2.0, head_steps=3,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.stats.passes == 4 and out.stats.token_evals == 4 * 2 * 3 * 16
    assert out.head_evals == 2 * 3 * 16 * 3
    assert out.images.shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="steps must be at most"):
        ar.sample_tokens(mar, torch.arange(3), 17)
    with pytest.raises(ValueError, match="tokens must have shape"):
        mar.backbone(torch.zeros(2, 15, 4), torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="x contains NaN"):
        mar.tokens(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="cond must hold"):
        ar.sample_tokens(mar, torch.tensor([10]), 4)


# --- spectra ------------------------------------------------------------------------------------
@pytest.mark.parametrize("exponent", [1.5, 2.0, 3.0])
def test_power_law_spectrum_slope_is_recovered(exponent):
    x = ar.power_law_images(64, 32, exponent, torch.Generator().manual_seed(10))
    f, p = ar.rapsd(x)
    assert abs(ar.fit_power_law(f, p) + exponent) <= 0.3


def test_white_noise_is_flat_and_crossover_falls_with_the_noise_level():
    g = torch.Generator().manual_seed(11)
    f, p = ar.rapsd(0.5 * torch.randn(256, 1, 16, 16, generator=g))
    assert torch.allclose(p, torch.full_like(p, 0.25), rtol=0.05)
    f, p = ar.rapsd(ar.power_law_images(64, 32, 2.0, g))
    crossings = [ar.crossover_frequency(f, p, s**2) for s in (0.6, 1.0, 2.0, 3.0, 5.0)]
    assert all(a > b for a, b in zip(crossings, crossings[1:]))
    # the noised spectrum is α² P + σ²
    x = ar.power_law_images(256, 16, 2.0, g)
    noise = torch.randn(x.shape, generator=g)
    t = 0.3
    _, pt = ar.rapsd((1 - t) * x + t * noise)
    _, px = ar.rapsd(x)
    assert torch.allclose(pt, (1 - t) ** 2 * px + t**2, rtol=0.1)
    with pytest.raises(ValueError, match="images must be square"):
        ar.rapsd(torch.zeros(1, 1, 8, 6))


def test_token_models_reject_bad_input_naming_the_argument():
    raster = ar.RasterAR(32, 16, 10, dim=16, depth=1)
    with pytest.raises(ValueError, match="tokens must have shape"):
        raster(torch.zeros(2, 15, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="tokens must be an integer tensor"):
        raster(torch.zeros(2, 16), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens must lie"):
        raster(torch.full((2, 16), 32), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="cond must hold"):
        ar.generate_raster(raster, torch.tensor([10]))
    q = ar.MultiScaleQuantizer(32, 4, (1, 2, 4), 4)
    var = ar.NextScaleAR(32, (1, 2, 4), 4, 10, dim=16, depth=1)
    with pytest.raises(ValueError, match="inputs must have shape"):
        var(torch.zeros(2, 5, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"indices\[1\] must have shape"):
        q.next_scale_inputs([torch.zeros(2, 1, 1, dtype=torch.long), torch.zeros(2, 3, 3, dtype=torch.long),
                             torch.zeros(2, 4, 4, dtype=torch.long)])  # fmt: skip
    with pytest.raises(ValueError, match="scales .* differ"):
        ar.generate_next_scale(
            ar.NextScaleAR(32, (1, 4), 4, 10, dim=16, depth=1), q, torch.tensor([1])
        )
    with pytest.raises(ValueError, match="f must have shape"):
        q(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="num_codes"):
        ar.VectorQuantizer(0, 4)
    with pytest.raises(ValueError, match="levels"):
        ar.FSQ([1, 4])
