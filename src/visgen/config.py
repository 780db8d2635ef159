"""Run-time knobs shared by the library, the tour, the homeworks and the tests.

`budget(full=..., fast=...)` is the only place that decides between a full-size and a
smoke-test-size quantity (steps, batch sizes, sample counts). FAST mode is on when the
environment variable ``VISGEN_FAST`` is ``1`` or inside ``fast_mode()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TypeVar

import torch

T = TypeVar("T")

_override: bool | None = None


def is_fast() -> bool:
    """True when FAST (smoke-test) budgets are in force."""
    if _override is not None:
        return _override
    return os.environ.get("VISGEN_FAST", "0").strip().lower() in {"1", "true", "yes", "on"}


def budget(full: T, fast: T) -> T:
    """Return `fast` in FAST mode, else `full`: ``STEPS = budget(full=4000, fast=200)``."""
    return fast if is_fast() else full


@contextlib.contextmanager
def fast_mode(enabled: bool = True) -> Iterator[None]:
    """Force FAST mode on (or off) inside a ``with`` block, whatever the environment says."""
    global _override
    previous, _override = _override, enabled
    try:
        yield
    finally:
        _override = previous


def set_threads(n: int = 1) -> None:
    """Pin torch's CPU threads.

    Small models on a shared 2-core machine run up to 25x slower with the default thread
    count (measured: 4 ms vs 117 ms per training step), so tests and the tour pin this.
    """
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel op
        torch.set_num_interop_threads(1)


def cpu_seconds() -> float:
    """CPU seconds (user + system, every thread) of this process and of its children that
    have ended and been waited for — the clock of the tour's cost accounting."""
    import resource
    import time

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime
