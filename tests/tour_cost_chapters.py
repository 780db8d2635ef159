"""A chapter that trains, for the cost-accounting tests (tests/test_tour_costs.py). It lives in
an importable module because worker processes import a chapter's module to find it."""

from visgen.course import chapter

# a model small enough to train in a fraction of a second (L94); L93 uses no cache
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


@chapter("L93", "A chapter without models", lecture=1)
def plain(ctx):
    ctx.metric("x", 1.0)
