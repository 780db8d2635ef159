# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Seminar 1 — DDPM and denoising score matching by hand
#
# We build a diffusion model from its parts on data whose answer we know exactly: the 2D
# mixture of 8 Gaussians (`visgen.oracles.eight_gaussians`), whose noisy marginals p_t, score
# ∇log p_t and posterior mean E[x0 | x_t] are all in closed form. Then the same recipe on
# scikit-learn's 8×8 digits.
#
# 1. the forward process: the Markov chain and its closed-form marginal q(x_t | x0);
# 2. the denoising loss: Tweedie's formula, and the loss even a perfect model pays;
# 3. training a small DDPM (our own loop) and ancestral sampling, measured against the data floor;
# 4. denoising score matching on a σ ladder: the learned score vs the exact mixture score,
#    annealed Langevin sampling;
# 5. the same DDPM on digits.
#
# Every step ends with `assert`s against an oracle, so a broken library fails this notebook
# (CI runs it with `VISGEN_FAST=1`: smaller budgets). Code: `visgen.schedules`,
# `visgen.objectives`, `visgen.sampling`, `visgen.oracles` (slides:
# `lectures/01-ddpm-dsm/slides.pdf`; homework 1 builds on the same pieces).

# %%
import matplotlib.pyplot as plt
import torch

import visgen
from visgen.config import budget
from visgen.course.helpers import digits_floor_row, digits_row, gaussians_floor_row, gaussians_row
from visgen.data import get_dataset
from visgen.nn import MLP
from visgen.objectives import Discrete, ddpm_loss, diffusion_loss, dsm_loss, noisy_sample
from visgen.oracles import eight_gaussians
from visgen.param import Denoiser
from visgen.sampling import sample_ancestral, sample_langevin, uniform
from visgen.schedules import VE, VPDiscrete
from visgen.train import asset

visgen.set_threads(1)
print("FAST budgets" if visgen.config.is_fast() else "full budgets")
g = torch.Generator().manual_seed(0)
gmm = eight_gaussians()  # 8 Gaussians of std 0.3 on a circle of radius 2


def scatter(ax, x, title):
    ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal")
    ax.set_xlim(-4, 4)
    ax.set_ylim(-4, 4)


# %% [markdown]
# ## 1. The forward process
#
# DDPM adds a little Gaussian noise T = 1000 times: x_k = √(1 − β_k) x_{k−1} + √β_k z_k with β
# linear from 10⁻⁴ to 0.02. Because Gaussians compose, x_k given x0 is again Gaussian:
# q(x_k | x0) = N(√ᾱ_k x0, (1 − ᾱ_k) I) with ᾱ_k = Π_{i≤k}(1 − β_i). In visgen's continuous
# time, step k sits at t = (k + 1)/T and x_t = α_t x0 + σ_t ε with α_t = √ᾱ_k, σ_t = √(1 − ᾱ_k).
#
# Check it: run the chain step by step from one point x0 for 20 000 independent copies and
# compare the mean and standard deviation after k steps with the closed form.

# %%
sch = VPDiscrete()
assert torch.allclose(sch.alphas_cumprod, torch.cumprod(1 - sch.betas, 0))
x0 = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
x = x0.repeat(20_000, 1)
for k in range(500):
    x = (1 - sch.betas[k]).sqrt() * x + sch.betas[k].sqrt() * torch.randn(x.shape, generator=g,
                                                                        dtype=x.dtype)  # fmt: skip
t = sch.t_of_index(499)
alpha, sigma = float(sch.alpha(t)), float(sch.sigma(t))
print(f"after 500 steps: chain mean {x.mean(0).tolist()}, std {x.std(0).tolist()}")
print(f"closed form:     mean [{alpha * 2:.4f}, 0.0], std {sigma:.4f}")
stderr = sigma / len(x) ** 0.5
assert torch.allclose(x.mean(0), alpha * x0[0], atol=5 * stderr)
assert torch.allclose(x.std(0), torch.tensor(sigma, dtype=x.dtype), rtol=0.03)
assert abs(alpha**2 + sigma**2 - 1) < 1e-12  # variance preserving

# %% [markdown]
# So training never runs the chain: it draws t and ε and jumps straight to x_t
# (`noisy_sample`). The whole data set at a few times:

