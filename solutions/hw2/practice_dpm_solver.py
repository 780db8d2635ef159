# %% [markdown]
# # Homework 2 — DPM-Solver for flow matching (practice)
#
# You implement classifier-free guidance in one batched forward pass, the Euler, DPM-1,
# DPM-2 (singlestep) and DPM-2M (multistep) solvers and the linear, EDM and SD3 time
# schedules, then compare them at equal numbers of function evaluations (NFE). Derive the
# solvers first: `theory.pdf`.
#
# **The model.** A class-conditional flow-matching "teacher" that predicts the velocity
# $v(x_t, t, y)$ on the path $x_t = (1 - t) x_0 + t \varepsilon$ ($t = 1$ noise, $t = 0$
# data). Instead of a network trained for days we use an exact one: the data distribution is
# a Gaussian mixture fitted to scikit-learn's 8×8 digits (4 components per class), whose
# velocity visgen computes in closed form (`visgen.oracles`). It answers in milliseconds,
# and the exact ODE solution is available as a reference, so solver errors are measured,
# not guessed. The optional last section runs your code on a real text-to-image pipeline if
# you have one locally.
#
# **Rules.** Fill in every function marked `TODO`, keeping names and signatures; graded
# functions may use imports, other functions and UPPERCASE constants, no lowercase globals.
# The grader: `visgen grade hw2 practice_dpm_solver.ipynb`. Written
# conclusions go in the cells marked *Your answer here*.

# %%
import math

import matplotlib.pyplot as plt
import torch

import visgen
from visgen import budget
from visgen.course.homework import show_digits
from visgen.oracles import GaussianMixture, reference_pfode
from visgen.param import Denoiser

visgen.set_threads(1)
torch.set_default_dtype(torch.float64)
if visgen.is_fast():
    print("VISGEN_FAST=1: small budgets (smoke test)")


