"""The standard few-step tasks: one teacher + its data, shared by the tests, the tour chapters
L6/L7 and ``benchmarks/fewstep.py`` so every method is compared on the same footing.

============  ============================================  =========  =======
name          teacher                                       shape      classes
============  ============================================  =========  =======
``8gauss``    the exact 8-Gaussian denoiser (no network)    (2,)       —
``8gauss_fm`` flow-matching MLP, asset ``fm_2d``            (2,)       —
``digits``    flow-matching MLP, asset ``fm_digits``        (1, 8, 8)  10
``digits_unet`` flow-matching UNet, asset ``fm_digits_unet``  (1, 8, 8)  10
============  ============================================  =========  =======

Trained teachers come from the training cache (:func:`visgen.train.asset`), so the first
use trains them and later uses load them. Training data are the train splits of
:func:`visgen.data.get_dataset`; the 8-Gaussian tasks are unconditional, digits is
class-conditional (the teachers were trained with 10 % label dropout). ``digits_unet`` exists
for the methods that need spatial teacher features or several resolutions (patch-level MMD,
SwD): a convolutional teacher whose middle block sees 4×4 "patches" of an 8×8 digit.
"""

from __future__ import annotations

import torch

from visgen._checks import check_choice
from visgen.config import budget
from visgen.data import get_dataset
from visgen.fewstep.base import Task
from visgen.oracles import eight_gaussians
from visgen.train import asset, register_asset

__all__ = ["TASKS", "make_task"]

TASKS = ("8gauss", "8gauss_fm", "digits", "digits_unet")


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


def _gmm_data(n: int, generator: torch.Generator | None = None):
    return eight_gaussians().sample(n, generator), None


def _dataset_sampler(name: str):
    data = get_dataset(name)

    def sample(n: int, generator: torch.Generator | None = None):
        idx = torch.randint(len(data), (n,), generator=generator)
        return data.x[idx], (None if data.labels is None else data.labels[idx])

    return sample


def make_task(name: str, *, progress: bool = False) -> Task:
    """The task ``name`` (see the module table); trains its teacher on first use."""
    check_choice(name, "task", TASKS)
    if name == "8gauss":
        return Task(eight_gaussians().denoiser("linear"), _gmm_data, (2,), None, name)
    if name == "8gauss_fm":
        teacher = asset("fm_2d", progress=progress).denoiser()
        return Task(teacher, _gmm_data, (2,), None, name)
    teacher = asset("fm_" + name, progress=progress).denoiser()
    return Task(teacher, _dataset_sampler("digits"), (1, 8, 8), 10, name)
