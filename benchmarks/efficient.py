"""Every lever of the course on the same digits, on the same axes (lecture 10).

One run places each technique on the speed–quality map of :mod:`visgen.efficient.frontier`:
FLOPs per sample and their fraction of the teacher's 50-step Euler sampler (counted),
CPU seconds of the batch (one thread), PSNR against that teacher's samples from the same
noise and labels, and the Fréchet distance on the evaluation classifier's features next to
the real-data floor. The teachers are the cached assets ``fm_digits`` (MLP), ``fm_digits_unet``
and ``fm_digits_dit``; the rows are

* lecture 4: Euler, DPM-Solver++(2M) and UniPC at 5 / 10 / 20 NFE on every teacher;
* lectures 6–7: every few-step student of tour chapter L07 (the same cache entries: 600
  generator updates; the U-Net only has the MMD and SwD students) at 1 / 2 / 4 NFE;
* lecture 10: DeepCache (U-Net), FORA, the uniform residual cache and TeaCache (DiT) at
  several intervals / thresholds; fake-quantised W8A8, W4A16, W4A4 (naive, SmoothQuant,
  SVDQuant) and the real INT8 W8A8 layer (DiT).

Then the two **wall-clock ratios** the lecture claims, each measured in one process with
interleaved repetitions (medians), the load average printed next to them:

* INT8: the DiT's linear layers (attention and MLP maps of every block) on the activations
  of a real sampling step, fp32 ``nn.Linear`` vs :class:`~visgen.efficient.Int8Linear`, and
  the whole 50-step sampler; with ``torch.ao.quantization.quantize_dynamic`` (deprecated in
  torch 2.13) beside it when it still exists;
* caching: the 50-step sampler plain vs cached (DeepCache, FORA, TeaCache).

    python benchmarks/efficient.py                      # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/efficient.py        # smoke test
    python benchmarks/efficient.py --skip-frontier --reps 9 --json out.json
    python benchmarks/efficient.py --skip-ratios        # the frontier table only
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch
from torch import nn

from visgen import budget, set_threads
from visgen.course import helpers
from visgen.course.chapters import l07_distribution_matching as l07
from visgen.data import get_dataset
from visgen.efficient import (
    Int8Linear,
    calibrate_teacache,
    compare_at_matched_skips,
    deepcache,
    fora,
    int8_linears,
    teacache,
)
from visgen.efficient.frontier import REFERENCE_STEPS, levers, measure
from visgen.fewstep import get_task
from visgen.metrics import image_metrics
from visgen.param import Denoiser
from visgen.sampling import sample_euler, uniform
from visgen.timing import interleaved_medians, load_average, machine
from visgen.train import asset

STEPS = REFERENCE_STEPS


def _teachers() -> dict:
    return {
        "MLP": get_task("digits").teacher,
        "U-Net": asset("fm_digits_unet", progress=False).denoiser(),
        "DiT": asset("fm_digits_dit", progress=False).denoiser(),
    }


def _teacache(dit, calibration_runs: int):
    runs = [
        (torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(100 + i)),
         torch.arange(16) % 10)
        for i in range(calibration_runs)
    ]  # fmt: skip
    return calibrate_teacache(dit, runs, sample_euler, uniform(STEPS))


def frontier(teachers, z, y, fit, deltas) -> list[dict]:
    dit = teachers["DiT"]
    calib = [(torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(200 + i)),
              torch.arange(16) % 10) for i in range(2)]  # fmt: skip

    def calibrate(model):
        den = Denoiser(model, dit.schedule, dit.prediction)
        for zc, yc in calib:
            sample_euler(den, zc, uniform(STEPS), yc)

    students = l07.trained_students()
    all_levers = levers(
        teachers,
        students=students,
        solver_nfes=(5, 10, 20),
        solvers=("Euler", "DPM-Solver++(2M)", "UniPC"),
        deepcache_intervals=(2, 3, 4, 6),
        fora_intervals=(2, 3, 4),
        uniform_intervals=(2, 3),
        teacache_settings=[(d, fit.coefficients) for d in deltas],
        calibrate=calibrate,
    )
    rows, refs = [], {}
    for lever in all_levers:
        ref, ref_flops = refs.get(lever.teacher, (None, None))
        row = measure(lambda lever=lever: lever.generate(z, y), ref, y, reference_flops=ref_flops,
                      technique=lever.technique, family=lever.family, teacher=lever.teacher,
                      NFE=lever.nfe)  # fmt: skip
        x = row.pop("_samples")
        if lever.family == "teacher":
            refs[lever.teacher] = (x, row["flops"])
            row["fraction"], row["psnr"] = 1.0, float("inf")
        rows.append(row)
        print(f"{row['teacher']:6s} {row['technique']:34s} fraction {row['fraction']:.3f} "
              f"cpu {row['cpu_s']:6.1f} s  PSNR {row['psnr']:6.2f}  FD {row['fd']:7.2f}",
              flush=True)  # fmt: skip
    return rows


@torch.no_grad()
def int8_ratio(dit, z, y, reps: int) -> dict:
    """The DiT's block linear layers, fp32 vs INT8, on the inputs of a real sampling step."""
    model = dit.model
    inputs = []
    hooks = [m.register_forward_hook(lambda m, a, out: inputs.append((m, a[0].clone())))
             for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".image." in n
             and ".ada" not in n]  # fmt: skip
    sample_euler(dit, z, torch.tensor([0.5, 0.48], dtype=torch.float64), y)  # one mid step
    for h in hooks:
        h.remove()
    layers = [(m, Int8Linear(m), x) for m, x in inputs]

    def run(which):
        return lambda: [(fp if which == "fp32" else q)(x) for fp, q, x in layers]

    fns = {"fp32": run("fp32"), "int8": run("int8")}
    dynamic = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torch.ao.quantization import quantize_dynamic

            dynamic = quantize_dynamic(nn.ModuleList([m for m, _, _ in layers]), {nn.Linear},
                                       dtype=torch.qint8)  # fmt: skip
        except (ImportError, RuntimeError, AttributeError):
            dynamic = None
        if dynamic is not None:
            fns["quantize_dynamic"] = lambda: [d(x) for d, (_, _, x) in zip(dynamic, layers)]
        load_before = load_average()
        layer_times = interleaved_medians(fns, reps)
    int8_model = Denoiser(int8_linears(model), dit.schedule, dit.prediction)
    samplers = {"fp32": lambda: sample_euler(dit, z, uniform(STEPS), y),
                "int8": lambda: sample_euler(int8_model, z, uniform(STEPS), y)}  # fmt: skip
    sampler_times = interleaved_medians(samplers, max(3, reps // 3))
    fd = {k: image_metrics(f().clamp(-1, 1), "digits", cond=y)["fd"] for k, f in samplers.items()}
    return {
        "layers": len(layers),
        "rows_per_layer": inputs[0][1].numel() // inputs[0][1].shape[-1],
        "layer_cpu_s": {k: v.cpu for k, v in layer_times.items()},
        "layer_wall_s": {k: v.wall for k, v in layer_times.items()},
        "sampler_cpu_s": {k: v.cpu for k, v in sampler_times.items()},
        "sampler_wall_s": {k: v.wall for k, v in sampler_times.items()},
        "fd": fd,
        "load": f"{load_before} → {load_average()}",
    }


@torch.no_grad()
def caching_ratio(teachers, z, y, fit, delta, reps: int) -> dict:
    unet, dit = teachers["U-Net"], teachers["DiT"]
    fns = {
        "U-Net plain": lambda: sample_euler(unet, z, uniform(STEPS), y),
        "DeepCache N = 3": lambda: sample_euler(deepcache(unet, steps=STEPS, interval=3), z,
                                                uniform(STEPS), y),
        "DiT plain": lambda: sample_euler(dit, z, uniform(STEPS), y),
        "FORA N = 2": lambda: sample_euler(fora(dit, steps=STEPS, interval=2), z, uniform(STEPS), y),
        "FORA N = 3": lambda: sample_euler(fora(dit, steps=STEPS, interval=3), z, uniform(STEPS), y),
        f"TeaCache δ = {delta:.3g}": lambda: sample_euler(
            teacache(dit, steps=STEPS, threshold=delta, coefficients=fit.coefficients), z,
            uniform(STEPS), y),
    }  # fmt: skip
    load_before = load_average()
    times = interleaved_medians(fns, reps)
    fd = {k: image_metrics(f().clamp(-1, 1), "digits", cond=y)["fd"] for k, f in fns.items()}
    return {"cpu_s": {k: v.cpu for k, v in times.items()},
            "wall_s": {k: v.wall for k, v in times.items()}, "fd": fd,
            "load": f"{load_before} → {load_average()}"}  # fmt: skip


def markdown(rows, int8, caching, floor) -> str:
    lines = ["| teacher | technique | family | NFE | FLOPs / sample | fraction | CPU s | PSNR (dB) "
             "| FD | confidence | right class |", "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| — | real digits (floor) | — | — | — | — | — | — | {floor['FD (classifier)']:.2f} "
             f"| {floor['confidence']:.2f} | {floor['right class']:.2f} |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['teacher']} | {r['technique']} | {r['family']} | {r['NFE']} | "
                     f"{r['flops'] / 1e6:.1f} M | {r['fraction']:.3f} | {r['cpu_s']:.1f} | "
                     f"{r['psnr']:.1f} | {r['fd']:.2f} | {r['confidence']:.2f} | "
                     f"{r['right class']:.2f} |")  # fmt: skip
    if int8:
        c, w = int8["layer_cpu_s"], int8["layer_wall_s"]
        lines += ["", f"INT8 on the DiT's {int8['layers']} block linear layers "
                  f"({int8['rows_per_layer']} rows each), load {int8['load']}:", "",
                  "| path | layers CPU ms | layers wall ms | speed-up (CPU) | speed-up (wall) |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for k in c:
            lines.append(f"| {k} | {1e3 * c[k]:.1f} | {1e3 * w[k]:.1f} | "
                         f"{c['fp32'] / c[k]:.2f}× | {w['fp32'] / w[k]:.2f}× |")  # fmt: skip
        sc, sw = int8["sampler_cpu_s"], int8["sampler_wall_s"]
        lines += ["", f"Whole 50-step sampler: fp32 {sc['fp32']:.2f} s CPU / {sw['fp32']:.2f} s "
                  f"wall, INT8 {sc['int8']:.2f} / {sw['int8']:.2f} s ({sc['fp32'] / sc['int8']:.2f}× "
                  f"CPU, {sw['fp32'] / sw['int8']:.2f}× wall); FD fp32 {int8['fd']['fp32']:.2f}, "
                  f"INT8 {int8['fd']['int8']:.2f} ({int8['fd']['int8'] / int8['fd']['fp32'] - 1:+.1%})."]  # fmt: skip
    if caching:
        c, w, fd = caching["cpu_s"], caching["wall_s"], caching["fd"]
        lines += ["", f"Caching, 50-step sampler, load {caching['load']}:", "",
                  "| sampler | CPU s | wall s | speed-up (CPU) | speed-up (wall) | FD | FD change |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for k in c:
            base = "U-Net plain" if k.startswith(("U-Net", "DeepCache")) else "DiT plain"
            lines.append(f"| {k} | {c[k]:.2f} | {w[k]:.2f} | {c[base] / c[k]:.2f}× | "
                         f"{w[base] / w[k]:.2f}× | {fd[k]:.2f} | {fd[k] / fd[base] - 1:+.1%} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=budget(full=7, fast=2),
                   help="interleaved repetitions of the timed runs (medians)")  # fmt: skip
    p.add_argument("--skip-frontier", action="store_true", help="only the wall-clock ratios")
    p.add_argument("--skip-ratios", action="store_true", help="only the frontier table")
    p.add_argument("--timing-samples", type=int, default=budget(full=128, fast=32),
                   help="batch of the timed samplers (the frontier uses the whole test split)")  # fmt: skip
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    set_threads(1)
    start = time.perf_counter()
    test = get_dataset("digits", "test")
    y = test.labels[: budget(full=len(test), fast=64)]
    z = torch.randn(len(y), 1, 8, 8, generator=torch.Generator().manual_seed(1))
    teachers = _teachers()
    fit = _teacache(teachers["DiT"], budget(full=16, fast=4))
    zt, yt = z[: args.timing_samples], y[: args.timing_samples]
    # TeaCache's threshold at the uniform cache's compute, matched on the timing batch
    matched = compare_at_matched_skips(teachers["DiT"], fit.coefficients, zt, yt, sample_euler,
                                       uniform(STEPS))  # fmt: skip
    delta = matched.threshold
    rows = (
        [] if args.skip_frontier else frontier(teachers, z, y, fit, (delta, 2 * delta, 4 * delta))
    )
    int8 = None if args.skip_ratios else int8_ratio(teachers["DiT"], zt, yt, args.reps)
    caching = (
        None if args.skip_ratios else caching_ratio(teachers, zt, yt, fit, 2 * delta, args.reps)
    )
    floor = helpers.digits_floor_row()
    print(f"\n{time.strftime('%Y-%m-%d')}, {machine()}, torch {torch.__version__}, 1 thread, "
          f"{len(y)} samples, TeaCache fit R² {fit.r2:.2f}, matched δ {delta:.3g} "
          f"({matched.teacache_computed} / {matched.uniform_computed} calls; PSNR vs uniform "
          f"N = 2 on the timing batch {matched.teacache_psnr:.2f} vs {matched.uniform_psnr:.2f} dB), "
          f"total {time.perf_counter() - start:.0f} s, load {load_average()}\n")  # fmt: skip
    print(markdown(rows, int8, caching, floor))
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump({"rows": rows, "int8": int8, "caching": caching, "delta": delta,
                       "fit_r2": fit.r2}, f, indent=1, default=str)  # fmt: skip
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
