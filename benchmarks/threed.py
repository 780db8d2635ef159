"""Lecture 12's measured numbers over seeds: the bars of ``tests/test_threed_trained.py`` and the
tables of tour chapter L12, with their spread.

For each seed s every task of :mod:`visgen.threed.tasks` is run with its own seed shifted by s,
with the standard cached assets (``cube_prior16``, ``mvdream16``, ``zero123_16``; also ``seva16``
with ``--seva``) or, with ``--vary-training``, with the assets retrained at ``train.seed = s``
(s = 0 is the standard asset):

* SDS of the canonical-cube prior, view-agnostic vs view-conditioned (colour RMSE, Janus
  score), and the saturation at CFG 1 / 5 / 20;
* joint vs independent 4-view generation: cross-view consistency;
* novel views from one input view: PSNR of the model and of copying the input view;
* generate-then-reconstruct vs SDS at equal NFE (60) and at 800 NFE: held-out PSNR.

``--samplers`` prints instead the joint / independent 4-view generation of ``mvdream16`` under
the ODE and the stochastic samplers of :func:`visgen.threed.tasks.joint_generation`, with the
consistency over the orbits whose every view shows at least 2 and 3 colours (BENCHMARKS.md,
"Lecture 12" (d)).

    python benchmarks/threed.py                      # full budgets (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/threed.py        # the test budgets
    python benchmarks/threed.py --vary-training          # the spread over trained networks too
    python benchmarks/threed.py --samplers --seeds 1,2,3  # joint generation per sampler
"""

from __future__ import annotations

import argparse
import json
import os
import time

from visgen import budget, set_threads
from visgen.threed.cameras import Cameras
from visgen.threed.metrics import cross_view_consistency, orbit_colors
from visgen.threed.tasks import (
    distill_canonical_cube,
    joint_generation,
    novel_view_scores,
    pipeline_scores,
    sds_scores,
)
from visgen.timing import machine
from visgen.train import ASSETS, train_cached


def _trained(name: str, seed: int):
    spec = ASSETS[name]()
    if seed:
        spec["train"] = {**spec["train"], "seed": seed}
    return train_cached(spec, progress=False).denoiser()


def run_seed(seed: int, seva: bool, vary_training: bool) -> dict:
    row = {}
    train_seed = seed if vary_training else 0
    prior = _trained("cube_prior16", train_seed)
    steps = 200  # the tests, the tour chapter (full) and the deck
    for name, kw in (("agnostic", {"view": False}), ("view", {"view": True})):
        s = sds_scores(distill_canonical_cube(prior, seed=seed, steps=steps, **kw))
        row[f"SDS {name}: colour RMSE"] = s["face colour RMSE"]
        row[f"SDS {name}: Janus score"] = s["Janus score"]
    for w in (1.0, 5.0, 20.0):
        s = sds_scores(distill_canonical_cube(prior, view=True, guidance=w, seed=seed, steps=steps))
        row[f"SDS saturation, CFG {w:g}"] = s["saturation"]
    n = budget(full=200, fast=100)
    res = joint_generation(_trained("mvdream16", train_seed), n, seed=1 + seed)
    row["joint consistency"] = res["joint consistency"]
    row["independent consistency"] = res["independent consistency"]
    row["joint colours per view"] = res["joint colours"]
    row["data colours per view"] = res["data colours"]
    novel = ["zero123_16", "seva16"] if seva else ["zero123_16"]
    for name in novel:
        res = novel_view_scores(_trained(name, train_seed), n, seed=2 + seed)
        row[f"{name} PSNR"] = res["model"]
        row[f"{name} PSNR +90°"] = res["model 90"]
    row["copy-input PSNR"] = res["copy"]
    row["copy-input PSNR +90°"] = res["copy 90"]
    res = pipeline_scores(
        _trained("zero123_16", train_seed),
        4,  # cubes (the test and the full-budget chapter use 4)
        seed=3 + seed,
        sds_steps=(15, 200),
    )
    for key in ("two-stage PSNR", "SDS 15 PSNR", "SDS 200 PSNR"):
        row[f"pipeline: {key}"] = res[key]
    return row