# %%
def make_digits_teacher(components_per_class=4, std=0.15, seed=0):
    """A class-conditional Gaussian mixture on 8×8 digits in [-1, 1] (64-D), labels 0–9."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data) / 8.0 - 1.0
    means, labels = [], []
    for c in range(10):
        km = KMeans(n_clusters=components_per_class, n_init=4, random_state=seed)
        km.fit(x[torch.tensor(digits.target) == c].numpy())
        means.append(torch.tensor(km.cluster_centers_))
        labels += [c] * components_per_class
    return GaussianMixture(torch.cat(means), std, labels=torch.tensor(labels))


class Teacher:
    """The flow-matching model v(x, t, y): x (B, 64), t a float or (B,) tensor, y (B,) labels
    with −1 for "no label" (the unconditional model). One call = one NFE (`self.nfe`)."""

    def __init__(self, mixture):
        self.den = mixture.denoiser("linear")

    @property
    def nfe(self):
        return self.den.nfe

    def __call__(self, x, t, y):
        return self.den(x, t, y).velocity


mixture = make_digits_teacher()
teacher = Teacher(mixture)
show_digits(
    mixture.sample(30, torch.Generator().manual_seed(0), cond=torch.arange(30) % 10), nrow=3
)

# %% [markdown]
# ## 1. Parametrisations and classifier-free guidance
#
# On the flow-matching path $\alpha_t = 1 - t$, $\sigma_t = t$, the velocity
# $v = \varepsilon - x_0$ determines the other predictions at $x_t$. CFG (Ho & Salimans
# 2022) combines the conditional and unconditional velocities,
# $v_w = v_\text{uncond} + w\,(v_\text{cond} - v_\text{uncond})$; both come from **one**
# model call on a batch of size $2B$ (conditional half, then unconditional half with label
# −1) — one NFE.

# %%
NULL_LABEL = -1


def fm_eps_x0(v, x, t):
    """(ε̂, x̂0) implied by the velocity v at x_t = x, time t (float or tensor broadcastable
    against x), on the path x_t = (1 − t) x0 + t ε."""
    # BEGIN SOLUTION
    return x + (1 - t) * v, x - t * v
    # END SOLUTION


def cfg_velocity(model, x, t, y, w):
    """The guided velocity v_u + w (v_c − v_u) from ONE call model(x2, t2, y2) on a batch of
    2B: x twice, labels y then NULL_LABEL. t is a float or a (B,) tensor."""
    # BEGIN SOLUTION
    t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.dim() > 0 else t
    v = model(torch.cat([x, x]), t2, torch.cat([y, torch.full_like(y, NULL_LABEL)]))
    v_cond, v_uncond = v.chunk(2)
    return v_uncond + w * (v_cond - v_uncond)
    # END SOLUTION


# %% [markdown]
# ### Self-checks (1)

# %%
_x = torch.randn(6, 64, generator=torch.Generator().manual_seed(0))
_y = torch.tensor([0, 1, 2, 3, 4, 5])
_v = teacher(_x, 0.4, _y)
_eps, _x0 = fm_eps_x0(_v, _x, 0.4)
assert torch.allclose(0.6 * _x0 + 0.4 * _eps, _x) and torch.allclose(_eps - _x0, _v)
_nfe = teacher.nfe
assert torch.allclose(cfg_velocity(teacher, _x, 0.4, _y, 1.0), _v), "w = 1 is the conditional model"
assert teacher.nfe == _nfe + 1, "CFG must cost one model call"
assert torch.allclose(
    cfg_velocity(teacher, _x, 0.4, _y, 0.0), teacher(_x, 0.4, torch.full((6,), -1))
)
print("self-checks (1) passed")

# %% [markdown]
# ## 2. Time schedules
#
# A schedule is the grid $1 \ge t_0 > t_1 > \dots > t_n = 0$ a solver steps through
# (`n` steps, `n + 1` points, as a float64 tensor):
#
# * `linear`: $t_i = 1 - i/n$.
# * `sd3` (Esser et al. 2024): the linear grid warped by the shift $s$,
#   $t_i = \frac{s u_i}{1 + (s - 1) u_i}$ with $u_i = 1 - i/n$ (default $s = 3$).
# * `edm` (Karras et al. 2022): EDM's noise levels
#   $\sigma_i = \big(\sigma_\max^{1/\rho} + \tfrac{i}{n-1}(\sigma_\min^{1/\rho} -
#   \sigma_\max^{1/\rho})\big)^\rho$ for $i = 0, \dots, n-1$ ($\rho = 7$,
#   $\sigma_\max = 80$, $\sigma_\min = 0.002$), mapped to flow-matching time by equal
#   signal-to-noise ratio, $t_i = \sigma_i / (1 + \sigma_i)$, and $t_n = 0$ ($n \ge 2$).
#   The grid starts at $t_0 = 80/81 < 1$; as in EDM the sampler then starts from
#   $x = t_0\,\varepsilon$ (see `initial_noise` below).


# %%
def schedule_fn(name, n, shift=3.0, rho=7.0, sigma_min=0.002, sigma_max=80.0):
    """The grid of `name` in {"linear", "sd3", "edm"} with n steps: a (n + 1,) float64 tensor."""
    # BEGIN SOLUTION
    u = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    if name == "linear":
        return u
    if name == "sd3":
        return shift * u / (1 + (shift - 1) * u)
    if name == "edm":
        ramp = torch.arange(n, dtype=torch.float64) / (n - 1)
        sigma = (
            sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
        ) ** rho
        return torch.cat([sigma / (1 + sigma), torch.zeros(1, dtype=torch.float64)])
    raise ValueError(f"unknown schedule {name!r}; expected linear, sd3 or edm")
    # END SOLUTION


def initial_noise(ts, shape, generator):
    """The starting state at ts[0]: x = ts[0] · ε (ε ~ N(0, I)), which is pure noise for
    ts[0] = 1 and EDM's σ_max-scaled start for the edm grid."""
    return float(ts[0]) * torch.randn(shape, generator=generator)


# %% [markdown]
# ### Self-checks (2)

# %%
for _name in ("linear", "sd3", "edm"):
    _ts = schedule_fn(_name, 10)
    assert _ts.shape == (11,) and _ts[-1] == 0 and (torch.diff(_ts) < 0).all(), _name
assert torch.allclose(schedule_fn("sd3", 10, shift=1.0), schedule_fn("linear", 10))
_s = schedule_fn("edm", 10)[:-1]
assert abs(_s[0] / (1 - _s[0]) - 80) < 1e-9 and abs(_s[-1] / (1 - _s[-1]) - 0.002) < 1e-12
print("self-checks (2) passed")

