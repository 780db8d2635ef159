# %% [markdown]
# # Homework 3 — Flow-matching training in practice
#
# You train class-conditional flow-matching transformers the way recent image models are
# trained, at a size a laptop CPU handles in minutes:
#
# 1. **Pixel space, JiT-style** (Li & He 2025, *Back to Basics: Let Denoising Generative
#    Models Denoise*, arXiv 2511.13720): a small DiT that predicts the clean image $\hat x$,
#    trained with the velocity loss, logit-normal times, label dropout, and sampled with
#    classifier-free guidance (CFG).
# 2. **Latent space** (Rombach et al. 2022, arXiv 2112.10752): the same code on the scaled
#    latents of visgen's autoencoder.
# 3. **REPA** (Yu et al. 2024, arXiv 2410.06940) with iREPA's convolutional projector and
#    normalised targets (Singh et al. 2025, arXiv 2512.10794): align a hidden layer with a
#    frozen encoder.
#
# The derivations are in `task.pdf`. **Convention** (the course's): $t = 0$ is data,
# $t = 1$ noise, $x_t = (1 - t)\,x_0 + t\,\varepsilon$, velocity $v = \varepsilon - x_0$.
# JiT writes time the other way round ($t = 1$ data); every formula below is already
# translated.
#
# **The models** are visgen's: `visgen.nn.DiT` (adaLN-Zero blocks, 2D RoPE), the autoencoder
# asset `vae_shapes16` and the encoder asset `repa_encoder_digits` (both trained on first use
# and cached in `.cache/visgen`). The data are scikit-learn's 8×8 digits and visgen's 16×16
# procedural shapes; nothing is downloaded. Quality is measured by the Fréchet distance (FD)
# on the 16 leading principal components of the training images, always next to its floor
# (real held-out images against as many training images).
#
# **Rules.** Fill in every function marked `TODO`, keeping names and signatures; graded
# functions may use imports, other functions and classes and UPPERCASE constants, no
# lowercase globals. The grader: `visgen grade hw3 fm_training.ipynb` (it trains a small
# DiT with your loss and checks the FD of its samples). Written conclusions go in the cells
# marked *Your answer here*.

# %%
import functools
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import visgen
from visgen import budget
from visgen.data import Dataset, embedding_matrix, get_dataset
from visgen.metrics import energy_distance, mode_coverage
from visgen.metrics.images import PCAFeatures, frechet_distance
from visgen.nn import DiT
from visgen.objectives.repa import encoder_tokens
from visgen.oracles import eight_gaussians
from visgen.viz import image_grid

visgen.set_threads(1)
if visgen.is_fast():
    print("VISGEN_FAST=1: small budgets (smoke test)")

T_EPS = 0.05  # JiT's clamp of the division by t in the v-loss
P_MEAN, P_STD = 0.8, 0.8  # JiT's logit-normal time, translated to t = 1 noise
LABEL_DROPOUT = 0.1
NULL_LABEL = -1  # the "no label" class of visgen's DiT (unconditional model for CFG)


def show(images, nrow, title=None, scale=6):
    """Plot images (N, C, H, W) in [-1, 1] as a grid with nrow images per row."""
    grid = image_grid(images.detach().clamp(-1, 1), nrow=nrow, scale=scale)
    plt.figure(figsize=(grid.shape[1] / 80, grid.shape[0] / 80 + 0.3))
    plt.imshow(grid)
    plt.axis("off")
    if title:
        plt.title(title, fontsize=9)
    plt.show()


digits, digits_test = get_dataset("digits"), get_dataset("digits", "test")
N_EVAL = budget(full=397, fast=60)  # held-out digits the samples are scored on (all 397)
digits_eval = Dataset("digits", digits_test.x[:N_EVAL], digits_test.labels[:N_EVAL], 10)
show(digits.x[:40], nrow=20, title="digits (1×8×8, 10 classes)")

# %% [markdown]
# ## 1. JiT in pixel space
#
# ### 1.1 Patches
#
# A DiT cuts an image (B, C, H, W) into $N = (H/p)(W/p)$ non-overlapping $p \times p$ patches,
# read row by row; each becomes a token of $p \cdot p \cdot C$ values ordered (row in the
# patch, column in the patch, channel). `unpatchify` is the exact inverse.


# %%
def patchify(x, p):
    """(B, C, H, W) → (B, (H/p)(W/p), p·p·C), patches row-major, values (row, col, channel)."""
    # BEGIN SOLUTION
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)
    # END SOLUTION


