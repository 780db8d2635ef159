"""The diffusers bridge on tiny randomly initialised networks built here (no download), and
visgen's solvers against diffusers' schedulers where their settings match."""

import pytest
import torch

diffusers = pytest.importorskip(
    "diffusers", reason="diffusers is an optional extra (pip install visgen[diffusers])"
)

from visgen.integrations.diffusers import (  # noqa: E402
    from_diffusers,
    grid_of,
    schedule_of,
    timestep_of_t,
)
from visgen.oracles import eight_gaussians  # noqa: E402
from visgen.sampling import (  # noqa: E402
    sample_ddim,
    sample_dpm_2m,
    sample_dpmpp_2m,
    sample_euler,
    sample_unipc,
)
from visgen.schedules import Linear, VPDiscrete  # noqa: E402


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


def diffusers_loop(net, scheduler, x, steps, **kwargs):
    """diffusers' own sampling loop."""
    scheduler.set_timesteps(steps)
    for k in scheduler.timesteps:
        scale = getattr(scheduler, "scale_model_input", lambda x, k: x)
        with torch.no_grad():
            out = net(scale(x, k), timestep=k.expand(len(x)), return_dict=False, **kwargs)[0]
        x = scheduler.step(out, k, x, return_dict=False)[0]
    return x


MATCHED = {  # visgen solver: diffusers scheduler with the same settings
    "dpmpp_2m": (
        sample_dpmpp_2m,
        lambda **kw: diffusers.DPMSolverMultistepScheduler(lower_order_final=False, **kw),
    ),
    "dpm_2m": (
        sample_dpm_2m,
        lambda **kw: diffusers.DPMSolverMultistepScheduler(
            algorithm_type="dpmsolver", lower_order_final=False, **kw
        ),
    ),
    "unipc": (
        sample_unipc,
        lambda **kw: diffusers.UniPCMultistepScheduler(lower_order_final=False, **kw),
    ),
}


CASES = [  # diffusers refuses final_sigmas_type="zero" for its ε-form "dpmsolver"
    (name, final, prediction)
    for name in MATCHED
    for final in ("sigma_min", "zero")
    for prediction in ("epsilon", "v_prediction")
    if not (name == "dpm_2m" and final == "zero")
]


@pytest.mark.parametrize("name,final,prediction", CASES)
def test_visgen_solvers_match_diffusers_schedulers_on_a_unet(name, final, prediction):
    net, x = tiny_unet(), torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    solver, make = MATCHED[name]
    scheduler = make(final_sigmas_type=final, prediction_type=prediction)
    theirs = diffusers_loop(net, scheduler, x, 6)
    den = from_diffusers(net, scheduler)
    ours = solver(den, x, grid_of(scheduler))
    assert den.nfe == 6
    # diffusers keeps its schedule and solver arithmetic in float32
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_ddim_matches_diffusers_ddim():
    net, x = tiny_unet(), torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    scheduler = diffusers.DDIMScheduler(clip_sample=False, timestep_spacing="trailing")
    theirs = diffusers_loop(net, scheduler, x, 5)
    ours = sample_ddim(from_diffusers(net, scheduler), x, grid_of(scheduler))
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_dpmpp_2m_matches_diffusers_on_the_gmm_oracle():
    """The cross-check of LIBRARIES §5.5: DPMSolverMultistep(lower_order_final=False,
    final_sigmas_type="sigma_min") is DPM-Solver++(2M) on DDPM's grid."""
    gmm, schedule = eight_gaussians(dtype=torch.float64), VPDiscrete()
    den = gmm.denoiser(schedule)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scheduler = diffusers.DPMSolverMultistepScheduler(
        lower_order_final=False, final_sigmas_type="sigma_min"
    )
    scheduler.set_timesteps(10)
    y = x.clone()
    for k in scheduler.timesteps:
        eps = den(y, schedule.t_of_index(int(k)).item()).eps
        y = scheduler.step(eps, k, y, return_dict=False)[0].double()
    ours = sample_dpmpp_2m(den, x, grid_of(scheduler))
    # diffusers steps in float32, and its first x̂0 = (x − σ ε)/α divides by α(t = 1) = 0.0064
    assert (ours - y).abs().max() <= 1e-4 * y.abs().max()


def test_flow_transformer_matches_flow_match_euler():
    torch.manual_seed(0)
    net = diffusers.SD3Transformer2DModel(
        sample_size=8,
        patch_size=2,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=16,
        caption_projection_dim=16,
        pooled_projection_dim=16,
        out_channels=4,
        pos_embed_max_size=8,
    ).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    cond = {
        "encoder_hidden_states": torch.randn(2, 3, 16, generator=gen),
        "pooled_projections": torch.randn(2, 16, generator=gen),
    }
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    theirs = diffusers_loop(net, scheduler, x, 4, **cond)
    den = from_diffusers(net, scheduler)
    assert isinstance(den.schedule, Linear) and den.prediction == "velocity"
    ours = sample_euler(den, x, grid_of(scheduler), cond)
    assert (ours - theirs).abs().max() <= 1e-5 * theirs.abs().max()


def test_timesteps_schedules_and_predictions():
    ddpm = diffusers.DDPMScheduler()
    k = torch.arange(1000)
    t = VPDiscrete().t_of_index(k)
    assert torch.equal(timestep_of_t(t, ddpm).round(), k.double())
    assert (timestep_of_t(t, ddpm) - k).abs().max() < 1e-9
    flow = diffusers.FlowMatchEulerDiscreteScheduler()
    assert torch.allclose(
        timestep_of_t(torch.tensor([0.25, 1.0]), flow), torch.tensor([250.0, 1e3]).double()
    )
    for beta_schedule in ("linear", "scaled_linear", "squaredcos_cap_v2"):
        sch = diffusers.DDIMScheduler(beta_schedule=beta_schedule)
        ours = schedule_of(sch).alpha(t) ** 2
        assert torch.allclose(ours, sch.alphas_cumprod.double(), rtol=1e-5), beta_schedule
    kinds = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
    for theirs, mine in kinds.items():
        den = from_diffusers(tiny_unet(), diffusers.DDPMScheduler(prediction_type=theirs))
        assert den.prediction == mine


def test_low_precision_network_keeps_the_solver_in_float32():
    net = tiny_unet().to(torch.bfloat16)
    scheduler = diffusers.DPMSolverMultistepScheduler()
    scheduler.set_timesteps(4)
    den = from_diffusers(net, scheduler)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = sample_dpmpp_2m(den, x, grid_of(scheduler))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_bridge_bad_input():
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        schedule_of(diffusers.DDIMScheduler(rescale_betas_zero_snr=True))
    with pytest.raises(ValueError, match="call scheduler.set_timesteps"):
        grid_of(diffusers.DPMSolverMultistepScheduler())
    with pytest.raises(TypeError, match="must be a diffusers scheduler"):
        from_diffusers(tiny_unet(), {"num_train_timesteps": 1000})
    den = from_diffusers(tiny_unet(), diffusers.DDPMScheduler())
    with pytest.raises(ValueError, match="needs cond_key"):
        den(torch.zeros(1, 1, 8, 8), 0.5, torch.tensor([1]))
    euler = diffusers.EulerDiscreteScheduler()
    euler.set_timesteps(7)
    with pytest.raises(ValueError, match="integer timesteps"):
        grid_of(euler)