# %%
_fig, _ax = plt.subplots(figsize=(6, 3.5))
for _name in ("linear", "sd3", "edm"):
    _ax.plot(schedule_fn(_name, 20), marker="o", ms=3, label=_name)
_ax.set(xlabel="step i", ylabel="t_i", title="20-step schedules (t = 1 noise, t = 0 data)")
_ax.legend()
plt.show()

# %% [markdown]
# ## 3. Solvers
#
# Every solver is a step function `step(v_fn, x, t, s)` from time $t$ to $s < t$, where
# `v_fn(x, t)` returns the (guided) velocity at a float time `t`. The DPM solvers work with
# $\hat\varepsilon$ (convert with `fm_eps_x0`) and the log-SNR $\lambda_t = \log(\alpha_t /
# \sigma_t) = \log((1 - t)/t)$, with $h = \lambda_s - \lambda_t > 0$ (Lu et al. 2022,
# arXiv 2206.00927; the derivations are in `theory.pdf`):
#
# * **Euler** in $v$: $x_s = x_t + (s - t)\, v(x_t, t)$.
# * **DPM-1**: $x_s = \frac{\alpha_s}{\alpha_t} x_t - \sigma_s (e^h - 1)\, \hat\varepsilon(x_t, t)$.
# * **DPM-2** (singlestep, midpoint in λ): $\lambda_m = \lambda_t + h/2$, $t_m = t(\lambda_m)$,
#   $u = \frac{\alpha_m}{\alpha_t} x_t - \sigma_m (e^{h/2} - 1)\, \hat\varepsilon(x_t, t)$,
#   $x_s = \frac{\alpha_s}{\alpha_t} x_t - \sigma_s (e^h - 1)\, \hat\varepsilon(u, t_m)$.
#   Two NFE.
# * **DPM-2M** (multistep): with the previous evaluation $\hat\varepsilon_\text{prev}$ at
#   $t_\text{prev}$ and $h_\text{prev} = \lambda_t - \lambda_{t_\text{prev}}$,
#   $x_s = \frac{\alpha_s}{\alpha_t} x_t - \sigma_s (e^h - 1)\, \hat\varepsilon_t
#   - \tfrac12 \sigma_s (e^h - 1) \frac{h}{h_\text{prev}} (\hat\varepsilon_t -
#   \hat\varepsilon_\text{prev})$. One NFE.
#
# **Endpoints.** $\lambda = -\infty$ at $t = 1$ and $+\infty$ at $t = 0$. Write DPM-1 so that
# it is finite there (theory task 1 shows how). DPM-2 and DPM-2M fall back to a DPM-1 step
# whenever a λ they need is infinite: a step that starts at $t = 1$ or ends at $s = 0$,
# and for DPM-2M also a step whose previous evaluation was at $t = 1$ (or that has none).


# %%
def euler_step(v_fn, x, t, s):
    """One Euler step of dx/dt = v from t to s (1 NFE)."""
    # BEGIN SOLUTION
    return x + (s - t) * v_fn(x, t)
    # END SOLUTION


def dpm1_step(v_fn, x, t, s):
    """One DPM-Solver-1 step from t to s in the ε-parametrisation (1 NFE); finite for t = 1
    and for s = 0."""
    # BEGIN SOLUTION
    eps, x0 = fm_eps_x0(v_fn(x, t), x, t)
    return (1 - s) * x0 + s * eps  # = (α_s/α_t) x − σ_s (e^h − 1) ε̂, regular at both ends
    # END SOLUTION


def dpm2_step(v_fn, x, t, s):
    """One singlestep DPM-Solver-2 step (λ-midpoint, 2 NFE); a DPM-1 step if t = 1 or s = 0."""
    # BEGIN SOLUTION
    if t >= 1 or s <= 0:
        return dpm1_step(v_fn, x, t, s)
    lam_t, lam_s = math.log((1 - t) / t), math.log((1 - s) / s)
    h = lam_s - lam_t
    m = 1 / (1 + math.exp(lam_t + h / 2))  # t(λ) = sigmoid(−λ)
    eps_t, _ = fm_eps_x0(v_fn(x, t), x, t)
    u = (1 - m) / (1 - t) * x - m * math.expm1(h / 2) * eps_t
    eps_m, _ = fm_eps_x0(v_fn(u, m), u, m)
    return (1 - s) / (1 - t) * x - s * math.expm1(h) * eps_m
    # END SOLUTION