def unpatchify(tokens, p, channels, size):
    """(B, N, p·p·C) → (B, C, size, size): the inverse of patchify."""
    # BEGIN SOLUTION
    b, g = tokens.shape[0], size // p
    x = tokens.reshape(b, g, g, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, size, size)
    # END SOLUTION


# %% [markdown]
# ### 1.2 x-prediction with the v-loss
#
# JiT's network outputs $\hat x = \text{net}(x_t, t, y)$, an estimate of the clean image
# (pixels lie near a low-dimensional manifold; noise and velocity do not — the "manifold
# assumption"). It is trained with the loss of the **velocity** it implies,
# $$\hat v = \frac{x_t - \hat x}{\max(t, t_\text{eps})}, \qquad
# \mathcal{L} = \mathbb{E}\,\big\|\hat v - (\varepsilon - x_0)\big\|^2,$$
# with the clamp $t_\text{eps} = 0.05$ keeping the division finite near the data. The loss is
# the mean over batch **and** pixels. `t` is a (B,) tensor; broadcast it against the images.
#
# Times come from a **logit-normal** distribution, $t = \operatorname{sigmoid}(m + s u)$,
# $u \sim \mathcal{N}(0, 1)$, with $m = 0.8$, $s = 0.8$: most training steps at
# intermediate-to-high noise. For CFG the label is replaced by `NULL_LABEL` with probability
# $p = 0.1$ (**label dropout**), so the same network also learns the unconditional model.


# %%
def x_to_velocity(x_pred, x_t, t, t_eps=T_EPS):
    """v̂ = (x_t − x̂)/max(t, t_eps) for x_pred, x_t (B, ...) and t (B,)."""
    # BEGIN SOLUTION
    t = t.clamp_min(t_eps).reshape(-1, *([1] * (x_t.dim() - 1)))
    return (x_t - x_pred) / t
    # END SOLUTION


def jit_loss(model, x0, y, t, noise, t_eps=T_EPS):
    """The v-loss of an x-predicting model(x_t, t, y): mean over batch and values of
    ‖x_to_velocity(x̂, x_t, t) − (ε − x0)‖², with x_t = (1 − t) x0 + t ε. A scalar tensor."""
    # BEGIN SOLUTION
    tt = t.reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = (1 - tt) * x0 + tt * noise
    v = x_to_velocity(model(x_t, t, y), x_t, t, t_eps)
    return (v - (noise - x0)).pow(2).mean()
    # END SOLUTION


def sample_time(n, generator=None, mean=P_MEAN, std=P_STD):
    """n times t = sigmoid(mean + std·u), u ~ N(0, 1) drawn with `generator`: a (n,) tensor."""
    # BEGIN SOLUTION
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))
    # END SOLUTION


def drop_labels(y, p, generator=None):
    """A copy of the labels y (B,) with each replaced by NULL_LABEL with probability p
    (independently, random numbers from `generator`)."""
    # BEGIN SOLUTION
    drop = torch.rand(y.shape[0], generator=generator) < p
    return torch.where(drop, torch.full_like(y, NULL_LABEL), y)
    # END SOLUTION


# %% [markdown]
# ### 1.3 Sampling with classifier-free guidance
#
# Euler steps over a decreasing grid $1 = t_0 > t_1 > \dots > t_n = 0$ (the model is never
# evaluated at $t = 0$). At each step the guided prediction is
# $\hat x_w = \hat x_\text{u} + w(\hat x_\text{c} - \hat x_\text{u})$ with the conditional and
# unconditional predictions from **one** model call on a batch of $2B$ (labels `y`, then
# `NULL_LABEL`), converted to the velocity $\hat v = (x - \hat x_w)/t$ exactly (no clamp: $t \ge t_{n-1} > 0$;
# call `x_to_velocity` with `t_eps=0`), and $x \leftarrow x + (t_{i+1} - t_i)\,\hat v$. Since $\hat v$ is affine
# in $\hat x$, guiding $\hat x$ or $\hat v$ gives the same sampler.


