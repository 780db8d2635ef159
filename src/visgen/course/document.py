"""Typst task sheets: the student PDF and the instructor PDF with worked solutions.

A sheet imports the shared template ``solutions/homework.typ``, whose ``#solution[...]``
renders only when compiled with ``sys.inputs.instructor == "true"`` and then also emits a
``<solution>`` metadata element, so a test can prove the student PDF holds none.
Compilation uses Typst's embedded fonts only (byte-identical PDFs on every machine) and
fails on any warning.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["compile_document", "count_solutions"]


def _root(path: Path) -> Path:
    """Typst's import root: the repository (``solutions/hwN/x.typ`` → ``.``), so a sheet may
    import ``/solutions/homework.typ`` and the lectures' notation file."""
    return path.resolve().parents[2]


def _inputs(instructor: bool) -> dict[str, str]:
    return {"instructor": "true" if instructor else "false"}


def compile_document(path: str | Path, *, instructor: bool = False) -> bytes:
    """The PDF of a Typst sheet; raises ``RuntimeError`` on a compile error or any warning."""
    import typst

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Typst source {path} does not exist")
    try:
        pdf, warnings = typst.compile_with_warnings(
            str(path),
            root=str(_root(path)),
            sys_inputs=_inputs(instructor),
            ignore_system_fonts=True,
        )
    except typst.TypstError as err:
        raise RuntimeError(f"{path}: Typst compile error: {err}") from err
    if warnings:
        text = "; ".join(str(w) for w in warnings)
        raise RuntimeError(f"{path}: Typst warnings (treated as errors): {text}")
    return pdf


def count_solutions(path: str | Path, *, instructor: bool) -> int:
    """How many ``#solution`` blocks the compiled sheet shows."""
    import typst

    path = Path(path)
    found = typst.query(
        str(path),
        "<solution>",
        root=str(_root(path)),
        sys_inputs=_inputs(instructor),
        ignore_system_fonts=True,
    )
    return len(json.loads(found))
