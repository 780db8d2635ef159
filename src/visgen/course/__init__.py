"""Course tooling: building the lecture slides (and, later, the tour and the homeworks)."""