# %%
def cfg_sample(model, x, ts, y, w):
    """Euler sampling from x at ts[0] to ts[-1] with CFG scale w for labels y: one model
    call per step on a batch of 2B. Returns x at ts[-1]."""
    # BEGIN SOLUTION
    ts = [float(t) for t in ts]
    null = torch.full_like(y, NULL_LABEL)
    for t, s in zip(ts[:-1], ts[1:]):
        tt = torch.full((2 * x.shape[0],), t, dtype=x.dtype, device=x.device)
        x_cond, x_uncond = model(torch.cat([x, x]), tt, torch.cat([y, null])).chunk(2)
        x_hat = x_uncond + w * (x_cond - x_uncond)
        x = x + (s - t) * x_to_velocity(x_hat, x, tt[: x.shape[0]], t_eps=0.0)
    return x
    # END SOLUTION


# %% [markdown]
# ### Self-checks (1)

# %%
_g = torch.Generator().manual_seed(0)
_x = torch.randn(5, 3, 8, 8, generator=_g)
assert patchify(_x, 2).shape == (5, 16, 12)
assert torch.equal(unpatchify(patchify(_x, 4), 4, 3, 8), _x)
assert torch.equal(patchify(_x, 2)[0, 1, :3], _x[0, :, 0, 2]), "token 1 starts at pixel (0, 2)"
_x0, _eps, _t = (
    torch.randn(5, 3, 8, 8, generator=_g),
    torch.randn(5, 3, 8, 8, generator=_g),
    torch.rand(5, generator=_g) * 0.9 + 0.1,
)
_exact = lambda x, t, y: _x0  # an x-predictor that knows the answer
assert float(jit_loss(_exact, _x0, None, _t, _eps)) < 1e-10, "the loss at the exact x̂ is zero"
_ts = sample_time(100_000, torch.Generator().manual_seed(1))
_u = torch.logit(_ts)
assert abs(_u.mean() - P_MEAN) < 0.02 and abs(_u.std() - P_STD) < 0.02
_y = torch.arange(10_000) % 10
_d = drop_labels(_y, 0.1, torch.Generator().manual_seed(2))
assert abs((_d == NULL_LABEL).float().mean() - 0.1) < 0.015 and torch.equal(
    _d[_d >= 0], _y[_d >= 0]
)
_lin = lambda x, t, y: 0.5 * x + (y.reshape(-1, 1) >= 0)  # a toy x-predictor
_z = torch.randn(4, 2, generator=_g)
assert torch.allclose(
    cfg_sample(_lin, _z, torch.linspace(1, 0, 6), torch.arange(4), 1.0),
    cfg_sample(lambda x, t, y: 0.5 * x + 1, _z, torch.linspace(1, 0, 6), torch.arange(4), 7.0),
), "w = 1 samples the conditional model"
print("self-checks (1) passed")

# %% [markdown]
# ### 1.4 Training
#
# The loop below (given) draws a batch, its times, noise and dropped labels with your
# functions and takes an AdamW step on `loss_fn(model, x0, y, t, noise)`. The FD helper
# compares samples with held-out images in the 16-dimensional PCA space of the training set.


# %%
BATCH = budget(full=64, fast=32)


def train(model, loss_fn, data, steps, batch_size=BATCH, lr=2e-3, seed=0, extra=()):
    """Train model (and the modules in `extra`) on data.x / data.labels; returns the losses."""
    g = torch.Generator().manual_seed(seed)
    params = [p for m in (model, *extra) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 50))
    losses = []
    for _ in range(steps):
        i = torch.randint(0, len(data.x), (batch_size,), generator=g)
        x0, y = data.x[i], drop_labels(data.labels[i], LABEL_DROPOUT, g)
        t, noise = sample_time(batch_size, g), torch.randn(x0.shape, generator=g)
        loss = loss_fn(model, x0, y, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


@functools.lru_cache
def pca_features(name):
    """The projection on the 16 leading principal components of data set `name`'s training
    images (computed once)."""
    return PCAFeatures(get_dataset(name).x, 16)


def fd(samples, data, test):
    """Fréchet distance of samples to the test images in the training set's PCA-16 space."""
    pca = pca_features(data.name)
    return frechet_distance(pca(samples), pca(test.x))


def fd_floor(data, test, seed=0):
    """FD of as many real training images as test images (the floor of `fd`)."""
    i = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))[: len(test.x)]
    return fd(data.x[i], data, test)


SAMPLE_STEPS = budget(full=20, fast=6)


@torch.no_grad()
def generate(model, shape, labels, w, steps=SAMPLE_STEPS, seed=0):
    z = torch.randn(len(labels), *shape, generator=torch.Generator().manual_seed(seed))
    return cfg_sample(model, z, torch.linspace(1, 0, steps + 1), labels, w)


