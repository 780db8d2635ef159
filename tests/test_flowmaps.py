"""Lecture 6 flow maps against exact oracles.

For Gaussian data N(μ, c² I) the flow-matching PF-ODE is linear and its flow map Ψ_{t→r} is
closed-form (``visgen.oracles.gaussian_pfode``), so the average velocity
u = (x − Ψ_{t→r}(x))/(t − r) is exact: the consistency, semigroup and MeanFlow identities hold
to float64 round-off and every lecture-6 loss must vanish on it.
"""

import math

import pytest
import torch

from visgen.fewstep import (
    FewStepGenerator,
    FlowMap,
    FlowMapNet,
    average_velocity_derivative,
    consistency_distillation_loss,
    consistency_levels,
    consistency_loss,
    consistency_training_loss,
    get_task,
    ict_num_intervals,
    lognormal_interval_weights,
    meanflow_loss,
    meanflow_times,
    pseudo_huber,
    sample_flowmap,
    segment_start,
    teacher_step,
    train_cd,
    trained,
)
from visgen.fewstep.base import REVISIONS
from visgen.nn import MLP
from visgen.oracles import GaussianMixture, gaussian_pfode, reference_pfode
from visgen.sampling import sample_euler, sample_heun

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")

MU, STD = torch.tensor([1.5, -0.5], dtype=torch.float64), 0.4


class ExactAverageVelocity:
    """u(x, t, r) of the Gaussian PF-ODE in closed form; the instantaneous velocity at r = t."""

    def __init__(self, mean=MU, std=STD):
        self.mean, self.std = mean, std
        self.velocity = GaussianMixture(mean[None], std).denoiser("linear").velocity

    def __call__(self, x, t, r, cond=None):
        gap = (t - r)[:, None]
        jump = (x - gaussian_pfode(x, t, r, "linear", self.mean, self.std)) / torch.where(
            gap > 0, gap, 1.0
        )
        return torch.where(gap > 0, jump, self.velocity(x, t))


def exact_step(den, x, t, r, cond=None):
    """A teacher 'solver' that jumps exactly (the closed form)."""
    return gaussian_pfode(x, t, r, "linear", MU, STD)


def _points(gen, n=64):
    x = 2 * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(n, generator=gen, dtype=torch.float64)
    s = t * torch.rand(n, generator=gen, dtype=torch.float64)
    r = s * torch.rand(n, generator=gen, dtype=torch.float64)
    return x, t, s, r


def test_closed_form_flow_map_is_consistent_and_a_semigroup(gen):
    fm = FlowMap(ExactAverageVelocity())
    x, t, s, r = _points(gen)
    assert torch.allclose(fm(x, t, r), gaussian_pfode(x, t, r, "linear", MU, STD), atol=1e-12)
    # consistency: every point of a trajectory maps to the same data point
    x_s = fm(x, t, s)
    assert (fm(x, t, torch.zeros_like(t)) - fm(x_s, s, torch.zeros_like(s))).abs().max() <= 1e-8
    # semigroup: Ψ_{s→r} ∘ Ψ_{t→s} = Ψ_{t→r}
    assert (fm(x_s, s, r) - fm(x, t, r)).abs().max() <= 1e-8
    # and the map really is the ODE's solution
    ref = reference_pfode(GaussianMixture(MU[None], STD).denoiser("linear"), x[:4], 0.9, 0.3)
    assert torch.allclose(fm(x[:4], 0.9, 0.3), ref, atol=1e-8)


def test_closed_form_average_velocity_satisfies_the_meanflow_identity(gen):
    exact = ExactAverageVelocity()
    fm = FlowMap(exact)
    x, t, _, r = _points(gen)
    v = exact.velocity(x, t)
    u, dudt = average_velocity_derivative(fm, x, t, r, v, method="jvp")
    assert (u - (v - (t - r)[:, None] * dudt)).abs().max() <= 1e-8
    # ... so the MeanFlow loss with the true velocity is zero up to round-off
    loss = meanflow_loss(fm, x, t, r, v, p=0.0)
    assert loss.max() <= 1e-20
    # the finite-difference derivative converges to it at first order in h
    errs = [
        (average_velocity_derivative(fm, x, t, r, v, method="fd", h=h)[1] - dudt).abs().max().item()
        for h in (1e-3, 5e-4)
    ]
    assert 1.8 < errs[0] / errs[1] < 2.2


