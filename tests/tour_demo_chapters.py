"""Two cheap chapters for the parallel-tour test. They live in an importable module (not in a
fixture) because worker processes import a chapter's module to find it."""

import os

import torch

from visgen.course import chapter


@chapter("L96", "A cheap random chapter", lecture=1)
def random_numbers(ctx):
    x = torch.randn(64, 2, generator=ctx.generator(1))
    ctx.text("Seeded from the chapter id, so the same in any process.")
    ctx.table([{"mean": float(x.mean()), "std": float(x.std())}], "Moments.")
    ctx.metric("sum", float(x.sum()))
    ctx.metric("fast", ctx.fast)
    ctx.metric("pid", os.getpid())
    ctx.images(torch.tanh(torch.randn(4, 3, 8, 8, generator=ctx.generator(2))), "Noise.")


@chapter("L97", "A failing chapter in a worker", lecture=1)
def broken(ctx):
    raise RuntimeError("deliberate failure in a worker")


# a model small enough to train in a fraction of a second: the cost-accounting tests' asset
TINY_SPEC = {
    "model": {"name": "mlp", "shape": [2], "width": 16, "depth": 2},
    "method": {"name": "fm"},
    "data": "moons",
    "train": {"steps": 40, "batch_size": 64, "warmup": 5},
}


@chapter("L94", "A chapter that trains a tiny model", lecture=1)
def trains(ctx):
    net = ctx.train(TINY_SPEC)
    ctx.metric("first_weight", float(next(net.model.parameters()).flatten()[0]))