STEPS_PIXEL = budget(full=800, fast=30)
torch.manual_seed(0)
pixel_dit = DiT(1, 8, patch_size=2, dim=64, depth=3, heads=4, num_classes=10)
losses = train(pixel_dit, jit_loss, digits, STEPS_PIXEL)
plt.figure(figsize=(5, 2.5))
plt.plot(losses, lw=0.6)
plt.yscale("log")
plt.xlabel("step")
plt.ylabel("v-loss")
plt.show()

# %% [markdown]
# ### 1.5 Guidance scale
#
# One sample per held-out digit (its label; 397 digits, 60 in FAST mode), at $w = 0$
# (unconditional), 1 (conditional), 2 and 4, with 20 Euler steps (one network call on a
# batch of 2B per step).

# %%
pixel_dit.eval()
floor_digits = fd_floor(digits, digits_eval)
print(f"floor (real training digits vs test): FD {floor_digits:.3f}")
_labels = digits_eval.labels[:20].tolist()
for _w in (0.0, 1.0, 2.0, 4.0):
    _s = generate(pixel_dit, (1, 8, 8), digits_eval.labels, _w)
    print(f"w = {_w:3.1f}: FD {fd(_s, digits, digits_eval):.3f}")
    show(_s[:20], nrow=20, title=f"w = {_w:g}; labels {' '.join(map(str, _labels))}")

# %% [markdown]
# ### 1.6 Why x-prediction? JiT's toy
#
# JiT's argument in one picture: data on a 2-D plane of $\mathbb{R}^{512}$ (eight Gaussians,
# `embedded:eight_gaussians:512`), a small MLP (64 wide) and **the same v-loss**. The
# x-predicting network only has to output points of the plane; a velocity-predicting one must
# reproduce the 510 off-plane noise coordinates of $\varepsilon - x_0$ through a 64-wide
# bottleneck. (Unconditional: labels are ignored by the MLP.)


# %%
class ToyMLP(nn.Module):
    """x ∈ R^D and t → R^D (a 4-layer MLP, 64 wide); ignores labels."""

    def __init__(self, dim, width=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 1, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
            nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim),
        )  # fmt: skip

    def forward(self, x, t, y=None):
        return self.net(torch.cat([x, t[:, None]], 1))


def v_pred_loss(model, x0, y, t, noise):
    """The same v-loss for a network that outputs the velocity directly."""
    tt = t[:, None]
    return (model((1 - tt) * x0 + tt * noise, t, y) - (noise - x0)).pow(2).mean()


toy = get_dataset("embedded:eight_gaussians:512")
plane = embedding_matrix(512)  # (512, 2), orthonormal columns
toy_ref = get_dataset("eight_gaussians", "test").x[:1000]
STEPS_TOY = budget(full=1000, fast=60)
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
axes[0].scatter(*toy_ref.T, s=2)
axes[0].set_title("data (plane coordinates)")
for ax, (name, loss_fn) in zip(
    axes[1:], (("x-prediction", jit_loss), ("v-prediction", v_pred_loss))
):
    torch.manual_seed(0)
    net = ToyMLP(512)
    train(net, loss_fn, toy, STEPS_TOY, batch_size=2 * BATCH, lr=4e-3)
    x_pred = (
        net if loss_fn is jit_loss else (lambda x, t, y, net=net: x - t[:, None] * net(x, t, y))
    )
    with torch.no_grad():
        u = generate(x_pred, (512,), torch.zeros(1000, dtype=torch.long), 1.0, steps=40) @ plane
    cov = mode_coverage(u, eight_gaussians().means, 0.5)
    ed = energy_distance(u, toy_ref)
    print(f"{name}: energy distance on the plane {ed:.3f}, {cov.in_mode:.0%} of samples in a mode")
    ax.scatter(*u.T, s=2)
    ax.set(title=name, xlim=(-4, 4), ylim=(-4, 4))
plt.tight_layout()
plt.show()

