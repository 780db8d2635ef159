"""Caching wrappers (lecture 10) on randomised networks: exactness, CFG branches, counts.

Oracles: a cache that refreshes at every call (interval 1, threshold 0) must give the plain
network's samples bit for bit; two-pass CFG (separate conditional and unconditional calls,
as diffusers pipelines do) must equal visgen's batched CFG through the same cache — which
fails when the branches share one state; skipped compute is counted exactly from the
architecture (FLOPs per layer), never timed.
"""

import pytest
import torch
from torch import nn

from visgen.efficient import (
    CachedDenoiser,
    attention_flops,
    compare_at_matched_skips,
    deepcache,
    flop_counter,
    flop_table,
    fora,
    pab,
    perfect_indicator_schedule,
    scheduled_cache,
    teacache,
    uniform_cache,
)
from visgen.efficient.deepcache import DeepCacheHook
from visgen.metrics import psnr
from visgen.nn import DiT, UNet
from visgen.param import Denoiser
from visgen.sampling import sample_euler, uniform
from visgen.sampling.guidance import classifier_free_guidance

STEPS = 12


def _randomise(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.15 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def unet():
    return Denoiser(_randomise(UNet(1, 8, channels=16, mults=(1, 2), num_classes=10)), "linear",
                    "velocity")  # fmt: skip


@pytest.fixture(scope="module")
def dit():
    model = _randomise(DiT(1, 8, patch_size=2, dim=32, depth=3, heads=2, num_classes=10))
    return Denoiser(model, "linear", "velocity")


def _inputs(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 8, 8, generator=g), torch.arange(n) % 10


def _cached(name, den, **kw):
    makers = {
        "deepcache": lambda: deepcache(den, steps=STEPS, **{"interval": 1, **kw}),
        "fora": lambda: fora(den, steps=STEPS, **{"interval": 1, **kw}),
        "uniform": lambda: uniform_cache(den, steps=STEPS, **{"interval": 1, **kw}),
        "teacache": lambda: teacache(den, steps=STEPS, **{"threshold": 0.0,
                                                          "coefficients": [1.0, 0.0], **kw}),
    }  # fmt: skip
    return makers[name]()


@pytest.mark.parametrize("name", ["deepcache", "fora", "uniform", "teacache"])
def test_refresh_every_call_is_bit_identical(name, unet, dit):
    den = unet if name == "deepcache" else dit
    z, y = _inputs()
    plain = sample_euler(den, z, uniform(STEPS), y)
    cached = _cached(name, den)
    assert torch.equal(sample_euler(cached, z, uniform(STEPS), y), plain)
    # also under CFG (batched halves) and for a second inference through the same wrapper
    guided = sample_euler(classifier_free_guidance(den, 2.0), z, uniform(STEPS), y)
    assert torch.equal(sample_euler(classifier_free_guidance(cached, 2.0), z, uniform(STEPS), y),
                       guided)  # fmt: skip
    s, table = cached.stats, cached.hook.table
    assert s["calls"] == 2 * STEPS and s["computed"] == 2 * STEPS
    # TeaCache pays its check (block 0's adaLN map) on every call, even when it never skips
    check = table["blocks.0.image.ada"] / table[""] if name == "teacache" else 0.0
    assert s["fraction"] == pytest.approx(1.0 + check, rel=1e-12)


class _TwoPassCFG:
    """CFG as two separate model calls per step (conditional, then unconditional)."""

    def __init__(self, den, scale):
        self.den, self.scale = den, scale

    def __call__(self, x, t, cond):
        c = self.den(x, t, cond).velocity
        u = self.den(x, t, torch.full_like(cond, -1)).velocity
        return u + self.scale * (c - u)


@pytest.mark.parametrize("name", ["deepcache", "fora", "uniform"])
def test_cfg_branches_never_share_a_cache_entry(name, unet, dit):
    den = unet if name == "deepcache" else dit
    z, y = _inputs()
    interval = 3 if name == "deepcache" else 2
    batched = _cached(name, den, interval=interval)
    ref = sample_euler(classifier_free_guidance(batched, 2.0), z, uniform(STEPS), y)
    assert batched.stats["computed"] < batched.stats["calls"]  # the cache did skip work
    two_pass = _cached(name, den, interval=interval)
    out = sample_euler(Denoiser(_TwoPassCFG(two_pass, 2.0), "linear", "velocity"), z,
                       uniform(STEPS), y)  # fmt: skip
    assert len(two_pass.states) == 2  # conditional and unconditional: two entries
    assert two_pass.stats["calls"] == 2 * STEPS
    assert torch.allclose(out, ref, atol=1e-5)
    # the pitfall: one global state lets the unconditional pass reuse conditional features
    shared = CachedDenoiser(den, type(two_pass.hook)(two_pass.config), per_branch=False)
    wrong = sample_euler(Denoiser(_TwoPassCFG(shared, 2.0), "linear", "velocity"), z,
                         uniform(STEPS), y)  # fmt: skip
    assert (wrong - ref).abs().max() > 1e-3


def test_first_and_last_calls_always_compute_and_counts(unet, dit):
    z, y = _inputs()
    steps = 50
    dc = deepcache(unet, steps=steps, interval=3)
    sample_euler(dc, z, uniform(steps), y)
    computed = dc.states[next(iter(dc.states))].computed
    assert computed[0] and computed[-1] and computed.count(True) == 18  # 0, 3, …, 48 and 49
    # FLOPs: 18 full calls + 32 calls of the shallow branch (measured per layer)
    table, hook = dc.hook.table, dc.hook
    assert isinstance(hook, DeepCacheHook)
    expected = (18 * table[""] + 32 * hook.partial_flops()) / (50 * table[""])
    assert dc.stats["fraction"] == pytest.approx(expected, rel=1e-12)
    assert dc.stats["fraction"] <= 0.45  # the bar, from the architecture alone
    f = fora(dit, steps=steps, interval=2)
    sample_euler(f, z, uniform(steps), y)
    assert f.stats["computed"] / f.stats["calls"] == 26 / 50  # ≤ 0.55 of block calls


def test_total_counter_equals_torch_counter_and_changes_nothing(unet, dit):
    """flop_counter (total only) against FlopCounterMode with the same formulas: the same
    count for a U-Net, a DiT (CPU attention) and a real INT8 layer, and the same outputs as
    without any counter."""
    from visgen.efficient.flops import _module_counter
    from visgen.efficient.int8 import Int8Linear

    z, y = _inputs()
    layer = Int8Linear(nn.Linear(64, 32))
    runs = {
        "unet": lambda: sample_euler(unet, z, uniform(3), y),
        "dit": lambda: sample_euler(dit, z, uniform(3), y),
        "int8": lambda: layer(z.flatten(1)),
    }
    for name, run in runs.items():
        with torch.no_grad():
            plain = run()
            with _module_counter() as reference:
                counted_ref = run()
            with flop_counter() as counter:
                counted = run()
        assert counter.get_total_flops() == reference.get_total_flops() > 0, name
        assert torch.equal(counted, plain) and torch.equal(counted_ref, plain), name


@pytest.mark.parametrize("name", ["deepcache", "fora", "uniform", "teacache"])
def test_counted_flops_are_the_flops_evaluated(name, unet, dit):
    den = unet if name == "deepcache" else dit
    z, y = _inputs()
    options = {"threshold": 0.5} if name == "teacache" else {"interval": 3}
    cached = _cached(name, den, **options)
    sample_euler(cached, z, uniform(STEPS), y)  # builds the FLOP table (not counted below)
    cached.reset()
    with flop_counter() as counter:
        sample_euler(cached, z, uniform(STEPS), y)
    s = cached.stats
    assert 0 < s["computed"] < s["calls"] == STEPS
    assert s["flops"] == counter.get_total_flops()  # the bookkeeping is the measured count
    assert s["plain_flops"] == STEPS * len(z) * cached.hook.table[""]


def test_pab_broadcasts_attention_per_kind():
    # a DiT whose blocks say they are spatial / temporal stands in for the video DiT: PAB
    # only needs blocks with a kind and a self_attention(...) branch before the gate
    model = _randomise(DiT(1, 8, patch_size=2, dim=32, depth=4, heads=2, num_classes=10))
    for i, block in enumerate(model.blocks):
        block.kind = ("spatial", "temporal")[i % 2]
    den = Denoiser(model, "linear", "velocity")
    z, y = _inputs()
    plain = sample_euler(den, z, uniform(STEPS), y)
    exact = pab(den, steps=STEPS, spatial=1, temporal=1, cross=1)
    assert torch.equal(sample_euler(exact, z, uniform(STEPS), y), plain)
    outside = pab(den, steps=STEPS, spatial=3, temporal=5, window=(0.0, 0.0))
    assert torch.equal(sample_euler(outside, z, uniform(STEPS), y), plain)
    cached = pab(den, steps=STEPS, spatial=2, temporal=4, window=(0.1, 0.8))
    sample_euler(cached, z, uniform(STEPS), y)  # builds the tables
    cached.reset()
    calls = []
    for block in model.blocks:  # count the attention evaluations that really run
        original = block.self_attention

        def counting(*args, original=original, kind=block.kind, **kwargs):
            calls.append(kind)
            return original(*args, **kwargs)

        block.self_attention = counting
    with flop_counter() as counter:
        x = sample_euler(cached, z, uniform(STEPS), y)
    for block in model.blocks:
        del block.self_attention
    ts = uniform(STEPS)[:-1]
    inside = [i for i, t in enumerate(ts.tolist()) if 0.1 <= t <= 0.8 and 0 < i < STEPS - 1]
    assert 0 < len(inside) < STEPS
    # within the window spatial runs every 2nd call, temporal every 4th: fewer temporal calls
    assert calls.count("temporal") < calls.count("spatial") < 2 * STEPS
    assert cached.stats["flops"] == pytest.approx(counter.get_total_flops(), rel=1e-9)
    assert float(psnr(x, plain).mean()) > 20
    with pytest.raises(TypeError, match="video DiT"):
        pab(Denoiser(UNet(1, 8, channels=16, mults=(1, 2)), "linear", "velocity"), steps=STEPS)


def test_branch_selection_and_errors(unet, dit):
    z, y = _inputs()
    deeper = deepcache(unet, steps=STEPS, interval=2, branch=1)
    shallow = deepcache(unet, steps=STEPS, interval=2, branch=0)
    for den in (deeper, shallow):
        sample_euler(den, z, uniform(STEPS), y)
    assert shallow.stats["fraction"] < deeper.stats["fraction"] < 1
    with pytest.raises(TypeError, match="UNet"):
        deepcache(dit, steps=STEPS)
    with pytest.raises(TypeError, match="DiT"):
        fora(unet, steps=STEPS)
    with pytest.raises(ValueError, match="skip"):
        deepcache(unet, steps=STEPS, branch=9)
    with pytest.raises(ValueError, match="interval"):
        fora(dit, steps=STEPS, interval=0)
    with pytest.raises(ValueError, match="threshold"):
        teacache(dit, steps=STEPS, threshold=-1.0, coefficients=[1.0])
    # a new trajectory before `steps` calls: the cache would be stale
    short = fora(dit, steps=STEPS)
    sample_euler(short, z, uniform(STEPS // 2), y)
    with pytest.raises(ValueError, match="new trajectory"):
        sample_euler(short, z, uniform(STEPS), y)
    short.reset()
    sample_euler(short, z, uniform(STEPS), y)  # fine after reset


def test_flop_table_closed_forms():
    lin = nn.Linear(16, 8)
    assert flop_table(lin, torch.randn(5, 16))[""] == 2 * 5 * 16 * 8
    dit = DiT(1, 8, patch_size=2, dim=32, depth=1, heads=2, num_classes=10)
    table = flop_table(dit, torch.randn(1, 1, 8, 8), torch.rand(1), torch.tensor([1]))
    block = table["blocks.0"]
    parts = sum(table[f"blocks.0.image.{n}"] for n in ("ada", "qkv", "proj", "mlp"))
    assert block - parts == attention_flops(2 * 16 * 16, 16)  # 2 heads × 16² pairs × d=16


def test_compare_at_matched_skips_is_one_consistent_comparison(dit):
    z, y = _inputs()
    ts = uniform(STEPS)
    m = compare_at_matched_skips(dit, [1.0, 0.0], z, y, sample_euler, ts)  # f(r) = r
    assert m.calls == STEPS and m.uniform_computed == 7  # every 2nd call of 12 and the last
    assert m.teacache_computed <= m.uniform_computed
    assert len(m.schedule) == STEPS and m.schedule.count("x") == m.teacache_computed
    assert m.schedule[0] == m.schedule[-1] == "x"  # first and last calls always compute
    assert torch.equal(m.samples["plain"], sample_euler(dit, z, ts, y))
    again = teacache(dit, steps=STEPS, threshold=m.threshold, coefficients=[1.0, 0.0])
    assert torch.equal(sample_euler(again, z, ts, y), m.samples["teacache"])
    assert m.teacache_psnr == pytest.approx(
        float(psnr(m.samples["teacache"], m.samples["plain"]).mean())
    )
    assert m.gain == m.teacache_psnr - m.uniform_psnr


def test_scheduled_cache_is_the_uniform_cache_on_its_schedule(dit):
    z, y = _inputs()
    ts = uniform(STEPS)
    every_second = [i % 2 == 0 for i in range(STEPS)]
    on_schedule = scheduled_cache(dit, computed=every_second)
    out = sample_euler(on_schedule, z, ts, y)
    assert torch.equal(out, sample_euler(uniform_cache(dit, steps=STEPS, interval=2), z, ts, y))
    assert on_schedule.stats["computed"] == 7  # the last call always runs: 6 + 1
    always = scheduled_cache(dit, computed=[True] * STEPS)
    assert torch.equal(sample_euler(always, z, ts, y), sample_euler(dit, z, ts, y))


def test_perfect_indicator_schedule_is_teacaches_rule_at_the_smallest_threshold():
    # equal changes: the rule is the uniform schedule; 7 of 12 calls → every 2nd and the last
    assert perfect_indicator_schedule([1.0] * 11, 7) == tuple(i % 2 == 0 or i == 11
                                                              for i in range(12))  # fmt: skip
    # one large change: the calls crowd where the output moves
    changes = [5.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    schedule = perfect_indicator_schedule(changes, 4)
    assert schedule == (True, True, False, False, True, False, True)
    assert sum(schedule) <= 4 and schedule[0] and schedule[-1]
    with pytest.raises(ValueError, match="computed"):
        perfect_indicator_schedule(changes, 1)
