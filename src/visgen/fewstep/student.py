r"""What the distribution-matching methods of lecture 7 share: the student network, its time
levels, and how a trained student becomes a :class:`~visgen.fewstep.FewStepGenerator`.

A few-step student G_θ(x_t, t) predicts the clean sample from x_t at a fixed set of levels
t ∈ {1, ¾, ½, ¼} and is sampled with the multistep consistency sampler
(:func:`visgen.fewstep.sample_consistency`): predict x̂0, re-noise to the next level,
predict again. With ``nfe`` = 1, 2, 4 the sampler visits the first level only, {1, ½} or all
four, so one student serves every NFE (DMD2, arXiv 2405.14867, §4.5; ADD, arXiv 2311.17042,
§3.1; HW5 uses t ∈ {999, 749, 499, 249} of 1000).

Distillation students start from the teacher (a trainable copy of its network, same
parametrisation: x̂0 is read through :mod:`visgen.param`); an analytic teacher has no
network, so the student is then a fresh x0-predicting :class:`~visgen.nn.MLP`.
"""

from __future__ import annotations

import contextlib
import copy
import time

import torch
from torch import nn

from visgen._checks import check_choice
from visgen.fewstep.base import FewStepGenerator, Task
from visgen.fewstep.sampling import sample_consistency
from visgen.nn import MLP
from visgen.param import Denoiser

__all__ = [
    "STUDENT_LEVELS",
    "Stopwatch",
    "as_generator",
    "check_steps",
    "draw_levels",
    "seeded_init",
    "student_from_teacher",
    "student_grid",
]

STUDENT_LEVELS = (1.0, 0.75, 0.5, 0.25)
"""The times a multi-step student is trained at; ``nfe`` steps use every (4/nfe)-th one."""


def student_grid(nfe: int) -> torch.Tensor:
    """The consistency-sampling grid of ``nfe`` ∈ {1, 2, 4} steps: [1, 0], [1, ½, 0], [1, ¾, ½, ¼, 0]."""
    check_choice(nfe, "nfe", (1, 2, 4))
    levels = STUDENT_LEVELS[:: len(STUDENT_LEVELS) // nfe]
    return torch.tensor([*levels, 0.0], dtype=torch.float64)


def draw_levels(n: int, nfes, generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices (n,) into :data:`STUDENT_LEVELS` of the levels a student samples with at ``nfes``."""
    used = sorted({STUDENT_LEVELS.index(float(t)) for k in nfes for t in student_grid(k)[:-1]})
    return torch.tensor(used)[torch.randint(len(used), (n,), generator=generator)]


def check_steps(steps) -> int:
    """``steps`` generator updates: an int ≥ 0 (0 returns the untrained generator, which the
    student cache rebuilds before loading trained weights)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    return steps


@contextlib.contextmanager
def seeded_init(generator: torch.Generator):
    """Initialise networks from ``generator``: layers draw from torch's global RNG, which is
    forked here and seeded by ``generator``, so a method's result depends on its generator only."""
    seed = int(torch.randint(2**62, (1,), generator=generator))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


def student_from_teacher(task: Task, width: int = 128, depth: int = 3) -> Denoiser:
    """A trainable student: a copy of the teacher network, or a fresh x0-MLP for an analytic teacher."""
    teacher = task.teacher
    if isinstance(teacher.model, nn.Module):
        net = copy.deepcopy(teacher.model).train().requires_grad_(True)
        return Denoiser(net, teacher.schedule, teacher.prediction)
    net = MLP(task.shape, width, depth, num_classes=task.num_classes or 0)
    return Denoiser(net, teacher.schedule, "x0")


def as_generator(name: str, student: Denoiser, nfes=(1, 2, 4), info=None) -> FewStepGenerator:
    """Freeze a trained student and sample it with the multistep consistency sampler."""
    student.model.eval().requires_grad_(False)

    def sample(noise, nfe, cond, generator):
        return sample_consistency(student, noise, student_grid(nfe), cond, generator=generator)

    return FewStepGenerator(name, student.model, sample, tuple(nfes), dict(info or {}))


class Stopwatch:
    """Wall time of a training run and its per-step losses, for ``FewStepGenerator.info``."""

    def __init__(self, **settings):
        self.start, self.settings, self.history = time.perf_counter(), settings, {}

    def log(self, **losses: float) -> None:
        for k, v in losses.items():
            self.history.setdefault(k, []).append(float(v))

    def info(self) -> dict:
        return {
            "wall_s": time.perf_counter() - self.start,
            "settings": self.settings,
            "history": self.history,
        }