def dpm2m_step(v_fn, x, t, s, prev=None):
    """One multistep DPM-Solver-2 step (1 NFE). prev = (t_prev, eps_prev) from the previous
    step or None. Returns (x_s, (t, eps_t)), the state for the next step."""
    # BEGIN SOLUTION
    eps_t, x0 = fm_eps_x0(v_fn(x, t), x, t)
    if prev is None or prev[0] >= 1 or t >= 1 or s <= 0:
        return (1 - s) * x0 + s * eps_t, (t, eps_t)
    t_prev, eps_prev = prev
    lam_prev, lam_t, lam_s = (math.log((1 - u) / u) for u in (t_prev, t, s))
    h, h_prev = lam_s - lam_t, lam_t - lam_prev
    c = s * math.expm1(h)
    x_s = (1 - s) / (1 - t) * x - c * eps_t - 0.5 * c * (h / h_prev) * (eps_t - eps_prev)
    return x_s, (t, eps_t)
    # END SOLUTION


METHODS = ("euler", "dpm1", "dpm2", "dpm2m")


def sample(v_fn, x, ts, method):
    """Integrate from ts[0] (state x) to ts[-1] with `method` in METHODS; returns x at ts[-1]."""
    # BEGIN SOLUTION
    ts = [float(t) for t in ts]
    state = None
    for t, s in zip(ts[:-1], ts[1:]):
        if method == "euler":
            x = euler_step(v_fn, x, t, s)
        elif method == "dpm1":
            x = dpm1_step(v_fn, x, t, s)
        elif method == "dpm2":
            x = dpm2_step(v_fn, x, t, s)
        elif method == "dpm2m":
            x, state = dpm2m_step(v_fn, x, t, s, state)
        else:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    return x
    # END SOLUTION


def count_nfe(method, ts):
    """The number of model evaluations `sample(v_fn, x, ts, method)` makes (CFG batched = 1)."""
    # BEGIN SOLUTION
    ts = [float(t) for t in ts]
    if method != "dpm2":
        return len(ts) - 1
    return sum(1 if t >= 1 or s <= 0 else 2 for t, s in zip(ts[:-1], ts[1:]))
    # END SOLUTION


# %% [markdown]
# ### Self-checks (3)

# %%
_ts = schedule_fn("linear", 8)
_vf = lambda x, t: cfg_velocity(teacher, x, t, _y, 2.0)
_x1 = torch.randn(6, 64, generator=torch.Generator().manual_seed(1))
for _m in METHODS:
    _before = teacher.nfe
    _out = sample(_vf, _x1, _ts, _m)
    assert torch.isfinite(_out).all(), f"{_m} produced NaN/inf (endpoints?)"
    assert teacher.nfe - _before == count_nfe(_m, _ts), f"{_m}: NFE differs from count_nfe"
assert torch.allclose(sample(_vf, _x1, _ts, "dpm1"), sample(_vf, _x1, _ts, "euler"), atol=1e-10)
print("self-checks (3) passed")

# %% [markdown]
# ## 4. Experiments
#
# We measure a solver by its **error**: the root-mean-square distance per pixel between its
# samples and the exact PF-ODE solution from the same noise (a DOP853 solve of the guided
# ODE, `visgen.oracles.reference_pfode`), and look at the samples.

# %%
N_SAMPLES = budget(full=60, fast=20)
GUIDANCE = 2.0
_gen = torch.Generator().manual_seed(0)
labels = torch.arange(N_SAMPLES) % 10
noise = torch.randn(N_SAMPLES, 64, generator=_gen)


def guided(w, y):
    """v_fn(x, t) of the teacher guided with scale w for labels y."""
    return lambda x, t: cfg_velocity(teacher, x, t, y, w)


