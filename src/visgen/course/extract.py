"""Keep only the definitions of a notebook: imports, functions, classes, UPPERCASE constants.

The grader never runs a submitted notebook top to bottom (that would train models and
draw figures). It parses every code cell with :mod:`ast` and keeps the top-level

* ``import`` / ``from ... import`` statements,
* ``def`` / ``async def`` / ``class`` definitions (with their decorators),
* assignments whose targets are all UPPERCASE names (``STEPS = 200``, ``T_MAX: float = 80``).

IPython magics (``%matplotlib``, ``!pip``) are blanked first; a cell that still does not
parse is skipped with a note. Later definitions replace earlier ones, as in the notebook.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

__all__ = ["Definition", "Extraction", "extract_definitions", "is_constant_name"]

_MAGIC = re.compile(r"^(\s*)[%!]")


@dataclass
class Definition:
    cell: int  # 1-based index among the notebook's code cells
    kind: str  # import | function | class | constant
    names: list[str]
    node: ast.Module  # compilable module holding just this statement (original line numbers)


@dataclass
class Extraction:
    definitions: list[Definition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)  # cell → source (for tracebacks)

    @property
    def names(self) -> set[str]:
        return {n for d in self.definitions for n in d.names}


def is_constant_name(name: str) -> bool:
    """UPPERCASE names (letters, digits, underscores, at least one letter) count as constants."""
    return name.isupper() and not name.startswith("__")


def _strip_magics(source: str) -> str:
    lines = []
    for line in source.split("\n"):
        m = _MAGIC.match(line)
        lines.append(m.group(1) + "pass" if m else line)
    return "\n".join(lines)


def _classify(node: ast.stmt) -> tuple[str, list[str]] | None:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return "import", [(a.asname or a.name).split(".")[0] for a in node.names]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return "function", [node.name]
    if isinstance(node, ast.ClassDef):
        return "class", [node.name]
    if isinstance(node, ast.Assign):
        names = []
        for target in node.targets:
            elts = target.elts if isinstance(target, ast.Tuple) else [target]
            if not all(isinstance(e, ast.Name) and is_constant_name(e.id) for e in elts):
                return None
            names += [e.id for e in elts]
        return "constant", names
    if (
        isinstance(node, ast.AnnAssign)
        and node.value is not None
        and isinstance(node.target, ast.Name)
        and is_constant_name(node.target.id)
    ):
        return "constant", [node.target.id]
    return None


def extract_definitions(cells: list[str]) -> Extraction:
    """Parse code cells (sources in notebook order) and keep their top-level definitions."""
    out = Extraction()
    for index, source in enumerate(cells, 1):
        text = _strip_magics(source)
        out.sources[index] = text
        try:
            tree = ast.parse(text, filename=f"<cell {index}>")
        except SyntaxError as err:
            out.notes.append(
                f"code cell {index} skipped: syntax error at line {err.lineno}: {err.msg}"
            )
            continue
        for node in tree.body:
            kind = _classify(node)
            if kind is None:
                continue
            out.definitions.append(
                Definition(index, kind[0], kind[1], ast.Module(body=[node], type_ignores=[]))
            )
    return out
