"""Hidden tests of homework 6. Each test takes `sub`, the notebook's definitions.

Oracles: visgen's MAR (lecture 8: `visgen.ar`) — its patchify (exact round trip), head
(`TokenHead`, `HeadBlock`, the sinusoidal embedding), v-loss, masked loss, Euler head sampler,
cosine schedule, CFG schedules and `sample_tokens` (same random draws, so equal to float
rounding); designed batches (changing an unmasked target changes nothing); exact counts
(schedule counts sum to the token count; backbone calls = AR steps, each on 2B rows with
CFG); the logit-normal law (Kolmogorov–Smirnov distance); and a trained check: a head trained
with the notebook's v-loss on a 2D class-conditional Gaussian mixture (one-hot conditions)
reaches a per-condition energy distance ≤ 0.02. The `_ref_*` functions stand in for the
student's own functions when another function is graded.
"""

import torch
import torch.nn.functional as F

from visgen.ar import (
    MAR,
    TokenHead,
    cosine_mask_schedule,
    head_loss,
    head_times,
    mask_from_order,
    masked_head_loss,
)
from visgen.ar import cfg_scale as library_cfg_scale
from visgen.ar import sample_head as library_sample_head
from visgen.ar import sample_tokens as library_sample_tokens
from visgen.ar.heads import HeadBlock
from visgen.course.testing import CountingModel, as_float64, assert_close, check
from visgen.metrics import energy_distance
from visgen.nn.dit import patchify as library_patchify
from visgen.nn.dit import unpatchify as library_unpatchify
from visgen.nn.embeddings import SinusoidalEmbedding
from visgen.oracles import GaussianMixture

F64 = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randomise(module, seed, std=0.3):
    """Every parameter random (zero-init would otherwise make the head output 0)."""
    g = _gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


def _head(seed=0, token_dim=4, cond_dim=8, width=16, depth=2, dtype=torch.float32):
    return _randomise(TokenHead(token_dim, cond_dim, width, depth), seed).to(dtype)


def _mar(seed=0, dtype=torch.float32):
    mar = MAR(1, 8, 2, 10, dim=16, depth=1, head_width=16, head_depth=1)
    return _randomise(mar, seed, std=0.05).to(dtype)


def _grads(module):
    return torch.cat(
        [
            p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype)
            for p in module.parameters()
        ]
    )


# --- stand-ins ----------------------------------------------------------------------------
def _ref_patchify(x, p):
    return library_patchify(x, p)


def _ref_timestep_embedding(t, dim):
    return SinusoidalEmbedding(dim).to(t.dtype)(t)


def _ref_adaln_block(h, c, norm, mlp, ada):
    shift, scale, gate = ada(c).chunk(3, -1)
    return h + gate * mlp(norm(h) * (1 + scale) + shift)


def _ref_final_layer(h, c, norm, ada, linear):
    shift, scale = ada(c).chunk(2, -1)
    return linear(norm(h) * (1 + scale) + shift)


def _ref_cfg_forward(head, x, t, z, scale):
    return TokenHead.cfg_forward(head, x, t, z, scale)  # visgen's, for any callable head


def _ref_flow_loss(head, x0, z, t, noise):
    return head_loss(head, x0, z, t, noise)


def _ref_masked_flow_loss(head, z, target, mask, t, noise):
    """The mean over all masked tokens of the batch, from visgen's per-sample means."""
    per_sample = masked_head_loss(head, z, target, mask, t[:, None], noise[:, None])
    count = mask.sum(1).to(per_sample.dtype)
    return (per_sample * count).sum() / count.sum()


def _ref_sample_head(head, z, token_dim, steps, cfg=1.0, generator=None):
    return library_sample_head(head, z, steps, cfg=cfg, generator=generator)


def _ref_cosine_schedule(n, steps):
    return cosine_mask_schedule(n, steps)


def _ref_cfg_scale(schedule, cfg, step, steps, masked_after, n, start=0):
    return library_cfg_scale(schedule, cfg, step, steps, masked_after, n, start)


