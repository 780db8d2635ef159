"""Exact checks of the lecture-7 building blocks: MMD estimators, the drift field, the DMD
gradient, feature hooks and discriminator losses, scale-wise sampling. No training."""

import math

import pytest
import torch

from visgen.fewstep import (
    FewStepGenerator,
    Task,
    drift_field,
    get_task,
    multi_temperature_drift,
    train_drifting,
    train_mmd,
)
from visgen.fewstep.add import discriminator_loss, generator_loss
from visgen.fewstep.dmd import distribution_matching_loss, simulate_inputs
from visgen.fewstep.drifting import _drift_by_class
from visgen.fewstep.features import Discriminator, FeatureTap
from visgen.fewstep.mmd import feature_mmd
from visgen.fewstep.student import as_generator, student_grid
from visgen.fewstep.swd import resize, sample_scalewise, scale_schedule
from visgen.metrics import mmd_rbf
from visgen.metrics.kernels import gaussian_kernel, mmd2
from visgen.nn import MLP, UNet
from visgen.oracles import DiracMixture, eight_gaussians
from visgen.param import Denoiser


def test_unbiased_rbf_mmd_is_zero_in_expectation_on_identical_distributions(gen):
    # 400 independent pairs of patch sets (16 patches of 8-d features each), batched
    x = torch.randn(400, 16, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(400, 16, 8, generator=gen, dtype=torch.float64)
    vals = mmd2(x, y, "rbf", 3.0)
    assert vals.shape == (400,)
    assert abs(vals.mean()) < 3 * vals.std() / math.sqrt(len(vals))
    # the biased V-statistic of the same sets is visibly positive: the estimator matters
    kxx, kyy, kxy = (gaussian_kernel(a, b, 3.0).mean((-1, -2)) for a, b in ((x, x), (y, y), (x, y)))
    assert (kxx + kyy - 2 * kxy).mean() > 10 * vals.std() / math.sqrt(len(vals))
    shifted = mmd2(x, y + 0.5, "rbf", 3.0)
    assert shifted.mean() > vals.mean() + 10 * vals.std() / math.sqrt(len(vals))
    # the sample metric is the same estimator
    assert mmd_rbf(x[0], y[0], [1.0, 3.0]) == pytest.approx(
        float(mmd2(x[0], y[0], "rbf", [1.0, 3.0]))
    )


def test_linear_kernel_mmd_is_the_squared_mean_feature_distance(gen):
    x, y = torch.randn(50, 6, generator=gen), 0.3 + 2 * torch.randn(70, 6, generator=gen)
    v_statistic = (x @ x.T).mean() + (y @ y.T).mean() - 2 * (x @ y.T).mean()
    assert float(mmd2(x, y, "linear")) == pytest.approx(float(v_statistic), abs=1e-6)
    assert float(mmd2(x, y, "linear")) == pytest.approx(float((x.mean(0) - y.mean(0)).pow(2).sum()))


def test_mmd_is_differentiable_at_coincident_points():
    x = torch.randn(5, 3, requires_grad=True)
    mmd2(x, torch.cat([x[:2].detach(), torch.randn(3, 3)]), "rbf", 1.0).backward()
    assert torch.isfinite(x.grad).all()


def test_gaussian_drift_is_the_difference_of_two_ideal_denoisers(gen):
    """V(x) = D*_pos(x) − D*_neg\\{x}(x): the Gaussian-kernel softmax over a set is the ideal
    denoiser of that set. On the linear path at time t the ideal denoiser of x_t = (1 − t) x is
    softmax(−‖x − y‖²/2h²) with h = t/(1 − t); the drift uses per-coordinate distances, so
    temperature τ means h = τ√D."""
    x = torch.randn(15, 3, generator=gen, dtype=torch.float64)
    pos = torch.randn(11, 3, generator=gen, dtype=torch.float64) + 0.7
    tau = 0.4
    h = tau * math.sqrt(3)
    t = h / (1 + h)
    v = drift_field(x, pos, temperature=tau, kernel="gaussian", coupling="row")
    d_pos = DiracMixture(pos).posterior_mean((1 - t) * x, t, "linear")
    d_neg = torch.stack(
        [
            DiracMixture(torch.cat([x[:i], x[i + 1 :]])).posterior_mean(
                (1 - t) * x[i : i + 1], t, "linear"
            )[0]
            for i in range(len(x))
        ]
    )
    assert torch.allclose(v, d_pos - d_neg, atol=1e-12)


@pytest.mark.parametrize("kernel", ["laplace", "gaussian"])
@pytest.mark.parametrize("coupling", ["joint", "row"])
def test_drift_vanishes_for_equal_sets_and_is_antisymmetric(gen, kernel, coupling):
    x = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    p = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    q = torch.randn(25, 2, generator=gen, dtype=torch.float64) * 2
    kw = {"temperature": 0.3, "kernel": kernel, "coupling": coupling}
    assert drift_field(x, p, p, **kw).abs().max() < 1e-12
    assert torch.allclose(drift_field(x, p, q, **kw), -drift_field(x, q, p, **kw), atol=1e-12)
    # attraction: a lone sample far from the data is pulled towards it
    v = drift_field(torch.tensor([[5.0, 0.0]], dtype=torch.float64), p, q[:1] + 5, **kw)
    assert v[0, 0] < 0
    # each temperature's field is normalised to unit RMS before summing
    multi = multi_temperature_drift(x, p, kernel=kernel, coupling=coupling, temperatures=(0.1,))
    assert multi.pow(2).mean().sqrt().item() == pytest.approx(1.0)


def test_self_pairs_are_excluded_from_the_negatives():
    # two generated points on top of one positive: with self excluded each is repelled by the
    # other (and attracted back), so the drift equals the explicit-negatives drift
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    pos = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    for i in range(2):
        explicit = drift_field(x[i : i + 1], pos, x[1 - i : 2 - i], temperature=0.5, coupling="row")
        assert torch.allclose(drift_field(x, pos, temperature=0.5, coupling="row")[i], explicit[0])


def test_a_class_with_one_sample_in_the_batch_has_zero_drift(gen):
    # Algorithm 2 with an empty negative set: W⁺ = A⁺ Σ A⁻ = 0, so the field is exactly 0
    x, pos = torch.randn(1, 2, generator=gen), torch.randn(5, 2, generator=gen)
    assert drift_field(x, pos, torch.zeros(0, 2), temperature=0.2).abs().max() == 0
    # classes 0 (three samples), 1 (one: no negatives) and 2 (two, but no positives)
    x, pos = torch.randn(6, 2, generator=gen), torch.randn(4, 2, generator=gen)
    x_labels, pos_labels = torch.tensor([0, 1, 0, 2, 0, 2]), torch.tensor([0, 1, 0, 1])
    v = _drift_by_class(x, pos, x_labels, pos_labels, temperatures=(0.1, 0.5))
    zero = x_labels > 0
    assert v[zero].abs().max() == 0
    own = multi_temperature_drift(x[~zero], pos[pos_labels == 0], temperatures=(0.1, 0.5))
    assert torch.equal(v[~zero], own)
    # and training runs with batches that leave classes alone (8 classes, 5 samples)
    gen_ = train_drifting(
        get_task("8gauss_cond"), 3, torch.Generator().manual_seed(0), batch_size=5
    )
    assert all(torch.isfinite(p).all() for p in gen_.model.parameters())


def test_dmd_gradient_vanishes_when_fake_equals_real_and_sds_pulls_to_the_posterior_mean(gen):
    teacher = eight_gaussians().denoiser("linear")
    x = (torch.randn(64, 2, generator=gen) * 2).requires_grad_(True)
    t, noise = torch.full((64,), 0.5), torch.randn(64, 2, generator=gen)
    distribution_matching_loss(x, teacher, teacher, t, noise).backward()
    assert x.grad.abs().max() == 0
    # SDS (μ_fake ≡ x): descending the loss moves x towards the teacher's denoised estimate
    x.grad = None
    distribution_matching_loss(x, teacher, None, t, noise).backward()
    with torch.no_grad():
        mu = teacher((1 - t[:, None]) * x + t[:, None] * noise, t).x0
    assert ((x - mu) * x.grad).sum(1).gt(0).all()


def test_backward_simulation_feeds_the_student_its_own_samples(gen):
    den = DiracMixture(torch.tensor([[2.0, -1.0]])).denoiser("linear")  # predicts the point
    z = torch.randn(6, 2, generator=gen)
    steps = torch.tensor([0, 1, 2, 3, 0, 2])
    x, t = simulate_inputs(den, z, 4, steps, None, gen)
    assert t.tolist() == [1.0, 0.75, 0.5, 0.25, 1.0, 0.5]
    assert torch.equal(x[0], z[0]) and torch.equal(x[4], z[4])
    # x_t = α_t · (predicted point) + σ_t · fresh noise
    resid = (x[1:4] - (1 - t[1:4, None]) * torch.tensor([2.0, -1.0])) / t[1:4, None]
    assert resid.abs().max() < 5 and not torch.allclose(resid, z[1:4])


def test_student_grids_and_nfe_errors():
    assert student_grid(1).tolist() == [1.0, 0.0]
    assert student_grid(2).tolist() == [1.0, 0.5, 0.0]
    assert student_grid(4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    for bad in (0, 3):
        with pytest.raises(ValueError, match="nfe"):
            student_grid(bad)
    gen = as_generator("x", Denoiser(MLP(2, width=8, depth=1), "linear", "x0"), (1, 2, 4))
    assert isinstance(gen, FewStepGenerator)
    with pytest.raises(ValueError, match=r"nfe must be one of \(1, 2, 4\)"):
        gen.sample(torch.zeros(3, 2), 0)


def test_kernel_bad_input():
    x = torch.zeros(4, 2)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="bandwidth must be positive"):
            mmd2(x, x, "rbf", bad)
        with pytest.raises(ValueError, match="temperature must be positive"):
            drift_field(x, x, temperature=bad)
        with pytest.raises(ValueError, match="temperature must be positive"):
            multi_temperature_drift(x, x, temperatures=(0.1, bad))
    teacher = Denoiser(MLP(2, width=8, depth=1), "linear", "velocity")
    task = Task(teacher, lambda n, g=None: (torch.zeros(n, 2), None), (2,))
    for bad in (0.0, -1.0, [1.0, -1.0]):
        with pytest.raises(ValueError, match="bandwidth must be positive"):
            train_mmd(task, 1, torch.Generator().manual_seed(0), bandwidth=bad)
    with pytest.raises(ValueError, match="unknown kernel"):
        mmd2(x, x, "cosine")
    with pytest.raises(ValueError, match="at least 2 points"):
        mmd2(x[:1], x, "rbf")
    with pytest.raises(ValueError, match="same D|agree in D"):
        mmd2(x, torch.zeros(4, 3))
    with pytest.raises(ValueError, match="one D"):
        drift_field(x, torch.zeros(4, 3), temperature=0.1)


def test_feature_tap_reads_hidden_layers_and_leaves_no_hooks(gen):
    net = MLP(2, width=16, depth=3)
    tap = FeatureTap(net)
    x, t = torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen)
    feats = tap(x, t)
    assert [f.shape for f in feats] == [(5, 16)] * 3
    # the last tapped vector is what the output layer maps to the prediction
    assert torch.allclose(net.out(feats[-1]), net(x, t))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    unet = UNet(1, 8, channels=8, mults=(1, 2))
    (f,) = FeatureTap(unet)(torch.randn(2, 1, 8, 8), torch.rand(2))
    assert f.shape == (2, 16, 4, 4)  # the middle block: 4×4 spatial patches
    with pytest.raises(ValueError, match="no layer"):
        FeatureTap(net, [("nope", False)])


