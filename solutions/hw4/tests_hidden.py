"""Hidden tests of homework 4. Each test takes `sub`, the notebook's definitions.

Oracles: the schedules' α_t, σ_t (and the rule that t = 0 is the data), visgen's exact
class-conditional Gaussian-mixture denoisers and their CFG wrapper, the closed-form
Gaussian PF-ODE flow map (DDIM's first-order convergence to it; exact consistency sampling
of Gaussian data), visgen.param.convert, and visgen.fewstep's CD loss, consistency sampler,
segment boundaries and MeanFlow loss (values and gradients). The `_ref_*` functions stand in
for the student's own functions when another function is graded.
"""

import math

import torch

from visgen.course.testing import CountingModel, as_float64, assert_close, check
from visgen.fewstep.consistency import consistency_distillation_loss, segment_start, teacher_step
from visgen.fewstep.flowmap import FlowMap, FlowMapNet
from visgen.fewstep.meanflow import meanflow_loss
from visgen.fewstep.sampling import sample_consistency
from visgen.metrics import energy_distance
from visgen.oracles import GaussianMixture, gaussian_pfode
from visgen.param import Denoiser, convert
from visgen.sampling.guidance import classifier_free_guidance
from visgen.schedules import get_schedule

F64 = torch.float64
SCHEDULES = ("linear", "vp_cosine", "vp_linear", "vp_discrete", "ve", "edm")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _mixture():
    return GaussianMixture(
        [[0.0, 1.5], [1.5, -1.0], [-1.5, -0.5], [2.0, 1.5], [-1.0, 2.0], [0.5, -2.0]],
        [0.5, 0.6, 0.45, 0.5, 0.55, 0.5],
        labels=[0, 1, 2, 0, 1, 2],
    ).to(F64)


def _col(v, x):
    return torch.as_tensor(v, dtype=x.dtype).expand(x.shape[0]).reshape(-1, *[1] * (x.dim() - 1))


def _ref_q_sample(x0, t, noise, schedule):
    t = torch.as_tensor(t, dtype=F64).expand(x0.shape[0])
    x_t = _col(schedule.alpha(t), x0) * x0 + _col(schedule.sigma(t), x0) * noise
    return torch.where(_col(t == 0, x0).bool(), x0, x_t)


def _ref_cfg_x0_eps(den, x, t, y, w):
    pred = classifier_free_guidance(den, w)(x, t, y)
    return pred.x0, pred.eps


def _ref_ddim_step(predict, x, t, s, schedule):
    x0, eps = predict(x, t)
    return _ref_q_sample(x0, s, eps, schedule)


def _ref_ddim_sample(predict, x, ts, schedule):
    ts = [float(t) for t in ts]
    for t, s in zip(ts[:-1], ts[1:]):
        x = _ref_ddim_step(predict, x, t, s, schedule)
    return x


def _ref_pseudo_huber(a, b, c):
    d2 = (a - b).flatten(1).pow(2).sum(1)
    return d2 / (torch.sqrt(d2 + c * c) + c)


def _ref_segment_boundary(t, segments):
    return torch.floor(t * segments + 1e-6).clamp(max=segments - 1) / segments


REFERENCES = {
    "q_sample": _ref_q_sample,
    "cfg_x0_eps": _ref_cfg_x0_eps,
    "ddim_step": _ref_ddim_step,
    "ddim_sample": _ref_ddim_sample,
    "pseudo_huber": _ref_pseudo_huber,
    "segment_boundary": _ref_segment_boundary,
}


def _others(*graded):
    return {k: v for k, v in REFERENCES.items() if k not in graded}


def _predictor(den, y=None, counter=None):
    """predict(x, t) -> (x̂0, ε̂) of a Denoiser, recording the times it is called at."""

    def predict(x, t):
        if counter is not None:
            counter.append(torch.as_tensor(t, dtype=F64).clone())
        pred = den(x, t, y)
        return pred.x0, pred.eps

    return predict


