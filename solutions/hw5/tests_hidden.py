"""Hidden tests of homework 5. Each test takes `sub`, the notebook's definitions.

Oracles: visgen's forward process (`noisy_sample`), x0 conversion (`Denoiser`), forward-hook
feature tap (`FeatureTap`), multistep consistency sampler and kernel MMD (`mmd2`); the
softplus forms of the non-saturating losses; explicit all-pairs sums for the MMD
estimators; Monte-Carlo means with stated standard errors (the unbiased MMD is zero in
expectation on identical distributions). Networks are small random U-Nets of the teacher's
architecture (no trained asset is needed). Each graded function is tested on its own: the
`_ref_*` functions below stand in for every other graded function.
"""

import contextlib
import math

import torch
from torch import nn
from torch.nn import functional as F

from visgen.course.testing import CountingModel, GraderError, as_float64, assert_close, check
from visgen.data import get_dataset
from visgen.fewstep import sample_consistency
from visgen.fewstep.features import FeatureTap
from visgen.metrics.kernels import mmd2
from visgen.nn import UNet
from visgen.objectives import noisy_sample
from visgen.param import Denoiser
from visgen.schedules import Linear

F64 = torch.float64
LEVELS = (1.0, 0.75, 0.5, 0.25)
T_DISC = 0.2
MID = "mid.2"


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _net(seed=0, dtype=F64):
    """A random U-Net of the teacher's architecture, with a non-zero output layer."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = UNet(1, 8, channels=16, mults=(1, 2), num_classes=10)
        nn.init.normal_(net.out[-1].weight, std=0.05)
    return net.to(dtype)


class _Head(nn.Module):
    """A discriminator head like the notebook's (1×1 conv, mean over positions, projection)."""

    def __init__(self, seed=0, channels=32, width=16):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.body = nn.Sequential(nn.Conv2d(channels, width, 1), nn.SiLU())
            self.logit = nn.Linear(width, 1)
            self.embed = nn.Embedding(10, width)
        self.to(F64)

    def forward(self, features, y):
        h = self.body(features).mean((2, 3))
        return self.logit(h).squeeze(1) + (self.embed(y) * h).sum(1)


def _digits(n, seed=0, dtype=F64):
    data = get_dataset("digits")
    idx = torch.randperm(len(data), generator=_gen(seed))[:n]
    return data.x[idx].to(dtype), data.labels[idx]


# --- references of the graded functions ----------------------------------------------
def _ref_add_noise(x0, t, noise):
    t = torch.as_tensor(t, dtype=x0.dtype)
    t = t.expand(x0.shape[0]) if t.dim() == 0 else t
    return noisy_sample(x0, t, Linear(), noise)


def _ref_draw_student_t(n, generator=None):
    return torch.tensor(LEVELS)[torch.randint(4, (n,), generator=generator)]


def _ref_generator_x0(student, x0, t, noise, y):
    xt = _ref_add_noise(x0, t, noise)
    return Denoiser(student, Linear(), "velocity")(xt, t, y).x0


def _ref_teacher_features(net, layer, x, t, y):
    net.requires_grad_(False)
    return FeatureTap(net, [(layer, False)])(x, t, y)[0]


def _ref_ns_loss(logits, real):
    return F.softplus(-logits).mean() if real else F.softplus(logits).mean()


def _ref_discriminator_loss(head, net, layer, real, fake, y, generator=None):
    t = T_DISC * torch.rand(real.shape[0], generator=generator, dtype=real.dtype)
    real_t = _ref_add_noise(real, t, torch.randn(real.shape, generator=generator, dtype=real.dtype))
    fake_t = _ref_add_noise(
        fake.detach(), t, torch.randn(fake.shape, generator=generator, dtype=fake.dtype)
    )
    d_real = head(_ref_teacher_features(net, layer, real_t, t, y), y)
    d_fake = head(_ref_teacher_features(net, layer, fake_t, t, y), y)
    return _ref_ns_loss(d_real, True) + _ref_ns_loss(d_fake, False)


