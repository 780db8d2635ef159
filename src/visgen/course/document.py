"""Typst task sheets: the student PDF and the instructor PDF with worked solutions.

A sheet imports the shared template ``solutions/homework.typ``, whose ``#solution[...]``
renders only when compiled with ``sys.inputs.instructor == "true"`` and then also emits a
``<solution>`` metadata element, so a test can prove the student PDF holds none.
Compilation is :func:`visgen.course.typeset.typeset` (embedded fonts only, fixed date,
every warning an error), with the repository as Typst's import root.
"""

from __future__ import annotations

from pathlib import Path

from visgen.course.typeset import Typeset, typeset

__all__ = ["compile_document", "count_solutions"]


def _typeset(path: str | Path, instructor: bool) -> Typeset:
    path = Path(path).resolve()
    root = path.parents[2]  # solutions/hwN/task.typ → the repository
    return typeset(path, root, inputs={"instructor": "true" if instructor else "false"})


def compile_document(path: str | Path, *, instructor: bool = False) -> bytes:
    """The PDF of a Typst sheet; raises ``TypstBuildError`` on a compile error or any warning."""
    return _typeset(path, instructor).pdf


def count_solutions(path: str | Path, *, instructor: bool) -> int:
    """How many ``#solution`` blocks the compiled sheet shows."""
    return len(_typeset(path, instructor).query("solution"))