# %%
pts = gmm.sample(2000, g)
fig, axes = plt.subplots(1, 5, figsize=(12, 2.6))
for ax, t in zip(axes, [0.0, 0.1, 0.25, 0.5, 1.0]):
    tt = torch.full((len(pts),), t)
    scatter(ax, noisy_sample(pts, tt, sch, torch.randn(pts.shape, generator=g)),
            f"t = {t}: α = {float(sch.alpha(torch.tensor(t))):.2f}")  # fmt: skip
plt.show()

# %% [markdown]
# ## 2. The denoising loss and Tweedie's formula
#
# DDPM trains ε_θ(x_t, t) to predict the noise: L_simple = E‖ε − ε_θ(x_t, t)‖². The best
# possible predictor is the posterior mean ε̂ = E[ε | x_t], and by **Tweedie's formula** it is
# the score: ∇log p_t(x) = −E[ε | x_t = x]/σ_t. The mixture knows both sides exactly:
# `gmm.log_prob` (differentiate it with autograd) and `gmm.denoiser(schedule)` (the posterior
# mean as a `visgen.Denoiser`).

# %%
exact = gmm.to(torch.float64).denoiser(sch)
xt = 3 * torch.randn(500, 2, generator=g, dtype=torch.float64)
t = torch.rand(500, generator=g, dtype=torch.float64) * 0.98 + 0.02
xt.requires_grad_(True)
autograd_score = torch.autograd.grad(gmm.to(torch.float64).log_prob(xt, t, sch).sum(), xt)[0]
tweedie_score = -exact.eps(xt.detach(), t) / sch.sigma(t)[:, None]
print("max |∇log p_t − (−ε̂/σ_t)|:", float((autograd_score - tweedie_score).abs().max()))
assert torch.allclose(autograd_score, tweedie_score, atol=1e-8)

# %% [markdown]
# Even ε̂ does not reach zero loss: from x_t alone ε cannot be known. The **irreducible loss**
# is E‖ε − ε̂‖² = E (α_t/σ_t)² tr Cov(x0 | x_t) (`posterior_variance`). Two Monte-Carlo
# estimates of the same number — the loss of the exact denoiser on fresh draws, and the
# closed-form conditional variance at the same x_t — must agree.

# %%
x0 = gmm.sample(20_000, g).double()
t = Discrete(sch)(len(x0), g, torch.float64)
noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
irreducible = diffusion_loss(exact, x0, t=t, noise=noise, target="eps").item()
xt = noisy_sample(x0, t, sch, noise)
closed = ((sch.alpha(t) / sch.sigma(t)) ** 2 * gmm.to(torch.float64).posterior_variance(
    xt, t, sch)).mean().item() / 2  # per coordinate, as the loss  # fmt: skip
print(f"irreducible ε-loss: exact denoiser {irreducible:.4f}, closed form {closed:.4f}")
assert abs(irreducible - closed) < 0.03 * closed

# %% [markdown]
# ## 3. Training a DDPM and sampling it
#
# A 3-layer MLP of width 128 (`visgen.nn.MLP`; it adds a sinusoidal embedding of t to every
# layer) is our ε_θ. `Denoiser(model, schedule, "eps")` says what the network outputs, so
# `ddpm_loss` and the samplers can convert it to x̂0, score or velocity. The loop is the whole
# of DDPM's Algorithm 1 (`visgen.train.Trainer` adds EMA weights, warm-up and checkpoints).

# %%
STEPS = budget(full=4000, fast=1000)