def reference(w, y, x_start, t_start=1.0):
    """The exact guided PF-ODE solution at t ≈ 0 (DOP853, tight tolerances)."""
    den = Denoiser(lambda x, t, cond=None: cfg_velocity(teacher, x, t, y, w), "linear", "velocity")
    return reference_pfode(den, x_start, t_start, 1e-6, rtol=1e-9, atol=1e-9)


def rms_error(x, ref):
    return float(((x - ref) ** 2).mean().sqrt())


ref_noise = reference(GUIDANCE, labels, noise)

# %% [markdown]
# ### 4.1 Guidance scale (Euler, 20 steps, EDM schedule)
#
# Columns: classes 0–9; rows: $w = 0$ (unconditional), 1 (conditional), 2, 4, 8. The last
# column of the table is the exact class posterior $p(y \mid x_0)$ of the mixture for the
# requested label, averaged over samples (a "classifier" we get for free), and the diversity
# is the mean distance between samples of the same class.

# %%
W_VALUES = [0.0, 1.0, 2.0, 4.0, 8.0]
_ts = schedule_fn("edm", 20)
_x_start = initial_noise(_ts, (40, 64), torch.Generator().manual_seed(1))
_y40 = torch.arange(40) % 10
_rows = []
for _w in W_VALUES:
    _xs = sample(guided(_w, _y40), _x_start, _ts, "euler")
    _logp = torch.stack(
        [mixture.log_prob(_xs, 0.0, "linear", torch.full((40,), c)) for c in range(10)], 1
    )
    _post = torch.softmax(_logp, 1)[torch.arange(40), _y40]
    _div = torch.stack([torch.pdist(_xs[_y40 == c]).mean() for c in range(10)]).mean()
    print(
        f"w = {_w:3.1f}: p(y | x0) = {_post.mean():.3f}, diversity = {_div:.2f}, mean |x| = {_xs.abs().mean():.3f}"
    )
    _rows.append(_xs[:10])
show_digits(
    torch.cat(_rows), nrow=len(W_VALUES), titles=[f"w={w:g}" for w in W_VALUES for _ in range(10)]
)

# %% [markdown]
# **Conclusions 4.1.** How do the samples change with $w$? What do you gain and lose at
# low and at high guidance?
#
# <!-- BEGIN SOLUTION -->
# $w = 0$ ignores the label (random digits, the full mixture); $w = 1$ samples the
# conditional mixture, with the class posterior close to 1 already, since the classes of
# 8×8 digits barely overlap. Larger $w$ pushes samples away from the other classes:
# $p(y \mid x_0)$ saturates at 1 while the diversity falls (samples move to the most
# prototypical, high-contrast version of the class) and the pixel magnitudes grow; at
# $w = 8$ the images are over-saturated — guidance extrapolates beyond the data
# ($v_u + w(v_c - v_u)$ is not the velocity of any distribution), the classic fidelity /
# diversity trade-off of CFG.
# <!-- END SOLUTION -->

# %% [markdown]
# ### 4.2 Schedules at 20 Euler steps

# %%
N_STEPS = 20
for _name in ("linear", "sd3", "edm"):
    _ts = schedule_fn(_name, N_STEPS)
    _x = sample(guided(GUIDANCE, labels), float(_ts[0]) * noise, _ts, "euler")
    print(f"{_name:6s}: error {rms_error(_x, ref_noise):.4f}")
    show_digits(_x[:10], nrow=1, titles=[_name] * 10)

# %% [markdown]
# **Conclusions 4.2.** Which schedule is best for Euler here and why? Relate it to where
# along $t$ the velocity field bends, and to SD3's argument for a larger shift at higher
# resolution.
#
# <!-- BEGIN SOLUTION -->
# For Euler on this teacher the linear grid is best (error ≈ 0.022), EDM second (≈ 0.039)
# and SD3 with $s = 3$ worst (≈ 0.054). The field of 64-dimensional data with narrow
# components is nearly straight at high noise (all classes overlap) and bends at
# intermediate-to-small $t$, where the posterior picks a class and then a component; SD3's
# shift moves steps towards $t = 1$, where nothing happens, and starves that region. EDM
# concentrates steps at small σ, but its ρ = 7 spacing puts many of them below σ ≈ 0.05,
# far below the component width 0.15, where the field is again trivial, and it starts at
# $t_0 = 80/81$ from $t_0 \varepsilon$ (EDM's approximation of the marginal). The shift
# helps large images: at a fixed $t$ many correlated pixels make the image far more
# recognisable than one pixel's SNR suggests, so the informative part of the trajectory moves
# towards $t = 1$ as resolution grows; at 8×8 that argument does not apply.
# <!-- END SOLUTION -->