# --- 1. preparation -------------------------------------------------------------------
def test_q_sample(sub):
    x0 = torch.randn(6, 1, 4, 4, generator=_gen(0), dtype=F64)
    eps = torch.randn(6, 1, 4, 4, generator=_gen(1), dtype=F64)
    for name in SCHEDULES:
        sch = get_schedule(name)
        for t in (0.3, 0.75, 1.0):
            got = sub.q_sample(x0, t, eps, sch)
            expected = float(sch.alpha(t)) * x0 + float(sch.sigma(t)) * eps
            assert_close(got, expected, f"q_sample at t = {t} ({name})", atol=1e-10)
        t = torch.tensor([0.0, 0.1, 0.5, 0.0, 0.9, 1.0], dtype=F64)
        got = as_float64(sub.q_sample(x0, t, eps, sch), "q_sample")
        assert_close(
            got, _ref_q_sample(x0, t, eps, sch), f"q_sample per sample ({name})", atol=1e-10
        )
        check(
            torch.equal(got[[0, 3]], x0[[0, 3]]),
            f"q_sample at t = 0 must return x0 exactly ({name} has σ_0 = {float(sch.sigma(0.0)):g})",
        )
        check(
            torch.equal(as_float64(sub.q_sample(x0, 0.0, eps, sch), "q_sample"), x0),
            f"q_sample at the float t = 0 must return x0 exactly ({name})",
        )
    x32 = x0.float()
    out = sub.q_sample(x32, torch.full((6,), 0.4), eps.float(), get_schedule("linear"))
    check(out.dtype == torch.float32, f"q_sample must keep float32 inputs float32, got {out.dtype}")
    pts = torch.randn(5, 2, generator=_gen(2), dtype=F64)
    assert_close(
        sub.q_sample(pts, torch.full((5,), 0.5, dtype=F64), pts, get_schedule("linear")),
        pts,
        "q_sample of (B, 2) points",
        atol=1e-12,
    )


def test_cfg_x0_eps(sub):
    x = torch.randn(9, 2, generator=_gen(3), dtype=F64) * 1.5
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    for name in ("linear", "vp_cosine"):
        base = _mixture().denoiser(name)
        for w in (0.0, 1.0, 3.5):
            ref = classifier_free_guidance(base, w)
            for t in (0.95, 0.5, torch.linspace(0.1, 0.9, 9, dtype=F64)):
                model = CountingModel(base.model)
                den = Denoiser(model, base.schedule, base.prediction)
                got = sub.cfg_x0_eps(den, x, t, y, w)
                check(isinstance(got, tuple | list) and len(got) == 2, "return (x̂0, ε̂)")
                check(model.calls == 1, f"one teacher call, got {model.calls}")
                check(model.batch_sizes == [18], f"one batch of 2B = 18, got {model.batch_sizes}")
                pred = ref(x, t, y)
                what = f"({name}, w = {w}, t = {'per sample' if torch.is_tensor(t) else t})"
                assert_close(got[0], pred.x0, f"guided x̂0 {what}", atol=1e-9)
                assert_close(got[1], pred.eps, f"guided ε̂ {what}", atol=1e-9)