def _ref_generator_loss(head, net, layer, fake, y, generator=None):
    t = T_DISC * torch.rand(fake.shape[0], generator=generator, dtype=fake.dtype)
    fake_t = _ref_add_noise(fake, t, torch.randn(fake.shape, generator=generator, dtype=fake.dtype))
    return _ref_ns_loss(head(_ref_teacher_features(net, layer, fake_t, t, y), y), True)


def _ref_patches(features):
    return features.flatten(2).transpose(1, 2)


def _ref_mmd_linear(x, y):
    return mmd2(x, y, "linear")


def _ref_mmd_rbf(x, y, sigma):
    return mmd2(x, y, "rbf", sigma)


REFERENCES = {
    "add_noise": _ref_add_noise,
    "draw_student_t": _ref_draw_student_t,
    "generator_x0": _ref_generator_x0,
    "teacher_features": _ref_teacher_features,
    "ns_loss": _ref_ns_loss,
    "discriminator_loss": _ref_discriminator_loss,
    "generator_loss": _ref_generator_loss,
    "patches": _ref_patches,
    "mmd_linear": _ref_mmd_linear,
    "mmd_rbf": _ref_mmd_rbf,
}


def _others(*graded):
    """Reference versions of every graded function except the ones under test."""
    return {k: v for k, v in REFERENCES.items() if k not in graded}


class _Recorder:
    """A teacher_features stand-in that records the (x_t, t, y) it is called with."""

    def __init__(self):
        self.calls = []

    def __call__(self, net, layer, x, t, y):
        t = torch.as_tensor(t, dtype=x.dtype)
        self.calls.append((x.detach().clone(), t.detach().clone().expand(x.shape[0]), y))
        return _ref_teacher_features(net, layer, x, t, y)

    def rows(self):
        x = torch.cat([c[0] for c in self.calls])
        t = torch.cat([c[1] for c in self.calls])
        y = torch.cat([torch.as_tensor(c[2]) for c in self.calls])
        return x, t, y


def _check_levels(t, n):
    t = as_float64(t, "t̂ of the discriminator")
    check(t.shape == (n,), f"one level t̂ per sample: expected {n} values, got {tuple(t.shape)}")
    check(
        t.min() >= 0 and t.max() <= T_DISC + 1e-12,
        f"t̂ must lie in [0, T_DISC_MAX] = [0, {T_DISC}], got [{t.min():.3f}, {t.max():.3f}]",
    )
    se = T_DISC / math.sqrt(12 * n)
    check(
        abs(t.mean() - T_DISC / 2) < 5 * se and abs(t.std() - T_DISC / math.sqrt(12)) < 0.01,
        f"t̂ is not uniform on [0, {T_DISC}]: mean {t.mean():.4f}, std {t.std():.4f} "
        f"(expected {T_DISC / 2}, {T_DISC / math.sqrt(12):.4f})",
    )


def _check_noise(xt, x0, t, what):
    keep = t > 0.02
    eps = (xt[keep] - (1 - t[keep]).reshape(-1, 1, 1, 1) * x0[keep]) / t[keep].reshape(-1, 1, 1, 1)
    n = eps.numel()
    check(
        abs(eps.mean()) < 5 / math.sqrt(n) and abs(eps.var() - 1) < 5 * math.sqrt(2 / n),
        f"{what} is not x_t̂ = (1 − t̂) x + t̂ ε with ε ~ N(0, I): the implied ε has mean "
        f"{eps.mean():.3f}, variance {eps.var():.3f}",
    )


