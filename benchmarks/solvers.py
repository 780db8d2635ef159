"""Fast ODE solvers, visgen vs diffusers' best configuration per NFE (lecture 4).

    .venv/bin/python benchmarks/solvers.py            # all three parts (≈ 1 CPU-hour)
    .venv/bin/python benchmarks/solvers.py --parts a c  # the oracle and the overhead (minutes)
    .venv/bin/python benchmarks/solvers.py --parts b --teachers fm_digits_unet --nfes 20 --solvers unipc

(a) The Gaussian-mixture oracle. The model is the exact ε-denoiser of the course's eight
    Gaussians under DDPM's discrete schedule (β linear 1e-4..0.02, T = 1000, diffusers'
    default). Every sampler starts from the same noise at DDPM step 999 (t = 1) and ends at
    clean data; the error is the RMS over points of ‖x − x_ref‖ against the exact PF-ODE
    solution (DOP853, rtol 1e-10). diffusers: every scheduler option its documentation lists
    (solver order, Karras / exponential / beta / Lu-λ sigmas, timestep spacing,
    lower_order_final, final_sigmas_type, UniPC's bh1/bh2, DEIS), driven through its own
    ``set_timesteps``/``step`` loop; its *best configuration per NFE* is chosen on
    calibration noise (seed 1) and scored on held-out noise (seed 0), as visgen's LD3 grids
    (:mod:`visgen.sampling.tuning`) are fitted on the same calibration noise.
(b) Trained flow-matching teachers: the class-conditional digits MLP (``fm_digits``) and the
    digits U-Net (``fm_digits_unet``). Error against the teacher's converged solve (UniPC,
    800 NFE, from t = 1 − 1e-5; its distance to a 400-NFE solve is printed) and Fréchet
    distance on visgen's digit classifier features; diffusers' flow-matching schedulers
    (FlowMatchEuler / Heun with shifts and sigma options, DPMSolverMultistep and UniPC with
    flow sigmas) chosen per NFE on calibration noise as in (a); visgen's grids from
    :func:`visgen.train.tuned_grid` (cached beside the teacher).
(c) Overhead, model excluded: a constant ε-"model" on a 1024×2 float32 batch, 10 steps; the
    median per-step time over all steps of all runs, and the per-call set-up (diffusers'
    ``set_timesteps``; visgen's grid and its schedule values) on the first call (cold) and on
    later calls (warm: visgen keeps grids and schedule values per schedule and grid).
    Runs alternate between the two libraries; one thread.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import time
import warnings

import torch

from visgen import Denoiser, set_threads
from visgen.metrics.images import image_metrics
from visgen.oracles import eight_gaussians, reference_pfode
from visgen.sampling import SOLVERS, grid_for_nfe, sample
from visgen.sampling.grids import schedule_on_grid
from visgen.sampling.tuning import grid_error, optimize_grid
from visgen.schedules import VPDiscrete

NFES = (4, 5, 6, 8, 10, 20)
TUNED = ("unipc", "dpmpp_2m", "dpmpp_3m", "dpmpp_3m_lowstart")
STANDARD_GRIDS = ("logsnr", "uniform", "edm")
TEACHERS = ("fm_digits", "fm_digits_unet")


def rms(a, b) -> float:
    err = (a - b).flatten(1).pow(2).sum(1).mean().sqrt().item()
    return err if math.isfinite(err) else math.inf


# --- diffusers: configurations and the driver -------------------------------------------


def _options(**choices):
    keys = list(choices)
    for values in itertools.product(*choices.values()):
        yield dict(zip(keys, values))


SIGMAS = (
    {},
    {"use_karras_sigmas": True},
    {"use_exponential_sigmas": True},
    {"use_beta_sigmas": True},
)


def vp_configs() -> dict:
    """Every documented option of diffusers' DDPM-family ODE schedulers."""
    from diffusers import (
        DDIMScheduler,
        DEISMultistepScheduler,
        DPMSolverMultistepScheduler,
        UniPCMultistepScheduler,
    )

    configs = {}
    spacing = ("linspace", "leading", "trailing")
    for o in _options(order=(1, 2, 3), sig=(*SIGMAS, {"use_lu_lambdas": True}), spacing=spacing,
                      lof=(True, False), final=("zero", "sigma_min")):  # fmt: skip
        configs[f"DPMSolverMultistep order={o['order']} {o['sig']} spacing={o['spacing']} "
                f"lower_order_final={o['lof']} final_sigmas_type={o['final']}"] = (  # fmt: skip
            lambda o=o: DPMSolverMultistepScheduler(
                solver_order=o["order"], timestep_spacing=o["spacing"],
                lower_order_final=o["lof"], final_sigmas_type=o["final"], **o["sig"]))  # fmt: skip
    for o in _options(order=(1, 2, 3), sig=SIGMAS, spacing=spacing, lof=(True, False),
                      type=("bh1", "bh2")):  # fmt: skip
        configs[f"UniPCMultistep {o['type']} order={o['order']} {o['sig']} "
                f"spacing={o['spacing']} lower_order_final={o['lof']}"] = (  # fmt: skip
            lambda o=o: UniPCMultistepScheduler(
                solver_order=o["order"], solver_type=o["type"], timestep_spacing=o["spacing"],
                lower_order_final=o["lof"], **o["sig"]))  # fmt: skip
    for o in _options(order=(2, 3), sig=SIGMAS, spacing=spacing):
        configs[f"DEISMultistep order={o['order']} {o['sig']} spacing={o['spacing']}"] = (
            lambda o=o: DEISMultistepScheduler(
                solver_order=o["order"], timestep_spacing=o["spacing"], **o["sig"]))  # fmt: skip
    configs["DPMSolverMultistep (default)"] = DPMSolverMultistepScheduler
    configs["DDIM trailing, no clip"] = lambda: DDIMScheduler(
        clip_sample=False, timestep_spacing="trailing"
    )
    return configs