def test_ddim_step(sub):
    with sub.replaced(**_others("ddim_step")):
        mix = _mixture()
        x = torch.randn(40, 2, generator=_gen(4), dtype=F64)
        y = torch.arange(40) % 3
        for name in ("linear", "vp_cosine", "vp_discrete"):
            den = mix.denoiser(name)
            t = 0.2 + 0.7 * torch.rand(40, generator=_gen(5), dtype=F64)
            s = t * torch.rand(40, generator=_gen(6), dtype=F64)
            calls = []
            got = sub.ddim_step(_predictor(den, y, calls), x, t, s, den.schedule)
            check(len(calls) == 1, f"ddim_step must call predict once, got {len(calls)}")
            expected = teacher_step(den, x, t, s, y, solver="ddim")
            assert_close(got, expected, f"ddim_step per sample ({name})", atol=1e-9)
            got = sub.ddim_step(_predictor(den, y), x, 0.6, 0.35, den.schedule)
            expected = teacher_step(
                den,
                x,
                torch.full((40,), 0.6, dtype=F64),
                torch.full((40,), 0.35, dtype=F64),
                y,
                solver="ddim",
            )
            assert_close(got, expected, f"ddim_step from 0.6 to 0.35 ({name})", atol=1e-9)
        den = mix.denoiser("linear")
        got = sub.ddim_step(_predictor(den, y), x, 1.0, 0.75, den.schedule)
        assert_close(
            got,
            teacher_step(
                den,
                x,
                torch.ones(40, dtype=F64),
                torch.full((40,), 0.75, dtype=F64),
                y,
                solver="ddim",
            ),
            "ddim_step from t = 1 (flow matching, α_1 = 0)",
            atol=1e-9,
        )
        for name in ("linear", "ve", "edm"):
            den = mix.denoiser(name)
            got = as_float64(sub.ddim_step(_predictor(den, y), x, 0.4, 0.0, den.schedule), "x")
            check(
                torch.equal(got, den(x, 0.4, y).x0),
                f"a DDIM step to s = 0 must return x̂0 exactly ({name})",
            )
        # first order: n steps converge to the exact Gaussian flow map with error ∝ 1/n
        sch = get_schedule("vp_cosine")
        gauss = GaussianMixture([[0.5, -1.0]], [0.4]).to(F64).denoiser(sch)
        xg = torch.randn(100, 2, generator=_gen(7), dtype=F64)
        exact = gaussian_pfode(
            xg, 0.9, 0.1, sch, mean=torch.tensor([0.5, -1.0], dtype=F64), std=0.4
        )
        errors = []
        for n in (8, 16, 32):
            xs = xg
            for a, b in zip(
                torch.linspace(0.9, 0.1, n + 1).tolist()[:-1],
                torch.linspace(0.9, 0.1, n + 1).tolist()[1:],
            ):
                xs = sub.ddim_step(_predictor(gauss), xs, a, b, sch)
            errors.append(float((as_float64(xs, "x") - exact).pow(2).mean().sqrt()))
        slope = math.log2(errors[0] / errors[-1]) / 2
        check(
            0.8 < slope < 1.3,
            f"DDIM must converge with order 1 to the exact Gaussian flow map: "
            f"slope {slope:.2f}, errors {errors}",
        )


def test_ddim_sample(sub):
    den = _mixture().denoiser("vp_cosine")
    x = torch.randn(30, 2, generator=_gen(8), dtype=F64)
    y = torch.arange(30) % 3
    grids = {
        "uniform": torch.linspace(1, 0, 5, dtype=F64),
        "50 steps": torch.linspace(1, 0, 51, dtype=F64),
        "interior": torch.tensor([0.9, 0.7, 0.4, 0.2, 0.1], dtype=F64),
    }
    with sub.replaced(**_others("ddim_sample")):
        for name, ts in grids.items():
            calls = []
            got = sub.ddim_sample(_predictor(den, y, calls), x, ts, den.schedule)
            check(
                len(calls) == len(ts) - 1,
                f"{name} grid: {len(calls)} predict calls, expected {len(ts) - 1}",
            )
            check(
                all(abs(float(c) - float(t)) < 1e-12 for c, t in zip(calls, ts[:-1])),
                f"{name} grid: predict must be called at ts[:-1] in order",
            )
            expected = _ref_ddim_sample(_predictor(den, y), x, ts, den.schedule)
            assert_close(got, expected, f"ddim_sample on the {name} grid", atol=1e-9)


