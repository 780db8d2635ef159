"""Hidden tests of homework 2. Each test takes `sub`, the notebook's definitions.

Oracles: visgen's exact class-conditional Gaussian mixture, its conversions, its CFG wrapper,
grids and DPM-Solver samplers (visgen.sampling), DOP853 reference solutions (convergence
orders), the identity DPM-1 ≡ Euler on the flow-matching path, and the endpoint / NFE rules
stated in the notebook. The `_ref_*` steps stand in for the student's own step functions
when another function is graded (they agree with visgen.sampling, which the step tests
compare the student's steps against).
"""

import math

import torch

from visgen.course.testing import CountingModel, as_float64, assert_close, check
from visgen.oracles import GaussianMixture, reference_pfode
from visgen.param import convert
from visgen.sampling import (
    grids,
    sample_dpm_1,
    sample_dpm_2,
    sample_dpm_2m,
    sample_euler,
)
from visgen.sampling.guidance import classifier_free_guidance
from visgen.schedules import Linear

F64 = torch.float64


def _mixture():
    return GaussianMixture(
        [[0.0, 1.5], [1.5, -1.0], [-1.5, -0.5], [2.0, 1.5], [-1.0, 2.0], [0.5, -2.0]],
        [0.5, 0.6, 0.45, 0.5, 0.55, 0.5],
        labels=[0, 1, 2, 0, 1, 2],
    ).to(F64)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _v_fn(y=None, counter=None):
    """v_fn(x, t) of the exact conditional flow-matching velocity (labels y or unconditional)."""
    den = _mixture().denoiser("linear")

    def v(x, t):
        if counter is not None:
            counter.calls += 1
            counter.times.append(float(t))
        return den.velocity(x, float(t), y)

    return v


class _Counter:
    def __init__(self):
        self.calls, self.times = 0, []


def _lam(t):
    return math.log((1 - t) / t)


def _eps_x0(v, x, t):
    return convert(v, "velocity", "eps", x, t, "linear"), convert(
        v, "velocity", "x0", x, t, "linear"
    )


def _ref_euler(v_fn, x, t, s):
    return x + (s - t) * v_fn(x, t)


def _ref_dpm1(v_fn, x, t, s):
    eps, x0 = _eps_x0(v_fn(x, t), x, t)
    return (1 - s) * x0 + s * eps


def _ref_dpm2(v_fn, x, t, s):
    if t >= 1 or s <= 0:
        return _ref_dpm1(v_fn, x, t, s)
    h = _lam(s) - _lam(t)
    m = float(Linear().t_from_logsnr(torch.tensor(_lam(t) + h / 2, dtype=F64)))
    eps_t, _ = _eps_x0(v_fn(x, t), x, t)
    u = (1 - m) / (1 - t) * x - m * math.expm1(h / 2) * eps_t
    eps_m, _ = _eps_x0(v_fn(u, m), u, m)
    return (1 - s) / (1 - t) * x - s * math.expm1(h) * eps_m


def _ref_dpm2m(v_fn, x, t, s, prev=None):
    eps_t, x0 = _eps_x0(v_fn(x, t), x, t)
    if prev is None or prev[0] >= 1 or t >= 1 or s <= 0:
        return (1 - s) * x0 + s * eps_t, (t, eps_t)
    h, h_prev = _lam(s) - _lam(t), _lam(t) - _lam(prev[0])
    c = s * math.expm1(h)
    return (1 - s) / (1 - t) * x - c * eps_t - 0.5 * c * (h / h_prev) * (eps_t - prev[1]), (
        t,
        eps_t,
    )


REFERENCES = {
    "fm_eps_x0": _eps_x0,
    "euler_step": _ref_euler,
    "dpm1_step": _ref_dpm1,
    "dpm2_step": _ref_dpm2,
    "dpm2m_step": _ref_dpm2m,
}


def _others(*graded):
    """Reference versions of every step function except the graded ones."""
    return {k: v for k, v in REFERENCES.items() if k not in graded}


