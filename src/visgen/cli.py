"""The ``visgen`` command (also ``python -m visgen``): train, sample, tour.

    visgen train --method fm --data digits --steps 2000 --out runs/fm-digits
    visgen sample --checkpoint runs/fm-digits/checkpoint.json --sampler euler --steps 50 --n 64 --out samples.png
    visgen tour --out runs/tour [--fast] [--only L03] [--jobs 2] [--budget]
    visgen grade hw1 notebook.ipynb          (needs the notebooks extra)

``visgen train`` also runs data-parallel under ``torchrun --nproc_per_node N -m visgen train ...``.
Each command imports what it needs when it runs, so a core install (``pip install visgen``,
no extras) has every command; one that needs an extra says which in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["SAMPLERS", "build_parser", "main"]

SAMPLERS = ("euler", "heun", "ancestral", "sde", "pc", "langevin")
# the modules of each optional extra (pyproject.toml) that a command may miss
EXTRAS = {"notebooks": ("nbformat", "nbclient", "jupytext", "typst", "ipykernel")}


def _missing_extra(err: ModuleNotFoundError) -> str | None:
    """The extra that provides the module ``err`` could not import, if it is one of ours."""
    top = (err.name or "").partition(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if top in modules), None)


def _needs(command: str, extra: str) -> str:
    return f"error: {command} needs the {extra!r} extra: pip install 'visgen[{extra}]'"


def _default_model(data, args) -> dict:
    shape = list(data.sample_shape)
    num_classes = data.num_classes if args.conditional else 0
    kind = args.model
    if kind == "auto":
        kind = "unet" if data.is_image and shape[-1] >= 16 else "mlp"
    if kind == "mlp":
        return {
            "name": "mlp",
            "shape": shape,
            "width": args.width or 256,
            "depth": 3,
            "num_classes": num_classes,
        }
    if not data.is_image:
        raise SystemExit(
            f"error: --model unet needs image data, {data.name!r} has samples of shape {shape}"
        )
    return {
        "name": "unet",
        "in_channels": shape[0],
        "size": shape[-1],
        "channels": args.width or 32,
        "mults": [1, 2] if shape[-1] == 8 else [1, 2, 2],
        "num_classes": num_classes,
    }


def _train(args) -> int:
    import torch

    from visgen.config import set_threads
    from visgen.nn import build_model
    from visgen.train import TrainConfig, Trainer, make_method, rank_and_world, training_data

    set_threads(args.threads)
    data = training_data(args.data)
    if args.conditional and data.labels is None:
        raise SystemExit(f"error: --conditional needs labels, data set {args.data!r} has none")
    method = {"name": args.method}
    if args.method in ("fm", "ddpm", "dsm"):
        method["label_dropout"] = args.label_dropout if args.conditional else 0.0
    if args.method == "classifier":
        if not data.is_image or data.labels is None:
            raise SystemExit("error: --method classifier needs a labelled image data set")
        model_config = {
            "name": "classifier",
            "in_channels": data.sample_shape[0],
            "num_classes": data.num_classes,
        }
    else:
        model_config = _default_model(data, args)
    torch.manual_seed(args.seed)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup=min(args.warmup, args.steps),
        seed=args.seed,
        ckpt_every=args.ckpt_every,
    )
    trainer = Trainer(
        build_model(model_config),
        make_method(method),
        data,
        config,
        out=args.out,
        progress=not args.quiet,
    )
    trainer.fit(resume=args.resume)
    if rank_and_world()[0] == 0:
        tail = trainer.history[-min(100, len(trainer.history)) :]
        print(
            f"trained {args.method} on {args.data} for {trainer.step} steps; "
            f"mean loss of the last {len(tail)} steps {sum(tail) / len(tail):.4f}; "
            f"checkpoint {Path(args.out) / 'checkpoint.json'}"
        )
    return 0


def _sample(args) -> int:
    import torch

    from visgen.config import set_threads
    from visgen.sampling import (
        sample_ancestral,
        sample_euler,
        sample_euler_maruyama,
        sample_heun,
        sample_langevin,
        sample_pc,
        uniform,
    )
    from visgen.train import CheckpointError, load_trained
    from visgen.viz import figure, png_bytes, save_image_grid, scatter

    set_threads(args.threads)
    try:
        trained = load_trained(args.checkpoint)
    except (FileNotFoundError, CheckpointError) as err:
        raise SystemExit(f"error: {err}") from err
    if trained.config["method"]["name"] == "classifier":
        raise SystemExit(
            "error: this checkpoint is a classifier; sample needs a diffusion or flow model"
        )
    den = trained.denoiser()
    g = torch.Generator().manual_seed(args.seed)
    shape = tuple(trained.model.shape)
    num_classes = trained.config["model"].get("num_classes", 0)
    cond = None
    if args.label is not None:
        if not num_classes:
            raise SystemExit("error: this model is unconditional; drop --label")
        if not 0 <= args.label < num_classes:
            raise SystemExit(f"error: --label must be in [0, {num_classes - 1}], got {args.label}")
        cond = torch.full((args.n,), args.label)
    elif num_classes:
        cond = torch.arange(args.n) % num_classes
    sch = den.schedule
    if args.sampler == "langevin":
        ts = torch.linspace(1, 0, trained.config["method"].get("levels", 10), dtype=torch.float64)
    elif args.sampler in ("sde", "pc") and not torch.isfinite(sch.g(torch.tensor(1.0))):
        ts = uniform(args.steps, t_start=0.999)
    else:
        ts = uniform(args.steps)
    x = float(sch.sigma(ts[0])) * torch.randn(args.n, *shape, generator=g)
    fn = {
        "euler": sample_euler,
        "heun": sample_heun,
        "ancestral": sample_ancestral,
        "sde": sample_euler_maruyama,
        "pc": sample_pc,
        "langevin": sample_langevin,
    }[args.sampler]
    kwargs = {} if args.sampler in ("euler", "heun") else {"generator": g}
    x = fn(den, x, ts, cond, **kwargs)
    out = Path(args.out)
    if len(shape) == 3:
        save_image_grid(x, out)
    else:
        fig, (ax,) = figure(size=4)
        scatter(ax, x[:, :2], title=f"{args.sampler}, {den.nfe} NFE")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png_bytes(fig))
    print(f"{args.n} samples, {args.sampler}, {den.nfe} network evaluations -> {out}")
    return 0


def _tour(args) -> int:
    from visgen.course import run_tour, select_chapters

    if args.list:
        for ch in select_chapters(None):
            print(f"{ch.id}  {ch.title}")
        return 0
    if args.budget:
        from visgen.config import is_fast
        from visgen.course.costs import budget_report

        try:
            ids = [ch.id for ch in select_chapters(args.only)]
        except ValueError as err:
            raise SystemExit(f"error: {err}") from err
        print(budget_report(ids, bool(args.fast) or is_fast(), args.jobs))
        return 0
    try:
        report = run_tour(
            args.out,
            args.only,
            fast=True if args.fast else None,
            progress=not args.quiet,
            jobs=args.jobs,
        )
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    if report["failed"]:
        print(f"chapters that failed: {', '.join(report['failed'])}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    from visgen.data import DATASETS

    p = argparse.ArgumentParser(
        prog="visgen",
        description="Visual generative modelling on a laptop CPU: train, sample, and the tour.",
        epilog="Run 'visgen COMMAND --help' for the options of a command.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a model and write a checkpoint",
        description="Train a diffusion / flow-matching model (or an evaluation classifier) "
        "and write OUT/checkpoint.{safetensors,json}. Under torchrun it trains data-parallel.",
    )
    t.add_argument(
        "--method",
        required=True,
        choices=("fm", "ddpm", "dsm", "classifier"),
        help="fm: flow matching; ddpm: ε-prediction, 1000 steps; dsm: VE σ-ladder score matching",
    )
    t.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help=f"data set: {', '.join(DATASETS)}, folder:PATH (PNG/JPEG folder, 32 px) or "
        "latent:ASSET (an autoencoder asset's latents)",
    )
    t.add_argument("--steps", type=int, required=True, help="optimisation steps")
    t.add_argument("--out", required=True, help="output folder for the checkpoint")
    t.add_argument(
        "--model",
        choices=("auto", "mlp", "unet"),
        default="auto",
        help="network (auto: MLP for points and 8x8 digits, UNet for larger images)",
    )
    t.add_argument("--width", type=int, help="MLP width (256) or UNet base channels (32)")
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument(
        "--lr", type=float, default=1e-3, help="peak learning rate (AdamW, warm-up + cosine)"
    )
    t.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    t.add_argument(
        "--conditional", action="store_true", help="class-conditional with a null label for CFG"
    )
    t.add_argument(
        "--label-dropout", type=float, default=0.1, help="label dropout of --conditional (CFG)"
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ckpt-every", type=int, default=0, help="also checkpoint every N steps")
    t.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint if it exists"
    )
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    s = sub.add_parser(
        "sample",
        help="sample a trained checkpoint into a PNG",
        description="Draw samples from a checkpoint written by 'visgen train' and save "
        "an image grid (or a scatter plot for 2D data).",
    )
    s.add_argument("--checkpoint", required=True, help="checkpoint (.json, .safetensors or stem)")
    s.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="euler",
        help="euler/heun: PF-ODE; ancestral: DDPM posterior; sde: reverse-SDE Euler-Maruyama; "
        "pc: predictor-corrector; langevin: annealed Langevin over the DSM ladder",
    )
    s.add_argument("--steps", type=int, default=50, help="time steps of the grid")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", required=True, help="output PNG")
    s.add_argument(
        "--label",
        type=int,
        help="class of every sample (conditional models; default: cycle classes)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_sample)

    r = sub.add_parser(
        "tour",
        help="run the tour and write an HTML report",
        description="Train (cached) and sample every lecture's method at toy scale and "
        "write OUT/index.html and OUT/metrics.json.",
    )
    r.add_argument("--out", default="runs/tour", help="report folder (default runs/tour)")
    r.add_argument("--fast", action="store_true", help="FAST budgets (smoke test, about 2 minutes)")
    r.add_argument("--only", nargs="+", metavar="ID", help="run only these chapters, e.g. L03 or 3")
    r.add_argument("--list", action="store_true", help="list the chapters and exit")
    r.add_argument(
        "--budget",
        action="store_true",
        help="print each chapter's measured fresh cost and what this run would cost given "
        "the cache, without running anything",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--jobs",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="chapters run at once, one process and one thread each "
        "(default: CPU cores, at most 4; 1 shows progress bars)",
    )
    r.set_defaults(func=_tour)

    _add_grade(sub)
    return p


def _add_grade(sub) -> None:
    help = "grade a homework notebook against its hidden tests"
    try:
        from visgen.course import grade
    except ModuleNotFoundError as err:
        extra = _missing_extra(err)
        if extra is None:
            raise
        message = _needs("visgen grade", extra)
        g = sub.add_parser("grade", help=f"{help} (needs visgen[{extra}])", description=message)
        g.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        g.set_defaults(func=lambda args: sys.exit(message))
        return
    g = sub.add_parser("grade", help=help, description=grade.DESCRIPTION)
    grade.add_arguments(g)
    g.set_defaults(func=grade.run)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("steps", "n", "batch_size", "threads"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SystemExit(
                f"error: --{name.replace('_', '-')} must be a positive integer, got {value}"
            )
    try:
        return args.func(args)
    except (ValueError, TypeError) as err:
        raise SystemExit(f"error: {err}") from err
    except ModuleNotFoundError as err:
        extra = _missing_extra(err)
        if extra is None:
            raise
        raise SystemExit(_needs(f"visgen {args.command}", extra)) from err


if __name__ == "__main__":
    sys.exit(main())