# --- 2. consistency distillation ----------------------------------------------------------
def test_pseudo_huber(sub):
    a = torch.randn(7, 1, 8, 8, generator=_gen(9), dtype=F64)
    b = torch.randn(7, 1, 8, 8, generator=_gen(10), dtype=F64)
    for c in (0.03, 0.5, 2.0):
        got = sub.pseudo_huber(a, b, c)
        check(
            tuple(got.shape) == (7,),
            f"pseudo_huber must return one value per sample (7,), got {tuple(got.shape)}",
        )
        norm = (a - b).flatten(1).norm(dim=1)
        assert_close(got, torch.sqrt(norm**2 + c * c) - c, f"pseudo_huber, c = {c}", atol=1e-10)
    assert_close(
        sub.pseudo_huber(a, b, 1e-9),
        (a - b).flatten(1).norm(dim=1),
        "c → 0: the L2 norm",
        atol=1e-8,
    )
    small = a + 1e-4 * b
    d2 = (1e-4 * b).flatten(1).pow(2).sum(1)
    assert_close(
        sub.pseudo_huber(a, small, 10.0), d2 / 20, "‖a − b‖ ≪ c: ‖a − b‖²/(2c)", atol=0, rtol=1e-6
    )
    pts = torch.randn(5, 2, generator=_gen(11), dtype=F64)
    assert_close(
        sub.pseudo_huber(pts, -pts, 0.1),
        _ref_pseudo_huber(pts, -pts, 0.1),
        "(B, 2) points",
        atol=1e-12,
    )
    a32 = a.float()
    b32 = a32 + 1e-5
    got = sub.pseudo_huber(a32, b32, 0.03)
    expected = _ref_pseudo_huber(a32.double(), b32.double(), 0.03)
    assert_close(
        got,
        expected,
        "float32 with ‖a − b‖ ≪ c (cancellation in sqrt(d² + c²) − c?)",
        atol=0,
        rtol=1e-3,
    )


def _student(seed=0, classes=3):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = FlowMapNet(
            {"name": "mlp", "shape": [2], "width": 32, "depth": 2, "num_classes": classes}
        ).to(F64)
        with torch.no_grad():
            for p in net.net.embed.gap.parameters():  # a student whose u depends on the gap
                p.normal_(0, 0.3)
    return FlowMap(net, "linear")


def _grads(net):
    return torch.cat(
        [
            p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(), dtype=F64)
            for p in net.parameters()
        ]
    )


def test_cd_loss(sub):
    mix = _mixture()
    base = mix.denoiser("linear")
    n = 64
    x0, y = mix.sample(n, _gen(12), return_labels=True)
    y = torch.where(torch.rand(n, generator=_gen(13)) < 0.2, -1, y)
    noise = torch.randn(n, 2, generator=_gen(14), dtype=F64)
    t = 0.02 + 0.98 * torch.rand(n, generator=_gen(15), dtype=F64)
    r = t - 0.02
    with sub.replaced(**_others()):
        for w, boundary, c in (
            (2.0, 0.0, 0.03),
            (1.0, 0.0, 0.5),
            (3.0, _ref_segment_boundary(r, 4), 0.03),
        ):
            what = f"(w = {w}, {'segment boundaries' if torch.is_tensor(boundary) else 'boundary 0'}, c = {c})"
            student = _student()
            model = CountingModel(base.model)
            teacher = Denoiser(model, base.schedule, base.prediction)
            loss = sub.cd_loss(student, teacher, x0, y, t, r, noise, w, boundary, c)
            check(
                torch.is_tensor(loss) and loss.dim() == 0,
                f"cd_loss must return a scalar tensor {what}",
            )
            check(
                model.calls == 1 and model.batch_sizes == [2 * n],
                f"the guided teacher step must be one call on 2B = {2 * n}: calls {model.batch_sizes} {what}",
            )
            check(loss.requires_grad, f"cd_loss must carry the gradient of the student {what}")
            student.net.zero_grad()
            loss.backward()
            got_grads = _grads(student.net)
            ref_student = _student()
            expected = consistency_distillation_loss(
                ref_student,
                classifier_free_guidance(base, w),
                x0,
                t,
                r,
                noise,
                y,
                boundary=boundary,
                solver="ddim",
                metric="pseudo_huber",
                c=c,
            ).mean()
            expected.backward()
            assert_close(
                loss.detach(), expected.detach(), f"cd_loss value {what}", atol=1e-10, rtol=1e-8
            )
            assert_close(
                got_grads,
                _grads(ref_student.net),
                f"the student's gradient (is the target under stop-gradient?) {what}",
                atol=1e-9,
                rtol=1e-6,
            )
        ed = _trained_cd_energy_distance(sub)
    # measured with the reference: 1-NFE ED ≈ 0.04 after 300 updates (the teacher's own
    # one-step jump: 0.47; independent mixture samples: 0.002)
    check(
        ed < 0.1, f"a student trained 300 steps with cd_loss: 1-NFE energy distance {ed:.3f} > 0.1"
    )


