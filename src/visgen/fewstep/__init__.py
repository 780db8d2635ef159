"""Few-step generators of lectures 6 and 7: flow maps and distribution matching.

Every method follows the contract of :mod:`visgen.fewstep.base` (a :class:`Task` in, a
:class:`FewStepGenerator` out), so all of them are compared at equal NFE. Importing this
package registers every method in :data:`METHODS`; :func:`get_task` builds the shared
teachers and :func:`trained` caches trained students. Lecture 6 (flow maps):
:mod:`~visgen.fewstep.flowmap`, :mod:`~visgen.fewstep.consistency`,
:mod:`~visgen.fewstep.meanflow`; lecture 7 (distribution matching): :mod:`~visgen.fewstep.dmd`,
:mod:`~visgen.fewstep.add`, :mod:`~visgen.fewstep.mmd`, :mod:`~visgen.fewstep.swd`,
:mod:`~visgen.fewstep.drifting`.
"""

from visgen.fewstep.add import train_adversarial
from visgen.fewstep.base import METHODS, FewStepGenerator, Task, UnsupportedTeacher, register_method
from visgen.fewstep.cache import trained
from visgen.fewstep.consistency import (
    consistency_distillation_loss,
    consistency_levels,
    consistency_loss,
    consistency_training_loss,
    ect_interval,
    ict_num_intervals,
    lognormal_interval_weights,
    pseudo_huber,
    segment_start,
    teacher_step,
    train_cd,
    train_ct,
    train_multiboundary_cd,
)
from visgen.fewstep.dmd import distribution_matching_loss, train_dmd
from visgen.fewstep.drifting import drift_field, multi_temperature_drift, train_drifting
from visgen.fewstep.flowmap import FlowMap, FlowMapNet, flowmap_student, sample_flowmap
from visgen.fewstep.meanflow import (
    average_velocity_derivative,
    meanflow_loss,
    meanflow_times,
    train_meanflow,
    train_meanflow_fd,
)
from visgen.fewstep.mmd import train_mmd
from visgen.fewstep.sampling import sample_consistency
from visgen.fewstep.swd import sample_scalewise, train_swd
from visgen.fewstep.tasks import RECIPES, TASKS, get_task, recipe

__all__ = [
    "METHODS",
    "RECIPES",
    "TASKS",
    "FewStepGenerator",
    "FlowMap",
    "FlowMapNet",
    "Task",
    "UnsupportedTeacher",
    "average_velocity_derivative",
    "consistency_distillation_loss",
    "consistency_levels",
    "consistency_loss",
    "consistency_training_loss",
    "distribution_matching_loss",
    "drift_field",
    "ect_interval",
    "flowmap_student",
    "get_task",
    "ict_num_intervals",
    "lognormal_interval_weights",
    "meanflow_loss",
    "meanflow_times",
    "multi_temperature_drift",
    "pseudo_huber",
    "recipe",
    "register_method",
    "sample_consistency",
    "sample_flowmap",
    "sample_scalewise",
    "segment_start",
    "teacher_step",
    "train_adversarial",
    "train_cd",
    "train_ct",
    "train_dmd",
    "train_drifting",
    "train_meanflow",
    "train_meanflow_fd",
    "train_mmd",
    "train_multiboundary_cd",
    "train_swd",
    "trained",
]
