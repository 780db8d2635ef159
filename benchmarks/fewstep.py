"""Few-step generators of lectures 6 and 7 side by side, on the same teachers and budget.

Trains every method registered in :data:`visgen.fewstep.METHODS` for the same number of
generator updates on each task and reports, at 1, 2 and 4 NFE (where a method supports them):

* ``8gauss_fm`` (flow-matching teacher on the 8-Gaussian target): energy distance to fresh
  target samples, share of samples within 3σ of a mode, smallest mode share (ideal 0.125);
* ``digits`` (flow-matching MLP teacher, class-conditional, sampled with the 397 labels of
  the test split): Fréchet distance on the visgen classifier's features against the test
  split, the classifier's mean confidence and its agreement with the requested class;
* ``digits_unet`` (the convolutional teacher; every method with a convolutional student
  initialised from the teacher, in the recipe of :data:`visgen.fewstep.RECIPES`): the same
  image metrics.

Each task's teacher is measured with a 50-step Euler sampler (50 NFE) as the reference, and
the data-vs-data floor is printed beside it (rows of :mod:`visgen.course.helpers`, as in the
tour). A method that cannot run on a task (e.g. SwD
without a convolutional teacher) is listed as n/a with the reason. The training cost is the
CPU time of the training process (``time.process_time``, one thread: the cost on a quiet
core, which the load of a shared machine does not inflate as it does wall time); with
``--seeds 0,1`` every method is trained once per seed and a cell gives the mean FD (or
energy distance) with the range over seeds.

    python benchmarks/fewstep.py                       # full budget (BENCHMARKS.md)
    VISGEN_FAST=1 python benchmarks/fewstep.py         # smoke test
    python benchmarks/fewstep.py --methods dmd,drifting --tasks 8gauss_fm --json out.json
    python benchmarks/fewstep.py --tasks digits_unet --steps 300 --seeds 0,1
    python benchmarks/fewstep.py --tasks digits --methods consistency_training \
        --options '{"consistency_training": {"schedule": "ect", "init_from_teacher": true}}'
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from visgen import budget, set_threads
from visgen.course import helpers
from visgen.data import get_dataset
from visgen.fewstep import METHODS, UnsupportedTeacher, get_task, recipe
from visgen.oracles import eight_gaussians
from visgen.sampling import sample_euler, uniform
from visgen.timing import load_average, machine

NFES = (1, 2, 4)
TASKS = ("8gauss_fm", "digits", "digits_unet")


def _reference(task, n: int):
    """(noise, cond, reference, floor row) of a task; digits use the test split's labels."""
    noise = torch.randn((n, *task.shape), generator=torch.Generator().manual_seed(1))
    if task.num_classes is None:
        ref = eight_gaussians().sample(n, torch.Generator().manual_seed(123))
        return noise, None, ref, helpers.gaussians_floor_row(ref, torch.Generator().manual_seed(7))
    cond = get_dataset("digits", "test").labels[:n]
    return noise, cond, None, helpers.digits_floor_row()


def _metrics(task, x, cond, ref) -> dict:
    if task.num_classes is None:
        r = helpers.gaussians_row("", x, ref)
        return {
            "ed": r["energy distance"],
            "in_mode": r["in a mode"],
            "min_mode": r["smallest mode"],
        }
    r = helpers.digits_row("", x.clamp(-1, 1), cond)
    return {
        "fd": r["FD (classifier)"],
        "confidence": r["confidence"],
        "agreement": r["right class"],
    }


def _floor(task, floor_row) -> dict:
    if task.num_classes is None:
        return {"ed": floor_row["energy distance"], "in_mode": floor_row["in a mode"],
                "min_mode": floor_row["smallest mode"]}  # fmt: skip
    return {"fd": floor_row["FD (classifier)"], "confidence": floor_row["confidence"],
            "agreement": floor_row["right class"]}  # fmt: skip