def _trained_cd_energy_distance(sub, steps=300):
    """Train a small student on the exact conditional mixture with the submitted cd_loss
    (w = 1, so the target distribution is the mixture itself) and return the 1-NFE energy
    distance to mixture samples with the same labels."""
    mix = _mixture()
    den = mix.denoiser("linear")
    student = _student(2)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        for p in student.net.parameters():  # a fresh student (no teacher network to copy)
            if p.dim() > 1:
                torch.nn.init.xavier_uniform_(p)
    opt = torch.optim.Adam(student.net.parameters(), lr=2e-3)
    g = _gen(30)
    for _ in range(steps):
        x0, y = mix.sample(256, g, return_labels=True)
        t = 0.02 + 0.98 * torch.rand(256, generator=g, dtype=F64)
        noise = torch.randn(256, 2, generator=g, dtype=F64)
        loss = sub.cd_loss(student, den, x0, y, t, t - 0.02, noise, 1.0, 0.0, 0.03)
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels = torch.arange(3000) % 3
    ref = mix.sample(3000, _gen(31), cond=labels)
    with torch.no_grad():
        z = torch.randn(3000, 2, generator=_gen(32), dtype=F64)
        return energy_distance(student(z, 1.0, 0.0, labels), ref)


# --- 3. sampler ------------------------------------------------------------------------
def test_consistency_sample(sub):
    sch = get_schedule("vp_cosine")
    mix = _mixture()
    den = mix.denoiser(sch)
    y = torch.arange(50) % 3
    x = torch.randn(50, 2, generator=_gen(16), dtype=F64)
    with sub.replaced(**_others()):
        for ts in ([1.0, 0.0], [1.0, 0.5, 0.0], [1.0, 0.75, 0.5, 0.25, 0.0], [0.9, 0.6, 0.2, 0.0]):
            calls = []

            def f(x_, t_, calls=calls):
                calls.append(float(t_.flatten()[0]) if torch.is_tensor(t_) else float(t_))
                return den(x_, t_, y).x0

            got = sub.consistency_sample(f, x, torch.tensor(ts, dtype=F64), sch, _gen(17))
            check(
                len(calls) == len(ts) - 1,
                f"grid {ts}: {len(calls)} calls of f, expected {len(ts) - 1} NFE",
            )
            check(
                all(abs(a - b) < 1e-12 for a, b in zip(calls, ts[:-1])),
                f"grid {ts}: f must be called at {ts[:-1]} in order (re-noise to the NEXT level), got {calls}",
            )
            expected = sample_consistency(
                den, x, torch.tensor(ts, dtype=F64), y, generator=_gen(17)
            )
            assert_close(
                got,
                expected,
                f"consistency_sample on {ts} (fresh noise per re-noising, drawn "
                "as torch.randn(x.shape, generator=generator, dtype=x.dtype))",
                atol=1e-9,
            )
        # the exact consistency function of Gaussian data N(μ, c²) samples the data at any NFE
        mu, c = torch.tensor([1.0, -0.5], dtype=F64), 0.6
        z = torch.randn(20000, 2, generator=_gen(18), dtype=F64)
        exact = lambda x_, t_: gaussian_pfode(x_, t_, 0.0, sch, mean=mu, std=c)
        out = as_float64(
            sub.consistency_sample(
                exact, z, torch.tensor([1.0, 0.7, 0.4, 0.0], dtype=F64), sch, _gen(19)
            ),
            "x",
        )
        se_mean, se_var = c / math.sqrt(20000), c * c * math.sqrt(2 / 20000)
        check(
            ((out.mean(0) - mu).abs() < 5 * se_mean).all(),
            f"samples of the exact map: mean {out.mean(0).tolist()}, expected {mu.tolist()}",
        )
        check(
            ((out.var(0) - c * c).abs() < 5 * se_var).all(),
            f"samples of the exact map: variance {out.var(0).tolist()}, expected {c * c}",
        )


