"""Fast ODE solvers, visgen vs diffusers, on the 2D Gaussian-mixture oracle (lecture 4).

    .venv/bin/python benchmarks/solvers.py            # prints both tables (a few minutes)

(a) Accuracy. The model is the exact denoiser of the course's eight-Gaussian mixture under
    DDPM's discrete schedule (β linear 1e-4..0.02, T = 1000, diffusers' default). Every
    sampler starts from the same x at DDPM step 999 (t = 1) and ends at clean data (σ = 0).
    The reference is the exact PF-ODE solution, DOP853 at rtol 1e-10 (the PF-ODE in
    x/α and σ/α does not depend on the schedule, so it is solved on the smooth flow-matching
    clock and mapped back). Error: RMS over points of ‖x − x_ref‖ at NFE 5, 10, 20, 50.
    diffusers' schedulers are driven through their own ``step`` loop by the same oracle.
(b) Overhead. A constant ε-"model" on a 1024×2 float32 batch (model cost excluded), 10
    steps. Each step is timed on its own (diffusers: model + ``scale_model_input`` +
    ``step``; visgen: between the sampler's per-step callbacks), and the median over all
    steps of all runs is reported, which is robust to the pre-emptions of a shared machine;
    set-up (``set_timesteps``; visgen's grid and its one schedule evaluation) separately.
    Runs alternate between the two libraries; one thread.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from visgen import Denoiser, set_threads
from visgen.oracles import eight_gaussians, reference_pfode
from visgen.sampling import (
    grids,
    sample_ddim,
    sample_dpm_2,
    sample_dpm_3,
    sample_dpmpp_2m,
    sample_dpmpp_2s,
    sample_dpmpp_3m,
    sample_euler,
    sample_heun,
    sample_unipc,
)
from visgen.schedules import VPDiscrete

NFES = (5, 10, 20, 50)

# visgen: (sampler, NFE per step)
SOLVERS = {
    "euler": (sample_euler, 1),
    "heun": (sample_heun, 2),
    "ddim": (sample_ddim, 1),
    "dpm_2": (sample_dpm_2, 2),
    "dpm_3": (sample_dpm_3, 3),
    "dpmpp_2s": (sample_dpmpp_2s, 2),
    "dpmpp_2m": (sample_dpmpp_2m, 1),
    "dpmpp_3m": (sample_dpmpp_3m, 1),
    "unipc": (sample_unipc, 1),
}


def visgen_grid(kind: str, steps: int, schedule) -> torch.Tensor:
    """``steps − 1`` steps from t = 1 down to t = 1/T, then the final denoising step to t = 0."""
    if steps == 1:
        return torch.tensor([1.0, 0.0], dtype=torch.float64)
    t_min = 1 / schedule.T
    if kind == "uniform":
        ts = grids.uniform(steps - 1, 1.0, t_min)
    elif kind == "logsnr":
        ts = grids.logsnr(steps - 1, schedule, 1.0, t_min)
    elif kind == "edm":
        ts = grids.edm(steps - 1, schedule, rho=7.0)
    else:
        raise ValueError(kind)
    return torch.cat([ts, torch.zeros(1, dtype=torch.float64)])


def reference(gmm, x1, schedule) -> torch.Tensor:
    """Exact PF-ODE solution at σ = 0 from x1 at t = 1, solved on the flow-matching clock."""
    lam = schedule.logsnr(torch.tensor(1.0, dtype=torch.float64))
    t_fm = torch.sigmoid(-lam).item()  # same λ on the flow-matching schedule
    x_fm = x1 / schedule.alpha(torch.tensor(1.0, dtype=torch.float64)) * (1 - t_fm)
    return reference_pfode(gmm.denoiser("linear"), x_fm, t_fm, 1e-9, rtol=1e-10, atol=1e-10)


def rms(a, b) -> float:
    return ((a - b) ** 2).sum(1).mean().sqrt().item()


def diffusers_schedulers():
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        UniPCMultistepScheduler,
    )

    return {
        # DDIM's defaults (leading spacing, x0 clipping to [-1, 1]) are for pixel data and
        # start at step 900 for 10 steps; trailing spacing starts at step 999 like the rest.
        "DDIM (trailing, no clip)": lambda: DDIMScheduler(
            clip_sample=False, timestep_spacing="trailing"
        ),
        "DPMSolverMultistep (default: ++2M)": lambda: DPMSolverMultistepScheduler(),
        "DPMSolverMultistep order 3": lambda: DPMSolverMultistepScheduler(solver_order=3),
        "UniPCMultistep (default: bh2)": lambda: UniPCMultistepScheduler(),
        "EulerDiscrete (default)": lambda: EulerDiscreteScheduler(),
    }


def run_diffusers(make, nfe, den, x1):
    """diffusers' own loop: set_timesteps, then model + step, with the exact oracle as model."""
    sch, schedule = make(), den.schedule
    sch.set_timesteps(nfe)
    euler = type(sch).__name__.startswith("Euler")
    x = x1 * (1 + sch.sigmas[0].double() ** 2).sqrt() if euler else x1.clone()
    for i, k in enumerate(sch.timesteps):
        if euler:  # fractional timesteps: read the noise level σ/α from the scheduler
            sigma = sch.sigmas[i].double()
            t = schedule.t_from_logsnr(-torch.log(sigma)).item()
            model_in = sch.scale_model_input(x, k)
        else:
            t, model_in = schedule.t_of_index(int(k)).item(), x
        eps = den(model_in, t).eps
        x = sch.step(eps, k, x, return_dict=False)[0].double()
    return x