REFERENCES = {
    "patchify": _ref_patchify,
    "timestep_embedding": _ref_timestep_embedding,
    "adaln_block": _ref_adaln_block,
    "final_layer": _ref_final_layer,
    "cfg_forward": _ref_cfg_forward,
    "flow_loss": _ref_flow_loss,
    "masked_flow_loss": _ref_masked_flow_loss,
    "sample_head": _ref_sample_head,
    "cosine_schedule": _ref_cosine_schedule,
    "cfg_scale": _ref_cfg_scale,
}


def _others(*graded):
    return {k: v for k, v in REFERENCES.items() if k not in graded}


# --- 1. tokens ------------------------------------------------------------------------------
def test_patchify(sub):
    for shape, p in (((3, 1, 8, 8), 2), ((2, 3, 4, 4), 1), ((2, 3, 4, 4), 2), ((1, 2, 8, 8), 4)):
        x = torch.randn(*shape, generator=_gen(sum(shape) + p), dtype=F64)
        tokens = sub.patchify(x, p)
        expected = library_patchify(x, p)
        check(
            torch.is_tensor(tokens) and tuple(tokens.shape) == tuple(expected.shape),
            f"patchify of {shape} with p = {p}: shape {tuple(getattr(tokens, 'shape', ()))}, "
            f"expected {tuple(expected.shape)}",
        )
        check(
            torch.equal(tokens, expected),
            f"patchify of {shape} with p = {p}: not the backbone's layout (row-major patches, "
            "values ordered row, column, channel)",
        )
        back = sub.unpatchify(expected, p, shape[1], shape[-1])
        check(
            torch.is_tensor(back) and torch.equal(back, x),
            f"unpatchify(patchify(x)) must give x back exactly ({shape}, p = {p})",
        )
        check(
            torch.equal(library_unpatchify(tokens, p, shape[1], shape[-1]), x),
            f"patchify must be invertible ({shape}, p = {p})",
        )


# --- 2. the head ---------------------------------------------------------------------------
def test_timestep_embedding(sub):
    for dim in (8, 64, 128):
        for dtype in (torch.float32, F64):
            t = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(9, generator=_gen(dim))])
            t = t.to(dtype)
            got = sub.timestep_embedding(t, dim)
            check(
                torch.is_tensor(got) and tuple(got.shape) == (12, dim),
                f"timestep_embedding(t (12,), {dim}) must have shape (12, {dim})",
            )
            expected = SinusoidalEmbedding(dim)(t.float()).to(dtype)
            # the phase reaches 1000 rad: float32 rounding of 1000 t ω_k moves cos/sin by ~1e-4
            assert_close(got, expected, f"the time embedding (dim {dim}, {dtype})", atol=5e-4)


def test_adaln_layers(sub):
    block = _randomise(HeadBlock(16), 1).double()
    h = torch.randn(10, 16, generator=_gen(2), dtype=F64, requires_grad=True)
    c = torch.randn(10, 16, generator=_gen(3), dtype=F64)
    got = sub.adaln_block(h, c, block.norm, block.mlp, block.ada)
    ref_block = _randomise(HeadBlock(16), 1).double()
    h_ref = h.detach().clone().requires_grad_(True)
    expected = ref_block(h_ref, c)
    assert_close(got, expected, "adaln_block", atol=1e-10)
    (got * torch.arange(16, dtype=F64)).sum().backward()
    (expected * torch.arange(16, dtype=F64)).sum().backward()
    assert_close(h.grad, h_ref.grad, "the gradient of adaln_block in h", atol=1e-10)
    assert_close(
        _grads(block), _grads(ref_block), "its gradient in the block's weights", atol=1e-10
    )
    head = _head(4, width=16, dtype=F64)
    h = torch.randn(7, 16, generator=_gen(5), dtype=F64)
    c = torch.randn(7, 16, generator=_gen(6), dtype=F64)
    got = sub.final_layer(h, c, head.final_norm, head.final_ada, head.out)
    shift, scale = head.final_ada(c).chunk(2, -1)
    expected = head.out(head.final_norm(h) * (1 + scale) + shift)
    assert_close(got, expected, "final_layer", atol=1e-10)


