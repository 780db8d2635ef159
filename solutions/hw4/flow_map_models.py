# %% [markdown]
# # Homework 4 — Flow-map models: distilling a teacher into a 4-step generator
#
# A diffusion or flow-matching teacher needs tens of network evaluations (NFE) per sample.
# *Flow-map models* learn the jumps of the teacher's probability-flow ODE directly, so a
# few evaluations suffice. You will distil visgen's class-conditional flow-matching teacher
# on 8×8 digits (the course's stand-in for Stable Diffusion 1.5: same skills, CPU minutes)
# into
#
# 1. a **consistency model** (Song et al. 2023, arXiv 2303.01469): consistency distillation
#    with classifier-free guidance *inside* the teacher step and the pseudo-Huber loss of
#    iCT (arXiv 2310.14189), the student initialised from the teacher and trained through
#    LoRA adapters (Hu et al. 2021, arXiv 2106.09685), sampled by the multistep consistency
#    sampler;
# 2. a **multi-boundary consistency model** (Heek et al. 2024, arXiv 2403.06807) with 4
#    segments, sampled by a plain deterministic 4-step DDIM;
# 3. (bonus) a **MeanFlow** model (Geng et al. 2025, arXiv 2505.13447) whose time
#    derivative is a finite difference instead of a Jacobian-vector product.
#
# **Notation** (the course's): $x_t = \alpha_t x_0 + \sigma_t \varepsilon$, $t = 0$ data,
# $t = 1$ noise. The teacher is a flow-matching model ($\alpha_t = 1 - t$, $\sigma_t = t$)
# wrapped as a visgen `Denoiser`: `teacher(x, t, y)` is **one** network evaluation and returns
# a prediction whose `.x0` and `.eps` are $\hat x_0$ and $\hat\varepsilon$ (visgen converts
# from the network's velocity). Labels `y` are digits 0–9, and −1 means "no label" (the
# teacher was trained with 10 % label dropout, so it is also the unconditional model).
#
# **Rules.** Fill in every function marked `TODO`, keeping names and signatures; graded
# functions may use imports, other functions and UPPERCASE constants, no lowercase globals.
# Grader: `visgen grade hw4 flow_map_models.ipynb`. Answers to the questions go in the cells
# marked *Your answer here*; the theory tasks are in `task.pdf`.

# %%
import math

import matplotlib.pyplot as plt
import torch

import visgen
from visgen import budget
from visgen.course.helpers import digits_floor_row
from visgen.course.homework import record_results, show_digits
from visgen.data import get_dataset
from visgen.fewstep.flowmap import FlowMap, FlowMapNet
from visgen.metrics import image_metrics
from visgen.nn import add_lora, lora_parameters, merge_lora
from visgen.nn.embeddings import drop_labels
from visgen.train import asset

visgen.set_threads(1)
if visgen.is_fast():
    print("VISGEN_FAST=1: small budgets (smoke test)")

# %% [markdown]
# The teacher: a 3-layer MLP of width 256, trained by visgen with flow matching on the
# scikit-learn digits. The first call trains it (a few minutes) and caches it; later calls
# load it. It is never trained by the grader.

# %%
trained_teacher = asset("fm_digits")
teacher = trained_teacher.denoiser()
schedule = teacher.schedule
train_set, test_set = get_dataset("digits"), get_dataset("digits", "test")
print(f"teacher: {trained_teacher.config['model']}, schedule {schedule!r}")


def at(values, x):
    """A float or a (B,) tensor of per-sample numbers as a (B, 1, …, 1) tensor of x's dtype,
    ready to multiply x (B, …)."""
    v = torch.as_tensor(values, dtype=x.dtype)
    return v.expand(x.shape[0]).reshape(-1, *[1] * (x.dim() - 1))


show_digits(train_set.x[:30], nrow=3)

