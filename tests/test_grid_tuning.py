"""LD3 time grids (visgen.sampling.tuning, visgen.train.tuned_grids): the contract of a tuned
grid, its gain on the Gaussian-mixture oracle against visgen's and diffusers' grids, caching."""

import json

import pytest
import torch

from visgen.oracles import eight_gaussians, reference_pfode
from visgen.sampling import SOLVERS, grid_for_nfe, sample
from visgen.sampling.tuning import grid_error, noise_start, optimize_grid
from visgen.schedules import VPDiscrete


@pytest.fixture(scope="module")
def mixture():
    """The benchmark's problem: the exact ε-denoiser of 8 Gaussians under DDPM's schedule;
    calibration and held-out noises at t = 1 with their exact PF-ODE solutions at t = 0."""
    gmm = eight_gaussians(dtype=torch.float64)
    den = gmm.denoiser(VPDiscrete())

    def draw(seed, n):
        x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        lam = den.schedule.logsnr(torch.tensor(1.0, dtype=torch.float64))
        t_fm = torch.sigmoid(-lam).item()  # the same λ on the flow-matching clock, where
        y = x / den.schedule.alpha(torch.tensor(1.0, dtype=torch.float64)) * (1 - t_fm)
        return x, reference_pfode(gmm.denoiser("linear"), y, t_fm, 1e-9, rtol=1e-10, atol=1e-10)

    return den, draw(1, 256), draw(0, 512)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy 2 warning
@pytest.mark.parametrize("nfe", [5, 10])
def test_tuned_grid_beats_every_standard_grid_and_diffusers(mixture, nfe):
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    den, (xc, refc), (xt, reft) = mixture
    solver = SOLVERS["unipc"]
    ts = optimize_grid(den, "unipc", nfe, xc, reference=refc)
    tuned = grid_error(den, solver, ts, xt, reft)
    standard = min(
        grid_error(den, solver, grid_for_nfe(nfe, solver, den.schedule, kind), xt, reft)
        for kind in ("logsnr", "uniform", "edm")
    )
    # measured on held-out noise: 0.042 vs 0.35 (NFE 5), 0.011 vs 0.115 (NFE 10)
    assert tuned <= 0.3 * standard, (tuned, standard)
    for make in (DPMSolverMultistepScheduler, UniPCMultistepScheduler):  # diffusers' defaults
        sch = make()
        sch.set_timesteps(nfe)
        x = xt.clone()
        for k in sch.timesteps:
            eps = den(x, den.schedule.t_of_index(int(k)).item()).eps
            x = sch.step(eps, k, x, return_dict=False)[0].double()
        theirs = (x - reft).pow(2).sum(1).mean().sqrt().item()
        assert tuned <= 0.5 * theirs, (make.__name__, tuned, theirs)  # measured 0.14-0.25


@pytest.mark.parametrize("name", ["unipc", "dpmpp_3m", "heun"])
def test_a_tuned_grid_is_a_valid_grid_of_the_requested_cost(mixture, name):
    den, (xc, refc), _ = mixture
    nfe = 7 if name == "heun" else 6
    ts = optimize_grid(den, name, nfe, xc[:64], reference=refc[:64], evaluations=30)
    assert ts.dtype == torch.float64 and ts[0] == noise_start(den.schedule) and ts[-1] == 0
    assert (ts[1:] < ts[:-1]).all()
    with den.counting() as count:
        sample(den, xc[:4], nfe, name, ts)
    assert count.nfe == nfe
    one = optimize_grid(den, name, 1, xc, reference=refc)  # one denoising step: nothing to place
    assert one.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="nfe=2 is not reachable"):
        optimize_grid(den, "heun", 2, xc, reference=refc)


def test_noise_start_is_one_unless_lambda_is_infinite_there():
    assert noise_start(VPDiscrete()) == 1.0
    assert noise_start("linear") == 1 - 1e-5  # flow matching: α(1) = 0


def test_tuned_grid_of_a_teacher_is_cached(monkeypatch, tmp_path):
    from visgen.train import tuned_grid, tuned_grids

    monkeypatch.setattr(tuned_grids, "cache_dir", lambda: tmp_path)  # the teacher: shared cache
    monkeypatch.setattr(tuned_grids, "REFERENCE_NFE", 40)
    calls = []
    real = tuned_grids.optimize_grid

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **{**kwargs, "evaluations": 20})

    monkeypatch.setattr(tuned_grids, "optimize_grid", counted)
    first = tuned_grid("fm_2d", "dpmpp_2m", 4, calibration=32)
    second = tuned_grid("fm_2d", "dpmpp_2m", 4, calibration=32)
    assert calls == [1] and torch.equal(first, second)
    (record,) = (tmp_path / "grids").glob("*.json")
    assert json.loads(record.read_text())["ts"] == first.tolist()
    assert first[-1] == 0 and SOLVERS["dpmpp_2m"].nfe(len(first) - 1) == 4
    with pytest.raises(ValueError, match="solver must be one of"):
        tuned_grid("fm_2d", "rk4", 4)
