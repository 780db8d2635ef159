"""The trainer's update loop against its per-tensor reference (issue 27: the tour's hot loops).

    .venv/bin/python benchmarks/training.py                       # the four tour teachers
    .venv/bin/python benchmarks/training.py --assets fm_2d --steps 20 --rounds 9
    .venv/bin/python benchmarks/training.py --curve fm_digits_unet 1000:0 2000:0 4000:0 4000:1
    .venv/bin/python benchmarks/training.py --l06-fraction 0.5

For each asset (its full-budget recipe, one thread), two trainers start from the same weights:
the **reference** does what ``Trainer.train_step`` did before issue 27 — AdamW's single-tensor
Python loop (torch's CPU default) and one ``lerp_`` per EMA tensor, walking the modules every
step — and the **current** ``Trainer`` (AdamW ``foreach=True``, one ``_foreach_lerp_`` over
tensor lists made once). Jobs of ``--steps`` updates alternate round by round
(:func:`visgen.timing.interleaved_medians`); the table gives the median CPU ms per update and
whether both trainers hold bit-identical weights and EMA weights after all rounds.

``--curve ASSET STEPS:SEED ...``: quality against the training budget, to see where it stops
improving. Each point is its own run of the asset's recipe with ``steps`` and ``seed`` replaced
(the cosine learning rate spans each budget; the recipe's own steps and seed load the cached
asset), EMA weights, scored by :func:`visgen.course.helpers.digits_row` on the labels of the
digits test split from one noise (seed 7) at 50 and 10 Euler steps (digits assets only).

``--l06-fraction F [--l06-methods NAME ...]``: the same question for tour chapter L06's five
8-Gaussian students (``METHODS_2D``, exact teacher): each at its full budget and at F of it,
seeds 0 and 1 (:func:`visgen.fewstep.trained`, cached as usual), scored by
:func:`visgen.course.helpers.gaussians_row` on 2,000 points from one noise at every NFE the
student samples with; also the data-vs-data floor over four seeds.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from visgen import set_threads
from visgen.config import cpu_seconds
from visgen.course import helpers
from visgen.data import get_dataset
from visgen.nn import build_model
from visgen.sampling import sample_euler, uniform
from visgen.timing import interleaved_medians, load_average, machine
from visgen.train import ASSETS, Trainer, asset, learning_rate
from visgen.train.assets import normalize_spec, training_data
from visgen.train.methods import make_method
from visgen.train.trainer import TrainConfig

ASSET_NAMES = ("fm_2d", "fm_digits", "fm_digits_unet", "fm_digits_dit")


def reference_step(t: Trainer, optimizer: torch.optim.Optimizer) -> None:
    """``Trainer.train_step`` before issue 27 (per-tensor AdamW and EMA), for the comparison."""
    cfg = t.config
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(t.step, cfg)
    t.model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = t.method.loss(t.model, t._batch(t.step)).sum() / cfg.batch_size
    loss.backward()
    float(loss.detach())
    nn.utils.clip_grad_norm_(t.params, cfg.grad_clip)
    optimizer.step()
    decay = min(cfg.ema_decay, (1 + t.step) / (10 + t.step))
    with torch.no_grad():
        for e, p in zip(t.ema.parameters(), t.model.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(t.ema.buffers(), t.model.buffers()):
            e.copy_(b)
    t.step += 1


def compare(name: str, steps: int, rounds: int) -> dict:
    spec = normalize_spec(ASSETS.lookup(name)())
    method, data = make_method(spec["method"]), training_data(spec["data"])
    cfg = TrainConfig(**{**spec["train"], "steps": steps * rounds})

    def trainer() -> Trainer:
        torch.manual_seed(spec["train"]["seed"])
        return Trainer(build_model(spec["model"]), method, data, cfg, labels=spec.get("labels"),
                       progress=False)  # fmt: skip

    ref, cur = trainer(), trainer()
    ref_opt = torch.optim.AdamW(ref.params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                foreach=False)  # fmt: skip

    def run_ref():
        for _ in range(steps):
            reference_step(ref, ref_opt)

    def run_cur():
        for _ in range(steps):
            cur.train_step()

    times = interleaved_medians({"reference": run_ref, "current": run_cur}, rounds)
    same = all(
        torch.equal(a, b)
        for part in ("model", "ema")
        for a, b in zip(
            getattr(ref, part).state_dict().values(), getattr(cur, part).state_dict().values()
        )  # fmt: skip
    )
    r, c = times["reference"].cpu / steps * 1e3, times["current"].cpu / steps * 1e3
    return {"asset": name, "params": len(ref.params), "reference_ms": r, "current_ms": c,
            "saved": 1 - c / r, "identical": same, "updates": steps * rounds}  # fmt: skip


def curve_point(name: str, steps: int, seed: int) -> dict:
    """One point of ``--curve``: the asset trained for ``steps`` from ``seed``, scored."""
    spec = normalize_spec(ASSETS.lookup(name)())
    method = make_method(spec["method"])
    start = cpu_seconds()
    if (steps, seed) == (spec["train"]["steps"], spec["train"]["seed"]):
        ema = asset(name, progress=False).model  # the full-budget asset itself
    else:
        torch.manual_seed(seed)
        cfg = TrainConfig(**{**spec["train"], "steps": steps, "seed": seed})
        trainer = Trainer(build_model(spec["model"]), method, training_data(spec["data"]), cfg,
                          labels=spec.get("labels"), progress=False)  # fmt: skip
        ema = trainer.fit().ema.eval().requires_grad_(False)
    row = {"asset": name, "steps": steps, "seed": seed, "train_cpu_s": cpu_seconds() - start}
    test = get_dataset("digits", "test")
    y = test.labels
    den = method.denoiser(ema)
    for nfe in (50, 10):
        z = torch.randn((len(y), *test.sample_shape), generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            x = sample_euler(den, z, uniform(nfe), y).clamp(-1, 1)
        scores = helpers.digits_row("", x, y)
        row[f"nfe{nfe}"] = {k: scores[k] for k in ("FD (classifier)", "FD (PCA-16)",
                                                   "right class")}  # fmt: skip
    return row


def l06_points(fraction: float, methods=None):
    """Rows of ``--l06-fraction``: (method, steps, seed, CPU-s, {nfe: ED / in a mode /
    smallest mode})."""
    from visgen.course.chapters.l06_flow_maps import METHODS_2D
    from visgen.fewstep import get_task, trained
    from visgen.oracles import eight_gaussians

    task, g = get_task("8gauss"), torch.Generator().manual_seed(1)
    ref = eight_gaussians().sample(2000, g)
    z = torch.randn(2000, 2, generator=g)
    floors = [helpers.gaussians_floor_row(ref, torch.Generator().manual_seed(s))
              for s in (2, 3, 4, 5)]  # fmt: skip
    yield {"floor energy distance": [f["energy distance"] for f in floors]}
    for name, (label, (full, _), options) in METHODS_2D.items():
        if methods and name not in methods:
            continue
        for steps, seed in ((full, 0), (int(full * fraction), 0), (full, 1),
                            (int(full * fraction), 1)):  # fmt: skip
            start = cpu_seconds()
            student = trained(name, task, steps, seed=seed, **options)
            row = {"method": name, "steps": steps, "seed": seed, "cpu_s": cpu_seconds() - start}
            for nfe in student.nfes:
                x = student.sample(z, nfe, None, torch.Generator().manual_seed(10 + nfe))
                r = helpers.gaussians_row(label, x, ref, NFE=nfe)
                row[f"nfe{nfe}"] = [r["energy distance"], r["in a mode"], r["smallest mode"]]
            yield row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--assets", nargs="+", default=list(ASSET_NAMES))
    p.add_argument("--steps", type=int, default=10, help="updates per timed job")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--curve", nargs="+", metavar="ASSET STEPS:SEED", help="quality vs budget")
    p.add_argument("--l06-fraction", type=float, help="L06's 2D students at this budget share")
    p.add_argument("--l06-methods", nargs="+", help="only these of L06's 2D students")
    args = p.parse_args(argv)
    set_threads(1)
    print(f"{machine()}; load average {load_average()} (start)")
    if args.l06_fraction:
        for row in l06_points(args.l06_fraction, args.l06_methods):
            print(json.dumps(row), flush=True)
    elif args.curve:
        for point in args.curve[1:]:
            steps, seed = (int(v) for v in point.split(":"))
            print(json.dumps(curve_point(args.curve[0], steps, seed)), flush=True)
    else:
        print("| asset | tensors | reference CPU ms/update | current | saved | weights after |")
        print("|---|---:|---:|---:|---:|---|")
        for name in args.assets:
            row = compare(name, args.steps, args.rounds)
            print(f"| `{name}` | {row['params']} | {row['reference_ms']:.2f} | "
                  f"{row['current_ms']:.2f} | {row['saved']:.0%} | "
                  f"{'identical' if row['identical'] else 'DIFFERENT'} ({row['updates']} "
                  "updates) |", flush=True)  # fmt: skip
    print(f"load average {load_average()} (end)")


if __name__ == "__main__":
    main()