def test_feature_tap_stops_after_the_last_tapped_layer(gen):
    """The tap's features equal a full pass's (recorded by plain hooks), bit for bit, with
    their gradients; the modules after the last tapped layer never run."""
    unet = UNet(1, 8, channels=8, mults=(1, 2), num_classes=3)
    x = torch.randn(4, 1, 8, 8, generator=gen, requires_grad=True)
    t, y = torch.rand(4, generator=gen), torch.tensor([0, 1, 2, 0])
    full = []
    handle = unet.mid[-1].register_forward_hook(lambda m, a, o: full.append(o))
    unet(x, t, y)
    handle.remove()
    ran = []
    after = [m for name, m in unet.named_modules() if name.startswith(("up", "out"))]
    assert after  # the decoder's modules exist...
    handles = [m.register_forward_hook(lambda m, a, o: ran.append(m)) for m in after]
    (f,) = FeatureTap(unet)(x, t, y)
    for h in handles:
        h.remove()
    assert ran == []  # ...and none of them ran
    assert torch.equal(f, full[0])
    (g_tap,) = torch.autograd.grad(f.square().sum(), x)
    (g_full,) = torch.autograd.grad(full[0].square().sum(), x)
    assert torch.equal(g_tap, g_full)
    # an MLP: every hidden vector, the output layer skipped
    net = MLP(2, width=16, depth=3)
    outs = []
    net.out.register_forward_hook(lambda m, a, o: outs.append(o))
    feats = FeatureTap(net)(torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen))
    assert len(feats) == 3 and outs == []