# --- 1. parametrisations and CFG -----------------------------------------------------
def test_fm_eps_x0(sub):
    x = torch.randn(7, 2, generator=_gen(0), dtype=F64)
    v = torch.randn(7, 2, generator=_gen(1), dtype=F64)
    for t in (0.05, 0.5, 0.97, 1.0):
        out = sub.fm_eps_x0(v, x, t)
        check(isinstance(out, tuple | list) and len(out) == 2, "fm_eps_x0 must return (eps, x0)")
        assert_close(
            out[0], convert(v, "velocity", "eps", x, t, "linear"), f"ε̂ at t = {t}", atol=1e-12
        )
        assert_close(
            out[1], convert(v, "velocity", "x0", x, t, "linear"), f"x̂0 at t = {t}", atol=1e-12
        )
    t = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], dtype=F64)[:, None]
    eps, x0 = sub.fm_eps_x0(v, x, t)
    assert_close(
        x0,
        convert(v, "velocity", "x0", x, t[:, 0], "linear"),
        "x̂0 with a (B, 1) tensor t",
        atol=1e-12,
    )


def test_cfg_velocity(sub):
    den = _mixture().denoiser("linear")
    x = torch.randn(9, 2, generator=_gen(2), dtype=F64) * 1.5
    y = torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    for w in (0.0, 1.0, 3.5):
        guided = classifier_free_guidance(den, w)
        for t in (0.95, 0.5, 0.1):
            model = CountingModel(lambda x, t, y: den.velocity(x, t, y))
            got = sub.cfg_velocity(model, x, t, y, w)
            check(
                model.calls == 1,
                f"cfg_velocity must call the model once, it made {model.calls} calls",
            )
            check(
                model.batch_sizes == [18],
                f"the single call must see a batch of 2B = 18, got {model.batch_sizes}",
            )
            assert_close(
                got, guided.velocity(x, t, y), f"guided velocity (t = {t}, w = {w})", atol=1e-10
            )
    t = torch.linspace(0.2, 0.9, 9, dtype=F64)
    model = CountingModel(lambda x, t, y: den.velocity(x, t, y))
    got = sub.cfg_velocity(model, x, t, y, 2.0)
    expected = classifier_free_guidance(den, 2.0).velocity(x, t, y)
    assert_close(got, expected, "guided velocity with a (B,) tensor t", atol=1e-10)


# --- 2. schedules --------------------------------------------------------------------
def _grid(sub, *args, **kwargs):
    ts = as_float64(sub.schedule_fn(*args, **kwargs), f"schedule_fn{args}")
    n = args[1]
    check(
        ts.shape == (n + 1,),
        f"schedule_fn{args} must have n + 1 = {n + 1} points, got {tuple(ts.shape)}",
    )
    check((torch.diff(ts) < 0).all(), f"schedule_fn{args} must be strictly decreasing")
    check(ts[-1] == 0, f"schedule_fn{args} must end at t = 0")
    return ts


def test_schedule_fn(sub):
    for n in (1, 5, 20):
        assert_close(
            _grid(sub, "linear", n), grids.uniform(n), f"linear schedule, n = {n}", atol=1e-12
        )
        for shift in (3.0, 1.0, 0.5):
            expected = grids.sd3(n, shift)
            assert_close(
                _grid(sub, "sd3", n, shift=shift),
                expected,
                f"sd3 schedule, n = {n}, shift = {shift}",
                atol=1e-12,
            )
    for n, rho, smin, smax in (
        (2, 7.0, 0.002, 80.0),
        (10, 7.0, 0.002, 80.0),
        (25, 3.0, 0.01, 20.0),
    ):
        ts = _grid(sub, "edm", n, rho=rho, sigma_min=smin, sigma_max=smax)
        # visgen's EDM grid on the flow-matching schedule: n points from σ_max to σ_min
        expected = grids.edm(n - 1, "linear", sigma_min=smin, sigma_max=smax, rho=rho)
        assert_close(
            ts[:-1],
            expected,
            f"edm schedule (n = {n}, ρ = {rho}, σ ∈ [{smin}, {smax}])",
            atol=1e-12,
        )


# --- 3. solvers ----------------------------------------------------------------------
STEPS = [(1.0, 0.8), (0.7, 0.55), (0.3, 0.1), (0.05, 0.0)]


def test_euler_step(sub):
    den = _mixture().denoiser("linear")
    x = torch.randn(50, 2, generator=_gen(3), dtype=F64)
    for t, s in STEPS:
        counter = _Counter()
        got = sub.euler_step(_v_fn(counter=counter), x, t, s)
        check(counter.calls == 1, f"euler_step must cost 1 NFE, got {counter.calls}")
        expected = sample_euler(den, x, torch.tensor([t, s], dtype=F64))
        assert_close(got, expected, f"euler_step from {t} to {s}", atol=1e-12)