def test_consistency_losses_vanish_on_the_closed_form_flow_map(gen):
    fm = FlowMap(ExactAverageVelocity())
    x0 = MU + STD * torch.randn(256, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(256, 2, generator=gen, dtype=torch.float64)
    levels = consistency_levels(18)
    i = torch.randint(0, 18, (256,), generator=gen)
    t, r = levels[i + 1], levels[i]
    teacher = GaussianMixture(MU[None], STD).denoiser("linear")
    for metric in ("l2", "pseudo_huber"):
        cd = consistency_distillation_loss(
            fm, teacher, x0, t, r, noise, solver=exact_step, metric=metric
        )
        assert cd.abs().max() <= 1e-12
    # multi-boundary: towards the segment start, the target at a boundary is x_r itself
    s = segment_start(r, 4)
    cd = consistency_distillation_loss(
        fm, teacher, x0, t, r, noise, boundary=s, solver=exact_step, metric="l2"
    )
    assert cd.abs().max() <= 1e-12
    # with the teacher's Heun step instead, the loss is the solver's local error only
    heun = consistency_distillation_loss(fm, teacher, x0, t, r, noise, metric="l2")
    assert 0 < heun.max() < 1e-3


def test_consistency_training_pairs_share_the_noise(gen):
    # single-point data: trajectories are the straight lines x_t = (1 − t) x0 + t ε, so the
    # CT pair (same ε) lies on one trajectory and the CT loss of the exact map is zero
    point = FlowMap(ExactAverageVelocity(std=0.0))
    x0 = MU.expand(128, 2)
    noise = torch.randn(128, 2, generator=gen, dtype=torch.float64)
    t = 0.1 + 0.9 * torch.rand(128, generator=gen, dtype=torch.float64)
    r = t * torch.rand(128, generator=gen, dtype=torch.float64)
    assert consistency_training_loss(point, x0, t, r, noise, metric="l2").max() <= 1e-20
    # Gaussian data: x_r is off the trajectory, but the affine exact map makes the CT
    # residual's conditional mean E[f(x_r) | x_t] − f(x_t) = f(DDIM step) − f(x_t) = O(Δ²)
    fm = FlowMap(ExactAverageVelocity())
    teacher = GaussianMixture(MU[None], STD).denoiser("linear")
    x_t = 2 * torch.randn(64, 2, generator=gen, dtype=torch.float64)
    zero = torch.zeros(64, dtype=torch.float64)
    bias = []
    for gap in (0.02, 0.01):
        t, r = torch.full((64,), 0.6, dtype=torch.float64), torch.full((64,), 0.6 - gap)
        pred = teacher(x_t, t)
        mean_x_r = (1 - r)[:, None] * pred.x0 + r[:, None] * pred.eps
        bias.append((fm(mean_x_r, r, zero) - fm(x_t, t, zero)).abs().max().item())
    assert 3.6 < bias[0] / bias[1] < 4.4


def test_consistency_training_weight_is_icts_sigma_gap(gen):
    # iCT's λ = 1/(σ_t − σ_r) in EDM's σ = t/(1 − t) (linear path), the top level t = 1
    # counting as σ_max = 80: the loss is the unweighted distance times exactly that weight
    fm = FlowMap(ExactAverageVelocity())
    x0 = MU + STD * torch.randn(64, 2, generator=gen, dtype=torch.float64)
    noise = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    t = 0.05 + 0.95 * torch.rand(64, generator=gen, dtype=torch.float64)
    t[:8] = 1.0
    r = t * torch.rand(64, generator=gen, dtype=torch.float64)
    x_t, x_r = (
        (1 - t)[:, None] * x0 + t[:, None] * noise,
        (1 - r)[:, None] * x0 + r[:, None] * noise,
    )
    d = consistency_loss(fm, x_t, t, x_r, r, metric="l2")
    sigma = torch.where(t < 1, t / (1 - t), torch.full_like(t, 80.0))
    expected = d / (sigma - r / (1 - r))
    loss = consistency_training_loss(fm, x0, t, r, noise, metric="l2")
    assert torch.allclose(loss, expected, rtol=1e-12, atol=0)
    assert (d > 0).all()  # Gaussian data: the pairs are off one trajectory, the weight matters
    naive = consistency_training_loss(fm, x0, t, r, noise, metric="l2", weighting="time")
    assert torch.allclose(naive, d / (t - r), rtol=1e-12, atol=0)  # the ablation
    with pytest.raises(ValueError, match="weighting"):
        consistency_training_loss(fm, x0, t, r, noise, weighting="snr")


def test_a_new_method_revision_retrains_its_cached_students(tmp_path, monkeypatch):
    cached = lambda: sorted(p.name for p in (tmp_path / "fewstep").glob("*.safetensors"))
    trained("consistency_training", "8gauss", 0, cache=tmp_path)
    trained("consistency_training", "8gauss", 0, cache=tmp_path)
    assert len(cached()) == 1
    monkeypatch.setitem(REVISIONS, "consistency_training", REVISIONS["consistency_training"] + 1)
    trained("consistency_training", "8gauss", 0, cache=tmp_path)
    assert len(cached()) == 2


def test_jvp_of_a_network_matches_central_differences(gen):
    torch.manual_seed(0)
    net = FlowMapNet({"name": "mlp", "shape": [2], "width": 32, "depth": 2}).double()
    for p in net.net.embed.gap[-1].parameters():  # leave the zero init so r matters
        torch.nn.init.normal_(p, std=0.1, generator=gen)
    fm = FlowMap(net)
    x, t, _, r = _points(gen, 16)
    v = torch.randn(16, 2, generator=gen, dtype=torch.float64)
    u, dudt = average_velocity_derivative(fm, x, t, r, v, method="jvp")
    h = 1e-6
    tv = torch.ones_like(t)
    central = (net(x + h * v, t + h * tv, r) - net(x - h * v, t - h * tv, r)) / (2 * h)
    assert torch.allclose(dudt, central, rtol=1e-6, atol=1e-7)
    assert torch.equal(u, net(x, t, r))
    # the JVP keeps u differentiable in the parameters (the MeanFlow loss trains through it)
    meanflow_loss(fm, x, t, r, v).sum().backward()
    assert all(p.grad is not None for p in net.net.out.parameters())


def test_boundary_is_exact_and_a_teacher_initialised_student_is_the_teacher(gen):
    torch.manual_seed(0)
    teacher = MLP(2, width=32, depth=2)
    net = FlowMapNet(teacher.config).init_from(teacher)
    x = torch.randn(32, 2, generator=gen)
    t = torch.rand(32, generator=gen)
    r = t * torch.rand(32, generator=gen)
    fm = FlowMap(net)
    assert torch.equal(fm(x, t, t), x)  # f(x, t, t) = x for any weights
    with torch.no_grad():
        assert torch.equal(net(x, t, r), teacher(x, t))  # gap embedding starts at zero
    with pytest.raises(ValueError, match="differs from the base"):
        FlowMapNet({"name": "mlp", "shape": [2], "width": 16, "depth": 2}).init_from(teacher)


def test_flow_map_sampler_chains_exact_jumps(gen):
    fm = FlowMap(ExactAverageVelocity())
    z = torch.randn(100, 2, generator=gen, dtype=torch.float64)
    one = sample_flowmap(fm, z, torch.tensor([1.0, 0.0]))
    four = sample_flowmap(fm, z, torch.linspace(1, 0, 5))
    assert fm.nfe == 5 and torch.allclose(one, four, atol=1e-12)
    assert torch.allclose(one, MU + STD * z, atol=1e-12)  # the Gaussian's exact transport


def test_teacher_step_is_the_per_sample_euler_or_heun_step(gen):
    # DDIM ≡ Euler for flow matching; each sample steps with its own (t, r)
    den = GaussianMixture(MU[None], STD).denoiser("linear")
    t = 0.05 + 0.95 * torch.rand(20, generator=gen, dtype=torch.float64)
    r = t * torch.rand(20, generator=gen, dtype=torch.float64)
    r[0] = 0.0  # Heun falls back to the first-order step at r = 0, as EDM does
    x = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    ddim, heun = (teacher_step(den, x, t, r, solver=s) for s in ("ddim", "heun"))
    for k in range(20):
        grid = torch.stack([t[k], r[k]])
        assert torch.allclose(ddim[k], sample_euler(den, x[k : k + 1], grid)[0], atol=1e-12)
        assert torch.allclose(heun[k], sample_heun(den, x[k : k + 1], grid)[0], atol=1e-12)
    # second order: halving the step divides Heun's local error by ≈ 8
    t = 0.2 + 0.8 * torch.rand(20, generator=gen, dtype=torch.float64)
    errs = [
        (
            teacher_step(den, x, t, t - h, solver="heun")
            - gaussian_pfode(x, t, t - h, "linear", MU, STD)
        )
        .norm()
        .item()
        for h in (0.04, 0.02)
    ]
    assert 7 < errs[0] / errs[1] < 9


def test_ict_curriculum_and_lognormal_levels():
    # N doubles from s0 = 10 to s1 = 1280 in 8 equal stages (iCT eq. 6)
    counts = [ict_num_intervals(k, 8000) for k in range(0, 8000, 1000)]
    assert counts == [10, 20, 40, 80, 160, 320, 640, 1280]
    assert ict_num_intervals(7999, 8000) == 1280 and ict_num_intervals(0, 5) == 10
    levels = consistency_levels(10)
    assert levels[-1] == 1.0 and math.isclose(levels[0].item(), 0.002 / 1.002)
    sigma = levels[:-1] / (1 - levels[:-1])  # σ = t/(1 − t) for flow matching
    ramp = sigma ** (1 / 7)
    assert torch.allclose(ramp[1:] - ramp[:-1], ramp[1] - ramp[0], rtol=1e-9)  # Karras spacing
    # lognormal σ ⇔ logit-normal t: the weights are differences of the normal CDF of logit t
    w = lognormal_interval_weights(levels)
    normal = torch.distributions.Normal(-1.1, 2.0)
    cdf = torch.cat([normal.cdf(torch.logit(levels[:-1])), torch.ones(1, dtype=torch.float64)])
    assert torch.allclose(w, (cdf[1:] - cdf[:-1]) / (cdf[-1] - cdf[0]), atol=1e-12)
    t, r = meanflow_times(20000, torch.Generator().manual_seed(0))
    assert (r <= t).all() and abs((r < t).double().mean().item() - 0.25) < 0.015


def test_pseudo_huber_limits():
    a = torch.zeros(3, 4)
    b = torch.tensor([[1e-5, 0, 0, 0], [3.0, 4.0, 0, 0], [0, 0, 0, 0]])
    d = pseudo_huber(a, b, c=0.01)
    assert torch.allclose(d[1], torch.tensor(5.0), atol=0.011)  # ≈ ‖a − b‖ far away
    assert math.isclose(d[0].item(), 1e-10 / 0.02, rel_tol=1e-3)  # ≈ ‖a − b‖²/2c nearby
    assert d[2] == 0
    c = 0.00054 * math.sqrt(4)  # iCT's default c = 0.00054 √dim
    assert math.isclose(pseudo_huber(a[:1], b[:1]).item(), 1e-10 / (2 * c), rel_tol=1e-3)


def test_bad_input_is_rejected(gen):
    fm = FlowMap(ExactAverageVelocity())
    x = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="need r <= t"):
        fm(x, 0.3, 0.5)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sample_flowmap(fm, x, torch.tensor([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="at least 2"):
        sample_flowmap(fm, x, torch.tensor([1.0]))  # a grid of 0 jumps: NFE 0
    with pytest.raises(ValueError, match="need r <= t"):
        meanflow_loss(fm, x, torch.tensor([0.3, 0.3]), torch.tensor([0.1, 0.4]), x)
    # a consistency pair must step towards the data: r < t, strictly (CT divides by t − r)
    t = torch.tensor([0.3, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="needs r < t"):
        consistency_training_loss(fm, x, t, torch.tensor([0.3, 0.2], dtype=torch.float64), x)
    with pytest.raises(ValueError, match="needs r < t"):
        consistency_distillation_loss(fm, None, x, t, t, x, solver=exact_step)
    with pytest.raises(ValueError, match="r must lie in"):
        fm(x, 0.3, -0.1)
    with pytest.raises(ValueError, match="teacher_step needs t > r"):
        teacher_step(None, x, torch.tensor([0.2, 0.3]), torch.tensor([0.2, 0.1]))
    with pytest.raises(ValueError, match="unknown solver 'rk9'"):
        teacher_step(None, x, torch.tensor([0.2, 0.3]), torch.tensor([0.1, 0.1]), solver="rk9")
    with pytest.raises(ValueError, match="c must be positive"):
        pseudo_huber(x, x, c=0.0)
    with pytest.raises(ValueError, match="n must be positive"):
        consistency_levels(0)
    with pytest.raises(ValueError, match="needs a class-conditional task"):
        train_cd(get_task("8gauss"), 1, gen, guidance=3.0)
    student = FewStepGenerator("s", torch.nn.Identity(), lambda z, nfe, c, g: z)
    with pytest.raises(ValueError, match=r"nfe must be one of \(1, 2, 4\)"):
        student.sample(x, 0)
