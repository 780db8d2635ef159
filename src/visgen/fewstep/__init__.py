"""Few-step generators of lectures 6 and 7: flow maps and distribution matching.

Every method follows the contract of :mod:`visgen.fewstep.base` (a :class:`Task` in, a
:class:`FewStepGenerator` out), so all of them are compared at equal NFE.
"""

from visgen.fewstep.base import METHODS, FewStepGenerator, Task, register_method
from visgen.fewstep.sampling import sample_consistency

__all__ = ["METHODS", "FewStepGenerator", "Task", "register_method", "sample_consistency"]