def test_zero_init(sub):
    # the stand-ins only record what they see (a stand-in that raises is the grader's error);
    # the checks run after the head has returned
    seen = {"blocks": [], "final": []}

    def block(h, c, norm, mlp, ada):
        m = ada(c)
        seen["blocks"].append(
            {
                "modulation zero": torch.equal(m, torch.zeros_like(m)),
                "mlp alive": bool(mlp(norm(h)).abs().max() > 0),
                "input alive": bool(h.abs().max() > 0),
                "c alive": bool((c[0] - c[1]).abs().max() > 0 and (c[0] - c[2]).abs().max() > 0),
            }
        )
        return _ref_adaln_block(h, c, norm, mlp, ada)

    def final(h, c, norm, ada, linear):
        m = ada(c)
        out = linear(torch.randn(h.shape, generator=_gen(8), dtype=h.dtype))
        seen["final"].append(
            {
                "modulation zero": torch.equal(m, torch.zeros_like(m)),
                "output zero": torch.equal(out, torch.zeros_like(out)),
            }
        )
        return _ref_final_layer(h, c, norm, ada, linear)

    x = torch.randn(3, 4, generator=_gen(9))
    t = torch.tensor([0.3, 0.7, 0.3])  # rows 0 and 1: same z, other t; rows 0 and 2: other z
    z = torch.randn(3, 8, generator=_gen(10))
    z[1] = z[0]
    with sub.replaced(
        timestep_embedding=_ref_timestep_embedding, adaln_block=block, final_layer=final
    ):
        torch.manual_seed(11)
        head = sub.FlowHead(4, 8, 16, 3)
        out = head(x, t, z)
    check(
        len(seen["blocks"]) == 3 and len(seen["final"]) == 1,
        f"FlowHead's layers were not all called: {len(seen['blocks'])} blocks, "
        f"{len(seen['final'])} final layers",
    )
    check(
        all(b["modulation zero"] for b in seen["blocks"]),
        "at init every AdaLN block's modulation ada(c) must be exactly 0 (zero weight and "
        "bias of its last Linear)",
    )
    check(
        all(b["mlp alive"] for b in seen["blocks"]),
        "zero_init_ zeroed a block's MLP: only the modulations and the output layer start at 0",
    )
    check(seen["blocks"][0]["input alive"], "zero_init_ zeroed the input layer")
    check(
        seen["blocks"][0]["c alive"],
        "the condition c must depend on t and z at init (zero_init_ zeroed time or cond)",
    )
    check(
        seen["final"][0]["modulation zero"],
        "at init the final layer's modulation ada(c) must be exactly 0",
    )
    check(
        seen["final"][0]["output zero"],
        "at init the output Linear must be exactly 0 (weight and bias)",
    )
    check(
        torch.is_tensor(out) and torch.equal(out, torch.zeros(3, 4)),
        "a freshly initialised head must output exactly 0",
    )


def test_cfg_forward(sub):
    head = _head(12)
    m = 5
    x = torch.randn(2 * m, 4, generator=_gen(13))  # the halves differ: only the first is used
    t = torch.rand(2 * m, generator=_gen(14))
    z = torch.randn(2 * m, 8, generator=_gen(15))
    for w in (0.0, 1.0, 2.5):
        counting = CountingModel(head)
        got = sub.cfg_forward(counting, x, t, z, w)
        check(
            counting.calls == 1 and counting.batch_sizes == [2 * m],
            f"cfg_forward must call the head once on 2M = {2 * m} rows, got {counting.batch_sizes}",
        )
        expected = _ref_cfg_forward(head, x, t, z, w)
        assert_close(got, expected, f"cfg_forward at w = {w}", atol=1e-6)
        got = as_float64(got, "cfg_forward")
        check(torch.equal(got[:m], got[m:]), "both halves must get the same guided velocity")


