"""Few-step generators of lectures 6 and 7 side by side, on the same teachers and budget.

Trains every method registered in :data:`visgen.fewstep.METHODS` for the same number of
generator updates on each task and reports, at 1, 2 and 4 NFE (where a method supports them):

* ``8gauss_fm`` (flow-matching teacher on the 8-Gaussian target): energy distance to fresh
  target samples, share of samples within 3σ of a mode, smallest mode share (ideal 0.125);
* ``digits`` (flow-matching MLP teacher, class-conditional): Fréchet distance on the visgen
  classifier's features against the test split, and the classifier's mean confidence;
* ``digits_unet`` (convolutional teacher; only the methods that need spatial features or
  several resolutions, see ``UNET_METHODS``): the same image metrics.

Each task's teacher is measured with a 50-step Euler sampler (50 NFE) as the reference, and
the data-vs-data floor is printed beside it. A method that cannot run on a task (e.g. SwD
without a convolutional teacher) is listed as n/a with the reason. Wall time per method is
the training time; timings on a shared machine are noisy (compare ratios within one run).

    python benchmarks/fewstep.py                       # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/fewstep.py         # smoke test
    python benchmarks/fewstep.py --methods dmd,drifting --tasks 8gauss_fm --json out.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import torch

from visgen import budget, set_threads
from visgen.fewstep import METHODS, get_task
from visgen.sampling import sample_euler, uniform

NFES = (1, 2, 4)
TASKS = ("8gauss_fm", "digits", "digits_unet")
UNET_METHODS = ("mmd", "swd")  # a conv teacher costs ~10x per step: only where it is needed


def _points_metrics(x: torch.Tensor, n: int) -> dict:
    from visgen.metrics import energy_distance, mode_coverage
    from visgen.oracles import eight_gaussians

    gmm = eight_gaussians()
    ref = gmm.sample(n, torch.Generator().manual_seed(123))
    cov = mode_coverage(x, gmm.means, 0.3)
    return {"ed": energy_distance(x, ref), "in_mode": cov.in_mode, "min_mode": cov.min_fraction}


def _image_metrics(x: torch.Tensor, cond: torch.Tensor) -> dict:
    from visgen.metrics import image_metrics

    m = image_metrics(x.clamp(-1, 1), "digits", cond=cond)
    return {"fd": m["fd"], "confidence": m["confidence"], "agreement": m.get("agreement")}


def _inputs(task, n: int):
    noise = torch.randn((n, *task.shape), generator=torch.Generator().manual_seed(1))
    cond = None if not task.num_classes else torch.arange(n) % task.num_classes
    return noise, cond


def _teacher_sample(teacher, noise, cond):
    return sample_euler(teacher, noise, uniform(50), cond)


def _student_sample(gen, nfe, generator, noise, cond):
    return gen.sample(noise, nfe, cond, generator)


def _evaluate(task, sample, n: int) -> dict:
    noise, cond = _inputs(task, n)
    x = sample(noise, cond)
    return _points_metrics(x, n) if task.num_classes is None else _image_metrics(x, cond)


def _floor(task, n: int) -> dict:
    if task.num_classes is None:
        from visgen.oracles import eight_gaussians

        return _points_metrics(eight_gaussians().sample(n, torch.Generator().manual_seed(7)), n)
    from visgen.metrics import data_floor

    f = data_floor("digits", n)
    return {"fd": f["fd"], "confidence": f["confidence"]}


def run(tasks, methods, steps: int, n_points: int, n_images: int) -> dict:
    results = {}
    for name in tasks:
        task = get_task(name)
        n = n_points if task.num_classes is None else n_images
        teacher = _evaluate(task, functools.partial(_teacher_sample, task.teacher), n)
        out = {"teacher_50nfe": teacher, "floor": _floor(task, n), "n": n, "methods": {}}
        chosen = [m for m in methods if name != "digits_unet" or m in UNET_METHODS]
        for method in chosen:
            lecture, train = METHODS[method]
            start = time.perf_counter()
            try:
                gen = train(task, steps, torch.Generator().manual_seed(0))
            except TypeError as err:  # the method cannot use this teacher
                out["methods"][method] = {"lecture": lecture, "n/a": str(err)}
                print(f"[{name}] {method}: n/a ({err})", flush=True)
                continue
            wall = time.perf_counter() - start
            row = {"lecture": lecture, "train_s": wall}
            for nfe in NFES:
                if nfe in gen.nfes:
                    g = torch.Generator().manual_seed(2)
                    row[nfe] = _evaluate(task, functools.partial(_student_sample, gen, nfe, g), n)
            out["methods"][method] = row
            print(f"[{name}] {method}: {wall:.0f} s {row}", flush=True)
        results[name] = out
    return results


def _cell(m: dict | None, points: bool) -> str:
    if m is None:
        return "—"
    if points:
        return f"{m['ed']:.4f} / {m['in_mode']:.2f} / {m['min_mode']:.3f}"
    return f"{m['fd']:.2f} / {m['confidence']:.2f}"


def markdown(results: dict) -> str:
    lines = []
    for name, out in results.items():
        points = name.startswith("8gauss")
        what = "ED / in-mode / min mode share" if points else "FD / confidence"
        lines += [
            f"**{name}** (n = {out['n']}; cells: {what})",
            "",
            "| method | lecture | 1 NFE | 2 NFE | 4 NFE | train time |",
            "|---|---|---|---|---|---|",
            f"| data vs data (floor) | — | {_cell(out['floor'], points)} | | | |",
            f"| teacher, Euler 50 NFE | — | {_cell(out['teacher_50nfe'], points)} | | | |",
        ]
        for method, row in out["methods"].items():
            if "n/a" in row:
                lines.append(f"| {method} | {row['lecture']} | n/a | n/a | n/a | — |")
                continue
            cells = " | ".join(_cell(row.get(k), points) for k in NFES)
            lines.append(f"| {method} | {row['lecture']} | {cells} | {row['train_s']:.0f} s |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=budget(full=2000, fast=50),
                   help="generator updates per method (default: 2000, FAST: 50)")  # fmt: skip
    p.add_argument("--methods", default=None, help="comma-separated subset of METHODS")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {TASKS}")
    p.add_argument("--n", type=int, default=budget(full=2000, fast=500), help="2D samples")
    p.add_argument("--n-images", type=int, default=budget(full=1000, fast=200))
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    set_threads(1)
    methods = sorted(METHODS, key=lambda m: (METHODS[m][0], m))
    if args.methods:
        wanted = args.methods.split(",")
        unknown = sorted(set(wanted) - set(METHODS))
        if unknown:
            p.error(f"unknown methods {unknown}; registered: {', '.join(methods)}")
        methods = [m for m in methods if m in wanted]
    tasks = args.tasks.split(",")
    if set(tasks) - set(TASKS):
        p.error(f"unknown tasks {sorted(set(tasks) - set(TASKS))}; choose from {TASKS}")
    start = time.perf_counter()
    results = run(tasks, methods, args.steps, args.n, args.n_images)
    print(f"\n{platform.node()} {platform.processor() or platform.machine()}, torch "
          f"{torch.__version__}, 1 thread, {args.steps} generator updates per method, "
          f"total {time.perf_counter() - start:.0f} s\n")  # fmt: skip
    print(markdown(results))
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump({"steps": args.steps, "results": results}, f, indent=1, default=str)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