# --- 1.1 the generator at fixed levels --------------------------------------------------
def test_generator_levels(sub):
    x0, y = _digits(16)
    noise = torch.randn(x0.shape, generator=_gen(1), dtype=F64)
    for t in (0.0, 0.3, 1.0):
        assert_close(
            sub.add_noise(x0, t, noise), _ref_add_noise(x0, t, noise), f"add_noise at t = {t}"
        )
    t = torch.linspace(0, 1, 16, dtype=F64)
    assert_close(sub.add_noise(x0, t, noise), _ref_add_noise(x0, t, noise), "add_noise, (B,) t")
    v = torch.randn(16, 2, generator=_gen(2), dtype=F64)
    assert_close(
        sub.add_noise(v, t, -v), _ref_add_noise(v, t, -v), "add_noise on (B, 2) data, (B,) t"
    )

    n = 20_000
    draws = as_float64(sub.draw_student_t(n, _gen(3)), "draw_student_t(n)")
    check(draws.shape == (n,), f"draw_student_t(n) must have shape ({n},), got {draws.shape}")
    se = math.sqrt(0.25 * 0.75 / n)
    for level in LEVELS:
        share = float((draws == level).double().mean())
        check(
            abs(share - 0.25) < 5 * se,
            f"level {level} drawn with frequency {share:.3f}, expected 1/4 (± {5 * se:.3f})",
        )
    check(
        bool(torch.isin(draws, torch.tensor(LEVELS, dtype=F64)).all()),
        "draw_student_t returned levels outside STUDENT_TS",
    )
    again = as_float64(sub.draw_student_t(n, _gen(3)), "draw_student_t(n)")
    check(torch.equal(draws, again), "draw_student_t must draw from the given generator")

    net = _net()
    model = CountingModel(net)
    t = _ref_draw_student_t(16, _gen(4)).to(F64)
    with sub.replaced(**_others("generator_x0")):
        got = sub.generator_x0(model, x0, t, noise, y)
    assert_close(got, _ref_generator_x0(net, x0, t, noise, y), "generator_x0", atol=1e-9)
    check(model.calls == 1, f"generator_x0 must call the student once, got {model.calls}")
    check(model.times[0].shape == (16,), "the student must get t as a (B,) tensor (one per sample)")
    check(got.requires_grad, "generator_x0 must keep the graph to the student's parameters")


# --- 1.2 teacher features by a forward hook ----------------------------------------------
def _no_hooks(net):
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_teacher_features(sub):
    net = _net(1)
    x0, y = _digits(6)
    t = torch.tensor([0.0, 0.05, 0.1, 0.2, 0.5, 0.9], dtype=F64)
    for layer, shape in ((MID, (6, 32, 4, 4)), ("mid.0", (6, 32, 4, 4)), ("down.0", (6, 16, 8, 8))):
        x = x0.clone().requires_grad_(True)
        net.requires_grad_(True)
        got = sub.teacher_features(net, layer, x, t, y)
        check(torch.is_tensor(got), f"teacher_features must return a tensor, got {type(got)}")
        with torch.no_grad():
            expected = FeatureTap(net, [(layer, False)])(x0, t, y)[0]
        check(
            tuple(got.shape) == shape,
            f"features of {layer!r} have shape {tuple(got.shape)}, expected {shape}",
        )
        assert_close(got, expected, f"teacher_features(net, {layer!r}, ...)", atol=1e-10)
        check(_no_hooks(net), "teacher_features left a hook on the network: remove it")
        got.pow(2).sum().backward()
        check(
            all(p.grad is None or not p.grad.any() for p in net.parameters()),
            "gradients reached the teacher's parameters: the teacher must stay frozen",
        )
        check(
            x.grad is not None and x.grad.abs().sum() > 0,
            "no gradient flows from the features back to the input x",
        )
    bad = torch.zeros(2, 3, 8, 8, dtype=F64)  # three channels: the one-channel U-Net raises
    try:
        net(bad, t[:2], y[:2])
    except ValueError:
        pass
    else:
        raise GraderError("the U-Net accepted the bad input: the exception path is not tested")
    with contextlib.suppress(Exception):  # the network's own error, passed on
        sub.teacher_features(net, MID, bad, t[:2], y[:2])
    check(_no_hooks(net), "when the network raises, teacher_features must still remove its hook")