# --- 3. training ---------------------------------------------------------------------------
def test_sample_t(sub):
    n = 200_000
    t = as_float64(sub.sample_t(n, _gen(16)), "sample_t")
    check(tuple(t.shape) == (n,), f"sample_t({n}) must have shape ({n},), got {tuple(t.shape)}")
    check(bool(((t > 0) & (t < 1)).all()), "times must lie strictly inside (0, 1)")
    u = torch.logit(t).sort().values
    # Kolmogorov–Smirnov distance of logit(t) to N(0, 1): ≈ 0.002 for a correct sampler at
    # this n (1 % critical value 1.63/√n = 0.0036); uniform t gives 0.07, N(0, 2²) 0.13
    cdf = torch.special.ndtr(u)
    grid = torch.arange(1, n + 1, dtype=F64) / n
    ks = float(torch.maximum((cdf - grid).abs(), (cdf - grid + 1 / n).abs()).max())
    check(ks < 0.006, f"logit(t) is not N(0, 1): Kolmogorov–Smirnov distance {ks:.4f}")
    a = as_float64(sub.sample_t(1000, _gen(17)), "sample_t")
    b = as_float64(sub.sample_t(1000, _gen(17)), "sample_t")
    c = as_float64(sub.sample_t(1000, _gen(18)), "sample_t")
    check(torch.equal(a, b) and not torch.equal(a, c), "sample_t must draw with `generator`")


def _mixture():
    """Three conditions, each a pair of Gaussians in 2D."""
    means = [[-1.5, 1.0], [1.5, 1.0], [0.0, -1.5], [1.5, -1.0], [-1.5, -1.0], [0.0, 1.5]]
    return GaussianMixture(means, [0.3] * 6, labels=[0, 0, 1, 1, 2, 2])


