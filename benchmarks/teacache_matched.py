"""TeaCache against the uniform residual cache at a matched skip rate, over seeds (lecture 10).

Issue 19's bar: "TeaCache at a matched ≈ 50 % skip rate is ≥ 1 dB PSNR above uniform skipping".
On the 50-step ``fm_digits_dit`` teacher, for every grid (the uniform grid of the course's
reference sampler and SD3's shifted grid, shift 3) × calibration seed × sample-noise seed:

* calibrate TeaCache's polynomial on ``--calibration-runs`` plain runs of 16 samples
  (noise generators 100 + 16·seed + i, labels 0–9 cycling; calibration seed 0 is what deck 10
  uses);
* on ``--samples`` test labels (or 0–9 cycling, ``--labels cycle``) with noise generator
  ``seed``, compare TeaCache with the uniform cache N = 2 (26 of 50 calls run the blocks) at
  the same number of full calls on that batch — :func:`visgen.efficient.compare_at_matched_skips`, the one matching rule of
  the course (deck 10, tour chapter L10, the tests and this script);
* report the gain (TeaCache PSNR − uniform PSNR, dB) per cell and its mean, min and max per
  grid;
* beside it, the gain of TeaCache's rule with a *perfect* indicator (R² = 1): the schedule
  that accumulates the uncached trajectory's own output changes, at the same number of full
  calls (:func:`visgen.efficient.perfect_indicator_schedule`) — whether a better calibration
  polynomial would help, or the rule itself is what falls short on that grid.

    python benchmarks/teacache_matched.py                                  # BENCHMARKS.md
    python benchmarks/teacache_matched.py --samples 64 --grids uniform --noise-seeds 1 2 3 4
    # deck 10's caching slide is the cell (calibration seed 0, noise seed 2) of
    python benchmarks/teacache_matched.py --samples 64 --labels cycle --grids uniform
    VISGEN_FAST=1 python benchmarks/teacache_matched.py --samples 32       # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from visgen import set_threads
from visgen.data import get_dataset
from visgen.efficient import (
    calibrate_teacache,
    compare_at_matched_skips,
    perfect_indicator_schedule,
    relative_l1,
    scheduled_cache,
)
from visgen.efficient.frontier import REFERENCE_STEPS
from visgen.metrics import psnr
from visgen.sampling import grids, sample_euler, uniform
from visgen.timing import load_average
from visgen.train import asset

STEPS = REFERENCE_STEPS
GRIDS = {"uniform": lambda: uniform(STEPS), "sd3": lambda: grids.sd3(STEPS, 3.0)}


def calibration_runs(seed: int, runs: int) -> list:
    """``runs`` batches of 16 noises (generators 100 + 16·seed + i) and labels 0–9 cycling."""
    return [
        (torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(100 + 16 * seed + i)),
         torch.arange(16) % 10)
        for i in range(runs)
    ]  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=256, help="test labels per batch")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--calibration-seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--calibration-runs", type=int, default=16)
    p.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    p.add_argument("--labels", default="test", choices=("test", "cycle"),
                   help="the first test labels, or 0–9 cycling (deck 10's PSNR batch)")  # fmt: skip
    p.add_argument("--json", default=None, help="also write the cells to this file")
    args = p.parse_args(argv)
    set_threads(1)
    start_cpu, start_wall, load = time.process_time(), time.perf_counter(), load_average()
    dit = asset("fm_digits_dit", progress=False).denoiser()
    if args.labels == "test":
        labels = get_dataset("digits", "test").labels[: args.samples]
    else:
        labels = torch.arange(args.samples) % 10
    cells = []
    for grid in args.grids:
        ts = GRIDS[grid]()
        fits = {
            seed: calibrate_teacache(dit, calibration_runs(seed, args.calibration_runs),
                                     sample_euler, ts)
            for seed in args.calibration_seeds
        }  # fmt: skip
        for nseed in args.noise_seeds:
            z = torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(nseed))
            outputs = []
            plain = sample_euler(dit, z, ts, labels,
                                 callback=lambda i, t, x, pred, o=outputs: o.append(pred.raw))  # fmt: skip
            changes = [relative_l1(b, a) for a, b in zip(outputs, outputs[1:])]
            perfect = None
            for cseed, fit in fits.items():
                m = compare_at_matched_skips(dit, fit.coefficients, z, labels, sample_euler, ts,
                                             plain=plain)  # fmt: skip
                if perfect is None:
                    schedule = perfect_indicator_schedule(changes, m.uniform_computed)
                    x = sample_euler(scheduled_cache(dit, computed=schedule), z, ts, labels)
                    perfect = (
                        float(psnr(x, plain).mean()) - m.uniform_psnr,
                        "".join("x" if c else "." for c in schedule),
                    )
                cell = {"grid": grid, "calibration seed": cseed, "noise seed": nseed,
                        "fit R²": fit.r2, "threshold": m.threshold,
                        "computed (uniform / TeaCache)": f"{m.uniform_computed} / "
                        f"{m.teacache_computed}",
                        "uniform PSNR": m.uniform_psnr, "TeaCache PSNR": m.teacache_psnr,
                        "gain (dB)": m.gain, "TeaCache schedule": m.schedule,
                        "perfect-indicator gain (dB)": perfect[0],
                        "perfect-indicator schedule": perfect[1]}  # fmt: skip
                cells.append(cell)
                print(" | ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in cell.items()), flush=True)  # fmt: skip
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {len(labels)} {args.labels} labels, "
          f"{args.calibration_runs} calibration runs of 16, {time.process_time() - start_cpu:.0f} "
          f"CPU s, {time.perf_counter() - start_wall:.0f} s wall, load {load} → {load_average()}\n")  # fmt: skip
    print(
        "| grid | cell (calibration seed, noise seed): gain dB | mean | min | max | "
        "perfect indicator: mean [min–max] | fit R² |"
    )
    print("|---|---|---|---|---|---|---|")
    for grid in args.grids:
        gains = [c for c in cells if c["grid"] == grid]
        values = [c["gain (dB)"] for c in gains]
        per_cell = ", ".join(f"({c['calibration seed']}, {c['noise seed']}): "
                             f"{c['gain (dB)']:+.2f}" for c in gains)  # fmt: skip
        ideal = [c["perfect-indicator gain (dB)"] for c in gains]
        r2 = sorted({round(c["fit R²"], 2) for c in gains})
        print(f"| {grid} | {per_cell} | {statistics.mean(values):+.2f} | {min(values):+.2f} | "
              f"{max(values):+.2f} | {statistics.mean(ideal):+.2f} [{min(ideal):+.2f}–"
              f"{max(ideal):+.2f}] | {', '.join(map(str, r2))} |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(cells, f, indent=1)


if __name__ == "__main__":
    main()
