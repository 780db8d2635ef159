import math

import pytest
import torch

from visgen.objectives import (
    Discrete,
    Ladder,
    LogitNormal,
    Shifted,
    Uniform,
    ddpm_loss,
    diffusion_loss,
    dsm_loss,
    flow_matching_loss,
    loss_weight,
    resolution_shift,
    shift_time,
    target_scale,
)
from visgen.oracles import GaussianMixture
from visgen.param import PREDICTIONS, Denoiser, convert
from visgen.schedules import VE, Linear, VPCosine, VPDiscrete


def mixture():
    return GaussianMixture([[0.0, 1.0], [2.0, -1.0]], [0.3, 0.5]).to(torch.float64)


def test_flow_matching_loss_of_exact_velocity_is_the_irreducible_loss(gen):
    # ε − x0 = (x_t − x0)/t  ⇒  irreducible loss = tr Cov(x0 | x_t) / (t² D)
    g = mixture()
    x0 = g.sample(100_000, gen)
    t = Uniform(0.05, 0.95)(len(x0), gen, torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    loss = flow_matching_loss(g.denoiser("linear"), x0, t=t, noise=noise, reduction="none")
    xt = (1 - t)[:, None] * x0 + t[:, None] * noise
    floor = g.posterior_variance(xt, t, "linear") / (t**2 * 2)
    se = math.sqrt(loss.var() / len(loss))
    assert abs(loss.mean() - floor.mean()) < 4 * se


def test_jit_x_prediction_v_loss(gen):
    # v̂ = (x_t − x̂0) / max(t, t_eps) regressed onto ε − x0 (JiT)
    g = mixture()
    x0 = g.sample(64, gen)
    t = torch.rand(64, generator=gen, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    den = g.denoiser("linear")  # predicts x0
    got = flow_matching_loss(den, x0, t=t, noise=noise, t_eps=0.05, reduction="none")
    xt = (1 - t)[:, None] * x0 + t[:, None] * noise
    v_hat = (xt - den.x0(xt, t)) / t.clamp_min(0.05)[:, None]
    assert torch.allclose(got, ((v_hat - (noise - x0)) ** 2).mean(1))
    plain = flow_matching_loss(den, x0, t=t, noise=noise, reduction="none")
    keep = t >= 0.05
    assert torch.allclose(plain[keep], got[keep]) and not torch.allclose(plain[~keep], got[~keep])


def test_diffusion_loss_targets_are_consistent(gen):
    # an imperfect network: loss on target k equals the x0-error times target_scale
    g, sch = mixture(), VPCosine()
    den_exact = g.denoiser(sch)
    delta = 0.1

    def model(x, t, cond):
        return den_exact.x0(x, t) + delta

    den = Denoiser(model, sch, "x0")
    x0 = g.sample(32, gen)
    t = torch.rand(32, generator=gen, dtype=torch.float64) * 0.8 + 0.1
    noise = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    base = diffusion_loss(den_exact, x0, t=t, noise=noise, target="x0", reduction="none")
    for target in PREDICTIONS:
        exact = diffusion_loss(den_exact, x0, t=t, noise=noise, target=target, reduction="none")
        off = diffusion_loss(den, x0, t=t, noise=noise, target=target, reduction="none")
        off_x0 = diffusion_loss(den, x0, t=t, noise=noise, target="x0", reduction="none")
        # ‖Δ_target‖² = c ‖Δ_x0‖² for the *prediction* error, so the excess scales by c
        excess = (off - exact) - target_scale(target, t, sch) * (off_x0 - base)
        assert excess.abs().max() < 1e-8, target


def test_target_scale_matches_conversion(gen):
    sch = VPDiscrete()
    x = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    t = torch.rand(8, generator=gen, dtype=torch.float64) * 0.9 + 0.05
    x0 = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    d = torch.randn(8, 3, generator=gen, dtype=torch.float64) * 1e-3
    for target in PREDICTIONS:
        a = convert(x0, "x0", target, x, t, sch)
        b = convert(x0 + d, "x0", target, x, t, sch)
        ratio = ((a - b) ** 2).sum(1) / (d**2).sum(1)
        assert torch.allclose(ratio, target_scale(target, t, sch), rtol=1e-6), target


def test_weightings(gen):
    sch = Linear()
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    snr = ((1 - t) / t) ** 2
    assert torch.allclose(
        loss_weight("min_snr", t, sch, "eps", gamma=5.0), torch.clamp(snr, max=5) / snr
    )
    assert torch.allclose(loss_weight("snr", t, sch, "eps"), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(
        loss_weight("none", t, sch, "velocity"), torch.ones(3, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="unknown weighting 'p2'"):
        loss_weight("p2", t, sch, "eps")


def test_ddpm_and_dsm_losses_train_a_network(gen):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))
    model = lambda x, t, c: net(torch.cat([x, t[:, None]], 1))
    g = GaussianMixture([[0.0, 1.0], [2.0, -1.0]], [0.3, 0.5])
    for den, loss_fn in (
        (Denoiser(model, VPDiscrete(), "eps"), ddpm_loss),
        (Denoiser(model, VE(0.01, 5), "score"), dsm_loss),
    ):
        opt = torch.optim.Adam(net.parameters(), 1e-2)
        first = None
        for _ in range(300):
            loss = loss_fn(den, g.sample(256, gen), generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
        assert loss.item() < 0.7 * first


def test_time_samplers(gen):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    for s in (0.3, 1.0, 3.0):
        u = shift_time(t, s)
        assert (
            u[0] == 0
            and u[-1].item() == pytest.approx(1.0, abs=1e-15)
            and (torch.diff(u) > 0).all()
        )
    assert torch.equal(shift_time(t, 1.0), t)
    assert abs(LogitNormal(0.0, 1.0)(20_000, gen).median() - 0.5) < 0.02
    shifted = Shifted(LogitNormal(), 3.0)(20_000, gen)
    assert shifted.median() > 0.7  # SD3's shift 3 pushes towards noise
    assert resolution_shift(16 * 16, 8 * 8) == 2.0
    sch = VPDiscrete()
    k = Discrete(sch)(1000, gen, torch.float64) * sch.T - 1
    assert torch.allclose(k, k.round()) and k.min() >= 0 and k.max() <= 999
    lad = Ladder(5)(1000, gen)
    assert set(lad.tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_bad_input(gen):
    den = mixture().denoiser("linear")
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="ddpm_loss needs a VPDiscrete schedule"):
        ddpm_loss(den, x0)
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        diffusion_loss(den, x0, t=torch.zeros(3))
    with pytest.raises(ValueError, match="unknown target 'noise'"):
        diffusion_loss(den, x0, target="noise")
    with pytest.raises(ValueError, match="shift must be positive"):
        shift_time(torch.zeros(1), 0.0)
    with pytest.raises(ValueError, match="t_eps must be in"):
        flow_matching_loss(den, x0, t_eps=1.5)
