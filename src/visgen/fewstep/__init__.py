"""Few-step generators of lectures 6 and 7: flow maps and distribution matching.

Every method follows the contract of :mod:`visgen.fewstep.base` (a :class:`Task` in, a
:class:`FewStepGenerator` out), so all of them are compared at equal NFE. Lecture 6 (flow
maps): :mod:`~visgen.fewstep.flowmap`, :mod:`~visgen.fewstep.consistency`,
:mod:`~visgen.fewstep.meanflow`. Shared teachers: :mod:`~visgen.fewstep.tasks`; cached
students: :func:`trained`.
"""

from visgen.fewstep.base import METHODS, FewStepGenerator, Task, register_method
from visgen.fewstep.cache import trained
from visgen.fewstep.consistency import (
    consistency_distillation_loss,
    consistency_levels,
    consistency_loss,
    consistency_training_loss,
    ict_num_intervals,
    lognormal_interval_weights,
    pseudo_huber,
    segment_start,
    teacher_step,
    train_cd,
    train_ct,
    train_multiboundary_cd,
)
from visgen.fewstep.flowmap import FlowMap, FlowMapNet, flowmap_student, sample_flowmap
from visgen.fewstep.meanflow import (
    average_velocity_derivative,
    meanflow_loss,
    meanflow_times,
    train_meanflow,
    train_meanflow_fd,
)
from visgen.fewstep.sampling import sample_consistency
from visgen.fewstep.tasks import TASKS, asset_task, get_task, gmm_task

__all__ = [
    "METHODS",
    "TASKS",
    "FewStepGenerator",
    "FlowMap",
    "FlowMapNet",
    "Task",
    "asset_task",
    "average_velocity_derivative",
    "consistency_distillation_loss",
    "consistency_levels",
    "consistency_loss",
    "consistency_training_loss",
    "flowmap_student",
    "get_task",
    "gmm_task",
    "ict_num_intervals",
    "lognormal_interval_weights",
    "meanflow_loss",
    "meanflow_times",
    "pseudo_huber",
    "register_method",
    "sample_consistency",
    "sample_flowmap",
    "segment_start",
    "teacher_step",
    "train_cd",
    "train_ct",
    "train_meanflow",
    "train_meanflow_fd",
    "train_multiboundary_cd",
    "trained",
]
