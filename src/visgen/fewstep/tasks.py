"""The standard few-step tasks: one teacher + its data, shared by the tests, the tour chapters
L6/L7 and ``benchmarks/fewstep.py`` so every method is compared on the same footing.

============  ============================================  =========  =======
name          teacher                                       shape      classes
============  ============================================  =========  =======
``8gauss``    the exact 8-Gaussian denoiser (no network)    (2,)       —
``8gauss_cond`` the same, class-conditional (class k = mode k)  (2,)       8
``8gauss_fm`` flow-matching MLP, asset ``fm_2d``            (2,)       —
``digits``    flow-matching MLP, asset ``fm_digits``        (1, 8, 8)  10
``digits_unet`` flow-matching UNet, asset ``fm_digits_unet``  (1, 8, 8)  10
``shapes``    flow-matching MLP, asset ``fm_shapes16``      (3, 16, 16) 12
============  ============================================  =========  =======

Trained teachers come from the training cache (:func:`visgen.train.asset`), so the first
use trains them and later uses load them. Training data are the train splits of
:func:`visgen.data.get_dataset`; the 8-Gaussian tasks are unconditional, digits is
class-conditional (the teachers were trained with 10 % label dropout). A trained teacher's
``Task.key`` names its cache entry, so students cached by :func:`visgen.fewstep.trained` follow
their teacher (FAST and full teachers differ). ``digits_unet`` is
the convolutional teacher (its middle block sees 4×4 "patches" of an 8×8 digit): every method
runs on it with a student copied from the teacher, in the recipe of :data:`RECIPES`.
``shapes`` is the 16×16 colour-shapes task (class = shape × colour, 768 values); its teacher
is an x-predicting MLP trained with the v-loss (JiT, lecture 5): 512 hidden units cannot carry
the 768-dimensional noise a velocity or ε output needs (measured: a velocity MLP of this size
samples noisy blobs). The students that copy the teacher (distribution matching) are
x-predictors too; flow-map students output an average velocity, which the same argument
limits (not measured on this task).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from visgen._checks import check_choice
from visgen.config import budget
from visgen.data import get_dataset
from visgen.fewstep.base import Task
from visgen.oracles import eight_gaussians
from visgen.train import asset, register_asset

__all__ = ["RECIPES", "TASKS", "get_task", "recipe"]


def _fm_digits_unet() -> dict:
    return {
        "model": {
            "name": "unet", "in_channels": 1, "size": 8, "channels": 16, "mults": [1, 2],
            "num_classes": 10,
        },
        "method": {"name": "fm", "t_sampler": "logit_normal", "label_dropout": 0.1},
        "data": "digits",
        "train": {"steps": budget(full=4000, fast=1000), "batch_size": 128, "lr": 2e-3},
    }  # fmt: skip


register_asset("fm_digits_unet", _fm_digits_unet)


def _fm_shapes16() -> dict:
    return {
        "model": {
            "name": "mlp", "shape": [3, 16, 16], "width": 512, "depth": 3, "num_classes": 12,
        },
        "method": {
            "name": "fm", "prediction": "x0", "t_eps": 0.05, "t_sampler": "logit_normal",
            "label_dropout": 0.1,
        },
        "data": "shapes16",
        "train": {"steps": budget(full=4000, fast=1500), "batch_size": 128, "lr": 1e-3},
    }  # fmt: skip


register_asset("fm_shapes16", _fm_shapes16)


def _gmm_data(n: int, generator: torch.Generator | None = None):
    return eight_gaussians().sample(n, generator), None


def _gmm_labelled_data(n: int, generator: torch.Generator | None = None):
    return eight_gaussians().sample(n, generator, return_labels=True)


def _dataset_sampler(name: str):
    data = get_dataset(name)

    def sample(n: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(data), (n,), generator=generator)
        return data.x[idx], (None if data.labels is None else data.labels[idx])

    return sample


def _gmm_task() -> Task:
    return Task(eight_gaussians().denoiser("linear"), _gmm_data, (2,), None, "8gauss")


def _gmm_cond_task() -> Task:
    return Task(eight_gaussians().denoiser("linear"), _gmm_labelled_data, (2,), 8, "8gauss_cond")


def _asset_task(name: str, asset_name: str, data: str | None):
    def build() -> Task:
        trained = asset(asset_name, progress=False)
        teacher, key = trained.denoiser(), trained.path.stem
        if data is None:
            return Task(teacher, _gmm_data, (2,), None, name, key)
        ds = get_dataset(data)
        return Task(teacher, _dataset_sampler(data), ds.sample_shape, ds.num_classes, name, key)

    return build


TASKS: dict[str, Callable[[], Task]] = {
    "8gauss": _gmm_task,
    "8gauss_cond": _gmm_cond_task,
    "8gauss_fm": _asset_task("8gauss_fm", "fm_2d", None),
    "digits": _asset_task("digits", "fm_digits", "digits"),
    "digits_unet": _asset_task("digits_unet", "fm_digits_unet", "digits"),
    "shapes": _asset_task("shapes", "fm_shapes16", "shapes16"),
}


def get_task(name: str) -> Task:
    """The task ``name`` of :data:`TASKS` (a trained teacher is trained on first use)."""
    check_choice(name, "task", sorted(TASKS))
    return TASKS[name]()


RECIPES: dict[str, dict[str, dict]] = {
    "digits_unet": {
        # ECT: consistency *tuning* of the pretrained (teacher) network, shrinking interval;
        # lr 1e-4 measured over two seeds (3e-4 as good on one since the σ weight, BENCHMARKS.md)
        "consistency_training": {"schedule": "ect", "init_from_teacher": True, "lr": 1e-4},
    },
}
"""Per task, the options (of the method's training function) that differ from its registered
defaults: the recipe each method is measured with on that task (``benchmarks/fewstep.py``,
the tour's U-Net students, the tests)."""


def recipe(method: str, task: str) -> dict:
    """The options of ``method`` on task ``task`` (:data:`RECIPES`; {} for the defaults)."""
    check_choice(task, "task", sorted(TASKS))
    return dict(RECIPES.get(task, {}).get(method, {}))