# --- 4. multi-boundary ----------------------------------------------------------------
def test_segment_boundary(sub):
    t = torch.rand(2000, generator=_gen(20), dtype=F64)
    for k in (1, 2, 3, 4, 7):
        away = (t * k - torch.round(t * k)).abs() > 1e-4  # away from boundaries: any rounding rule
        got = as_float64(sub.segment_boundary(t, k), "segment_boundary")
        check(
            got.shape == t.shape,
            f"segment_boundary must keep the shape {tuple(t.shape)}, got {tuple(got.shape)}",
        )
        assert_close(got[away], segment_start(t[away], k), f"segment_boundary(t, {k})", atol=1e-12)
        for dtype in (torch.float64, torch.float32):
            edges = torch.arange(k, dtype=dtype) / k
            assert_close(
                sub.segment_boundary(edges, k),
                edges.double(),
                f"boundaries k/{k} must map to themselves ({dtype})",
                atol=1e-7,
            )
            one = torch.ones(3, dtype=dtype)
            assert_close(
                sub.segment_boundary(one, k),
                torch.full((3,), (k - 1) / k, dtype=F64),
                f"t = 1 belongs to the last segment (K = {k}, {dtype})",
                atol=1e-7,
            )


# --- 5. ε → velocity ----------------------------------------------------------------------
def test_eps_to_velocity(sub):
    x = torch.randn(8, 1, 3, 3, generator=_gen(21), dtype=F64)
    eps = torch.randn(8, 1, 3, 3, generator=_gen(22), dtype=F64)
    for name in ("vp_cosine", "vp_linear", "vp_discrete", "linear", "edm"):
        sch = get_schedule(name)
        for t in (0.05, 0.5, 0.93, torch.linspace(0.02, 0.95, 8, dtype=F64)):
            got = sub.eps_to_velocity(eps, x, t, sch)
            expected = convert(eps, "eps", "velocity", x, t, sch)
            what = "per-sample t" if torch.is_tensor(t) else f"t = {t}"
            assert_close(got, expected, f"velocity from ε ({name}, {what})", atol=1e-9, rtol=1e-9)
    # the exact ε of a Gaussian mixture gives the exact PF-ODE velocity
    den = _mixture().denoiser("vp_cosine")
    pts = torch.randn(20, 2, generator=_gen(23), dtype=F64)
    pred = den(pts, 0.37, None)
    assert_close(
        sub.eps_to_velocity(pred.eps, pts, 0.37, den.schedule),
        pred.velocity,
        "velocity of the exact Gaussian-mixture ε (VP cosine)",
        atol=1e-9,
    )


# --- bonus: MeanFlow ------------------------------------------------------------------------
def test_meanflow_fd_loss(sub):
    n = 48
    x = torch.randn(n, 2, generator=_gen(24), dtype=F64)
    v = torch.randn(n, 2, generator=_gen(25), dtype=F64)
    y = torch.arange(n) % 3
    t = 0.05 + 0.95 * torch.rand(n, generator=_gen(26), dtype=F64)
    r = t * torch.rand(n, generator=_gen(27), dtype=F64)
    r[:6] = t[:6]  # r = t: the plain flow-matching loss
    r[6:12] = t[6:12] - 0.003  # t − r < h: the step shrinks to t − r
    with sub.replaced(**_others()):
        for h in (0.01, 0.05):
            student = _student(1)
            loss = sub.meanflow_fd_loss(student, x, t, r, v, y, h)
            check(
                torch.is_tensor(loss) and loss.dim() == 0,
                "meanflow_fd_loss must return a scalar tensor",
            )
            student.net.zero_grad()
            loss.backward()
            ref = _student(1)
            expected = meanflow_loss(ref, x, t, r, v, y, derivative="fd", h=h, p=0.0).mean()
            expected.backward()
            assert_close(
                loss.detach(), expected.detach(), f"MeanFlow loss (h = {h})", atol=1e-10, rtol=1e-8
            )
            assert_close(
                _grads(student.net),
                _grads(ref.net),
                f"the gradient (is the target under stop-gradient?) (h = {h})",
                atol=1e-9,
                rtol=1e-6,
            )