# %% [markdown]
# ## 1. Preparation: the forward process, DDIM and the teacher's baselines
#
# `q_sample` draws $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ with $\alpha_t, \sigma_t$
# read from a visgen schedule (`schedule.alpha(t)`, `schedule.sigma(t)`). DDIM with $\eta = 0$
# (Song et al. 2021, arXiv 2010.02502, eq. 12) steps from $t$ to $s < t$ by re-noising the
# model's clean estimate with the model's own noise estimate,
# $x_s = \alpha_s \hat x_0(x_t, t) + \sigma_s \hat\varepsilon(x_t, t)$.
#
# **The boundary $t = 0$.** Time 0 *is the data*: `q_sample` at $t = 0$ returns $x_0$
# itself and a DDIM step to $s = 0$ returns $\hat x_0$, whatever the schedule. That is not
# automatic: a VE or EDM schedule has $\sigma_0 = \sigma_{\min} > 0$, just as Stable
# Diffusion's `alphas_cumprod[0]` < 1 is the first noise level, not the data (its DDIM
# uses `final_alpha_cumprod = 1` for the last step). Handle it per sample.
#
# A `predict(x, t)` function returns the pair $(\hat x_0, \hat\varepsilon)$ at $(x, t)$ with one
# NFE. With classifier-free guidance (Ho & Salimans 2022, arXiv 2207.12598) both are the
# combination $u + w (c - u)$ of the conditional and unconditional predictions, computed in
# **one** teacher call on the batch $[x; x]$ with labels $[y; -1]$.

# %%
NULL_LABEL = -1


def q_sample(x0, t, noise, schedule):
    """x_t = α_t x0 + σ_t ε for t a float or a (B,) tensor; exactly x0 where t = 0."""
    # BEGIN SOLUTION
    t = torch.as_tensor(t, dtype=torch.float64).expand(x0.shape[0])
    x_t = at(schedule.alpha(t), x0) * x0 + at(schedule.sigma(t), x0) * noise
    return torch.where(at(t == 0, x0).bool(), x0, x_t)
    # END SOLUTION


def cfg_x0_eps(den, x, t, y, w):
    """Guided (x̂0, ε̂) = u + w (c − u) from ONE call den(x2, t2, y2) on the batch of 2B
    ([x; x], labels [y; NULL_LABEL]); t a float or a (B,) tensor."""
    # BEGIN SOLUTION
    t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
    pred = den(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, NULL_LABEL)]))
    x0_c, x0_u = pred.x0.chunk(2)
    eps_c, eps_u = pred.eps.chunk(2)
    return x0_u + w * (x0_c - x0_u), eps_u + w * (eps_c - eps_u)
    # END SOLUTION


def ddim_step(predict, x, t, s, schedule):
    """One DDIM step (η = 0) from t to s < t (floats or (B,) tensors), one call of
    predict(x, t) -> (x̂0, ε̂); s = 0 returns x̂0."""
    # BEGIN SOLUTION
    x0, eps = predict(x, t)
    return q_sample(x0, s, eps, schedule)
    # END SOLUTION


def ddim_sample(predict, x, ts, schedule):
    """Deterministic DDIM over the decreasing grid ts (x at ts[0] → x at ts[-1]);
    len(ts) − 1 calls of predict."""
    # BEGIN SOLUTION
    ts = [float(t) for t in ts]
    for t, s in zip(ts[:-1], ts[1:]):
        x = ddim_step(predict, x, t, s, schedule)
    return x
    # END SOLUTION


# %% [markdown]
# ### Self-checks (1)