def test_discriminator_gradients_reach_only_the_intended_modules(gen):
    teacher = MLP(2, width=16, depth=2).requires_grad_(False)
    disc = Discriminator(FeatureTap(teacher), torch.randn(2, 2, generator=gen))
    real, t = torch.randn(8, 2, generator=gen), torch.rand(8, generator=gen)
    fake = torch.randn(8, 2, generator=gen, requires_grad=True)
    d_loss = discriminator_loss(disc, real, fake, t, r1=1.0)
    d_loss.backward()
    assert fake.grad is None  # the D step does not train the generator
    assert all(p.grad is not None for p in disc.parameters())
    disc.zero_grad()
    disc.requires_grad_(False)
    generator_loss(disc, fake, t).backward()
    assert fake.grad.abs().sum() > 0 and all(p.grad is None for p in disc.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_patch_mmd_of_identical_images_is_small_and_grows_with_a_shift(gen):
    unet = UNet(1, 8, channels=8, mults=(1, 2)).requires_grad_(False)
    tap = FeatureTap(unet)
    x, t = torch.randn(4, 1, 8, 8, generator=gen), torch.full((4,), 0.3)
    same = feature_mmd(tap(x, t), tap(x, t), "linear")
    assert float(same) == 0
    assert float(feature_mmd(tap(x, t), tap(x + 1, t), "linear")) > 0


def test_scale_wise_sampling_schedule_and_noise(gen):
    assert scale_schedule(1, 8) == (8,)
    assert scale_schedule(2, 8) == (4, 8)
    assert scale_schedule(4, 8) == (4, 6, 8, 8)
    img = torch.randn(3, 1, 8, 8, generator=gen)
    assert torch.allclose(resize(img, 4), img.reshape(3, 1, 4, 2, 4, 2).mean((3, 5)))
    # a student that returns its input: the result is up-sampled low-resolution noise
    seen = []

    def model(x, t, cond=None):
        seen.append(x.shape[-1])
        return x

    den = Denoiser(model, "linear", "x0")
    noise = torch.randn(4000, 1, 8, 8, generator=gen)
    out = sample_scalewise(den, noise, 4, generator=gen)
    assert seen == [4, 6, 8, 8] and den.nfe == 4 and out.shape == noise.shape
    low = torch.nn.functional.avg_pool2d(noise, 2) * 2  # block means × 2 are again N(0, 1)
    assert low.var().item() == pytest.approx(1.0, abs=0.03)