# %% [markdown]
# **Conclusions 1.** How does the guidance scale trade fidelity for diversity on the digits
# (FD, look at the samples)? Why does x-prediction win on the toy, and why does it matter
# for 256×256 images with 16×16 patches (768 values per token)?
#
# <!-- BEGIN SOLUTION -->
# On the digits (full budget) the FD is lowest for the conditional model, $w = 1$
# (≈ 1.6 against a floor of 0.27), and rises with the scale (≈ 2.0 at $w = 2$, ≈ 3.5 at
# $w = 4$); $w = 0$, the unconditional model, is worse than $w = 1$ (≈ 2.8): at this size the
# label helps the network. Looking at the samples, $w = 2$–4 gives thicker, cleaner,
# more prototypical digits, but all samples of a class look alike and the strokes
# saturate, which the FD — a distance between distributions, diversity included — charges
# for: CFG trades diversity for per-sample fidelity. On the toy the x-predicting MLP puts
# all samples in the eight modes (energy distance ≈ 0.08) while the velocity-predicting
# one, with the same loss and budget, leaves ≈ 12 % between the modes (≈ 0.22): its
# 64-wide hidden layer cannot carry the 510 off-plane coordinates of $\varepsilon$ it must
# output, whereas $\hat x$ lies on the plane (task 1). A 16×16×3 patch has 768 values but a
# token a few hundred channels: predicting noise-like targets through that bottleneck
# fails, predicting the clean patch does not — JiT's case for plain pixel transformers
# with large patches.
# <!-- END SOLUTION -->

# %% [markdown]
# ## 2. Latent space
#
# `vae_shapes16` is a KL autoencoder trained by visgen on 16×16×3 shapes (12 classes): it
# maps an image to a posterior $q(z \mid x) = \mathcal{N}(\mu(x), \sigma^2(x))$ over latents
# 4×8×8 and back (`vae.encode(x).mode()` is $\mu(x)$, `vae.decode(z)` the decoder). Latent
# diffusion trains on $s \mu(x)$ with the **scaling factor** $s = 1/\operatorname{std}(\mu)$
# measured over all latent values of the training images (Stable Diffusion's 0.18215), so the
# latents have unit variance like the noise; samples are decoded as $\text{dec}(z / s)$.


# %%
def latent_scale(vae, x):
    """s = 1 / std of μ(x) over all latent values of the images x (a float)."""
    # BEGIN SOLUTION
    with torch.no_grad():
        return 1.0 / float(vae.encode(x).mode().double().std())
    # END SOLUTION


def encode_latents(vae, x, scale):
    """The scaled latents s·μ(x) (no sampling from the posterior)."""
    # BEGIN SOLUTION
    with torch.no_grad():
        return scale * vae.encode(x).mode()
    # END SOLUTION


def decode_latents(vae, z, scale):
    """Images dec(z / s) of scaled latents z."""
    # BEGIN SOLUTION
    with torch.no_grad():
        return vae.decode(z / scale)
    # END SOLUTION


# %%
from visgen.train import autoencoder  # the asset is trained on first use, then cached

vae = autoencoder("vae_shapes16")
shapes, shapes_test = get_dataset("shapes16"), get_dataset("shapes16", "test")
scale = latent_scale(vae, shapes.x)
print(f"s = {scale:.4f} (visgen's fitted scale {float(vae.scale):.4f})")
assert abs(scale - float(vae.scale)) < 1e-3 * scale
latents = Dataset("latents", encode_latents(vae, shapes.x, scale), shapes.labels, 12)
print(f"latent std {latents.x.std():.3f}, shape {tuple(latents.x.shape[1:])}")
_rec = decode_latents(vae, encode_latents(vae, shapes_test.x[:12], scale), scale)
show(torch.cat([shapes_test.x[:12], _rec]), nrow=12, title="test shapes and dec(enc(x))")

# %% [markdown]
# Both transformers below have 4 tokens of width 64 and the same depth, so a training step
# costs about the same: pixels with 8×8 patches (192 values per token) against latents with
# 4×4 patches (64 values per token). Same steps, same loss (yours).

# %%
STEPS_LATENT = budget(full=500, fast=30)
SHAPES_DIT = {"dim": 64, "depth": 4, "heads": 4, "num_classes": 12}
torch.manual_seed(0)
shapes_pixel = DiT(3, 16, patch_size=8, **SHAPES_DIT)
train(shapes_pixel, jit_loss, shapes, STEPS_LATENT)
torch.manual_seed(0)
shapes_latent = DiT(4, 8, patch_size=4, **SHAPES_DIT)
train(shapes_latent, jit_loss, latents, STEPS_LATENT)