# %%
_x0 = train_set.x[:6]
_eps = torch.randn(_x0.shape, generator=torch.Generator().manual_seed(0))
assert torch.equal(q_sample(_x0, 0.0, _eps, schedule), _x0)
assert torch.allclose(q_sample(_x0, torch.full((6,), 0.3), _eps, schedule), 0.7 * _x0 + 0.3 * _eps)
_ve = visgen.get_schedule("ve")  # σ_0 = 0.01: the boundary must still give the data
assert torch.equal(
    q_sample(_x0, torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0, 1.0]), _eps, _ve)[0], _x0[0]
)
_y = torch.arange(6)
_nfe = teacher.nfe
_g0, _ge = cfg_x0_eps(teacher, _eps, 0.7, _y, 1.0)
assert teacher.nfe == _nfe + 1, "CFG must cost one teacher call"
assert torch.allclose(_g0, teacher(_eps, 0.7, _y).x0, atol=1e-5), "w = 1 is the conditional model"
_step = ddim_step(lambda x, t: cfg_x0_eps(teacher, x, t, _y, 2.0), _eps, 1.0, 0.0, schedule)
assert torch.allclose(_step, cfg_x0_eps(teacher, _eps, 1.0, _y, 2.0)[0]), "s = 0 returns x̂0"
print("self-checks (1) passed")

# %% [markdown]
# ### The teacher's baselines: 50 versus 4 DDIM steps
#
# Every result of this homework is measured on the same $N$ requested labels (those of
# the digits test split) from the same noise: the Fréchet distance (FD) between the
# features of visgen's digit classifier on the samples and on the test digits (lower is
# better), the classifier's mean confidence, and the share classified as the requested
# digit. With CFG in one batched call a guided step costs one NFE (on a batch of $2B$).

# %%
GUIDANCE = 2.0
labels = test_set.labels
noise = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(1))
_floor = digits_floor_row()
results = [
    {
        "samples": "real digits (floor)",
        "NFE": "—",
        **{k: _floor[k] for k in ("FD (classifier)", "confidence", "right class")},
        "RMS to teacher (50)": "—",
    }
]


def evaluate(name, x, nfe, deterministic=True):
    """Metrics of samples x for the requested `labels`, added to the results table. For a
    deterministic sampler also the RMS distance per pixel to the teacher's 50-step DDIM
    sample from the same noise (how well it reproduces the teacher's map)."""
    m = image_metrics(x.clamp(-1, 1), "digits", cond=labels)
    row = {
        "samples": name,
        "NFE": nfe,
        "FD (classifier)": m["fd"],
        "confidence": m["confidence"],
        "right class": m["agreement"],
        "RMS to teacher (50)": float((x - teacher_50).pow(2).mean().sqrt())
        if deterministic
        else "—",
    }
    results.append(row)
    print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return row


def guided_teacher(y):
    return lambda x, t: cfg_x0_eps(teacher, x, t, y, GUIDANCE)


def uniform_grid(n):
    return torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)


with torch.no_grad():
    teacher_50 = ddim_sample(guided_teacher(labels), noise, uniform_grid(50), schedule)
    teacher_4 = ddim_sample(guided_teacher(labels), noise, uniform_grid(4), schedule)
evaluate(f"teacher, DDIM, CFG w = {GUIDANCE:g}", teacher_50, 50)
evaluate(f"teacher, DDIM, CFG w = {GUIDANCE:g}", teacher_4, 4)
show_digits(torch.cat([teacher_50[:10], teacher_4[:10]]), nrow=2)

# %% [markdown]
# ## 2. Consistency distillation
#
# A consistency function maps every point of an ODE trajectory to its start at the
# boundary $s$ (the data, $s = 0$): $f_\theta(x_t, t \to s)$. visgen's `FlowMap` builds it
# from a network $u_\theta$ (an *average velocity*) as $f_\theta(x, t \to s) = x - (t - s)
# u_\theta(x, t, s)$, so $f(x, s \to s) = x$ exactly — the boundary condition that rules out
# the trivial solution $f \equiv$ const. `student(x, t, s, y)` is one NFE.
#
# Consistency distillation (CD, Algorithm 2 of the paper) draws $t$, takes one teacher
# DDIM step from $x_t$ to $r = t - \Delta$ **with CFG inside the teacher** (so the student
# learns the guided trajectories and needs no guidance itself), and pulls the student at
# $(x_t, t)$ towards the student at $(\hat x_r, r)$ under stop-gradient:
#
# $$\mathcal L = \mathbb E\, d\big(f_\theta(x_t, t \to s),\ \mathrm{sg}\, f_\theta(\hat x_r, r \to s)\big),
# \qquad d(a, b) = \sqrt{\|a - b\|^2 + c^2} - c,$$
#
# the pseudo-Huber metric of iCT with $c = 0.00054\sqrt{\dim}$ (per sample: the norm runs
# over all pixels of one image). Write $d$ so that it stays accurate in float32 when
# $\|a - b\| \ll c$ (theory task 2). As in homework 4 of the original course the target is
# the online student under `torch.no_grad()` (no EMA copy) and $\Delta = 0.02$ (20 of 1000
# steps).