# --- 1.3 non-saturating losses ---------------------------------------------------------
def test_ns_loss(sub):
    for dtype in (torch.float32, F64):
        logits = torch.tensor([-200.0, -30.0, -1.5, 0.0, 0.7, 4.0, 40.0, 200.0], dtype=dtype)
        for real in (True, False):
            l = logits.clone().requires_grad_(True)
            got = sub.ns_loss(l, real)
            check(torch.is_tensor(got) and got.dim() == 0, "ns_loss must return a scalar tensor")
            expected = F.softplus(-logits.double() if real else logits.double()).mean()
            assert_close(got, expected, f"ns_loss(logits, real={real}) in {dtype}", rtol=1e-5)
            got.backward()
            sig = torch.sigmoid(logits.double())
            grad = (sig - 1 if real else sig) / len(logits)
            assert_close(l.grad, grad, f"gradient of ns_loss(real={real})", atol=1e-7, rtol=1e-5)
    check(
        abs(float(sub.ns_loss(torch.zeros(5), True)) - math.log(2)) < 1e-6,
        "at D = 0 each loss must be log 2",
    )


# --- 1.4 discriminator loss -------------------------------------------------------------
def _split(rec, real, fake):
    """Recorded rows → (real_t, t_real, fake_t, t_fake), each row matched to real or fake."""
    x, t, y = rec.rows()
    n = real.shape[0]
    check(
        x.shape[0] == 2 * n,
        f"the teacher should see {n} real and {n} fake samples, got {x.shape[0]} rows",
    )
    halves = [(x[:n], t[:n]), (x[n:], t[n:])]
    d_real = [float((h[0] - real).abs().mean()) for h in halves]
    if d_real[1] < d_real[0]:
        halves.reverse()
    return halves[0][0], halves[0][1], halves[1][0], halves[1][1]


def test_discriminator_loss(sub):
    n = 256
    real, y = _digits(n, 5)
    fake = (real.flip(-1) * 0.5 + 0.8).requires_grad_(True)
    net, head = _net(2), _Head(1)
    rec = _Recorder()
    with sub.replaced(**{**_others("discriminator_loss"), "teacher_features": rec}):
        loss = sub.discriminator_loss(head, net, MID, real, fake, y, _gen(6))
        check(torch.is_tensor(loss) and loss.dim() == 0, "the loss must be a scalar tensor")
        real_t, t_real, fake_t, t_fake = _split(rec, real, fake)
        _check_levels(t_real, n)
        check(
            torch.allclose(t_real, t_fake),
            "real and fake samples must be noised identically: the same t̂ for each pair",
        )
        _check_noise(real_t, real.detach(), t_real, "the noised real input")
        _check_noise(fake_t, fake.detach(), t_fake, "the noised fake input")
        expected = _ref_ns_loss(head(_ref_teacher_features(net, MID, real_t, t_real, y), y), True)
        expected = expected + _ref_ns_loss(
            head(_ref_teacher_features(net, MID, fake_t, t_fake, y), y), False
        )
        assert_close(loss, expected, "discriminator_loss (recomputed from its inputs)", atol=1e-8)
        loss.backward()
        check(
            fake.grad is None or not fake.grad.any(),
            "the discriminator loss sent gradients into the generator's samples (detach them)",
        )
        check(
            all(p.grad is not None for p in head.parameters()),
            "the discriminator loss must train the head",
        )

        # a few discriminator updates with this loss must lower it (fixed evaluation draws)
        head = _Head(3)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        real, y = _digits(32, 7)
        fake = real.roll(1, -1) * 0.6 + 0.3

        def evaluate():
            with torch.no_grad():
                return float(_ref_discriminator_loss(head, net, MID, real, fake, y, _gen(8)))

        before = evaluate()
        for step in range(40):
            d = sub.discriminator_loss(head, net, MID, real, fake, y, _gen(100 + step))
            opt.zero_grad()
            d.backward()
            opt.step()
        after = evaluate()
    # measured: the reference loss goes 1.39 → 0.19; with real and fake swapped 1.39 → 4.8
    check(
        after < 0.5 * before,
        f"40 Adam steps on your discriminator loss changed it from {before:.3f} to {after:.3f}; "
        "a discriminator learning to tell real from fake brings it far below log 4 ≈ 1.39",
    )