N_SHAPES = budget(full=600, fast=40)
shapes_eval = Dataset("shapes", shapes_test.x[:N_SHAPES], shapes_test.labels[:N_SHAPES], 12)
_labels = shapes_eval.labels
_px = generate(shapes_pixel.eval(), (3, 16, 16), _labels, 3.0).clamp(-1, 1)
_lx = decode_latents(vae, generate(shapes_latent.eval(), (4, 8, 8), _labels, 3.0), scale).clamp(
    -1, 1
)
_rec_train = decode_latents(vae, encode_latents(vae, shapes.x[: len(_labels)], scale), scale)
print(f"floor (real shapes): FD {fd_floor(shapes, shapes_eval):.3f}")
print(
    f"VAE reconstructions (ceiling of the latent model): FD {fd(_rec_train, shapes, shapes_eval):.3f}"
)
print(f"pixel DiT, w = 3: FD {fd(_px, shapes, shapes_eval):.3f}")
print(f"latent DiT, w = 3: FD {fd(_lx, shapes, shapes_eval):.3f}")
show(
    torch.cat([_px[:24], _lx[:24]]), nrow=12, title="pixel DiT (top two rows), latent DiT (bottom)"
)

# %% [markdown]
# **Conclusions 2.** Compare the pixel and the latent model at equal compute (numbers and
# pictures). What does the latent model gain, and what bounds its quality from below?
#
# <!-- BEGIN SOLUTION -->
# At equal steps the latent model is far better (full budget: FD ≈ 7 against ≈ 24 for
# the pixel model; floor ≈ 0.9): its samples are clean shapes, while the pixel model —
# each token must emit 192 values through a 64-wide transformer — shows blocky patch
# seams and noise. The autoencoder removes imperceptible high-frequency detail, so the
# transformer models a smoother signal (256 instead of 768 values, 64 per token), and the
# decoder, trained once and reused, restores the pixels. The price: the latent model can
# never beat its decoder — the FD of the reconstructions (≈ 0.8, at the floor here) bounds
# it from below — and the decoder's artefacts (blur, colour shifts) appear in every
# sample. JiT's point is that with x-prediction large-patch pixel models close much of the
# gap without an autoencoder.
# <!-- END SOLUTION -->

# %% [markdown]
# ## 3. REPA: representation alignment
#
# REPA adds to the diffusion loss a term that makes the DiT's hidden tokens after block $\ell$
# predictable from a frozen pretrained encoder's patch features of the **clean** image:
# $$\mathcal{L} = \mathcal{L}_\text{v} + \lambda\,\mathcal{L}_\text{align},\qquad
# \mathcal{L}_\text{align} = -\frac{1}{BN}\sum_{b, n}\cos\!\big(h_\varphi(z_t)_{b,n},\,
# \tilde y_{b,n}\big),\qquad \lambda = 0.5.$$
# iREPA's changes, used here: the projector $h_\varphi$ is a single **3×3 convolution** on the
# token grid (tokens (B, N, D) → grid (B, D, √N, √N), zero padding, back to (B, N, C);
# you write it as `project_tokens`, the module `ConvProjector` holds its weights), and
# the encoder features are **normalised over the tokens** of each image and channel,
# $\tilde y = (y - \operatorname{mean}_n y)/(\operatorname{std}_n y + 10^{-6})$ (unbiased std).
# The encoder (standing in for DINOv2) is visgen's `repa_encoder_digits`, a small CNN; its
# features (B, N, C) on the DiT's token grid come from `visgen.objectives.repa.encoder_tokens`.
# The hidden tokens come from `model(x_t, t, y, return_hidden=(ℓ,))`, which returns
# `(x̂, {ℓ: tokens})`.

# %%
REPA_LAYER = 2
REPA_WEIGHT = 0.5


def project_tokens(tokens, weight, bias):
    """iREPA's projector: the 3×3 convolution (weight (C, D, 3, 3), bias (C,), zero padding)
    of the √N×√N row-major token grid; tokens (B, N, D) → (B, N, C)."""
    # BEGIN SOLUTION
    b, n, d = tokens.shape
    g = math.isqrt(n)
    grid = tokens.transpose(1, 2).reshape(b, d, g, g)
    return F.conv2d(grid, weight, bias, padding=1).flatten(2).transpose(1, 2)
    # END SOLUTION