def test_dpm1_step(sub):
    den = _mixture().denoiser("linear")
    x = torch.randn(50, 2, generator=_gen(4), dtype=F64)
    with sub.replaced(**_others("dpm1_step")):
        for t, s in STEPS:
            counter = _Counter()
            got = sub.dpm1_step(_v_fn(counter=counter), x, t, s)
            check(counter.calls == 1, f"dpm1_step must cost 1 NFE, got {counter.calls}")
            expected = sample_euler(den, x, torch.tensor([t, s], dtype=F64))
            assert_close(
                got, expected, f"dpm1_step from {t} to {s} (≡ Euler on the FM path)", atol=1e-10
            )


def _order(step, multistep=False, t_from=0.9, t_to=0.15, ns=(8, 16, 32)):
    """Convergence slope of `step` over λ-uniform grids against a DOP853 solution."""
    den = _mixture().denoiser("linear")
    x = torch.randn(200, 2, generator=_gen(5), dtype=F64) * 0.9
    ref = reference_pfode(den, x, t_from, t_to, rtol=1e-12, atol=1e-12)
    errors = []
    for n in ns:
        ts = (
            Linear()
            .t_from_logsnr(torch.linspace(_lam(t_from), _lam(t_to), n + 1, dtype=F64))
            .tolist()
        )
        ts[0], ts[-1] = t_from, t_to
        xs, state = x, None
        for t, s in zip(ts[:-1], ts[1:]):
            if multistep:
                xs, state = step(_v_fn(), xs, t, s, state)
            else:
                xs = step(_v_fn(), xs, t, s)
        errors.append(float(((as_float64(xs, "the solution") - ref) ** 2).mean().sqrt()))
    slope = math.log2(errors[0] / errors[-1]) / math.log2(ns[-1] / ns[0])
    return slope, [f"{e:.2e}" for e in errors]


def test_dpm2_step(sub):
    x = torch.randn(40, 2, generator=_gen(6), dtype=F64)
    with sub.replaced(**_others("dpm2_step")):
        for t, s in ((0.9, 0.7), (0.6, 0.2), (0.3, 0.04)):
            counter = _Counter()
            got = sub.dpm2_step(_v_fn(counter=counter), x, t, s)
            check(
                counter.calls == 2,
                f"dpm2_step from {t} to {s} must cost 2 NFE, got {counter.calls}",
            )
            mid = 1 / (1 + math.exp((_lam(t) + _lam(s)) / 2))
            check(
                abs(counter.times[1] - mid) < 1e-9,
                f"the second evaluation must be at the λ-midpoint t = {mid:.6f}, got {counter.times[1]:.6f}",
            )
            expected = sample_dpm_2(
                _mixture().denoiser("linear"), x, torch.tensor([t, s], dtype=F64)
            )
            assert_close(
                got, expected, f"dpm2_step from {t} to {s} against visgen's DPM-Solver-2", atol=1e-9
            )
        for t, s in ((1.0, 0.8), (0.1, 0.0)):
            counter = _Counter()
            got = sub.dpm2_step(_v_fn(counter=counter), x, t, s)
            check(
                counter.calls == 1,
                f"dpm2_step from {t} to {s} must fall back to DPM-1 (1 NFE), got {counter.calls}",
            )
            assert_close(
                got,
                _ref_dpm1(_v_fn(), x, t, s),
                f"dpm2_step from {t} to {s} (DPM-1 fallback)",
                atol=1e-10,
            )
        slope, errors = _order(sub.dpm2_step)
    check(
        slope > 1.75,
        f"DPM-2 must converge with order 2: measured slope {slope:.2f} (errors {errors})",
    )