def train(loss_fn, den, steps=STEPS, batch=256, lr=2e-3, seed=0):
    """Plain Adam on fresh mixture samples with a cosine learning-rate decay; the loss curve."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(den.model.parameters(), lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        loss = loss_fn(den, gmm.sample(batch, gen), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
        losses.append(loss.item())
    return losses


torch.manual_seed(0)
ddpm = Denoiser(MLP(2, width=128, depth=3), sch, "eps")
losses = train(ddpm_loss, ddpm)
plt.plot(torch.tensor(losses).view(-1, 50).mean(1))
plt.axhline(irreducible, color="k", ls="--", label="irreducible loss (oracle)")
plt.xlabel("step / 50")
plt.ylabel("ε-loss")
plt.legend()
plt.show()

# %% [markdown]
# The held-out loss of the network on the same 20 000 draws as the oracle, and how far above
# the irreducible loss it is:

# %%
with torch.no_grad():
    held_out = diffusion_loss(ddpm, x0.float(), t=t.float(), noise=noise.float(),
                              target="eps").item()  # fmt: skip
print(f"network {held_out:.4f}, irreducible {irreducible:.4f}: "
      f"{100 * (held_out / irreducible - 1):+.1f} %")  # fmt: skip
assert irreducible * 0.98 < held_out < irreducible * 1.10

# %% [markdown]
# **Ancestral sampling** (DDPM's Algorithm 2, `sample_ancestral`) walks the 1000 steps back
# from pure noise, each step drawing from the Gaussian posterior q(x_{t−1} | x_t, x̂0). We
# measure the samples with the **energy distance** to fresh data and the share of samples in
# each mode — next to the **floor**: the same numbers for a second independent draw of the
# data (a perfect model cannot beat it), and for the exact denoiser run through the same
# sampler.

# %%
N = 2000
ref = gmm.sample(N, g)
with torch.no_grad():
    x_ddpm = sample_ancestral(ddpm, torch.randn(N, 2, generator=g), uniform(1000), generator=g)
x_exact = sample_ancestral(gmm.denoiser(sch), torch.randn(N, 2, generator=g), uniform(1000),
                           generator=g)  # fmt: skip
rows = [
    gaussians_row(f"our DDPM, {STEPS} steps", x_ddpm, ref),
    gaussians_row("exact denoiser", x_exact, ref),
    gaussians_floor_row(ref, g),
]
for r in rows:
    print(f"{r['samples']:24s} energy distance {r['energy distance']:.4f}   "
          f"in a mode {r['in a mode']:.3f}   smallest mode {r['smallest mode']:.3f}")  # fmt: skip
fig, axes = plt.subplots(1, 3, figsize=(8, 2.8))
for ax, (x, title) in zip(axes, [(ref, "data"), (x_ddpm, "our DDPM"), (x_exact, "exact")]):
    scatter(ax, x, title)
plt.show()
floor = rows[-1]["energy distance"]
assert rows[0]["energy distance"] < max(4 * floor, 0.01)
assert rows[0]["smallest mode"] > 0.08 and rows[0]["in a mode"] > 0.9

# %% [markdown]
# ## 4. Denoising score matching on a σ ladder
#
# NCSN (Song & Ermon 2019) uses a *variance-exploding* process x_σ = x0 + σ ε with ten levels
# σ from 10 down to 0.01 and learns the score s_θ(x, σ) ≈ ∇log p_σ(x) with
# λ(σ)‖s_θ + ε/σ‖², λ = σ². Write s_θ = −ε_θ/σ and that *is* the ε-loss: `dsm_loss` is the
# same regression as DDPM, only the noise levels differ. Train the same MLP with it and
# compare the learned score with the exact score of the noisy mixture at every level.

# %%
ve = VE(sigma_min=0.01, sigma_max=10.0)
torch.manual_seed(0)
dsm = Denoiser(MLP(2, width=128, depth=3), ve, "eps")
_ = train(dsm_loss, dsm)
levels = torch.linspace(1, 0, 10)
errors, weighted = [], []
with torch.no_grad():
    for t in levels:
        tt = torch.full((4000,), float(t))
        x0_ = gmm.sample(4000, g)
        xt = noisy_sample(x0_, tt, ve, torch.randn(x0_.shape, generator=g))
        learned, true = dsm.score(xt, tt), gmm.score(xt, tt, ve)
        errors.append(float((learned - true).norm() / true.norm()))
        # λ(σ) = σ²: the DSM loss weighs σ‖s_θ − s‖, i.e. the ε-error ε̂_θ − ε̂
        weighted.append(((ve.sigma(t) * (learned - true)).pow(2).sum(),
                         (ve.sigma(t) * true).pow(2).sum()))  # fmt: skip
        print(f"σ = {float(ve.sigma(t)):7.3f}: relative L2 error of the learned score "
              f"{errors[-1]:.3f}")  # fmt: skip
pooled = float((sum(e for e, _ in weighted) / sum(n for _, n in weighted)).sqrt())
print(f"pooled over the ladder with DSM's weight λ = σ²: {pooled:.3f}")
plt.semilogx(ve.sigma(levels), errors, marker="o")
plt.xlabel("σ")
plt.ylabel("‖s_θ − ∇log p_σ‖ / ‖∇log p_σ‖")
plt.show()
assert max(e for e, s in zip(errors, ve.sigma(levels)) if s > 1) < 0.1
assert max(errors) < 1  # better than the zero score at every level

# %% [markdown]
# Close where σ > 1, far off at small σ. Below σ ≈ 0.3 (the width of a mode) the noise
# cannot be told apart from the data's own spread: ε̂ = −σ∇log p_σ is small and the ε-loss
# is almost all irreducible, so the gradient carries little signal about the score there and
# the network fits it slowly. The λ = σ² weighting of DSM cares little, and so do the samples
# (next cell): the last levels only polish positions inside a mode.

# %% [markdown]
# **Annealed Langevin dynamics** samples with the score alone: at each level from the largest
# σ down, 30 steps x ← x + (δ/2) s_θ(x, σ) + √δ z with δ = η σ²/σ_min², then one Tweedie
# step x ← E[x0 | x] (301 NFE in all).

# %%
with torch.no_grad():
    x_dsm = sample_langevin(dsm, 10.0 * torch.randn(N, 2, generator=g), levels.double(),
                            n_steps=30, step_size=1e-4, generator=g)  # fmt: skip
row = gaussians_row("DSM + annealed Langevin", x_dsm, ref)
print(f"energy distance {row['energy distance']:.4f} (floor {floor:.4f}), "
      f"smallest mode {row['smallest mode']:.3f}")  # fmt: skip
fig, ax = plt.subplots(figsize=(2.8, 2.8))
scatter(ax, x_dsm, "DSM, annealed Langevin")
plt.show()
assert row["energy distance"] < max(6 * floor, 0.02) and row["smallest mode"] > 0.06

# %% [markdown]
# ## 5. The same DDPM on digits
#
# Nothing above was specific to 2D. `asset("ddpm_digits")` is the same MLP (width 256) trained
# with `ddpm_loss` on the 1 400 training digits (of scikit-learn's 1 797) in [−1, 1],
# class-conditional with 10 % of labels dropped (for classifier-free guidance later); it is
# trained once and cached.
# Digits have no closed-form density, so the floor is empirical: the **Fréchet distance**
# between the features (of visgen's own small digit classifier) of real training digits and
# of the test digits.

# %%
digits = asset("ddpm_digits", progress=False)
test = get_dataset("digits", "test")
nfe = budget(full=1000, fast=250)
with torch.no_grad():
    x_dig = sample_ancestral(digits.denoiser(), torch.randn(len(test), 1, 8, 8, generator=g),
                             uniform(nfe), test.labels, generator=g)  # fmt: skip
fig, axes = plt.subplots(2, 10, figsize=(8, 1.8))
for ax, img in zip(axes.flat, x_dig[:20]):
    ax.imshow(img[0], cmap="gray", vmin=-1, vmax=1)
    ax.set_axis_off()
plt.show()
ours, real = digits_row("DDPM", x_dig, test.labels), digits_floor_row()
for r in (ours, real):
    print(f"{r['samples']:20s} FD {r['FD (classifier)']:6.1f}   right class {r['right class']:.2f}")
assert ours["FD (classifier)"] < 4 * real["FD (classifier)"]
assert ours["right class"] > 0.7

# %% [markdown]
# ## Discussion
#
# * The chain in §1 needed 500 sequential steps; training needs none. Which property of
#   Gaussians makes this possible, and would it survive non-Gaussian noise?
# * Why is the irreducible loss largest at *small* t for ε-prediction, and what does that say
#   about weighting the loss over t?
# * The learned score is worst at σ = 0.01. Does that hurt the samples? (Look at where
#   Langevin spends its steps.)
# * DDPM and DSM trained the same network with the same regression. What, then, distinguishes
#   them in practice? (Lecture 2 answers with one SDE family.)
