"""One homework source, two notebooks: the student starter and the instructor's solution.

The source of truth is a jupytext percent-format ``.py`` file. Inside it:

* ``# BEGIN SOLUTION`` / ``# END SOLUTION`` (code) or ``<!-- BEGIN SOLUTION -->`` /
  ``<!-- END SOLUTION -->`` (markdown) enclose the answer. The starter replaces the region
  with ``# TODO`` + ``raise NotImplementedError`` (code) or an "Your answer here" line.
* ``# BEGIN HIDDEN`` / ``# END HIDDEN`` enclose instructor-only checks, dropped from the starter.
* A cell tagged ``solution-only`` is dropped from the starter altogether.

The solution notebook keeps everything and loses only the marker lines. Given the
homework's manifest, both also show the points: a table after the title (every rubric and
hand-graded item) and, above each graded function, a comment with its task and points. Both
notebooks have cleared outputs, kernelspec ``python3`` and deterministic cell ids, so
rebuilding an unchanged source reproduces the committed starter byte for byte.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import nbformat

__all__ = [
    "STARTER_TODO",
    "build_notebook",
    "points_table",
    "notebook_code_cells",
    "read_source",
    "write_notebook",
]

STARTER_TODO = "# TODO: your code here"
STARTER_ANSWER = "*Your answer here.*"
SOLUTION_ONLY_TAG = "solution-only"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}

_CODE = {
    "solution": (re.compile(r"^\s*# BEGIN SOLUTION\s*$"), re.compile(r"^\s*# END SOLUTION\s*$")),
    "hidden": (re.compile(r"^\s*# BEGIN HIDDEN\s*$"), re.compile(r"^\s*# END HIDDEN\s*$")),
}
_MARKDOWN = {
    "solution": (
        re.compile(r"^\s*<!-- BEGIN SOLUTION -->\s*$"),
        re.compile(r"^\s*<!-- END SOLUTION -->\s*$"),
    ),
    "hidden": (
        re.compile(r"^\s*<!-- BEGIN HIDDEN -->\s*$"),
        re.compile(r"^\s*<!-- END HIDDEN -->\s*$"),
    ),
}


def read_source(path: str | Path) -> nbformat.NotebookNode:
    """Read a jupytext percent-format source into a notebook (cells with their tags)."""
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"homework source {path} does not exist")
    return jupytext.read(path, fmt="py:percent")


def _transform(source: str, markers: dict, starter: bool, where: str) -> str:
    """Resolve the SOLUTION / HIDDEN regions of one cell's source."""
    out: list[str] = []
    region: str | None = None
    for lineno, line in enumerate(source.split("\n"), 1):
        begin = next((k for k, (b, _) in markers.items() if b.match(line)), None)
        end = next((k for k, (_, e) in markers.items() if e.match(line)), None)
        if begin is not None:
            if region is not None:
                raise ValueError(f"{where}, line {lineno}: BEGIN {begin.upper()} inside {region}")
            region = begin
            if starter and begin == "solution":
                indent = line[: len(line) - len(line.lstrip())]
                if markers is _CODE:
                    out += [indent + STARTER_TODO, indent + "raise NotImplementedError"]
                else:
                    out.append(indent + STARTER_ANSWER)
            continue
        if end is not None:
            if region != end:
                raise ValueError(f"{where}, line {lineno}: END {end.upper()} without its BEGIN")
            region = None
            continue
        if region is None or not starter:
            out.append(line)
    if region is not None:
        raise ValueError(f"{where}: BEGIN {region.upper()} is never closed")
    return "\n".join(out)


def _points(n: float) -> str:
    return f"{n:g} point" + ("" if n == 1 else "s")


def points_table(homework) -> str:
    """Markdown: what each task is worth and how it is graded (from homework.json)."""
    doc = f"`{homework.document}.pdf`" if homework.document else "the notebook"
    lines = [
        f"**Points.** {homework.auto_points:g} points are graded automatically (the hidden "
        f"tests call the functions named below) and {homework.manual_points:g} by hand "
        f"(your written answers and {doc}).",
        "",
        "| # | task | points | graded |",
        "|---|---|---:|---|",
    ]
    for it in homework.items:
        names = ", ".join(f"`{f}`" for f in it.functions)
        lines.append(f"| {it.id} | {it.title} | {it.points:g} | automatically: {names} |")
    lines += [f"| {m.id} | {m.title} | {m.points:g} | by hand |" for m in homework.manual]
    return "\n".join(lines)


def _annotate(code: str, homework) -> str:
    """A comment with the task and its points above every graded function's ``def``."""
    items = {f: it for it in homework.items for f in it.functions}
    out = []
    for line in code.split("\n"):
        match = re.match(r"def (\w+)\(", line)
        if match and match.group(1) in items:
            it = items[match.group(1)]
            others = [f for f in it.functions if f != match.group(1)]
            together = f", graded together with {', '.join(others)}" if others else ""
            out.append(f"# Graded: task {it.id}, {_points(it.points)}{together}")
        out.append(line)
    return "\n".join(out)


def build_notebook(
    source: nbformat.NotebookNode, *, starter: bool, homework=None
) -> nbformat.NotebookNode:
    """The starter (``starter=True``) or the solution notebook of a homework source; with the
    homework's manifest (:class:`visgen.course.homework.Homework`), its points shown."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for index, cell in enumerate(source.cells):
        tags = list(cell.metadata.get("tags", []))
        if starter and SOLUTION_ONLY_TAG in tags:
            continue
        where = f"cell {index + 1} ({cell.cell_type})"
        markers = _CODE if cell.cell_type == "code" else _MARKDOWN
        text = _transform(cell.source, markers, starter, where)
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(text if homework is None else _annotate(text, homework))
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(text)
        else:
            new = nbformat.v4.new_raw_cell(text)
        tags = [t for t in tags if t != SOLUTION_ONLY_TAG]
        if tags:
            new.metadata["tags"] = tags
        nb.cells.append(new)
        if homework is not None and len(nb.cells) == 1:  # after the title
            nb.cells.append(nbformat.v4.new_markdown_cell(points_table(homework)))
    for i, cell in enumerate(nb.cells):
        cell.id = f"c{i + 1:03d}"
    return nb


def write_notebook(nb: nbformat.NotebookNode, path: str | Path) -> None:
    """Write a notebook atomically (temp file + rename), as stable JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb)
    if not text.endswith("\n"):
        text += "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def notebook_code_cells(path: str | Path) -> list[str]:
    """The code cells of a submitted ``.ipynb`` (or jupytext ``.py``), as source strings.

    Reads the JSON leniently: a notebook that fails nbformat validation (missing ids,
    unknown metadata) is still read; only unreadable files raise ``ValueError``.
    """
    import json

    path = Path(path)
    if path.suffix == ".py":
        nb = read_source(path)
        return [c.source for c in nb.cells if c.cell_type == "code"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name} is not a readable notebook: {err}") from err
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise ValueError(f"{path.name} is not a Jupyter notebook (no list of cells)")
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        sources.append("".join(src) if isinstance(src, list) else str(src))
    return sources