def test_dpm2m_step(sub):
    x = torch.randn(40, 2, generator=_gen(7), dtype=F64)
    with sub.replaced(**_others("dpm2m_step")):
        counter = _Counter()
        out = sub.dpm2m_step(_v_fn(counter=counter), x, 0.8, 0.6, None)
        check(isinstance(out, tuple) and len(out) == 2, "dpm2m_step must return (x_s, state)")
        check(counter.calls == 1, f"dpm2m_step must cost 1 NFE, got {counter.calls}")
        assert_close(
            out[0],
            _ref_dpm1(_v_fn(), x, 0.8, 0.6),
            "dpm2m_step without a previous step (DPM-1)",
            atol=1e-10,
        )
        state = out[1]
        check(
            abs(float(state[0]) - 0.8) < 1e-12,
            f"the state must hold the time t = 0.8, got {state[0]}",
        )
        eps = _eps_x0(_v_fn()(x, 0.8), x, 0.8)[0]
        assert_close(state[1], eps, "the state's ε̂ at t", atol=1e-10)
        den = _mixture().denoiser("linear")
        for t_prev, t, s in ((0.8, 0.6, 0.35), (0.5, 0.3, 0.05)):
            # visgen's DPM-Solver-2M over [t_prev, t, s]: a DPM-1 step, then the multistep one
            x_t = sample_dpm_1(den, x, torch.tensor([t_prev, t], dtype=F64))
            prev = (t_prev, _eps_x0(_v_fn()(x, t_prev), x, t_prev)[0])
            counter = _Counter()
            got, _ = sub.dpm2m_step(_v_fn(counter=counter), x_t, t, s, prev)
            check(counter.calls == 1, f"dpm2m_step must cost 1 NFE, got {counter.calls}")
            expected = sample_dpm_2m(den, x, torch.tensor([t_prev, t, s], dtype=F64))
            assert_close(
                got,
                expected,
                f"dpm2m_step from {t} to {s} against visgen's DPM-Solver-2M",
                atol=1e-9,
            )
        for t, s, prev in ((1.0, 0.8, None), (0.8, 0.6, (1.0, eps)), (0.1, 0.0, (0.3, eps))):
            got, _ = sub.dpm2m_step(_v_fn(), x, t, s, prev)
            assert_close(
                got,
                _ref_dpm1(_v_fn(), x, t, s),
                f"dpm2m_step from {t} to {s}, prev at {prev and prev[0]} (DPM-1 fallback)",
                atol=1e-10,
            )
        slope, errors = _order(sub.dpm2m_step, multistep=True)
    check(
        slope > 1.7,
        f"DPM-2M must converge with order 2: measured slope {slope:.2f} (errors {errors})",
    )


def _reference_sample(x, ts, method, v_fn):
    state = None
    for t, s in zip(ts[:-1], ts[1:]):
        if method == "dpm2m":
            x, state = _ref_dpm2m(v_fn, x, t, s, state)
        else:
            x = REFERENCES[f"{method}_step"](v_fn, x, t, s)
    return x


def _grids():
    edm = grids.edm(5, "linear", sigma_min=0.002, sigma_max=80.0)
    return {
        "linear": torch.linspace(1, 0, 7, dtype=F64),
        "edm": torch.cat([edm, torch.zeros(1, dtype=F64)]),
        "interior": torch.tensor([0.9, 0.7, 0.4, 0.2, 0.1], dtype=F64),
    }


def test_sample(sub):
    x = torch.randn(30, 2, generator=_gen(8), dtype=F64)
    y = torch.tensor([0, 1, 2] * 10)
    with sub.replaced(**REFERENCES):
        for name, ts in _grids().items():
            for method in ("euler", "dpm1", "dpm2", "dpm2m"):
                counter = _Counter()
                got = sub.sample(_v_fn(y, counter), x, ts, method)
                ref_counter = _Counter()
                expected = _reference_sample(x, ts.tolist(), method, _v_fn(y, ref_counter))
                assert_close(got, expected, f"sample(..., {method}) on the {name} grid", atol=1e-9)
                check(
                    counter.calls == ref_counter.calls,
                    f"sample(..., {method}) on the {name} grid made {counter.calls} model calls, expected {ref_counter.calls}",
                )


def test_count_nfe(sub):
    expected = {
        "linear": {"euler": 6, "dpm1": 6, "dpm2": 10, "dpm2m": 6},
        "edm": {"euler": 6, "dpm1": 6, "dpm2": 11, "dpm2m": 6},
        "interior": {"euler": 4, "dpm1": 4, "dpm2": 8, "dpm2m": 4},
    }
    for name, ts in _grids().items():
        for method, nfe in expected[name].items():
            got = sub.count_nfe(method, ts)
            check(
                int(got) == nfe,
                f"count_nfe({method!r}, {name} grid of {len(ts) - 1} steps) = {got}, expected {nfe}",
            )
