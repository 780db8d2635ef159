"""The contract every few-step method of lectures 6 and 7 follows, so that methods are trained
on the same teachers and compared side by side at equal NFE (tour chapters L6/L7,
``benchmarks/fewstep.py``).

A method is a function registered with :func:`register_method`::

    @register_method("consistency_distillation", lecture=6)
    def train_cd(task: Task, steps: int, generator: torch.Generator) -> FewStepGenerator: ...

It trains a student on ``task`` for ``steps`` generator updates and returns a
:class:`FewStepGenerator`, whose ``sample(noise, nfe)`` maps prior noise to data in ``nfe``
network evaluations. ``steps = 0`` returns the untrained generator (same architecture and
sampler), which :func:`visgen.fewstep.trained` uses to rebuild a cached student. A method
that cannot distil a task's teacher (SwD needs a convolutional one, feature-based methods a
network) raises :class:`UnsupportedTeacher`, so a table of every method on every task can
skip exactly those pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from visgen._checks import check_choice
from visgen.param import Denoiser

__all__ = [
    "METHODS",
    "REVISIONS",
    "FewStepGenerator",
    "Task",
    "UnsupportedTeacher",
    "register_method",
]


class UnsupportedTeacher(TypeError):
    """This method cannot learn from this task's teacher (a bad pairing, not a bug)."""


@dataclass
class Task:
    """What a few-step method learns from.

    Attributes:
        teacher: the frozen teacher as a Denoiser (analytic GMM or trained flow matching).
        data: ``data(n, generator) -> (x, y)`` real training samples and labels (y may be None);
            methods that learn from data (consistency training, MeanFlow, Drifting, GAN terms)
            use it, pure distillation uses only the teacher.
        shape: shape of one sample, e.g. (2,) or (1, 8, 8).
        num_classes: number of classes for class-conditional tasks (None if unconditional).
        name: a short label for tables ("8gauss", "digits").
        key: what identifies teacher and data for caches of trained students (e.g. the
            teacher asset's cache entry); defaults to ``name``.
    """

    teacher: Denoiser
    data: Callable[[int, torch.Generator | None], tuple[torch.Tensor, torch.Tensor | None]]
    shape: tuple[int, ...]
    num_classes: int | None = None
    name: str = "task"
    key: str = ""

    def __post_init__(self):
        self.key = self.key or self.name


@dataclass
class FewStepGenerator:
    """A trained few-step generator. ``sample(noise, nfe, cond, generator)`` → samples."""

    name: str
    model: torch.nn.Module
    sample_fn: Callable[..., torch.Tensor]
    nfes: tuple[int, ...] = (1, 2, 4)
    info: dict = field(default_factory=dict)  # training curves, wall time, settings

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, nfe: int, cond=None, generator=None) -> torch.Tensor:
        if nfe not in self.nfes:
            raise ValueError(f"nfe must be one of {self.nfes} for {self.name}, got {nfe!r}")
        return self.sample_fn(noise, nfe, cond, generator)


METHODS: dict[str, tuple[int, Callable[..., FewStepGenerator]]] = {}


REVISIONS: dict[str, int] = {}


def register_method(name: str, lecture: int, revision: int = 1):
    """Register a training function ``fn(task, steps, generator) -> FewStepGenerator``.

    ``revision``: raise it when the method's objective changes, so that students cached by
    :func:`visgen.fewstep.trained` under the old one are trained again (revision 1 adds
    nothing to the cache key).
    """
    check_choice(lecture, "lecture", (6, 7))
    if not isinstance(revision, int) or revision < 1:
        raise ValueError(f"revision must be an int >= 1, got {revision!r}")

    def deco(fn):
        if name in METHODS:
            raise ValueError(f"few-step method {name!r} is already registered")
        METHODS[name] = (lecture, fn)
        REVISIONS[name] = revision
        return fn

    return deco