# %%
HUBER_C = 0.00054 * math.sqrt(64)
INTERVAL = 0.02


def pseudo_huber(a, b, c):
    """d(a, b) = sqrt(‖a − b‖² + c²) − c per sample: a (B,) tensor, accurate for ‖a − b‖ ≪ c."""
    # BEGIN SOLUTION
    d2 = (a - b).flatten(1).pow(2).sum(1)
    return d2 / (torch.sqrt(d2 + c * c) + c)
    # END SOLUTION


def cd_loss(student, teacher, x0, y, t, r, noise, w, boundary=0.0, c=HUBER_C):
    """The batch mean of d(f_θ(x_t, t → boundary), sg f_θ(x̂_r, r → boundary)): x_t from
    (x0, noise) at t, x̂_r one guided teacher DDIM step t → r (scale w, labels y); t, r and
    boundary are (B,) tensors (boundary may be a float)."""
    # BEGIN SOLUTION
    x_t = q_sample(x0, t, noise, student.schedule)
    with torch.no_grad():
        guided = lambda x, u: cfg_x0_eps(teacher, x, u, y, w)
        x_r = ddim_step(guided, x_t, t, r, student.schedule)
        target = student(x_r, r, boundary, y)
    return pseudo_huber(student(x_t, t, boundary, y), target, c).mean()
    # END SOLUTION


# %% [markdown]
# ### Self-checks (2)

# %%
_a = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
_b = _a + 1e-5
assert pseudo_huber(_a, _b, 0.03).shape == (5,)
assert torch.allclose(pseudo_huber(_a, _a + 10, 0.03), torch.full((5,), 80 - 0.03), rtol=1e-4)
assert torch.allclose(pseudo_huber(_a, _b, 0.03), torch.full((5,), 64e-10 / 0.06), rtol=1e-3)
print("self-checks (2) passed")

# %% [markdown]
# ### The student: the teacher plus LoRA
#
# The student starts as the teacher: `FlowMapNet` reuses the teacher's MLP and adds an
# embedding of the gap $t - s$ whose last layer is zero, so at initialisation
# $u_\theta(x, t, s) = v_\text{teacher}(x, t)$ and $f_\theta(x, t \to 0)$ is the teacher's
# one-step DDIM jump. Stable Diffusion is distilled through a rank-64 LoRA: every linear
# layer $W_0$ becomes $W_0 + \frac{\alpha}{r} B A$ with $B = 0$ at first, and only $A$, $B$
# (and here the new gap embedding) are trained. `visgen.nn.add_lora` does this; we use rank
# 32 of width 256.

# %%
LORA_RANK = 32
BATCH = 256
LR = 3e-4
CD_STEPS = budget(full=1000, fast=60)


def make_student(seed, rank=LORA_RANK):
    """The teacher's network as a flow map u_θ(x, t, s), its linear layers wrapped in LoRA
    (the new weights — gap embedding, LoRA's A — drawn with torch's global RNG, seeded)."""
    torch.manual_seed(seed)
    net = FlowMapNet(trained_teacher.model.config).init_from(trained_teacher.model)
    add_lora(net, rank, include=lambda name, module: ".gap." not in name)
    net.net.embed.gap.requires_grad_(True)
    return FlowMap(net, schedule)


