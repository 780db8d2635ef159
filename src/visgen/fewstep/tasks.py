"""The shared teachers of lectures 6 and 7 as :class:`~visgen.fewstep.Task` objects.

=================  =======================================================  =======  =======
name               teacher                                                  shape    classes
=================  =======================================================  =======  =======
``8gauss``         exact flow-matching denoiser of the 8-Gaussian target    (2,)     —
``8gauss_cond``    the same, class-conditional (class k = component k)      (2,)     8
``8gauss_fm``      trained flow-matching MLP (asset ``fm_2d``)              (2,)     —
``digits``         trained class-conditional FM MLP (asset ``fm_digits``)   (1,8,8)  10
=================  =======================================================  =======  =======

The analytic tasks draw fresh data from the mixture; the trained ones draw rows of the
teacher's training set. Trained teachers come from the cache of :mod:`visgen.train.assets`
(trained on first use), and ``Task.key`` names that cache entry, so caches of students
trained on a teacher follow the teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from visgen._checks import check_choice
from visgen.data.registry import get_dataset
from visgen.fewstep.base import Task
from visgen.oracles import eight_gaussians
from visgen.train.assets import asset

__all__ = ["TASKS", "get_task", "gmm_task", "asset_task"]


def gmm_task(conditional: bool = False) -> Task:
    """The analytic 8-Gaussian teacher (``visgen.oracles.eight_gaussians().denoiser("linear")``)."""
    gmm = eight_gaussians()

    def data(n: int, generator: torch.Generator | None = None):
        x, y = gmm.sample(n, generator, return_labels=True)
        return x, (y if conditional else None)

    name = "8gauss_cond" if conditional else "8gauss"
    return Task(gmm.denoiser("linear"), data, (2,), 8 if conditional else None, name)


def asset_task(asset_name: str, name: str | None = None) -> Task:
    """A task whose teacher is the trained asset ``asset_name`` (see ``visgen.train.ASSETS``)."""
    teacher = asset(asset_name, progress=False)
    ds = get_dataset(teacher.config["data"])
    classes = teacher.model.config.get("num_classes", 0) or None

    def data(n: int, generator: torch.Generator | None = None):
        idx = torch.randint(0, len(ds), (n,), generator=generator)
        return ds.x[idx], (ds.labels[idx] if classes else None)

    return Task(
        teacher.denoiser(), data, ds.sample_shape, classes, name or asset_name, teacher.path.stem
    )


TASKS: dict[str, Callable[[], Task]] = {
    "8gauss": lambda: gmm_task(False),
    "8gauss_cond": lambda: gmm_task(True),
    "8gauss_fm": lambda: asset_task("fm_2d", "8gauss_fm"),
    "digits": lambda: asset_task("fm_digits", "digits"),
}


def get_task(name: str) -> Task:
    """The task ``name`` of :data:`TASKS` (trained teachers are trained on first use)."""
    check_choice(name, "task", sorted(TASKS))
    return TASKS[name]()