# %% [markdown]
# ### 4.3 DPM-1 versus Euler

# %%
_ts = schedule_fn("edm", N_STEPS)
_a = sample(guided(GUIDANCE, labels), float(_ts[0]) * noise, _ts, "euler")
_b = sample(guided(GUIDANCE, labels), float(_ts[0]) * noise, _ts, "dpm1")
print(f"max |DPM-1 − Euler| over all samples and pixels: {(_a - _b).abs().max():.2e}")

# %% [markdown]
# **Conclusions 4.3.** Explain the number above (theory task 3).
#
# <!-- BEGIN SOLUTION -->
# It is at the level of float64 round-off: on the flow-matching path DPM-Solver-1 *is*
# Euler's method in $v$. With $\alpha_s / \alpha_t = (1 - s)/(1 - t)$,
# $\sigma_s (e^h - 1) = (t - s)/(1 - t)$ and $\hat\varepsilon = x_t + (1 - t) v$ the DPM-1
# update reduces to $x_t + (s - t) v$ (theory task 3). The exponential integrator only pays
# off for schedules where $\alpha_t$ is not linear in $t$ (VP), or at higher order.
# <!-- END SOLUTION -->

# %% [markdown]
# ### 4.4 Solvers at equal NFE
#
# For each NFE budget choose the number of steps so that every solver uses exactly that
# budget (`count_nfe`): DPM-2 costs $2n - 2$ NFE on the linear grid (first and last steps
# are DPM-1 steps) but $2n - 1$ on the EDM grid (which starts below $t = 1$), so the two
# grids get even and odd budgets.

# %%
NFE_BUDGETS = {"linear": [4, 6, 8, 12, 16, 24, 32], "edm": [5, 7, 9, 13, 17, 25, 33]}
SOLVERS = ("euler", "dpm2", "dpm2m")


def steps_for_budget(method, nfe, name):
    """The number of steps n whose `name` grid costs exactly nfe evaluations with `method`."""
    for n in range(2, 4 * nfe):
        if count_nfe(method, schedule_fn(name, n)) == nfe:
            return n
    raise ValueError(f"{method} cannot use exactly {nfe} NFE on the {name} grid")


errors = {}
for _name, _budgets in NFE_BUDGETS.items():
    _x = float(schedule_fn(_name, 2)[0]) * noise
    for _m in SOLVERS:
        errors[_name, _m] = [
            rms_error(
                sample(
                    guided(GUIDANCE, labels),
                    _x,
                    schedule_fn(_name, steps_for_budget(_m, _nfe, _name)),
                    _m,
                ),
                ref_noise,
            )
            for _nfe in _budgets
        ]
    for _i, _nfe in enumerate(_budgets):
        print(
            f"{_name:6s} NFE {_nfe:2d}: "
            + ", ".join(f"{m} {errors[_name, m][_i]:.4f}" for m in SOLVERS)
        )
_fig, _axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for _ax, (_name, _budgets) in zip(_axes, NFE_BUDGETS.items()):
    for _m in SOLVERS:
        _ax.loglog(_budgets, errors[_name, _m], marker="o", label=_m)
    _e0 = errors[_name, "euler"][-1]
    _ax.loglog(_budgets, [_e0 * _budgets[-1] / n for n in _budgets], "k:", label="slope −1")
    _ax.loglog(
        _budgets,
        [errors[_name, "dpm2m"][-1] * (_budgets[-1] / n) ** 2 for n in _budgets],
        "k--",
        label="slope −2",
    )
    _ax.set(xlabel="NFE", title=f"{_name} schedule, w = {GUIDANCE:g}")