SAMPLERS = {  # label: joint_generation's sampler options
    "Euler, 20 steps (the tests)": {"sampler": "euler", "steps": 20},
    "Euler, 100 steps": {"sampler": "euler", "steps": 100},
    "ancestral, 100 steps": {"sampler": "ancestral", "steps": 100},
    "predictor-corrector, 100 steps, snr 0.16": {"sampler": "pc", "steps": 100, "snr": 0.16},
    "predictor-corrector, 100 steps, snr 0.3": {"sampler": "pc", "steps": 100, "snr": 0.3},
}


def _at_least(images, cams, colors: int) -> str:
    """Consistency over the orbits whose every view shows ``colors``+ colours, and their count."""
    flat = Cameras.from_vector(cams.reshape(-1, 16), 16, 16)
    try:
        value = f"{cross_view_consistency(images, flat, min_colors=colors):.3f}"
    except ValueError:  # no such orbit
        value = "—"
    count = int((orbit_colors(images, flat) >= colors).all(1).sum())
    return f"{value} ({count})"


def _cells(res: dict, kind: str) -> list[str]:
    """The table's cells of one row (``joint``, ``independent`` or ``data``) of a run."""
    return [
        f"{res[f'{kind} consistency']:.3f}",
        _at_least(res[kind], res["cameras"], 2),
        _at_least(res[kind], res["cameras"], 3),
        f"{res[f'{kind} colours']:.2f}",
    ]


def run_samplers(seed: int, vary_training: bool) -> dict:
    """Rows label → cells of the sampler table for one evaluation seed (100 orbits)."""
    model = _trained("mvdream16", seed if vary_training else 0)
    rows = {}
    for label, options in SAMPLERS.items():
        res = joint_generation(model, 100, seed=seed, **options)
        for kind in ("joint", "independent"):
            rows[f"{label}, {kind}"] = _cells(res, kind)
    rows["data"] = _cells(res, "data")  # the same orbits under every sampler
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seva", action="store_true", help="also the SEVA-style model")
    parser.add_argument("--vary-training", action="store_true", help="retrain per seed")
    parser.add_argument("--samplers", action="store_true", help="joint generation per sampler")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    set_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.samplers:
        print(
            "| 100 orbits, seed | sampler, views | consistency | orbits with 2+ colours "
            "in every view: consistency (count) | 3+ colours | colours per view |"
        )
        print("|---|---|---|---|---|---|")
        for s in seeds:
            for label, cells in run_samplers(s, args.vary_training).items():
                print(f"| {s} | {label} | {' | '.join(cells)} |")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(f"\nCPU {cpu:.0f} s, wall {wall:.0f} s (load {os.getloadavg()[0]:.1f}), {machine()}")
        return
    rows = {s: run_seed(s, args.seva, args.vary_training) for s in seeds}
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    keys = list(rows[seeds[0]])
    print(f"| metric | {' | '.join(f'seed {s}' for s in seeds)} | min | max |")
    print("|---|" + "---|" * (len(seeds) + 2))
    for k in keys:
        vals = [rows[s][k] for s in seeds]
        cells = " | ".join(f"{v:.3f}" for v in vals)
        print(f"| {k} | {cells} | {min(vals):.3f} | {max(vals):.3f} |")
    load = os.getloadavg()
    print(
        f"\nCPU {cpu:.0f} s, wall {wall:.0f} s (load {load[0]:.1f}), one thread, "
        f"{machine()}, "
        f"{'FAST' if os.environ.get('VISGEN_FAST') == '1' else 'full'} budgets"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "cpu_s": cpu, "wall_s": wall, "load": load}, f, indent=1)


if __name__ == "__main__":
    main()