def flow_configs() -> dict:
    """diffusers' flow-matching schedulers (velocity = ε − x0, σ = t) and their options."""
    from diffusers import (
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchHeunDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    configs = {}
    flow = {"use_flow_sigmas": True, "prediction_type": "flow_prediction"}
    for o in _options(shift=(1.0, 2.0, 3.0), sig=SIGMAS):
        configs[f"FlowMatchEuler shift={o['shift']} {o['sig']}"] = (
            lambda o=o: FlowMatchEulerDiscreteScheduler(shift=o["shift"], **o["sig"]))  # fmt: skip
    for shift in (1.0, 2.0, 3.0):
        configs[f"FlowMatchHeun shift={shift}"] = lambda s=shift: FlowMatchHeunDiscreteScheduler(
            shift=s
        )
    for o in _options(shift=(1.0, 2.0, 3.0), order=(1, 2, 3), lof=(True, False),
                      final=("zero", "sigma_min")):  # fmt: skip
        configs[f"DPMSolverMultistep flow_shift={o['shift']} order={o['order']} "
                f"lower_order_final={o['lof']} final_sigmas_type={o['final']}"] = (  # fmt: skip
            lambda o=o: DPMSolverMultistepScheduler(
                flow_shift=o["shift"], solver_order=o["order"], lower_order_final=o["lof"],
                final_sigmas_type=o["final"], **flow))  # fmt: skip
    for o in _options(shift=(1.0, 2.0, 3.0), order=(1, 2, 3), lof=(True, False),
                      type=("bh1", "bh2")):  # fmt: skip
        configs[f"UniPCMultistep {o['type']} flow_shift={o['shift']} order={o['order']} "
                f"lower_order_final={o['lof']}"] = (  # fmt: skip
            lambda o=o: UniPCMultistepScheduler(
                flow_shift=o["shift"], solver_order=o["order"], solver_type=o["type"],
                lower_order_final=o["lof"], **flow))  # fmt: skip
    return configs


def run_diffusers(make, nfe: int, den: Denoiser, x, cond=None):
    """diffusers' own loop (``set_timesteps``, then model + ``step``) with a visgen model;
    returns (samples, NFE used) or None if the configuration refuses this NFE."""
    sch = make()
    try:
        sch.set_timesteps(nfe)
    except (ValueError, RuntimeError):
        return None
    flow = den.schedule.name == "linear"
    karras_like = hasattr(sch, "scale_model_input") and "Euler" in type(sch).__name__
    with den.counting() as count:
        y = x.clone()
        if karras_like and not flow:  # EulerDiscrete works on x/α with σ = σ/α
            y = y * (1 + sch.sigmas[0].double() ** 2).sqrt()
        for i, k in enumerate(sch.timesteps):
            if flow:  # σ = t; the model's velocity is diffusers' flow target
                t = float(sch.sigmas[sch.step_index if sch.step_index is not None else i])
                out = den(y, t, cond).velocity
            elif karras_like:
                sigma = sch.sigmas[i].double()
                t = den.schedule.t_from_logsnr(-torch.log(sigma)).item()
                out = den(sch.scale_model_input(y, k), t, cond).eps
            else:
                out = den(y, den.schedule.t_of_index(int(k)).item(), cond).eps
            y = sch.step(out, k, y, return_dict=False)[0].to(x.dtype)
    return y, count.nfe


def diffusers_best(configs, den, nfe, calibration, reference, cond=None):
    """(name, maker) of the configuration with the lowest calibration error at exactly ``nfe``."""
    best = (math.inf, None)
    for name, make in configs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                run = run_diffusers(make, nfe, den, calibration, cond)
            except (ValueError, RuntimeError, IndexError):
                continue
        if run is None or run[1] != nfe:
            continue
        best = min(best, (rms(run[0], reference), name), key=lambda b: b[0])
    return best[1], configs[best[1]]


# --- (a) the Gaussian-mixture oracle --------------------------------------------------------


def exact_solution(gmm, x1, schedule) -> torch.Tensor:
    """Exact PF-ODE solution at σ = 0 from x1 at t = 1, solved on the flow-matching clock
    (the PF-ODE in x/α and σ/α is the same for every schedule)."""
    lam = schedule.logsnr(torch.tensor(1.0, dtype=torch.float64))
    t_fm = torch.sigmoid(-lam).item()
    x_fm = x1 / schedule.alpha(torch.tensor(1.0, dtype=torch.float64)) * (1 - t_fm)
    return reference_pfode(gmm.denoiser("linear"), x_fm, t_fm, 1e-9, rtol=1e-10, atol=1e-10)


def oracle_part(points: int) -> None:
    gmm = eight_gaussians(dtype=torch.float64)
    schedule = VPDiscrete()
    den = gmm.denoiser(schedule)
    draw = lambda seed, n: torch.randn(
        n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    x, xc = draw(0, points), draw(1, 512)
    ref, refc = exact_solution(gmm, x, schedule), exact_solution(gmm, xc, schedule)
    configs = vp_configs()
    print(f"\n(a) Gaussian-mixture oracle: RMS error vs the exact PF-ODE solution ({points} "
          f"held-out points; diffusers: {len(configs)} configurations)\n")  # fmt: skip
    print("| NFE | diffusers default (DPMSolverMultistep) | diffusers best (configuration) | "
          "visgen best standard grid | visgen LD3 grid | LD3 / diffusers best |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for nfe in NFES:
        default = run_diffusers(configs["DPMSolverMultistep (default)"], nfe, den, x)
        name, make = diffusers_best(configs, den, nfe, xc, refc)
        best = rms(run_diffusers(make, nfe, den, x)[0], ref)
        standard = min(
            (grid_error(den, s, grid_for_nfe(nfe, s, schedule, kind), x, ref), f"{s.name} / {kind}")
            for s in SOLVERS.values()
            for kind in STANDARD_GRIDS
            if _reachable(s, nfe)
        )
        tuned = min(
            (grid_error(den, SOLVERS[s], optimize_grid(den, s, nfe, xc, reference=refc), x, ref), s)
            for s in TUNED
            if _reachable(SOLVERS[s], nfe)
        )
        print(f"| {nfe} | {rms(default[0], ref):.3e} | {best:.3e} ({name}) | "
              f"{standard[0]:.3e} ({standard[1]}) | {tuned[0]:.3e} ({tuned[1]}) | "
              f"{tuned[0] / best:.2f} |", flush=True)  # fmt: skip


def _reachable(solver, nfe) -> bool:
    return any(solver.nfe(k) == nfe for k in range(1, nfe + 1))


# --- (b) trained teachers -------------------------------------------------------------------


def teacher_part(name: str, n: int, nfes=NFES, solvers=TUNED[:3]) -> None:
    from visgen.train import asset, calibration_set, tuned_grid

    teacher = asset(name)
    den = teacher.denoiser()
    x, labels = calibration_set(name, n, seed=1000)  # held-out noise, balanced random labels
    xc, lc = calibration_set(name, 256, seed=0)  # tuned_grid's calibration set
    start = 1 - 1e-5
    solve = lambda nfe, noise, cond: sample(
        den, noise, nfe, "unipc", grid_for_nfe(nfe, "unipc", den.schedule, t_start=start), cond
    )
    ref, refc, ref400 = solve(800, x, labels), solve(800, xc, lc), solve(400, x, labels)
    floor_fd = image_metrics(ref, "digits")["fd"]
    configs = flow_configs()
    print(f"\n(b) {name}: error vs the converged solve (800-NFE UniPC; 400 vs 800: "
          f"{rms(ref400, ref):.1e}) and FD to the test digits (converged solve: {floor_fd:.2f}); "
          f"{n} samples, {len(configs)} diffusers configurations\n")  # fmt: skip
    print("| NFE | diffusers best (configuration) | error | FD | visgen LD3 (solver) | "
          "error | FD | error ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for nfe in nfes:
        cname, make = diffusers_best(configs, den, nfe, xc, refc, lc)
        theirs = run_diffusers(make, nfe, den, x, labels)[0]
        ours = min(
            ((rms(out, ref), s, out) for s in solvers if _reachable(SOLVERS[s], nfe)
             for out in [sample(den, x, nfe, s, tuned_grid(name, s, nfe), labels)]),
            key=lambda r: r[0],
        )  # fmt: skip
        e_d, e_v = rms(theirs, ref), ours[0]
        fd_d, fd_v = image_metrics(theirs, "digits")["fd"], image_metrics(ours[2], "digits")["fd"]
        print(f"| {nfe} | {cname} | {e_d:.3e} | {fd_d:.2f} | {ours[1]} | {e_v:.3e} | "
              f"{fd_v:.2f} | {e_v / e_d:.2f} |", flush=True)  # fmt: skip


# --- (c) overhead ---------------------------------------------------------------------------


def overhead_part(reps: int, steps: int = 10) -> None:
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        UniPCMultistepScheduler,
    )

    x = torch.randn(1024, 2, generator=torch.Generator().manual_seed(0))
    eps = 0.5 * torch.randn(1024, 2, generator=torch.Generator().manual_seed(1))
    schedule = VPDiscrete()
    den = Denoiser(lambda x, t, cond=None: eps, schedule, "eps")  # the model costs nothing
    pairs = {
        "DDIM": ("ddim", lambda: DDIMScheduler(clip_sample=False, timestep_spacing="trailing")),
        "DPM-Solver++(2M)": ("dpmpp_2m", DPMSolverMultistepScheduler),
        "DPM-Solver++(3M)": ("dpmpp_3m_lowstart", lambda: DPMSolverMultistepScheduler(solver_order=3)),
        "UniPC-bh2": ("unipc", UniPCMultistepScheduler),
    }  # fmt: skip

    def visgen_times(solver):
        """(set-up, [per-step durations]): steps are delimited by the sampler's callback."""
        marks = []
        t0 = time.perf_counter()
        ts = grid_for_nfe(steps, solver, schedule)
        schedule_on_grid(schedule, ts)  # what the sampler does first (cached per grid)
        setup = time.perf_counter() - t0
        SOLVERS[solver].fn(den, x, ts, callback=lambda *a: marks.append(time.perf_counter()))
        marks.append(time.perf_counter())
        return setup, [b - a for a, b in zip(marks[:-1], marks[1:])]

    def diffusers_times(sch):
        t0 = time.perf_counter()
        sch.set_timesteps(steps)
        marks, y = [time.perf_counter()], x
        for k in sch.timesteps:
            y = sch.step(eps, k, sch.scale_model_input(y, k), return_dict=False)[0]
            marks.append(time.perf_counter())
        return marks[0] - t0, [b - a for a, b in zip(marks[:-1], marks[1:])]

    print(f"\n(c) Overhead, µs: median per step, per-call set-up cold (first call) and warm "
          f"({steps} steps, 1024×2 float32, model excluded, {reps} runs)\n")  # fmt: skip
    print("| solver | visgen step | diffusers step | ratio | visgen set-up cold / warm | "
          "diffusers set-up | warm set-up ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label, (solver, make) in pairs.items():
        _clear_caches()
        cold = visgen_times(solver)[0]
        sch = make()
        runs = {"v": [], "d": []}
        for _ in range(reps):  # interleaved, so both see the same machine load
            runs["v"].append(visgen_times(solver))
            runs["d"].append(diffusers_times(sch))
        (vset, vstep), (dset, dstep) = (
            (
                1e6 * statistics.median(r[0] for r in runs[k]),
                1e6 * statistics.median(d for r in runs[k] for d in r[1]),
            )
            for k in ("v", "d")
        )
        print(f"| {label} | {vstep:.0f} | {dstep:.0f} | {vstep / dstep:.2f} | "
              f"{1e6 * cold:.0f} / {vset:.0f} | {dset:.0f} | {vset / dset:.2f} |")  # fmt: skip


def _clear_caches() -> None:
    from visgen.sampling import dpm_solver, grids, solvers

    grids._values_on.cache_clear()
    solvers._grid.cache_clear()
    dpm_solver._stage_values.cache_clear()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c"], choices=["a", "b", "c"])
    parser.add_argument("--points", type=int, default=1000, help="held-out points in (a)")
    parser.add_argument("--samples", type=int, default=1000, help="samples per teacher in (b)")
    parser.add_argument("--reps", type=int, default=100, help="timed runs per sampler in (c)")
    parser.add_argument("--teachers", nargs="+", default=list(TEACHERS), choices=TEACHERS)
    parser.add_argument("--nfes", nargs="+", type=int, default=list(NFES), help="NFEs in (b)")
    parser.add_argument("--solvers", nargs="+", default=list(TUNED[:3]), choices=TUNED[:3],
                        help="solvers whose LD3 grids (b) fits; the best one is reported")  # fmt: skip
    args = parser.parse_args(argv)
    set_threads(1)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import diffusers

    print(f"visgen solvers vs diffusers {diffusers.__version__}; torch {torch.__version__}; "
          f"{platform.processor() or platform.machine()}, 1 thread; {time.strftime('%Y-%m-%d')}; "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if "a" in args.parts:
        oracle_part(args.points)
    if "b" in args.parts:
        for name in args.teachers:
            teacher_part(name, args.samples, args.nfes, args.solvers)
    if "c" in args.parts:
        overhead_part(args.reps)


if __name__ == "__main__":
    main()
