"""Hidden tests of homework 3. Each test takes `sub`, the notebook's definitions.

Oracles: visgen's patchify/unpatchify, its flow-matching loss with JiT's x-prediction and
clamp (`visgen.objectives.flow_matching_loss`, `t_eps`), the exact velocity of an oracle
x-predictor (loss zero), moments of the logit-normal and binomial laws with stated standard
errors, visgen's Euler sampler with classifier-free guidance on an exact Gaussian mixture
(`visgen.sampling`), the autoencoder's posterior mean, torch's 3×3 convolution of the token
grid, and visgen's REPA objectives (`visgen.objectives.repa`).
Functions that call other graded functions are tested with visgen's references in their
place (`sub.replaced`), so one wrong function loses only its own points. The trained check
(a small DiT trained with the student's loss, its samples' Fréchet distance) sits with
`jit_loss`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from visgen.course.testing import CountingModel, as_float64, assert_close, check
from visgen.data import get_dataset
from visgen.metrics.images import PCAFeatures, frechet_distance
from visgen.nn import Autoencoder, DiT
from visgen.nn.dit import patchify, unpatchify
from visgen.nn.embeddings import drop_labels
from visgen.objectives import LogitNormal, flow_matching_loss
from visgen.objectives.repa import repa_loss, spatial_normalize
from visgen.oracles import GaussianMixture
from visgen.param import Denoiser
from visgen.sampling import sample_euler
from visgen.sampling.guidance import classifier_free_guidance

F64 = torch.float64
T_EPS = 0.05


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# --- references standing in for the student's other functions -----------------------------
def _ref_x_to_velocity(x_pred, x_t, t, t_eps=T_EPS):
    return (x_t - x_pred) / t.clamp_min(t_eps).reshape(-1, *([1] * (x_t.dim() - 1)))


def _ref_jit_loss(model, x0, y, t, noise, t_eps=T_EPS):
    den = Denoiser(lambda x, t, cond=None: model(x, t, cond), "linear", "x0")
    return flow_matching_loss(den, x0, t=t, noise=noise, t_eps=t_eps, cond=y)


def _ref_sample_time(n, generator=None, mean=0.8, std=0.8):
    return LogitNormal(mean, std)(n, generator)


def _ref_drop_labels(y, p, generator=None):
    return drop_labels(y, p, generator)


def _ref_normalize(y, eps=1e-6):
    return spatial_normalize(y, eps=eps)


def _ref_alignment(projected, target):
    return repa_loss(projected, target).mean()


class _XModel(nn.Module):
    """A differentiable x-predictor with a label embedding (null label −1 = row 0)."""

    def __init__(self, classes=10):
        super().__init__()
        g = _gen(0)
        self.a = nn.Parameter(torch.tensor(0.7, dtype=F64))
        self.b = nn.Parameter(torch.tensor(-0.3, dtype=F64))
        self.emb = nn.Parameter(torch.randn(classes + 1, dtype=F64, generator=g))

    def forward(self, x, t, y=None):
        shape = (-1, *([1] * (x.dim() - 1)))
        e = 0.0 if y is None else self.emb[y + 1].reshape(shape)
        return self.a * x + self.b * t.reshape(shape) * x.tanh() + e


# --- 1.1 ----------------------------------------------------------------------------------
def test_patchify(sub):
    for shape, p in (((2, 1, 8, 8), 2), ((3, 3, 16, 16), 4), ((2, 4, 8, 8), 1), ((1, 3, 6, 6), 3)):
        x = torch.randn(*shape, generator=_gen(sum(shape) + p), dtype=F64)
        tokens = as_float64(sub.patchify(x, p), f"patchify(x of shape {shape}, p={p})")
        assert_close(tokens, patchify(x, p), f"patchify(x of shape {shape}, p={p})", atol=0)
        back = sub.unpatchify(patchify(x, p), p, shape[1], shape[2])
        assert_close(back, x, f"unpatchify(patchify(x), {p}, ...) for x of shape {shape}", atol=0)
        assert_close(
            sub.unpatchify(tokens * 2, p, shape[1], shape[2]),
            unpatchify(patchify(x, p) * 2, p, shape[1], shape[2]),
            f"unpatchify for x of shape {shape}",
            atol=0,
        )


# --- 1.2 ----------------------------------------------------------------------------------
def test_x_to_velocity(sub):
    g = _gen(1)
    x0, eps = (
        torch.randn(6, 1, 8, 8, generator=g, dtype=F64),
        torch.randn(6, 1, 8, 8, generator=g, dtype=F64),
    )
    t = torch.tensor([1.0, 0.9, 0.5, 0.1, 0.05, 0.02], dtype=F64)
    xt = (1 - t.reshape(-1, 1, 1, 1)) * x0 + t.reshape(-1, 1, 1, 1) * eps
    v = as_float64(sub.x_to_velocity(x0, xt, t), "x_to_velocity(x0, x_t, t)")
    assert_close(v[:5], (eps - x0)[:5], "x_to_velocity at the exact x̂ = x0 (t ≥ t_eps)", atol=1e-10)
    assert_close(
        v[5],
        0.02 / T_EPS * (eps - x0)[5],
        "x_to_velocity at t = 0.02 < t_eps (clamped)",
        atol=1e-10,
    )
    x_pred = torch.randn(6, 5, generator=g, dtype=F64)
    x_t = torch.randn(6, 5, generator=g, dtype=F64)
    for t_eps in (0.0, 0.05, 0.3):
        t2 = t.clamp_min(1e-3)
        assert_close(
            sub.x_to_velocity(x_pred, x_t, t2, t_eps),
            _ref_x_to_velocity(x_pred, x_t, t2, t_eps),
            f"x_to_velocity on (B, D) tensors with t_eps = {t_eps}",
            atol=1e-10,
        )


# --- 1.3 (with the trained check) -----------------------------------------------------------
TRAINED_STEPS = 200
# Fréchet distance on PCA-16 features, 397 conditional samples (10 Euler steps) against the
# 397 held-out digits, of DiT(1, 8, patch 2, dim 32, depth 2) trained 200 steps (batch 64,
# Adam 3e-3) with the loss under test, measured over 6 data/noise seeds: the correct v-loss
# 2.6–3.3; the x0-MSE instead of the v-loss 3.2–4.1 and regressing v̂ on ε instead of ε − x0
# 4.6–5.9 (3 seeds each; both are caught by the exact checks above); the target x0 − ε
# (wrong sign) 11–12; an untrained DiT (x̂ = 0) 20.5. Floor (real vs real digits) 0.28.
TRAINED_FD_BAR = 5.0


def test_jit_loss(sub):
    g = _gen(2)
    x0 = torch.randn(8, 1, 8, 8, generator=g, dtype=F64)
    noise = torch.randn(8, 1, 8, 8, generator=g, dtype=F64)
    t = torch.tensor([0.99, 0.8, 0.6, 0.4, 0.2, 0.08, 0.03, 0.01], dtype=F64)
    y = torch.tensor([0, 1, 2, -1, 4, 5, -1, 9])
    with sub.replaced(x_to_velocity=_ref_x_to_velocity):
        exact = lambda x, t, y: x0
        exact6 = lambda x, t, y: x0[:6]
        loss = as_float64(sub.jit_loss(exact6, x0[:6], y[:6], t[:6], noise[:6]), "jit_loss")
        check(loss.dim() == 0, "jit_loss must return a scalar tensor")
        check(
            abs(float(loss)) < 1e-20,
            f"the loss at the exact x̂ = x0 must be 0, got {float(loss):.3g}",
        )
        clamped = ((t / T_EPS).clamp(max=1) - 1).reshape(-1, 1, 1, 1) * (noise - x0)
        assert_close(
            sub.jit_loss(exact, x0, y, t, noise),
            clamped.pow(2).mean(),
            "jit_loss at the exact x̂ with some t < t_eps (the clamp makes it non-zero there)",
            atol=1e-12,
        )
        model, ref_model = _XModel(), _XModel()
        loss = sub.jit_loss(model, x0, y, t, noise)
        expected = _ref_jit_loss(ref_model, x0, y, t, noise)
        assert_close(
            loss, expected, "jit_loss against visgen's flow_matching_loss (x0, t_eps)", atol=1e-10
        )
        loss.backward()
        expected.backward()
        for name in ("a", "b", "emb"):
            got = getattr(model, name).grad
            check(got is not None, "jit_loss does not backpropagate to the model")
            assert_close(
                got, getattr(ref_model, name).grad, f"gradient of jit_loss ({name})", atol=1e-10
            )
        for t_eps in (0.0, 0.2):
            assert_close(
                sub.jit_loss(model, x0, y, t, noise, t_eps),
                _ref_jit_loss(model, x0, y, t, noise, t_eps),
                f"jit_loss with t_eps = {t_eps}",
                atol=1e-10,
            )
        flat = torch.randn(8, 5, generator=g, dtype=F64)
        assert_close(
            sub.jit_loss(model, flat, None, t, noise[:, 0, 0, :5]),
            _ref_jit_loss(model, flat, None, t, noise[:, 0, 0, :5]),
            "jit_loss on (B, D) data without labels",
            atol=1e-10,
        )
        _trained_check(sub)


def _trained_check(sub):
    torch.manual_seed(0)
    data, test = get_dataset("digits"), get_dataset("digits", "test")
    net = DiT(1, 8, patch_size=2, dim=32, depth=2, heads=4, num_classes=10)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = _gen(3)
    for _ in range(TRAINED_STEPS):
        i = torch.randint(0, len(data.x), (64,), generator=g)
        x0, y = data.x[i], drop_labels(data.labels[i], 0.1, g)
        t, noise = _ref_sample_time(64, g), torch.randn(x0.shape, generator=g)
        loss = sub.jit_loss(net, x0, y, t, noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = sample_euler(
            Denoiser(net, "linear", "x0"),
            torch.randn(len(test.x), 1, 8, 8, generator=g),
            torch.linspace(1, 0, 11),
            test.labels,
        ).clamp(-1, 1)
    pca = PCAFeatures(data.x, 16)
    fd = frechet_distance(pca(x), pca(test.x))
    check(
        fd < TRAINED_FD_BAR,
        f"a small DiT trained {TRAINED_STEPS} steps with your jit_loss samples badly: Fréchet "
        f"distance {fd:.2f} (the reference loss reaches 2.6–3.3; the bar is {TRAINED_FD_BAR})",
    )


# --- 1.4 / 1.5 ----------------------------------------------------------------------------
def test_sample_time(sub):
    n = 200_000
    for mean, std in ((0.8, 0.8), (0.0, 1.0), (-0.5, 0.3)):
        t = as_float64(sub.sample_time(n, _gen(4), mean, std), f"sample_time(n, g, {mean}, {std})")
        check(t.shape == (n,), f"sample_time must return shape ({n},), got {tuple(t.shape)}")
        check(((t > 0) & (t < 1)).all(), "times must lie in (0, 1)")
        u = torch.logit(t)
        check(
            abs(float(u.mean()) - mean) < 5 * std / math.sqrt(n),
            f"logit(t) must have mean {mean}, got {float(u.mean()):.4f} (5 standard errors: "
            f"{5 * std / math.sqrt(n):.4f})",
        )
        check(
            abs(float(u.std()) - std) < 5 * std / math.sqrt(2 * n),
            f"logit(t) must have std {std}, got {float(u.std()):.4f}",
        )
        third = float(((u - mean) / std).pow(3).mean())
        check(abs(third) < 5 * math.sqrt(15 / n), f"logit(t) is not normal (skewness {third:.3f})")
    t = sub.sample_time(1000, _gen(5))
    u = torch.logit(as_float64(t, "sample_time(1000, g)"))
    check(abs(float(u.mean()) - 0.8) < 0.13, "the default mean and std must be P_MEAN, P_STD")
    check(
        torch.equal(t, sub.sample_time(1000, _gen(5))),
        "sample_time must be reproducible from its generator",
    )
    check(
        not torch.equal(t, sub.sample_time(1000, _gen(6))), "sample_time must draw from `generator`"
    )


def test_drop_labels(sub):
    n = 50_000
    y = torch.arange(n) % 10
    original = y.clone()
    for p in (0.1, 0.5):
        d = sub.drop_labels(y, p, _gen(7))
        check(torch.equal(y, original), "drop_labels must not modify its input")
        check(
            isinstance(d, torch.Tensor) and d.shape == y.shape,
            "drop_labels must return a (B,) tensor",
        )
        dropped = d == -1
        check(
            torch.equal(d[~dropped], y[~dropped]),
            "labels that are not dropped must stay as they are (dropped ones become NULL_LABEL = −1)",
        )
        rate, se = float(dropped.double().mean()), math.sqrt(p * (1 - p) / n)
        check(
            abs(rate - p) < 5 * se,
            f"drop rate {rate:.4f} for p = {p} (5 standard errors: {5 * se:.4f})",
        )
        per_class = torch.stack([dropped[y == c].double().mean() for c in range(10)])
        check(
            (per_class - p).abs().max() < 6 * math.sqrt(p * (1 - p) / (n / 10)),
            "every class must be dropped at rate p",
        )
    check(torch.equal(sub.drop_labels(y, 0.0, _gen(8)), y), "p = 0 must keep every label")
    check((sub.drop_labels(y, 1.0, _gen(8)) == -1).all(), "p = 1 must drop every label")
    a, b = sub.drop_labels(y, 0.3, _gen(9)), sub.drop_labels(y, 0.3, _gen(9))
    check(torch.equal(a, b), "drop_labels must be reproducible from its generator")
    check(
        not torch.equal(a, sub.drop_labels(y, 0.3, _gen(10))),
        "drop_labels must draw from `generator`",
    )


# --- 1.6 ----------------------------------------------------------------------------------
def _mixture():
    return GaussianMixture(
        [[0.0, 1.5], [1.5, -1.0], [-1.5, -0.5], [2.0, 1.5], [-1.0, 2.0], [0.5, -2.0]],
        [0.5, 0.6, 0.45, 0.5, 0.55, 0.5],
        labels=[0, 1, 2, 0, 1, 2],
    ).to(F64)


def test_cfg_sample(sub):
    den = _mixture().denoiser("linear")
    x_model = lambda x, t, y: den(x, t, y).x0  # an exact x-predictor
    x = torch.randn(60, 2, generator=_gen(11), dtype=F64)
    y = torch.arange(60) % 3
    grids = (
        torch.linspace(1, 0, 9, dtype=F64),
        torch.tensor([1.0, 0.7, 0.3, 0.12, 0.04, 0.0], dtype=F64),
    )
    with sub.replaced(x_to_velocity=_ref_x_to_velocity):
        for ts in grids:
            for w in (0.0, 1.0, 3.0):
                model = CountingModel(x_model)
                got = as_float64(sub.cfg_sample(model, x, ts, y, w), f"cfg_sample(w = {w})")
                guided = classifier_free_guidance(
                    Denoiser(lambda x, t, cond=None: x_model(x, t, cond), "linear", "x0"), w
                )
                expected = sample_euler(guided, x, ts, y)
                assert_close(
                    got,
                    expected,
                    f"cfg_sample with w = {w} on a {len(ts) - 1}-step grid against visgen's Euler + CFG",
                    atol=1e-8,
                )
                check(
                    model.calls == len(ts) - 1 and set(model.batch_sizes) == {120},
                    f"cfg_sample must call the model once per step on a batch of 2B = 120; got "
                    f"{model.calls} calls for {len(ts) - 1} steps, batch sizes {sorted(set(model.batch_sizes))}",
                )
        conditional = sample_euler(
            Denoiser(lambda x, t, cond=None: x_model(x, t, cond), "linear", "x0"), x, grids[0], y
        )
        assert_close(
            sub.cfg_sample(x_model, x, grids[0], y, 1.0),
            conditional,
            "cfg_sample at w = 1 (the conditional model)",
            atol=1e-8,
        )


# --- 2 --------------------------------------------------------------------------------------
def _autoencoder():
    torch.manual_seed(0)
    vae = Autoencoder(3, 16, latent_channels=4, width=8, levels=1).double()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=_gen(12), dtype=F64))
    return vae.eval()


def test_latent_scale(sub):
    vae = _autoencoder()
    x = torch.rand(64, 3, 16, 16, generator=_gen(13), dtype=F64) * 2 - 1
    with torch.no_grad():
        expected = 1.0 / float(vae.encode(x).mode().std())
    got = float(as_float64(sub.latent_scale(vae, x), "latent_scale(vae, x)"))
    assert_close(
        got, expected, "latent_scale: 1 / std of μ(x) over all latent values", atol=0, rtol=1e-6
    )


def test_encode_decode_latents(sub):
    vae = _autoencoder()
    x = torch.rand(16, 3, 16, 16, generator=_gen(14), dtype=F64) * 2 - 1
    z = torch.randn(16, 4, 8, 8, generator=_gen(15), dtype=F64)
    with torch.no_grad():
        mu = vae.encode(x).mode()
        for s in (1.0, 0.37):
            assert_close(
                sub.encode_latents(vae, x, s),
                s * mu,
                f"encode_latents with scale {s} (s·μ(x), no sampling)",
                atol=1e-10,
            )
            assert_close(
                sub.decode_latents(vae, z, s),
                vae.decode(z / s),
                f"decode_latents with scale {s} (dec(z / s))",
                atol=1e-10,
            )


# --- 3 --------------------------------------------------------------------------------------
def test_project_tokens(sub):
    for grid, dim, out_dim in ((4, 6, 5), (5, 3, 7), (2, 4, 4), (1, 2, 3)):
        g = _gen(16 + grid)
        tokens = torch.randn(3, grid * grid, dim, generator=g, dtype=F64, requires_grad=True)
        weight = torch.randn(out_dim, dim, 3, 3, generator=g, dtype=F64, requires_grad=True)
        bias = torch.randn(out_dim, generator=g, dtype=F64, requires_grad=True)
        out = sub.project_tokens(tokens, weight, bias)
        image = tokens.transpose(1, 2).reshape(3, dim, grid, grid)
        expected = F.conv2d(image, weight, bias, padding=1).flatten(2).transpose(1, 2)
        assert_close(
            out,
            expected,
            f"project_tokens on a {grid}×{grid} token grid (D = {dim}, C = {out_dim}): one 3×3 "
            "convolution with zero padding of the row-major token grid",
            atol=1e-10,
        )
        probe = torch.randn(expected.shape, generator=g, dtype=F64)
        grads = torch.autograd.grad((out * probe).sum(), (tokens, weight, bias))
        expected_grads = torch.autograd.grad((expected * probe).sum(), (tokens, weight, bias))
        for got, exp, name in zip(grads, expected_grads, ("tokens", "weight", "bias")):
            assert_close(got, exp, f"gradient of project_tokens with respect to {name}", atol=1e-10)


def test_normalize_targets(sub):
    y = (
        torch.randn(4, 16, 7, generator=_gen(31), dtype=F64) * 3
        + torch.randn(4, 1, 7, generator=_gen(32), dtype=F64) * 5
    )
    assert_close(
        sub.normalize_targets(y),
        _ref_normalize(y),
        "normalize_targets (per image and channel, over tokens)",
        atol=1e-9,
    )
    assert_close(
        sub.normalize_targets(y, 0.5),
        _ref_normalize(y, 0.5),
        "normalize_targets with eps = 0.5",
        atol=1e-9,
    )


def test_alignment_loss(sub):
    a = torch.randn(4, 16, 7, generator=_gen(33), dtype=F64, requires_grad=True)
    b = torch.randn(4, 16, 7, generator=_gen(34), dtype=F64)
    loss = as_float64(sub.alignment_loss(a, b), "alignment_loss")
    check(loss.dim() == 0, "alignment_loss must return a scalar")
    assert_close(
        loss,
        _ref_alignment(a, b),
        "alignment_loss (−mean cosine similarity over batch and tokens)",
        atol=1e-10,
    )
    scaled = torch.rand(4, 16, 1, generator=_gen(35), dtype=F64) + 0.1
    assert_close(
        sub.alignment_loss(a * scaled, b),
        _ref_alignment(a, b),
        "alignment_loss must not depend on token norms",
        atol=1e-10,
    )
    assert_close(
        sub.alignment_loss(b, 3 * b), -1.0, "alignment_loss of aligned tokens is −1", atol=1e-10
    )
    sub.alignment_loss(a, b).backward()
    a2 = a.detach().clone().requires_grad_(True)
    _ref_alignment(a2, b).backward()
    check(a.grad is not None, "alignment_loss does not backpropagate")
    assert_close(a.grad, a2.grad, "gradient of alignment_loss", atol=1e-10)


def test_repa_jit_loss(sub):
    torch.manual_seed(2)
    model = DiT(1, 8, patch_size=2, dim=16, depth=3, heads=4, num_classes=10).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=_gen(36), dtype=F64))
    projector = nn.Conv2d(16, 6, 3, padding=1).double()

    def project(tokens):
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], 16, 4, 4)
        return projector(grid).flatten(2).transpose(1, 2)

    g = _gen(37)
    x0 = torch.randn(5, 1, 8, 8, generator=g, dtype=F64)
    noise = torch.randn(5, 1, 8, 8, generator=g, dtype=F64)
    t = torch.tensor([0.9, 0.5, 0.3, 0.1, 0.02], dtype=F64)
    y = torch.tensor([1, -1, 3, 4, 0])
    target = torch.randn(5, 16, 6, generator=g, dtype=F64) * 2 + 1

    def reference(layer, weight):
        hidden = {}

        def hooked(x, t, cond=None):
            out, hidden["h"] = model(x, t, cond, return_hidden=(layer,))
            return out

        den = _ref_jit_loss(hooked, x0, y, t, noise)
        return den + weight * _ref_alignment(project(hidden["h"][layer]), _ref_normalize(target))

    with sub.replaced(
        x_to_velocity=_ref_x_to_velocity,
        jit_loss=_ref_jit_loss,
        normalize_targets=_ref_normalize,
        alignment_loss=_ref_alignment,
    ):
        for layer, weight in ((2, 0.5), (1, 2.0), (3, 0.5)):
            got = sub.repa_jit_loss(model, project, x0, y, t, noise, target, layer, weight)
            expected = reference(layer, weight)
            assert_close(
                got, expected, f"repa_jit_loss with layer = {layer}, weight = {weight}", atol=1e-10
            )
        model.zero_grad()
        projector.zero_grad()
        sub.repa_jit_loss(model, project, x0, y, t, noise, target, 2, 0.5).backward()
        grads = [p.grad.clone() for p in (*model.parameters(), *projector.parameters())]
        model.zero_grad()
        projector.zero_grad()
        reference(2, 0.5).backward()
        for got, p in zip(grads, (*model.parameters(), *projector.parameters())):
            assert_close(got, p.grad, "gradient of repa_jit_loss", atol=1e-9)
        got = sub.repa_jit_loss(model, project, x0, y, t, noise, target)
        assert_close(
            got,
            reference(2, 0.5),
            "repa_jit_loss defaults (REPA_LAYER = 2, REPA_WEIGHT = 0.5)",
            atol=1e-10,
        )
