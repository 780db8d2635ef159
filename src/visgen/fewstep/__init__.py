"""Few-step generators of lectures 6 and 7: flow maps and distribution matching.

Every method follows the contract of :mod:`visgen.fewstep.base` (a :class:`Task` in, a
:class:`FewStepGenerator` out), so all of them are compared at equal NFE. Importing this
package registers every method in :data:`METHODS`; :func:`get_task` builds the shared
teachers.
"""

from visgen.fewstep.add import train_adversarial
from visgen.fewstep.base import METHODS, FewStepGenerator, Task, register_method
from visgen.fewstep.dmd import distribution_matching_loss, train_dmd
from visgen.fewstep.drifting import drift_field, multi_temperature_drift, train_drifting
from visgen.fewstep.mmd import train_mmd
from visgen.fewstep.sampling import sample_consistency
from visgen.fewstep.swd import sample_scalewise, train_swd
from visgen.fewstep.tasks import TASKS, get_task

__all__ = [
    "METHODS",
    "TASKS",
    "FewStepGenerator",
    "Task",
    "distribution_matching_loss",
    "drift_field",
    "get_task",
    "multi_temperature_drift",
    "register_method",
    "sample_consistency",
    "sample_scalewise",
    "train_adversarial",
    "train_dmd",
    "train_drifting",
    "train_mmd",
    "train_swd",
]
