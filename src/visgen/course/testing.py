"""Helpers for hidden tests: comparisons whose failure message tells the student what is off.

Hidden tests are plain functions ``test_<name>(sub)`` where ``sub`` holds the notebook's
definitions (docs/ARCHITECTURE.md, "Homework pipeline", has the format). They raise
``AssertionError`` with a message (shown in the points table) and test each graded function
on its own, with visgen's reference implementations standing in for every other piece, so
one wrong function loses only its own points. A reference that fails (NaN, inf, an
exception in :func:`reference`) raises :class:`GraderError`: the report shows it as the
grader's error, never as the student's.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["CountingModel", "GraderError", "as_float64", "assert_close", "check", "reference"]


class GraderError(BaseException):
    """The grader's own reference failed; a BaseException so that no test can swallow it."""


def reference(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` computed as a reference: an exception is the grader's error."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        raise GraderError(f"the reference failed: {type(err).__name__}: {err}") from err


def check(condition, message: str) -> None:
    """``assert`` that survives ``python -O`` and always carries a message."""
    if not condition:
        raise AssertionError(message)


def as_float64(value, what: str) -> torch.Tensor:
    """A student's return value as a float64 tensor (tensors, arrays and numbers accepted)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    if isinstance(value, np.ndarray | float | int | list | tuple):
        try:
            return torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise AssertionError(f"{what} must be numeric, got {type(value).__name__}") from err
    raise AssertionError(f"{what} must be a tensor, got {type(value).__name__}")


def assert_close(actual, expected, what: str, *, atol: float = 1e-6, rtol: float = 1e-6) -> None:
    """|actual − expected| ≤ atol + rtol |expected| elementwise, with a readable failure."""
    try:
        e = as_float64(expected, "expected value")
    except AssertionError as err:
        raise GraderError(f"the reference for {what} is not numeric") from err
    if not torch.isfinite(e).all():
        raise GraderError(f"the reference for {what} contains NaN or inf")
    a = as_float64(actual, what)
    if a.shape != e.shape:
        raise AssertionError(f"{what} has shape {tuple(a.shape)}, expected {tuple(e.shape)}")
    if not torch.isfinite(a).all():
        raise AssertionError(f"{what} contains NaN or inf")
    err = (a - e).abs()
    bad = err > atol + rtol * e.abs()
    if bad.any():
        i = int(torch.argmax(err - (atol + rtol * e.abs())))
        raise AssertionError(
            f"{what} is off: max |error| = {err.max().item():.3g} "
            f"(tolerance {atol:g} + {rtol:g}·|expected|); e.g. got {a.flatten()[i].item():.6g}, "
            f"expected {e.flatten()[i].item():.6g}"
        )


class CountingModel:
    """Wrap ``model(x, t, y)`` to count calls (NFE) and record batch sizes and times."""

    def __init__(self, model):
        self.model = model
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.times: list[torch.Tensor] = []

    def __call__(self, x, t, *args, **kwargs):
        self.calls += 1
        self.batch_sizes.append(int(x.shape[0]))
        self.times.append(torch.as_tensor(t).detach().clone())
        return self.model(x, t, *args, **kwargs)
