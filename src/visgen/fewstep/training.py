"""The student optimisation loop shared by the flow-map methods of lecture 6.

AdamW with the warm-up + cosine learning rate of :func:`visgen.train.learning_rate`, gradient
clipping and an EMA copy of the student for sampling (iCT evaluates the EMA student too,
Song & Dhariwal 2023, arXiv 2310.14189, §3.2; it is *not* the consistency target). The loss
of each step is a function ``loss_fn(step) -> scalar`` that draws its own randomness from the
method's generator, so a run is a function of its seed.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from tqdm.auto import tqdm

from visgen.fewstep.student import check_steps
from visgen.train.trainer import TrainConfig, ema_update, learning_rate, warmed_decay

__all__ = ["optimize"]


def optimize(
    model: nn.Module,
    loss_fn,
    steps: int,
    *,
    lr: float = 1e-3,
    warmup: int = 100,
    grad_clip: float = 1.0,
    ema_decay: float = 0.999,
    after_step=None,
    progress: bool = False,
    desc: str = "student",
) -> tuple[nn.Module, list[float]]:
    """Minimise ``loss_fn(step)`` over ``model``'s parameters for ``steps`` steps.

    ``after_step(step)`` runs after each update (e.g. an EMA consistency target). Returns (EMA
    copy of the model in eval mode and frozen, loss of every step). ``steps = 0`` returns an
    untrained copy (used to rebuild a cached student).
    """
    check_steps(steps)
    history: list[float] = []
    ema = copy.deepcopy(model).requires_grad_(False)
    if steps:
        cfg = TrainConfig(steps=steps, lr=lr, warmup=min(warmup, steps), grad_clip=grad_clip)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, foreach=True)
        model.train()
        for step in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, cfg)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(step)
            loss.backward()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"loss is {value} at step {step}; lower lr")
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            ema_update(ema, model, warmed_decay(step, ema_decay))
            if after_step is not None:
                after_step(step)
            history.append(value)
    return ema.eval(), history