def accuracy_table(n_points: int) -> None:
    gmm = eight_gaussians(dtype=torch.float64)
    schedule = VPDiscrete()
    den = gmm.denoiser(schedule)
    x1 = torch.randn(n_points, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = reference(gmm, x1, schedule)
    rows = {}
    for name, (fn, per_step) in SOLVERS.items():
        for kind in ("uniform", "logsnr", "edm"):
            errs = []
            for nfe in NFES:
                steps = (nfe - 1) // per_step + 1  # the last step (denoising) costs 1 NFE
                den.nfe = 0
                y = fn(den, x1, visgen_grid(kind, steps, schedule))
                errs.append((rms(y, ref), den.nfe))
            rows[f"visgen {name} / {kind}"] = errs
    for name, make in diffusers_schedulers().items():
        errs = []
        for nfe in NFES:
            den.nfe = 0
            y = run_diffusers(make, nfe, den, x1)
            errs.append((rms(y, ref), den.nfe))
        rows[f"diffusers {name}"] = errs
    print(
        f"\n(a) RMS error vs the exact PF-ODE solution ({n_points} points; [NFE] where it differs)\n"
    )
    print("| solver / grid | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
    print("|---|" + "---|" * len(NFES))
    for name, errs in rows.items():
        cells = [f"{e:.2e}" + ("" if n == want else f" [{n}]") for (e, n), want in zip(errs, NFES)]
        print(f"| {name} | " + " | ".join(cells) + " |")
    at10 = {name: errs[NFES.index(10)][0] for name, errs in rows.items()}
    best = min((n for n in at10 if n.startswith("visgen")), key=at10.get)
    base = at10["diffusers DPMSolverMultistep (default: ++2M)"]
    print(
        f"\nNFE 10: best visgen {best} {at10[best]:.2e}; diffusers' default "
        f"DPMSolverMultistep {base:.2e}; ratio {at10[best] / base:.3f} (target <= 0.5)"
    )


def overhead_table(reps: int, steps: int = 10) -> None:
    x = torch.randn(1024, 2, generator=torch.Generator().manual_seed(0))
    eps = 0.5 * torch.randn(1024, 2, generator=torch.Generator().manual_seed(1))
    schedule = VPDiscrete()
    den = Denoiser(lambda x, t, cond=None: eps, schedule, "eps")  # the model costs nothing
    makers = diffusers_schedulers()
    pairs = {
        "DDIM": (sample_ddim, "uniform", makers["DDIM (trailing, no clip)"]),
        "DPM-Solver++(2M)": (
            sample_dpmpp_2m,
            "logsnr",
            makers["DPMSolverMultistep (default: ++2M)"],
        ),
        "DPM-Solver++(3M)": (sample_dpmpp_3m, "logsnr", makers["DPMSolverMultistep order 3"]),
        "UniPC-bh2": (sample_unipc, "logsnr", makers["UniPCMultistep (default: bh2)"]),
        # diffusers' Euler is Euler in σ = σ_t/α_t on x/α: the same method as DDIM
        "Euler in σ/α (visgen: DDIM)": (sample_ddim, "uniform", makers["EulerDiscrete (default)"]),
        "Euler (visgen: in t, another method)": (
            sample_euler,
            "uniform",
            makers["EulerDiscrete (default)"],
        ),
    }

    def visgen_times(fn, kind):
        """(set-up, [per-step durations]): steps are delimited by the sampler's callback."""
        marks = []
        t0 = time.perf_counter()
        fn(
            den,
            x,
            visgen_grid(kind, steps, schedule),
            callback=lambda *a: marks.append(time.perf_counter()),
        )
        marks.append(time.perf_counter())
        return marks[0] - t0, [b - a for a, b in zip(marks[:-1], marks[1:])]

    def diffusers_times(sch):
        t0 = time.perf_counter()
        sch.set_timesteps(steps)
        marks, y = [time.perf_counter()], x
        for k in sch.timesteps:
            y = sch.step(eps, k, sch.scale_model_input(y, k), return_dict=False)[0]
            marks.append(time.perf_counter())
        return marks[0] - t0, [b - a for a, b in zip(marks[:-1], marks[1:])]

    print(
        f"\n(b) Overhead, µs: median per step and per call set-up ({steps} steps, "
        f"1024×2 float32, model excluded, {reps} runs)\n"
    )
    print("| solver | visgen step | diffusers step | ratio | visgen set-up | diffusers set-up |")
    print("|---|---|---|---|---|---|")
    for name, (fn, kind, make) in pairs.items():
        sch = make()
        runs = {"v": [], "d": []}
        for _ in range(reps):  # interleaved, so both see the same machine load
            runs["v"].append(visgen_times(fn, kind))
            runs["d"].append(diffusers_times(sch))
        (vset, vstep), (dset, dstep) = (
            (
                1e6 * statistics.median(r[0] for r in runs[k]),
                1e6 * statistics.median(d for r in runs[k] for d in r[1]),
            )
            for k in ("v", "d")
        )
        print(
            f"| {name} | {vstep:.0f} | {dstep:.0f} | {vstep / dstep:.2f} | {vset:.0f} | {dset:.0f} |"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000, help="points in the accuracy test")
    parser.add_argument("--reps", type=int, default=100, help="timed runs per sampler")
    args = parser.parse_args(argv)
    set_threads(1)
    import diffusers

    print(
        f"visgen solvers vs diffusers {diffusers.__version__}; torch {torch.__version__}; "
        f"{platform.processor() or platform.machine()}, 1 thread; {time.strftime('%Y-%m-%d')}"
    )
    accuracy_table(args.points)
    overhead_table(args.reps)


if __name__ == "__main__":
    main()