def train(student, loss_fn, steps, seed=0):
    """Adam on the student's trainable parameters; loss_fn(x0, y, generator) -> scalar."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in student.net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(train_set.x), (BATCH,), generator=gen)
        x0, y = train_set.x[idx], drop_labels(train_set.labels[idx], 0.1, gen)
        loss = loss_fn(x0, y, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def cd_batch_loss(student, segments=1):
    """CD on a batch: t ~ U[Δ, 1], r = t − Δ, boundary 0 (or the segment start of r)."""

    def loss_fn(x0, y, gen):
        t = INTERVAL + (1 - INTERVAL) * torch.rand(len(x0), generator=gen)
        r = t - INTERVAL
        boundary = 0.0 if segments == 1 else segment_boundary(r, segments)
        eps = torch.randn(x0.shape, generator=gen)
        return cd_loss(student, teacher, x0, y, t, r, eps, GUIDANCE, boundary)

    return loss_fn


cd_student = make_student(0)
_n = [
    sum(p.numel() for p in ps)
    for ps in (lora_parameters(cd_student.net), cd_student.net.parameters())
]
print(f"LoRA parameters: {_n[0]} of {_n[1]}")
_probe = torch.randn(8, 1, 8, 8)
with torch.no_grad():  # B = 0: the student starts as the teacher's one-step jump
    _f = cd_student(_probe, 1.0, 0.0, torch.arange(8))
    assert torch.allclose(_f, teacher(_probe, 1.0, torch.arange(8)).x0, atol=1e-5)
cd_history = train(cd_student, cd_batch_loss(cd_student), CD_STEPS)
_fig, _ax = plt.subplots(figsize=(5, 3))
_ax.semilogy(cd_history)
_ax.set(xlabel="update", ylabel="CD loss (pseudo-Huber)")
plt.show()

# %% [markdown]
# The loss need not fall: its target moves with the student. At step 0 the student is the
# teacher's one-step jump, which is nearly consistent on *neighbouring* times (a small loss)
# but far from the trajectory's end; as it learns to land further along the trajectory the
# pairs first disagree more. Judge the student by its samples, not by this curve.

# %% [markdown]
# ## 3. The multistep consistency sampler
#
# One step is $\hat x_0 = f_\theta(z, 1 \to 0)$. With more NFE (Algorithm 1 of the paper):
# predict $\hat x_0 = f(x, t_i)$, **re-noise it to the next level** with fresh noise,
# $x \leftarrow \alpha_{t_{i+1}} \hat x_0 + \sigma_{t_{i+1}} z$, predict again; the last
# prediction (at $t_{n-1}$, followed by $t_n = 0$) is the sample. Draw each fresh noise as
# `torch.randn(x.shape, generator=generator, dtype=x.dtype)`, once per re-noising.


# %%
def consistency_sample(f, x, ts, schedule, generator=None):
    """Multistep consistency sampling over the decreasing grid ts (ts[-1] = 0): f(x, t) -> x̂0
    is called once per level ts[0], …, ts[-2] (len(ts) − 1 NFE)."""
    # BEGIN SOLUTION
    ts = [float(t) for t in ts]
    for i, t in enumerate(ts[:-1]):
        x0 = f(x, t)
        if ts[i + 1] == 0:
            return x0
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        x = q_sample(x0, ts[i + 1], z, schedule)
    return x
    # END SOLUTION


# %%
def cd_sample(student, nfe, seed=0):
    with torch.no_grad():
        f = lambda x, t: student(x, t, 0.0, labels)
        return consistency_sample(
            f, noise, uniform_grid(nfe), schedule, torch.Generator().manual_seed(seed)
        )


merge_lora(cd_student.net)  # inference at the base cost: W0 ← W0 + (α/r) B A
cd_samples = {nfe: cd_sample(cd_student, nfe) for nfe in (1, 2, 4)}
for nfe, x in cd_samples.items():
    evaluate("consistency distillation", x, nfe, deterministic=nfe == 1)
show_digits(torch.cat([teacher_50[:10]] + [cd_samples[k][:10] for k in (1, 2, 4)]), nrow=4)

# %% [markdown]
# **Question 1.** Compare the student's 1, 2 and 4-step samples with the teacher's 4 and
# 50 DDIM steps (FD, confidence, the pictures). Why does the teacher at 4 steps do so
# badly, and why is the student's curve over NFE not monotone the way an ODE solver's is?
#
# <!-- BEGIN SOLUTION -->
# Four DDIM steps follow the guided teacher's curved trajectories with a first-order
# integrator: the first step from pure noise jumps a quarter of the way towards the *mean*
# prediction x̂0(ε, 1), a blurry average of the class, and three more steps cannot undo the
# error, so the samples are smoother than the teacher's and the FD is about 1.6 times the
# 50-step value (36 against 23 in the full run), the RMS distance to the 50-step samples
# large. The student was trained to land on the end of the whole (guided) trajectory in one
# jump, so 1 NFE reaches the 50-step teacher's FD. (That a student's FD can be slightly
# *below* the teacher's is no paradox: FD compares with real digits, and guidance with
# w = 2 over-sharpens; a student that is a little less extreme is a little closer to the
# data. The distance column measures fidelity to the teacher instead.) More steps of the consistency sampler do not refine an
# ODE solution: each one throws away the current state, re-noises x̂0 with *fresh* noise
# and asks the student again at a lower level, so steps trade the student's error at high
# noise against errors it makes at lower levels, where it had fewer useful training pairs
# (and each re-noising loses the original trajectory). On this toy 1–2 NFE are usually
# the best; see the table.
# <!-- END SOLUTION -->

# %% [markdown]
# ## 4. Multi-boundary consistency distillation (K = 4)
#
# Split $[0, 1]$ into $K$ segments $[k/K, (k+1)/K]$. A point at time $t$ maps to the start
# $s(t)$ of its segment — a boundary maps to itself, and $t = 1$ belongs to the last
# segment — and CD is run with boundary $s(r)$ for the pair $(t, r)$: where $r = s(r)$ the
# target is $\hat x_r$ itself. Sampling is deterministic: from $t = 1$ jump to the boundary
# $3/4$, then $1/2$, $1/4$, $0$ — a **plain 4-step DDIM** whose velocity is the student's
# $u_\theta$: with $\hat x_0 = x - t u$ and $\hat\varepsilon = x + (1 - t) u$ the DDIM step
# lands exactly on $f_\theta(x, t \to s)$ (check it).

# %%
SEGMENTS = 4


def segment_boundary(t, segments):
    """s(t) = ⌊K t⌋ / K for K = segments, per entry of the tensor t; boundaries map to
    themselves (also in float32) and t = 1 to (K − 1)/K."""
    # BEGIN SOLUTION
    k = torch.floor(t * segments + 1e-6).clamp(max=segments - 1)
    return k / segments
    # END SOLUTION


# %%
def student_predict(student, y):
    """(x̂0, ε̂) of the student's average velocity u_θ(x, t, s(t)), for DDIM."""

    def predict(x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        u = student.average_velocity(x, t, segment_boundary(t - 1e-6, SEGMENTS), y)
        return x - at(t, x) * u, x + at(1 - t, x) * u

    return predict


mb_student = make_student(1)
mb_history = train(mb_student, cd_batch_loss(mb_student, SEGMENTS), CD_STEPS, seed=1)
merge_lora(mb_student.net)
with torch.no_grad():
    mb_samples = ddim_sample(
        student_predict(mb_student, labels), noise, uniform_grid(SEGMENTS), schedule
    )
    _jumps = noise
    for _t, _s in zip(uniform_grid(SEGMENTS)[:-1].tolist(), uniform_grid(SEGMENTS)[1:].tolist()):
        _jumps = mb_student(_jumps, _t, _s, labels)
assert torch.allclose(mb_samples, _jumps, atol=1e-4), "DDIM with u_θ = the student's jumps"
evaluate("multi-boundary CD (K = 4)", mb_samples, SEGMENTS)
show_digits(
    torch.cat([teacher_50[:10], teacher_4[:10], cd_samples[4][:10], mb_samples[:10]]), nrow=4
)

# %% [markdown]
# **Question 2.** Compare multi-boundary CD at 4 NFE with the one-boundary student at 4 NFE
# and with the teacher's 4 DDIM steps. What does each segment have to learn, and why is
# deterministic sampling the right choice here?
#
# <!-- BEGIN SOLUTION -->
# Each multi-boundary segment only has to learn the ODE over a quarter of the time axis: a
# far shorter, straighter jump than from t = 1 to the data, so the same network and the same
# number of updates reach a smaller error per jump, and the four jumps follow the guided
# teacher's trajectory instead of re-noising. The student is trained to land exactly on the
# next boundary, so chaining its jumps is consistent (each input is a point the student saw
# in training: the marginal at a boundary), and fresh noise would only add variance. It uses
# the same 4 NFE as the teacher's DDIM but replaces each Euler-like step by the learned
# exact jump, which is why it is far better than the teacher's 4 steps; against the
# one-boundary student at 4 NFE it avoids the re-noising losses of the stochastic sampler.
# <!-- END SOLUTION -->

# %% [markdown]
# ## 5. From ε to the velocity (VP and any other schedule)
#
# Stable Diffusion predicts $\varepsilon$. MeanFlow (next section) needs the velocity of
# the probability-flow ODE, $v = \frac{dx_t}{dt} = \dot\alpha_t x_0 + \dot\sigma_t
# \varepsilon$, at $(x_t, t)$: convert through $\hat x_0 = (x_t - \sigma_t \hat\varepsilon)/
# \alpha_t$. visgen's schedules give $\dot\alpha_t$, $\dot\sigma_t$ as
# `schedule.d_alpha(t)`, `schedule.d_sigma(t)`; the formula must hold for the VP
# schedules (cosine, linear β, DDPM's discrete one) as well as for flow matching, for
# $t \in (0, 1)$ (at $t = 1$ a VP or FM schedule has $\alpha_1 \approx 0$, and a VP schedule
# has $\dot\sigma_0 = \infty$: theory task 3).


# %%
def eps_to_velocity(eps, x, t, schedule):
    """The PF-ODE velocity α̇_t x̂0 + σ̇_t ε̂ at (x, t) from the ε-prediction eps; t a float or (B,)."""
    # BEGIN SOLUTION
    t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
    x0 = (x - at(schedule.sigma(t), x) * eps) / at(schedule.alpha(t), x)
    return at(schedule.d_alpha(t), x) * x0 + at(schedule.d_sigma(t), x) * eps
    # END SOLUTION


# %%
_x = torch.randn(4, 1, 8, 8)
_pred = teacher(_x, 0.6, torch.arange(4))
assert torch.allclose(eps_to_velocity(_pred.eps, _x, 0.6, schedule), _pred.velocity, atol=1e-4)
print("self-check (5) passed")

# %% [markdown]
# ## 6. Bonus: MeanFlow with a finite-difference derivative
#
# MeanFlow learns the average velocity $u(x_t, t, r) = \frac{1}{t - r}\int_r^t v\, d\tau$ of
# every jump from the identity $u = v - (t - r) \frac{d}{dt} u$ (theory task 4), with the
# total derivative along the trajectory. Instead of a JVP, approximate it by a backward
# difference along the teacher's velocity: with $h' = \min(h, t - r)$,
#
# $$\frac{d}{dt} u \approx \frac{u_\theta(x_t, t, r) - u_\theta(x_t - h' v, t - h', r)}{h'},$$
#
# (0 where $t = r$), evaluated under `torch.no_grad()` (it is part of the target). The loss
# is the batch mean of $\|u_\theta(x_t, t, r) - \mathrm{sg}(v - (t - r)\frac{d}{dt}u)\|^2$
# (summed over the pixels of each image). As in the original homework, $r$ is fixed to the
# $K = 4$ segment boundary below $t - h$ and $v$ is the guided teacher's velocity converted
# from its $\hat\varepsilon$ (section 5); the model is sampled in 4 jumps.

# %%
MEANFLOW_H = 0.01
MEANFLOW_STEPS = budget(full=1000, fast=40)


def meanflow_fd_loss(student, x_t, t, r, v, y, h=MEANFLOW_H):
    """Batch mean of ‖u_θ(x_t, t, r) − sg(v − (t − r) du/dt)‖² with the finite-difference du/dt."""
    # BEGIN SOLUTION
    u = student.average_velocity(x_t, t, r, y)
    with torch.no_grad():
        step = torch.clamp(t - r, max=h)
        moving = step > 0
        safe = torch.where(moving, step, torch.ones_like(step))
        u_back = student.average_velocity(x_t - at(step, x_t) * v, t - step, r, y)
        dudt = torch.where(at(moving, x_t).bool(), (u - u_back) / at(safe, x_t), 0.0)
        target = v - at(t - r, x_t) * dudt
    return (u - target).flatten(1).pow(2).sum(1).mean()
    # END SOLUTION


# %%
def meanflow_batch_loss(student):
    def loss_fn(x0, y, gen):
        t = torch.sigmoid(torch.randn(len(x0), generator=gen) - 0.4)  # logit-normal(−0.4, 1)
        r = segment_boundary(torch.clamp(t - MEANFLOW_H, min=0), SEGMENTS)
        x_t = q_sample(x0, t, torch.randn(x0.shape, generator=gen), schedule)
        with torch.no_grad():
            v = eps_to_velocity(cfg_x0_eps(teacher, x_t, t, y, GUIDANCE)[1], x_t, t, schedule)
        return meanflow_fd_loss(student, x_t, t, r, v, y)

    return loss_fn


mf_student = make_student(2)
mf_history = train(mf_student, meanflow_batch_loss(mf_student), MEANFLOW_STEPS, seed=2)
merge_lora(mf_student.net)
with torch.no_grad():
    mf_samples = ddim_sample(
        student_predict(mf_student, labels), noise, uniform_grid(SEGMENTS), schedule
    )
evaluate("MeanFlow, finite difference (K = 4)", mf_samples, SEGMENTS)
show_digits(torch.cat([teacher_50[:10], mb_samples[:10], mf_samples[:10]]), nrow=3)

# %% [markdown]
# ## 7. Results

# %%
for _row in results:
    print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in _row.values()))