def _train(method, task, steps: int, seed: int, noise, cond, ref, extra=None) -> dict:
    lecture, train = METHODS[method]
    options = {**recipe(method, task.name), **(extra or {}).get(method, {})}
    start, cpu = time.perf_counter(), time.process_time()
    gen = train(task, steps, torch.Generator().manual_seed(seed), **options)
    row = {"lecture": lecture, "options": options, "seed": seed,
           "train_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}  # fmt: skip
    for nfe in NFES:
        if nfe in gen.nfes:
            x = gen.sample(noise, nfe, cond, torch.Generator().manual_seed(2))
            row[nfe] = _metrics(task, x, cond, ref)
    return row


def run(tasks, methods, steps: int, n_points: int, seeds=(0,), options=None) -> dict:
    """``options``: {method: training options} over each task's recipe."""
    results = {}
    for name in tasks:
        task = get_task(name)
        n = n_points if task.num_classes is None else len(get_dataset("digits", "test"))
        noise, cond, ref, floor_row = _reference(task, n)
        teacher = sample_euler(task.teacher, noise, uniform(50), cond)
        out = {
            "teacher_50nfe": _metrics(task, teacher, cond, ref),
            "floor": _floor(task, floor_row),
            "n": n,
            "methods": {},
        }
        for method in methods:
            runs = []
            for seed in seeds:
                try:
                    runs.append(_train(method, task, steps, seed, noise, cond, ref, options))
                except UnsupportedTeacher as err:  # not a bug: a teacher it cannot use
                    out["methods"][method] = {"lecture": METHODS[method][0], "n/a": str(err)}
                    print(f"[{name}] {method}: n/a ({err})", flush=True)
                    break
                print(f"[{name}] {method} seed {seed}: {runs[-1]['cpu_s']:.0f} CPU-s "
                      f"{runs[-1]}", flush=True)  # fmt: skip
            else:
                out["methods"][method] = {"lecture": runs[0]["lecture"], "runs": runs}
        results[name] = out
    return results


def _cell(ms: list, points: bool) -> str:
    """Mean (range over seeds) of the distance, mean of the other two metrics."""
    ms = [m for m in ms if m is not None]
    if not ms:
        return "—"
    keys = ("ed", "in_mode", "min_mode") if points else ("fd", "confidence", "agreement")
    fmt = (".4f", ".2f", ".3f") if points else (".2f", ".2f", ".2f")
    means = [sum(m[k] for m in ms) / len(ms) for k in keys]
    first = format(means[0], fmt[0])
    if len(ms) > 1:
        d = [m[keys[0]] for m in ms]
        first += f" ({format(min(d), fmt[0])}–{format(max(d), fmt[0])})"
    return " / ".join([first] + [format(v, f) for v, f in zip(means[1:], fmt[1:])])


def markdown(results: dict) -> str:
    lines = []
    for name, out in results.items():
        points = name.startswith("8gauss")
        what = "ED / in-mode / min mode share" if points else "FD / confidence / right class"
        lines += [
            f"**{name}** (n = {out['n']}; cells: {what}; cost: CPU-s of training, mean over seeds)",
            "",
            "| method | lecture | 1 NFE | 2 NFE | 4 NFE | train cost |",
            "|---|---|---|---|---|---|",
            f"| data vs data (floor) | — | {_cell([out['floor']], points)} | | | |",
            f"| teacher, Euler 50 NFE | — | {_cell([out['teacher_50nfe']], points)} | | | |",
        ]
        for method, row in out["methods"].items():
            if "n/a" in row:
                lines.append(f"| {method} | {row['lecture']} | n/a | n/a | n/a | — |")
                continue
            runs = row["runs"]
            cells = " | ".join(_cell([r.get(k) for r in runs], points) for k in NFES)
            cost = sum(r["cpu_s"] for r in runs) / len(runs)
            lines.append(f"| {method} | {row['lecture']} | {cells} | {cost:.0f} CPU-s |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=budget(full=1000, fast=50),
                   help="generator updates per method (default: 1000, FAST: 50)")  # fmt: skip
    p.add_argument("--methods", default=None, help="comma-separated subset of METHODS")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, from {TASKS}")
    p.add_argument("--n", type=int, default=budget(full=2000, fast=500),
                   help="2D samples (digits: the 397 test labels)")  # fmt: skip
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    p.add_argument("--options", default="{}",
                   help="JSON {method: {option: value}} over visgen.fewstep.RECIPES")  # fmt: skip
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
    seeds = tuple(int(s) for s in args.seeds.split(","))
    options = json.loads(args.options)
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        p.error(f"--options must be a JSON object of objects, got {args.options!r}")
    if set(options) - set(METHODS):
        p.error(f"--options names unknown methods {sorted(set(options) - set(METHODS))}")
    results = run(tasks, methods, args.steps, args.n, seeds, options)
    print(f"\n{machine()}, torch {torch.__version__}, 1 thread, {args.steps} generator updates "
          f"per method, seeds {args.seeds}, total {time.perf_counter() - start:.0f} s, "
          f"load at the end {load_average()}\n")  # fmt: skip
    print(markdown(results))
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump({"steps": args.steps, "seeds": seeds, "results": results}, f, indent=1,
                      default=str)  # fmt: skip
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
