"""Few-step generators of lectures 6 and 7: flow maps and distribution matching."""

from visgen.fewstep.sampling import sample_consistency

__all__ = ["sample_consistency"]