# --- 1.5 generator loss -----------------------------------------------------------------
def test_generator_loss(sub):
    n = 256
    real, y = _digits(n, 9)
    fake = (real * 0.7 + 0.1).requires_grad_(True)
    net, head = _net(3), _Head(2)
    rec = _Recorder()
    with sub.replaced(**{**_others("generator_loss"), "teacher_features": rec}):
        loss = sub.generator_loss(head, net, MID, fake, y, _gen(10))
    check(torch.is_tensor(loss) and loss.dim() == 0, "the loss must be a scalar tensor")
    xt, t, _ = rec.rows()
    check(xt.shape[0] == n, f"the teacher should see the {n} fake samples, got {xt.shape[0]} rows")
    _check_levels(t, n)
    _check_noise(xt, fake.detach(), t, "the noised fake input")
    logits = head(_ref_teacher_features(net, MID, xt, t, y), y)
    assert_close(loss, F.softplus(-logits).mean(), "generator_loss (recomputed)", atol=1e-8)
    loss.backward()
    check(fake.grad is not None and fake.grad.abs().sum() > 0, "no gradient reaches the samples")
    # replay: the same x_t̂ as a function of fake gives the expected gradient
    eps = (xt - (1 - t).reshape(-1, 1, 1, 1) * fake.detach()) / t.reshape(-1, 1, 1, 1)
    probe = fake.detach().clone().requires_grad_(True)
    replay = _ref_add_noise(probe, t, eps)
    F.softplus(-head(_ref_teacher_features(net, MID, replay, t, y), y)).mean().backward()
    assert_close(fake.grad, probe.grad, "gradient of generator_loss w.r.t. the samples", atol=1e-6)
    check(
        all(p.grad is None or not p.grad.any() for p in net.parameters()),
        "gradients reached the teacher's parameters",
    )


# --- 1.6 one LADD iteration --------------------------------------------------------------
class _LoggedAdam(torch.optim.Adam):
    """Adam that logs each step and the gradients it saw."""

    def __init__(self, params, name, log, watch):
        super().__init__(params, lr=1e-3)
        self.name, self.log, self.watch = name, log, watch

    def step(self, closure=None):
        grads = {
            k: [None if p.grad is None else p.grad.clone() for p in ps]
            for k, ps in self.watch.items()
        }
        self.log.append((self.name, grads))
        return super().step(closure)


def _has_grad(grads):
    return any(g is not None and g.abs().sum() > 0 for g in grads)


def test_ladd_step(sub):
    student, head, net = _net(4), _Head(4), _net(5)
    x0, y = _digits(32, 11)
    teacher_before = [p.detach().clone() for p in net.parameters()]
    log = []
    watch = {"student": list(student.parameters()), "head": list(head.parameters())}
    g_opt = _LoggedAdam(student.parameters(), "g", log, watch)
    d_opt = _LoggedAdam(head.parameters(), "d", log, watch)
    calls = {"generator_x0": 0, "discriminator_loss": [], "generator_loss": []}

    def gen_x0(*args, **kw):
        calls["generator_x0"] += 1
        return _ref_generator_x0(*args, **kw)

    def d_loss(*args, **kw):
        out = _ref_discriminator_loss(*args, **kw)
        calls["discriminator_loss"].append(float(out.detach()))
        return out

    def g_loss(*args, **kw):
        out = _ref_generator_loss(*args, **kw)
        calls["generator_loss"].append(float(out.detach()))
        return out

    refs = {"generator_x0": gen_x0, "discriminator_loss": d_loss, "generator_loss": g_loss}
    with sub.replaced(**{**_others("ladd_step"), **refs}):
        out = sub.ladd_step(student, head, net, MID, g_opt, d_opt, x0, y, _gen(12))
    steps = [name for name, _ in log]
    check(
        steps == ["d", "d", "g"],
        f"expected 2 discriminator updates then 1 generator update, got {steps}",
    )
    check(
        calls["generator_x0"] == 3,
        f"each update makes its own student samples: 3 calls of generator_x0, got "
        f"{calls['generator_x0']}",
    )
    check(
        len(calls["discriminator_loss"]) == 2 and len(calls["generator_loss"]) == 1,
        "each discriminator update uses discriminator_loss once, the generator update "
        "generator_loss once",
    )
    for i in (0, 1):
        grads = log[i][1]
        check(_has_grad(grads["head"]), f"discriminator update {i + 1}: the head has no gradient")
        check(
            not _has_grad(grads["student"]),
            f"discriminator update {i + 1}: the student has gradients (from the "
            "discriminator loss or a previous step); they must not be there",
        )
    check(_has_grad(log[2][1]["student"]), "the generator update: the student has no gradient")
    check(
        all(torch.equal(a, b) for a, b in zip(teacher_before, net.parameters())),
        "the teacher's parameters changed",
    )
    check(isinstance(out, dict) and {"d", "g"} <= set(out), "return {'d': ..., 'g': ...}")
    check(
        isinstance(out["d"], float) and isinstance(out["g"], float),
        "the returned losses must be Python floats",
    )
    check(
        abs(out["d"] - calls["discriminator_loss"][-1]) < 1e-9
        and abs(out["g"] - calls["generator_loss"][-1]) < 1e-9,
        "return the last discriminator loss and the generator loss",
    )


