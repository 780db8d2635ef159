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