class ConvProjector(nn.Module):
    """The trainable projector h_φ: `project_tokens` with its own weight and bias
    (initialised like torch.nn.Conv2d)."""

    def __init__(self, dim, out_dim):
        super().__init__()
        conv = nn.Conv2d(dim, out_dim, 3, padding=1)
        self.weight, self.bias = conv.weight, conv.bias

    def forward(self, tokens):
        return project_tokens(tokens, self.weight, self.bias)


def normalize_targets(y, eps=1e-6):
    """(y − mean over tokens) / (std over tokens + eps) per image and channel; y (B, N, C)."""
    # BEGIN SOLUTION
    return (y - y.mean(1, keepdim=True)) / (y.std(1, keepdim=True) + eps)
    # END SOLUTION


def alignment_loss(projected, target):
    """−mean over batch and tokens of the cosine similarity between projected[b, n] and
    target[b, n], both (B, N, C). A scalar tensor."""
    # BEGIN SOLUTION
    return -F.cosine_similarity(projected, target, dim=-1).mean()
    # END SOLUTION


def repa_jit_loss(model, projector, x0, y, t, noise, target, layer=REPA_LAYER, weight=REPA_WEIGHT):
    """JiT's v-loss plus weight · alignment_loss(projector(tokens after block `layer`),
    normalize_targets(target)); target (B, N, C) are the encoder's features of x0."""
    # BEGIN SOLUTION
    hidden = {}

    def x_pred(x, t, y):
        out, hidden["tokens"] = model(x, t, y, return_hidden=(layer,))
        return out

    denoising = jit_loss(x_pred, x0, y, t, noise)
    tokens = hidden["tokens"][layer]
    return denoising + weight * alignment_loss(projector(tokens), normalize_targets(target))
    # END SOLUTION


# %% [markdown]
# ### Self-checks (3)

# %%
_proj = ConvProjector(8, 5)
_tok = torch.randn(2, 16, 8, generator=_g)
assert _proj(_tok).shape == (2, 16, 5)
_far = _tok.clone()
_far[:, 15] += 1.0  # token (3, 3) is not a neighbour of token (0, 0)
assert torch.allclose(_proj(_far)[:, 0], _proj(_tok)[:, 0]), "a 3×3 conv only sees neighbours"
_yt = torch.randn(3, 16, 4, generator=_g) * 3 + 2
_n = normalize_targets(_yt)
assert _n.mean(1).abs().max() < 1e-5 and (_n.std(1) - 1).abs().max() < 1e-4
assert abs(float(alignment_loss(_yt, 2 * _yt)) + 1) < 1e-6, "cos(y, 2y) = 1"
print("self-checks (3) passed")

# %% [markdown]
# ### 3.1 With and without REPA
#
# Two identical DiTs, the same steps and seed; the second also aligns block 2 with the
# encoder. Besides the FD we measure a **linear probe**: the test accuracy of a logistic
# regression that predicts the digit from the mean-pooled tokens of block 2 at $t = 0.25$,
# with no label given to the model (`visgen.train.hidden_features`) — REPA's claim is that
# alignment makes these features semantic early in training.

# %%
from visgen.metrics.probe import linear_probe
from visgen.train import asset, hidden_features

encoder = asset("repa_encoder_digits", progress=False).model
STEPS_REPA = budget(full=400, fast=10)
REPA_DIT = {"patch_size": 2, "dim": 64, "depth": 4, "heads": 4, "num_classes": 10}
grid = 8 // REPA_DIT["patch_size"]


def probe(model, t=0.25):
    """Linear-probe test accuracy of the digit from block REPA_LAYER's pooled tokens at t."""
    g = torch.Generator().manual_seed(0)
    n_train = budget(full=len(digits.x), fast=200)
    f_train = hidden_features(model, digits.x[:n_train], REPA_LAYER, t, generator=g)
    f_test = hidden_features(model, digits_eval.x, REPA_LAYER, t, generator=g)
    return linear_probe(
        f_train[REPA_LAYER], digits.labels[:n_train], f_test[REPA_LAYER], digits_eval.labels
    )


def repa_objective(projector):
    def loss_fn(model, x0, y, t, noise):
        target = encoder_tokens(encoder, x0, grid)
        return repa_jit_loss(model, projector, x0, y, t, noise, target)

    return loss_fn