# --- 1.7 multistep consistency sampling ----------------------------------------------------
def test_consistency_sample(sub):
    net = _net(6, torch.float32)
    noise = torch.randn(12, 1, 8, 8, generator=_gen(13))
    y = torch.arange(12) % 10
    den = Denoiser(net, Linear(), "velocity")
    grids = ([1.0, 0.0], [1.0, 0.5, 0.0], [1.0, 0.75, 0.5, 0.25, 0.0], [0.8, 0.3, 0.0])
    with sub.replaced(**_others("consistency_sample")), torch.no_grad():
        for ts in grids:
            model = CountingModel(net)
            got = sub.consistency_sample(model, noise, y, ts, _gen(14))
            expected = sample_consistency(
                den, noise, torch.tensor(ts, dtype=F64), y, generator=_gen(14)
            )
            assert_close(got, expected, f"consistency_sample over ts = {ts}", atol=1e-5)
            check(
                model.calls == len(ts) - 1,
                f"ts = {ts}: {len(ts) - 1} network calls expected, got {model.calls}",
            )
            times = [float(torch.as_tensor(t).flatten()[0]) for t in model.times]
            check(
                all(abs(a - b) < 1e-6 for a, b in zip(times, ts[:-1])),
                f"ts = {ts}: the network was called at times {times}",
            )
            check(
                all(torch.as_tensor(t).shape == (12,) for t in model.times),
                "the network must get t as a (B,) tensor",
            )


# --- 2.1 linear kernel ---------------------------------------------------------------------
def _pairs(a, b):
    return torch.einsum("...nd,...md->...nm", a, b).mean((-1, -2))


def test_mmd_linear(sub):
    g = _gen(15)
    for shape_x, shape_y in (
        ((7, 3), (5, 3)),
        ((4, 16, 32), (4, 16, 32)),
        ((2, 3, 9, 4), (2, 3, 6, 4)),
    ):
        x = torch.randn(shape_x, generator=g, dtype=F64)
        y = torch.randn(shape_y, generator=g, dtype=F64) * 1.3 + 0.4
        got = sub.mmd_linear(x, y)
        v_statistic = _pairs(x, x) + _pairs(y, y) - 2 * _pairs(x, y)  # all pairs, k(a, b) = a·b
        assert_close(got, v_statistic, f"mmd_linear on sets {shape_x}, {shape_y}", atol=1e-9)
        closed = (x.mean(-2) - y.mean(-2)).pow(2).sum(-1)
        assert_close(got, closed, "mmd_linear vs ‖mean(x) − mean(y)‖²", atol=1e-9)
    x = torch.randn(3, 10, 4, generator=g, dtype=F64)
    assert_close(sub.mmd_linear(x, x + 2.0), torch.full((3,), 16.0, dtype=F64), "shift by 2·1")


# --- 2.2 RBF kernel, unbiased ------------------------------------------------------------------
def _explicit_rbf(x, y, sigma):
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma**2))
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