_axes[0].set_ylabel("RMS error vs exact ODE")
_axes[0].legend()
plt.tight_layout()
plt.show()
_x = float(schedule_fn("edm", 2)[0]) * noise
show_digits(
    torch.cat(
        [
            sample(
                guided(GUIDANCE, labels), _x, schedule_fn("edm", steps_for_budget(m, 9, "edm")), m
            )[:10]
            for m in SOLVERS
        ]
        + [ref_noise[:10]]
    ),
    nrow=4,
    titles=[f"{m}, 9 NFE" for m in SOLVERS for _ in range(10)] + ["exact"] * 10,
)

# %% [markdown]
# **Conclusions 4.4.** Compare DPM-2 (singlestep) with DPM-1/Euler and with DPM-2M at
# equal NFE, on both grids. Which wins at small and at large budgets, and why? Does the best
# grid depend on the solver?
#
# <!-- BEGIN SOLUTION -->
# DPM-2M is the best solver at every budget on both grids: it is second order at one NFE per
# step, and its error falls roughly like $\text{NFE}^{-2}$ (linear grid: 0.045 at 8 NFE,
# 0.0025 at 32, versus 0.076 and 0.014 for Euler). Singlestep DPM-2 pays two NFE per step,
# so at small budgets it takes few, huge steps in λ and is no better than Euler (on the EDM
# grid it is much worse below ~17 NFE: a 3-step DPM-2 crosses λ ∈ [−4.4, 6.2] in
# two steps and the midpoint extrapolation overshoots), and only overtakes Euler from ~25 NFE.
# The best grid depends on the solver: Euler prefers the linear grid, while DPM-2M
# is better on the EDM grid, whose steps are nearly uniform in λ — the grid the exponential
# integrator is designed for (DPM-Solver recommends uniform λ). The EDM curve levels off near
# 0.002 because of its approximate start at $t_0 = 80/81$. In practice this is why multistep
# solvers (DPM-Solver++(2M), UniPC) with λ-based or Karras grids are the default at 10–25 NFE.
# <!-- END SOLUTION -->

# %% [markdown]
# ### 4.5 The same solvers on a trained teacher
#
# Do the conclusions survive a learned velocity field? visgen's standard asset `fm_digits`
# is a class-conditional flow-matching MLP trained on the real digits (label dropout 10 %,
# so it also has an unconditional mode for CFG); it is trained on first use (a few minutes)
# and cached in `.cache/visgen`. Same experiment as 4.4, against the DOP853 solution of
# *its* ODE.

# %%
from visgen.train import ASSETS, train_cached

spec = ASSETS["fm_digits"]()  # the standard recipe; FAST mode only smoke-tests the code
spec["train"]["steps"] = budget(full=spec["train"]["steps"], fast=200)
torch.set_default_dtype(torch.float32)  # visgen trains its networks in float32
trained = train_cached(spec, progress=False).denoiser()
torch.set_default_dtype(torch.float64)


def trained_teacher(x, t, y):
    """The trained network as v(x, t, y) on flattened digits (B, 64)."""
    dtype = next(trained.model.parameters()).dtype
    t = t if isinstance(t, float) else t.to(dtype)
    return trained(x.to(dtype).reshape(-1, 1, 8, 8), t, y).velocity.to(x.dtype).reshape(x.shape)


def guided_by(model, w, y):
    return lambda x, t: cfg_velocity(model, x, t, y, w)


_ref = reference_pfode(
    Denoiser(
        lambda x, t, cond=None: cfg_velocity(trained_teacher, x, t, labels, GUIDANCE),
        "linear",
        "velocity",
    ),
    noise,
    1.0,
    1e-6,
    rtol=1e-8,
    atol=1e-8,
)
for _name, _budgets in NFE_BUDGETS.items():
    _x = float(schedule_fn(_name, 2)[0]) * noise
    for _m in ("euler", "dpm2m"):
        _errs = [
            rms_error(
                sample(
                    guided_by(trained_teacher, GUIDANCE, labels),
                    _x,
                    schedule_fn(_name, steps_for_budget(_m, _n, _name)),
                    _m,
                ),
                _ref,
            )
            for _n in _budgets
        ]
        print(
            f"trained teacher, {_name:6s} {_m:5s}: "
            + ", ".join(f"{n} NFE {e:.4f}" for n, e in zip(_budgets, _errs))
        )