results = {}
for name in ("baseline", "REPA"):
    torch.manual_seed(0)
    model = DiT(1, 8, **REPA_DIT)
    if name == "REPA":
        projector = ConvProjector(
            REPA_DIT["dim"], encoder_tokens(encoder, digits.x[:1], grid).shape[-1]
        )
        train(model, repa_objective(projector), digits, STEPS_REPA, extra=(projector,))
    else:
        train(model, jit_loss, digits, STEPS_REPA)
    model.eval()
    samples = generate(model, (1, 8, 8), digits_eval.labels, 2.0)
    acc = probe(model)
    results[name] = (fd(samples, digits, digits_eval), acc)
    print(f"{name:8s}: FD {results[name][0]:.3f}, probe accuracy of block {REPA_LAYER} {acc:.3f}")
    show(samples[:20], nrow=20, title=f"{name}, {STEPS_REPA} steps, w = 2")

# %% [markdown]
# **Conclusions 3.** What does REPA change here (FD, probe accuracy), and why is the effect
# in the paper much larger than on 8×8 digits? What does iREPA's normalisation remove from
# the targets?
#
# <!-- BEGIN SOLUTION -->
# Aligned with the encoder, block 2's pooled tokens become more linearly predictive of the
# digit at the same number of steps (full budget: probe accuracy ≈ 0.72 against ≈ 0.65),
# while the FD barely moves (≈ 2.3 against ≈ 2.0; it goes either way between seeds at this
# size). REPA's gain comes from importing semantic structure the denoiser would otherwise
# need long training to discover: DINOv2, trained on 142M images, knows far more about
# natural images than an ImageNet DiT learns in 400k steps, whereas our encoder is a tiny
# CNN trained on the same 1 400 digits the DiT sees, so there is little to transfer.
# Spatial normalisation subtracts the component shared by all tokens of an image (the
# global, image-level part of the features) and rescales each channel, so the cosine loss
# transfers the *spatial* layout of the features — which iREPA found to matter more than
# the global semantics (task 3).
# <!-- END SOLUTION -->

# %% [markdown]
# ## 4. Optional: a real pipeline
#
# If you have a GPU and a flow-matching text-to-image pipeline on disk (for example
# SANA-600M, `Efficient-Large-Model/Sana_600M_1024px_diffusers`, downloaded beforehand) with
# `diffusers` and `transformers` installed, set `SANA_PATH`: the cell below samples with your
# `cfg_sample`, turning SANA's velocity network into an x-predictor
# $\hat x = x_t - t\,v$, and decodes with your `decode_latents` (the pipeline's VAE scaling
# factor is $s$). It never downloads anything and is skipped otherwise (and in CI).

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
def run_sana(path, prompt, steps=20, w=4.5, seed=0):
    """One image from SanaPipeline's transformer with your CFG sampler and decoder."""
    from diffusers import SanaPipeline

    pipe = SanaPipeline.from_pretrained(path, torch_dtype=torch.float16, local_files_only=True).to(
        "cuda"
    )
    cond, cond_mask, uncond, uncond_mask = pipe.encode_prompt(
        prompt, True, negative_prompt="", device="cuda"
    )
    embeds, masks = torch.cat([cond, uncond]), torch.cat([cond_mask, uncond_mask])

    def x_pred(x, t, y):  # y = 0 (the prompt) or NULL_LABEL (the empty prompt)
        rows = torch.where(y == NULL_LABEL, 1, 0)
        v = pipe.transformer(
            x.half(),
            encoder_hidden_states=embeds[rows],
            encoder_attention_mask=masks[rows],
            timestep=t.to(x.device) * 1000,
            return_dict=False,
        )[0].float()
        return x - t.to(x.device).reshape(-1, 1, 1, 1) * v

    shape = (1, pipe.transformer.config.in_channels, 32, 32)
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).cuda()
    y = torch.zeros(1, dtype=torch.long, device="cuda")
    latents = cfg_sample(x_pred, z, torch.linspace(1, 0, steps + 1), y, w)
    image = decode_latents(as_decoder(pipe.vae), latents.half(), pipe.vae.config.scaling_factor)
    return pipe.image_processor.postprocess(image, output_type="pil")[0]


def as_decoder(diffusers_vae):
    """A diffusers AutoencoderKL seen through visgen's `decode` interface."""

    class _VAE:
        def decode(self, z):
            return diffusers_vae.decode(z, return_dict=False)[0]

    return _VAE()


if real_pipeline_available(SANA_PATH):
    run_sana(SANA_PATH, "a barred owl peeking out from dense tree branches")
else:
    print(
        "No local pipeline (SANA_PATH unset, no GPU, or diffusers/transformers missing): skipped."
    )