def test_mmd_rbf(sub):
    g = _gen(16)
    for sigma in (0.5, 2.0, 7.0):
        x = torch.randn(6, 3, generator=g, dtype=F64)
        y = torch.randn(5, 3, generator=g, dtype=F64) + 0.5
        got = sub.mmd_rbf(x, y, sigma)
        assert_close(
            got, torch.tensor(_explicit_rbf(x, y, sigma)), f"mmd_rbf, σ = {sigma}", atol=1e-10
        )
    x = torch.randn(4, 16, 32, generator=g, dtype=F64) * 3
    y = torch.randn(4, 16, 32, generator=g, dtype=F64) * 3 + 1
    assert_close(sub.mmd_rbf(x, y, 8.0), mmd2(x, y, "rbf", 8.0), "mmd_rbf on (4, 16, 32) sets")

    # Monte Carlo: 4000 pairs of independent sets of 8 points, one distribution → mean 0
    reps, n = 4000, 8
    a = torch.randn(reps, n, 4, generator=g, dtype=F64)
    b = torch.randn(reps, n, 4, generator=g, dtype=F64)
    same = as_float64(sub.mmd_rbf(a, b, 2.0), "mmd_rbf on (4000, 8, 4) sets")
    check(same.shape == (reps,), f"one value per set: expected ({reps},), got {tuple(same.shape)}")
    se = float(same.std()) / math.sqrt(reps)
    check(
        abs(float(same.mean())) < 4 * se,
        f"on two samples of one distribution the unbiased MMD² must be 0 in expectation; "
        f"mean over {reps} draws {same.mean():.4f} ± {se:.4f} (biased estimator?)",
    )
    shifted = as_float64(sub.mmd_rbf(a, b + 1.0, 2.0), "mmd_rbf")
    check(
        float(shifted.mean()) > 10 * float(shifted.std()) / math.sqrt(reps)
        and shifted.mean() > 0.05,
        f"on shifted samples the MMD² must be clearly positive, got mean {shifted.mean():.4f}",
    )


# --- 2.3 patch-level loss ----------------------------------------------------------------------
def test_mmd_loss(sub):
    f = torch.arange(2 * 3 * 2 * 2, dtype=F64).reshape(2, 3, 2, 2)
    got = sub.patches(f)
    check(tuple(got.shape) == (2, 4, 3), f"patches((2, 3, 2, 2)) has shape {tuple(got.shape)}")
    assert_close(got[1, 2], f[1, :, 1, 0], "patches: the vector of image 1 at position (1, 0)")

    net = _net(7)
    real, y = _digits(24, 17)
    t = torch.rand(24, generator=_gen(18), dtype=F64) * 0.5
    noise = torch.randn(real.shape, generator=_gen(19), dtype=F64)
    tap = FeatureTap(net, [(MID, False)])
    with sub.replaced(**_others("mmd_loss", "patches")):
        for kernel, sigma in (("linear", 1.0), ("rbf", 3.0)):
            real_ = real.clone().requires_grad_(True)
            fake = (real.roll(1, 0) * 0.8).requires_grad_(True)
            loss = sub.mmd_loss(net, MID, real_, fake, y, t, noise, kernel, sigma)
            check(torch.is_tensor(loss) and loss.dim() == 0, "mmd_loss must return a scalar")
            probe = fake.detach().clone().requires_grad_(True)
            with torch.no_grad():
                f_real = tap(_ref_add_noise(real, t, noise), t, y)[0]
            f_fake = tap(_ref_add_noise(probe, t, noise), t, y)[0]
            expected = mmd2(_ref_patches(f_real), _ref_patches(f_fake), kernel, sigma).mean()
            assert_close(loss, expected, f"mmd_loss with the {kernel} kernel", atol=1e-9)
            loss.backward()
            expected.backward()
            check(fake.grad is not None, f"{kernel}: no gradient reaches the fake samples")
            assert_close(fake.grad, probe.grad, f"{kernel}: gradient w.r.t. fake", atol=1e-8)
            check(
                real_.grad is None or not real_.grad.any(),
                "the real features need no gradient (compute them under torch.no_grad)",
            )
            check(
                all(p.grad is None or not p.grad.any() for p in net.parameters()),
                "gradients reached the teacher's parameters",
            )