show_digits(
    torch.cat(
        [
            sample(
                guided_by(trained_teacher, GUIDANCE, labels),
                float(schedule_fn("edm", 2)[0]) * noise,
                schedule_fn("edm", steps_for_budget(m, 9, "edm")),
                m,
            )[:10]
            for m in ("euler", "dpm2m")
        ]
        + [_ref[:10]]
    ),
    nrow=3,
    titles=[f"{m}, 9 NFE" for m in ("euler", "dpm2m") for _ in range(10)] + ["exact"] * 10,
)

# %% [markdown]
# **Conclusions 4.5.** Which conclusions of 4.2–4.4 carry over to the trained teacher?
#
# <!-- BEGIN SOLUTION -->
# The ranking of the solvers carries over: DPM-2M beats Euler at every budget on both grids,
# by a factor that grows with the budget (linear grid: 0.033 vs 0.058 at 8 NFE, 0.008 vs 0.029
# at 16, 0.003 vs 0.015 at 32). The ranking of the grids does not: for the trained field
# the linear grid is best for DPM-2M too, and EDM's curve flattens at ≈ 0.005 (its
# approximate start at $t_0 = 80/81$ costs more here than for the mixture). Solver order is a
# property of the method; the best schedule is a property of the model and the data and has
# to be measured per model.
# <!-- END SOLUTION -->

# %% [markdown]
# ## 5. Optional: a real pipeline
#
# If you have a GPU and the weights of a flow-matching text-to-image pipeline on disk (for
# example SANA-600M, `Efficient-Large-Model/Sana_600M_1024px_diffusers`, downloaded
# beforehand) and `diffusers` + `transformers` installed, set `SANA_PATH` to that folder:
# the cell below runs your CFG and solvers on it. It never downloads anything and is skipped otherwise (and in CI). Compare the
# schedules and solvers at 10–20 NFE on a few prompts.

# %%
SANA_PATH = None  # e.g. "/data/models/Sana_600M_1024px_diffusers"


def real_pipeline_available(path):
    import importlib.util
    import os

    return (
        path is not None
        and os.path.isdir(path)
        and torch.cuda.is_available()
        and all(importlib.util.find_spec(m) is not None for m in ("diffusers", "transformers"))
    )


@torch.no_grad()
def run_sana(path, prompt, method="dpm2m", schedule="sd3", steps=20, w=4.5, seed=0):
    """Sample one image with SanaPipeline's transformer, your CFG and your solver."""
    from diffusers import SanaPipeline

    pipe = SanaPipeline.from_pretrained(path, torch_dtype=torch.float16, local_files_only=True).to(
        "cuda"
    )
    cond, cond_mask, uncond, uncond_mask = pipe.encode_prompt(
        prompt, True, negative_prompt="", device="cuda"
    )
    embeds, masks = torch.cat([cond, uncond]), torch.cat([cond_mask, uncond_mask])

    def model(
        x, t, y
    ):  # the pipeline as v(x, t, y): y = label (0) or NULL_LABEL picks the embedding
        rows = torch.where(y == NULL_LABEL, 1, 0)
        timestep = torch.full((x.shape[0],), float(t) * 1000, device=x.device)
        out = pipe.transformer(
            x.to(torch.float16),
            encoder_hidden_states=embeds[rows],
            encoder_attention_mask=masks[rows],
            timestep=timestep,
            return_dict=False,
        )[0]
        return out.float()

    shape = (1, pipe.transformer.config.in_channels, 32, 32)
    ts = schedule_fn(schedule, steps)
    x = initial_noise(ts, shape, torch.Generator().manual_seed(seed)).float().cuda()
    y = torch.zeros(1, dtype=torch.long, device="cuda")
    latents = sample(lambda x, t: cfg_velocity(model, x, t, y, w), x, ts, method)
    image = pipe.vae.decode(latents.half() / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="pil")[0]


if real_pipeline_available(SANA_PATH):
    run_sana(SANA_PATH, "a barred owl peeking out from dense tree branches")
else:
    print(
        "No local pipeline (SANA_PATH unset, no GPU, or diffusers/transformers missing): skipped."
    )
