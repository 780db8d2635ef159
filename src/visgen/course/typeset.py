"""Strict, reproducible Typst → PDF compilation (lecture slides; reusable for homework PDFs).

Typst comes from the ``typst`` Python package (``notebooks`` extra), so nothing but pip is
needed. Every build

* uses only the fonts embedded in that package (New Computer Modern + Math, Libertinus Serif,
  DejaVu Sans Mono) and ignores system fonts, so the output does not depend on the machine;
* stamps a fixed creation date, so the same sources give a byte-identical PDF (CI compares
  the committed PDFs with a fresh build);
* treats every Typst warning (unknown font, missing glyph, …) as an error.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import typst

__all__ = ["TIMESTAMP", "TypstBuildError", "Typeset", "page_count", "typeset"]

TIMESTAMP = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

_PAGE = re.compile(rb"/Type\s*/Page\b")


class TypstBuildError(RuntimeError):
    """A Typst source did not compile cleanly; the message holds Typst's diagnostics."""


class Typeset:
    """A compiled document: its PDF bytes, and `query` over its labelled metadata."""

    def __init__(self, source: Path, pdf: bytes, compiler: typst.Compiler):
        self.source, self.pdf, self._compiler = source, pdf, compiler

    @property
    def pages(self) -> int:
        return page_count(self.pdf)

    def query(self, label: str) -> list:
        """Values of the ``metadata`` elements carrying ``<label>``, in document order."""
        return json.loads(self._compiler.query(f"<{label}>", field="value"))


def typeset(source: str | Path, root: str | Path, inputs: dict[str, str] | None = None) -> Typeset:
    """Compile ``source`` (a .typ file) with imports allowed under ``root``; fail on any warning.

    ``inputs`` become the document's ``sys.inputs`` (e.g. ``{"instructor": "true"}``).

    Raises:
        FileNotFoundError: no such source.
        TypstBuildError: a compile error or any warning, with Typst's diagnostics.
    """
    source, root = Path(source).resolve(), Path(root).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"no Typst source at {source}")
    if not source.is_relative_to(root):
        raise ValueError(f"source {source} must lie under root {root}")
    compiler = typst.Compiler(
        str(source), root=str(root), ignore_system_fonts=True, sys_inputs=dict(inputs or {})
    )
    try:
        pdf, warnings = compiler.compile_with_warnings(timestamp=TIMESTAMP)
    except typst.TypstError as err:
        raise TypstBuildError(f"{source}: {err.diagnostic or err.message}") from err
    if warnings:
        details = "\n".join(w.diagnostic or w.message for w in warnings)
        raise TypstBuildError(f"{source}: {len(warnings)} Typst warning(s)\n{details}")
    return Typeset(source, pdf, compiler)


def page_count(pdf: bytes) -> int:
    """Number of pages of a PDF written by Typst (counts its /Type /Page objects)."""
    return len(_PAGE.findall(pdf))
