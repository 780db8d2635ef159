"""Lecture seminars: ``lectures/NN-slug/seminar.py`` → ``seminar.ipynb`` (``make seminars``).

A seminar is a notebook the class runs together, with no graded parts. Its one source is a
jupytext percent-format ``seminar.py`` beside the deck; the committed ``seminar.ipynb`` is
generated from it exactly as a homework's solution notebook is (:func:`
visgen.course.notebook.build_notebook`: cleared outputs, kernelspec ``python3``,
deterministic cell ids), so rebuilding an unchanged source reproduces the file byte for byte.

``python -m visgen.course.seminar`` writes every seminar notebook; ``--check`` only compares
(CI fails on a stale notebook); ``--run`` also executes each one in a fresh kernel with
``VISGEN_FAST=1`` (the CI budget) and reports its wall time. Adding a seminar to another
lecture is adding its ``seminar.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from visgen.course.notebook import build_notebook, read_source, write_notebook

__all__ = ["SOURCE", "expected_notebook", "find_seminars", "main", "run_seminar"]

SOURCE = "seminar.py"
NOTEBOOK = "seminar.ipynb"


def _lectures() -> Path:
    return Path(__file__).resolve().parents[3] / "lectures"


def find_seminars(lectures: str | Path | None = None) -> list[Path]:
    """Every ``lectures/NN-slug/seminar.py``, sorted."""
    lectures = Path(lectures) if lectures is not None else _lectures()
    return sorted(lectures.glob(f"[0-9][0-9]-*/{SOURCE}"))


def _notebook(source: str | Path) -> nbformat.NotebookNode:
    return build_notebook(read_source(source), starter=False)


def expected_notebook(source: str | Path) -> bytes:
    """The notebook a ``seminar.py`` generates (the bytes that must be committed)."""
    text = nbformat.writes(_notebook(source))
    return (text if text.endswith("\n") else text + "\n").encode()


def run_seminar(source: str | Path, *, fast: bool = True, cell_timeout: int = 600) -> float:
    """Execute a seminar in a fresh kernel (in a temporary folder); returns the wall time."""
    from visgen.course.build import execute_notebook

    nb = _notebook(source)
    with tempfile.TemporaryDirectory(prefix="visgen-seminar-") as tmp:
        start = time.perf_counter()
        execute_notebook(nb, tmp, fast=fast, cell_timeout=cell_timeout)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m visgen.course.seminar",
        description="Build lectures/NN-slug/seminar.ipynb from seminar.py.",
    )
    parser.add_argument("--lectures", type=Path, default=None, help="lectures/ folder")
    parser.add_argument("--check", action="store_true", help="fail if a notebook is stale")
    parser.add_argument("--run", action="store_true", help="also execute each (VISGEN_FAST=1)")
    args = parser.parse_args(argv)
    stale = []
    for source in find_seminars(args.lectures):
        target = source.with_name(NOTEBOOK)
        if args.check:
            if not target.is_file() or target.read_bytes() != expected_notebook(source):
                stale.append(str(target))
        else:
            write_notebook(_notebook(source), target)
            print(f"wrote {target}")
        if args.run:
            print(f"{source.parent.name}: ran in {run_seminar(source):.1f} s (FAST)")
    if stale:
        print("stale (run `make seminars`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