def _trained_head_energy_distances(flow_loss, steps=600, seed=0, n=1000):
    """A visgen head trained with ``flow_loss`` on the mixture (one-hot conditions, logit-normal
    t, Adam 3e-3 decaying linearly to 0, batch 256) and sampled with visgen's Euler head
    sampler (40 steps): the energy distance of each condition's samples to the mixture's."""
    mix, k = _mixture(), 3
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = TokenHead(2, k, width=64, depth=3)
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    g = _gen(100 + seed)
    for _ in range(steps):
        x0, y = mix.sample(256, g, return_labels=True)
        t = head_times(torch.rand(256, generator=g), "velocity")
        noise = torch.randn(256, 2, generator=g)
        loss = flow_loss(head, x0.float(), F.one_hot(y, k).float(), t, noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    eds = []
    for c in range(k):
        cond = torch.full((n,), c)
        x = library_sample_head(head, F.one_hot(cond, k).float(), 40, generator=_gen(7))
        eds.append(energy_distance(x, mix.sample(n, _gen(8 + c), cond=cond).float()))
    return eds


def test_flow_loss(sub):
    m = 40
    x0 = torch.randn(m, 2, generator=_gen(19), dtype=F64)
    z = torch.randn(m, 5, generator=_gen(20), dtype=F64)
    t = torch.rand(m, generator=_gen(21), dtype=F64)
    t[:2] = torch.tensor([0.0, 1.0], dtype=F64)
    noise = torch.randn(m, 2, generator=_gen(22), dtype=F64)
    head = _head(23, token_dim=2, cond_dim=5, width=32, dtype=F64)
    got = sub.flow_loss(head, x0, z, t, noise)
    check(
        torch.is_tensor(got) and tuple(got.shape) == (m,),
        f"flow_loss must return one loss per token ({m},)",
    )
    ref_head = _head(23, token_dim=2, cond_dim=5, width=32, dtype=F64)
    expected = _ref_flow_loss(ref_head, x0, z, t, noise)
    assert_close(got, expected, "the v-loss (x_t = (1 − t) x0 + t ε, target ε − x0)", atol=1e-10)
    got.sum().backward()
    expected.sum().backward()
    assert_close(_grads(head), _grads(ref_head), "the v-loss's gradient in the head", atol=1e-9)
    eds = _trained_head_energy_distances(sub.flow_loss)
    # measured with the reference loss, training seeds 0-2: worst condition 0.0094 / 0.0079 /
    # 0.0088 (floor of two mixture draws ≈ 0.001); an unconditional head (z ignored) ≥ 0.5
    check(
        max(eds) <= 0.02,
        "a head trained 600 steps with flow_loss on a 2D conditional Gaussian mixture: "
        f"per-condition energy distances {[round(e, 4) for e in eds]}, bar 0.02",
    )


def _masked_batch():
    b, n, d, c = 4, 6, 3, 5
    z = torch.randn(b, n, c, generator=_gen(24), dtype=F64)
    target = torch.randn(b, n, d, generator=_gen(25), dtype=F64)
    mask = torch.full((b, n), False)
    mask[0, [1, 4]] = True  # 2 masked tokens
    mask[1] = True  # all 6
    mask[2, 3] = True  # 1; row 3: none (the mean is over the batch's masked tokens)
    t = torch.rand(b, n, generator=_gen(26), dtype=F64)
    noise = torch.randn(b, n, d, generator=_gen(27), dtype=F64)
    return z, target, mask, t, noise


def test_masked_flow_loss(sub):
    z, target, mask, t, noise = _masked_batch()
    with sub.replaced(**_others("masked_flow_loss")):
        head = _head(28, token_dim=3, cond_dim=5, width=16, dtype=F64)
        got = sub.masked_flow_loss(head, z, target, mask, t, noise)
        check(torch.is_tensor(got) and got.dim() == 0, "masked_flow_loss must return a scalar")
        ref_head = _head(28, token_dim=3, cond_dim=5, width=16, dtype=F64)
        expected = _ref_masked_flow_loss(ref_head, z, target, mask, t, noise)
        assert_close(got, expected, "the mean v-loss over the batch's masked tokens", atol=1e-10)
        got.backward()
        expected.backward()
        assert_close(_grads(head), _grads(ref_head), "its gradient in the head", atol=1e-9)
        with torch.no_grad():
            base = as_float64(sub.masked_flow_loss(head, z, target, mask, t, noise), "loss")
            for what, args in (
                ("target", (z, target + 100.0 * (~mask)[..., None], mask, t, noise)),
                ("condition z", (z - 3.0 * (~mask)[..., None], target, mask, t, noise)),
                ("time", (z, target, mask, torch.where(mask, t, 0.5), noise)),
                ("noise", (z, target, mask, t, noise + 7.0 * (~mask)[..., None])),
            ):
                other = sub.masked_flow_loss(head, *args)
                assert_close(
                    other,
                    base,
                    f"changing the {what} of an unmasked token must change nothing",
                    atol=1e-12,
                )
            changed = target.clone()
            changed[2, 3] += 1.0  # the only masked token of sample 2
            other = as_float64(sub.masked_flow_loss(head, z, changed, mask, t, noise), "loss")
            check(abs(float(other - base)) > 1e-6, "the loss must read every masked target")


def test_mar_forward(sub):
    mar = _mar(29, dtype=F64)
    b = 5
    x = torch.rand(b, 1, 8, 8, generator=_gen(30), dtype=F64) * 2 - 1
    cond = torch.tensor([3, -1, 0, 9, 5])
    orders = torch.rand(b, 16, generator=_gen(31)).argsort(1)
    ratio = torch.tensor([1.0, 0.75, 0.05, 0.5, 0.3], dtype=F64)  # ⌈16 r⌉ = 16, 12, 1, 8, 5
    t = torch.rand(b, 16, generator=_gen(32), dtype=F64)
    noise = torch.randn(b, 16, 4, generator=_gen(33), dtype=F64)
    calls = []

    def backbone(tokens, mask, labels):
        calls.append((tokens.detach().clone(), mask.clone(), labels.clone()))
        return mar.backbone(tokens, mask, labels)

    head = _head(34, token_dim=4, cond_dim=16, width=16, dtype=F64)
    with sub.replaced(**_others("mar_forward")):
        loss = sub.mar_forward(backbone, head, x, cond, orders, ratio, t, noise)
    check(torch.is_tensor(loss) and loss.dim() == 0, "mar_forward must return a scalar loss")
    check(len(calls) == 1, f"mar_forward must run the backbone once, got {len(calls)} calls")
    tokens_seen, mask_seen, labels_seen = calls[0]
    tokens = library_patchify(x, 2)
    mask = mask_from_order(orders, torch.tensor([16, 12, 1, 8, 5]))
    check(
        mask_seen.dtype == torch.bool and torch.equal(mask_seen, mask),
        "the backbone must get the mask of the first ⌈N·ratio⌉ positions of each order "
        f"(masked per image: expected [16, 12, 1, 8, 5], got {mask_seen.sum(1).tolist()})",
    )
    check(torch.equal(labels_seen, cond), "the backbone must get the labels as given")
    check(
        tuple(tokens_seen.shape) == tuple(tokens.shape)
        and torch.equal(tokens_seen[~mask], tokens[~mask].to(tokens_seen.dtype)),
        "the backbone must see the patchified tokens (PATCH = 2) at the unmasked positions",
    )
    ref_head = _head(34, token_dim=4, cond_dim=16, width=16, dtype=F64)
    z = mar.backbone(tokens, mask, cond)
    expected = _ref_masked_flow_loss(ref_head, z, tokens, mask, t, noise)
    assert_close(loss, expected, "the MAR training loss", atol=1e-10)
    loss.backward()
    expected.backward()
    assert_close(_grads(head), _grads(ref_head), "its gradient in the head", atol=1e-9)


def test_ema_update(sub):
    ema = [torch.randn(3, 4, generator=_gen(35)), torch.randn(5, generator=_gen(36))]
    params = [torch.randn(3, 4, generator=_gen(37)), torch.randn(5, generator=_gen(38))]
    start = [e.clone() for e in ema]
    kept = [p.clone() for p in params]
    for decay, k in ((0.992, 1), (0.5, 10)):
        ema = [e.clone() for e in start]
        for _ in range(k):
            sub.ema_update(ema, params, decay)
        for e, e0, p in zip(ema, start, params):
            expected = decay**k * e0 + (1 - decay**k) * p  # k updates towards a fixed p
            assert_close(e, expected, f"the EMA after {k} update(s) with decay {decay}", atol=1e-6)
        check(
            all(torch.equal(p, q) for p, q in zip(params, kept)),
            "ema_update must not change the model's parameters",
        )


# --- 4. sampling ---------------------------------------------------------------------------
def test_sample_head(sub):
    head = _head(39)
    m = 6
    with sub.replaced(**_others("sample_head")):
        for steps, cfg in ((1, 1.0), (5, 1.0), (20, 1.0), (5, 3.0), (8, 0.5)):
            rows = 2 * m if cfg != 1.0 else m
            z = torch.randn(rows, 8, generator=_gen(40 + steps))
            counting = CountingModel(head)
            got = sub.sample_head(counting, z, 4, steps, cfg=cfg, generator=_gen(41))
            what = f"{steps} steps, cfg {cfg}"
            check(
                torch.is_tensor(got) and tuple(got.shape) == (m, 4),
                f"sample_head must return ({m}, 4) tokens ({what})",
            )
            check(
                counting.calls == steps and counting.batch_sizes == [rows] * steps,
                f"sample_head must call the head once per step on {rows} rows ({what}), got "
                f"{counting.batch_sizes}",
            )
            times = [float(t.flatten()[0]) for t in counting.times]
            check(
                all(abs(a - (1 - i / steps)) < 1e-6 for i, a in enumerate(times)),
                f"the head must be called at t = 1, 1 − 1/steps, …, 1/steps ({what}), got {times}",
            )
            expected = library_sample_head(head, z, steps, cfg=cfg, generator=_gen(41))
            assert_close(got, expected, f"the Euler head sampler ({what})", atol=1e-5)


def test_cosine_schedule(sub):
    for n, steps in ((16, 1), (16, 4), (16, 7), (16, 16), (17, 5), (256, 64), (100, 99), (1, 1)):
        got = sub.cosine_schedule(n, steps)
        check(
            isinstance(got, list | tuple) and len(got) == steps,
            f"cosine_schedule({n}, {steps}) must return a list of {steps} counts",
        )
        got = [int(c) for c in got]
        check(
            sum(got) == n, f"cosine_schedule({n}, {steps}): the counts sum to {sum(got)}, not {n}"
        )
        expected = cosine_mask_schedule(n, steps)
        check(got == expected, f"cosine_schedule({n}, {steps}) = {got}, expected {expected}")


def test_cfg_scale(sub):
    n, w = 16, 3.0
    for steps in (1, 4, 16):
        counts = cosine_mask_schedule(n, steps)
        after = [n - sum(counts[:step]) - c for step, c in enumerate(counts)]
        for schedule, start in (("constant", 0), ("linear", 0), ("interval", 0), ("interval", 2)):
            got = [
                float(sub.cfg_scale(schedule, w, s, steps, a, n, start))
                for s, a in enumerate(after)
            ]
            expected = [
                library_cfg_scale(schedule, w, s, steps, a, n, start) for s, a in enumerate(after)
            ]
            check(
                all(abs(a - b) < 1e-12 for a, b in zip(got, expected)),
                f"{schedule} CFG (start {start}) over {steps} steps: scales "
                f"{[round(g, 4) for g in got]}, expected {[round(e, 4) for e in expected]}",
            )


def test_sample_tokens(sub):
    mar = _mar(42)
    b, n = 3, 16
    cond = torch.tensor([1, 7, 4])
    calls, head_calls = [], []

    def backbone(tokens, mask, labels):
        calls.append((tokens.clone(), mask.clone(), labels.clone()))
        return mar.backbone(tokens, mask, labels)

    def sample_head(head, z, token_dim, steps, cfg=1.0, generator=None):
        head_calls.append((int(z.shape[0]), float(cfg), int(steps)))
        return _ref_sample_head(head, z, token_dim, steps, cfg, generator)

    cases = (
        (4, 1.0, "constant", 0),
        (4, 2.0, "linear", 0),
        (16, 3.0, "interval", 5),
        (1, 2.0, "constant", 0),
        (7, 2.0, "constant", 0),
    )
    with sub.replaced(**_others("sample_tokens", "sample_head"), sample_head=sample_head):
        for steps, w, schedule, start in cases:
            calls.clear()
            head_calls.clear()
            what = f"{steps} AR steps, {schedule} CFG {w}" + (
                f" from step {start}" if start else ""
            )
            got = sub.sample_tokens(
                backbone, mar.head, cond, steps, n, 4, cfg=w, schedule=schedule, cfg_start=start,
                head_steps=3, generator=_gen(43),
            )  # fmt: skip
            check(
                torch.is_tensor(got) and tuple(got.shape) == (b, n, 4),
                f"sample_tokens must return ({b}, {n}, 4) tokens ({what})",
            )
            rows = 2 * b if w != 1.0 else b
            check(
                len(calls) == steps and all(len(c[0]) == rows for c in calls),
                f"one backbone call per AR step on {rows} rows ({what}): got "
                f"{[len(c[0]) for c in calls]}",
            )
            labels = torch.cat([cond, torch.full_like(cond, -1)]) if w != 1.0 else cond
            check(
                all(torch.equal(c[2], labels) for c in calls),
                f"the backbone's labels must be [cond; -1 …] with CFG, cond without ({what})",
            )
            counts = cosine_mask_schedule(n, steps)
            masked = [n - sum(counts[:s]) for s in range(steps)]
            check(
                all(c[1].sum(1).tolist() == [masked[s]] * rows for s, c in enumerate(calls)),
                f"masked tokens per image at each step must be {masked} ({what}), got "
                f"{[c[1][0].sum().item() for c in calls]}",
            )
            final = as_float64(got, "tokens")
            for s, (tokens, mask, _) in enumerate(calls):
                known = ~mask[:b]
                check(
                    torch.equal(tokens[:b][known].double(), final[known]),
                    f"tokens revealed before step {s} must be passed to the backbone and stay "
                    f"fixed ({what})",
                )
            scales = [
                library_cfg_scale(schedule, w, s, steps, masked[s] - counts[s], n, start)
                if w != 1.0
                else 1.0
                for s in range(steps)
            ]
            expected_calls = [
                (c * b * (2 if sc != 1.0 else 1), sc, 3) for c, sc in zip(counts, scales)
            ]
            check(
                head_calls == expected_calls,
                f"the head must sample the newly revealed tokens of each step with its CFG "
                f"scale ({what}): (rows, scale, head steps) per step {head_calls}, expected "
                f"{expected_calls}",
            )
            expected = library_sample_tokens(
                mar, cond, steps, cfg=w, cfg_schedule=schedule, cfg_start=start, head_steps=3,
                generator=_gen(43),
            ).tokens  # fmt: skip
            assert_close(got, expected, f"the sampled tokens ({what})", atol=1e-5)