record_results(
    results,
    f"Digits, the {len(labels)} labels of the test split, one noise draw; CFG w = {GUIDANCE:g} "
    "in the teacher (one batched call per step) and distilled into the students; "
    f"{CD_STEPS} distillation updates, LoRA rank {LORA_RANK}.",
)

# %% [markdown]
# **Question 3.** List two failure cases you observed or provoked (e.g. the interval
# $\Delta$, no stop-gradient on the target, guidance outside the teacher step, re-noising
# to the wrong level, the finite-difference step $h$) and explain them.
#
# <!-- BEGIN SOLUTION -->
# * Without `torch.no_grad()` on the target the loss is minimised by moving both sides
#   towards each other: the student can collapse towards a function that is constant along
#   trajectories *and* in x (the loss falls, the samples turn into blurred class averages).
# * Guidance applied only when sampling the student (CFG on the student, teacher step
#   unguided) needs two student calls per step and guides a map rather than a velocity: the
#   combination of two jumps is not the jump of the guided ODE, so samples degrade; the
#   distilled guided teacher gives the effect of w = 2 at 1 NFE.
# * Re-noising to the current instead of the next level in the consistency sampler, or with
#   the same noise every step, leaves the sampler at high noise or correlates the steps.
# * A tiny interval Δ makes the target nearly equal to the prediction (slow learning and
#   noise-dominated gradients); a large one adds the teacher's DDIM error to every step.
#   Likewise h in the MeanFlow difference: h = 10⁻³ divides the network's noise by a small
#   number (a noisy target), a large h biases the derivative.
# <!-- END SOLUTION -->
