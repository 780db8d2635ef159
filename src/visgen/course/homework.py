"""A homework's manifest: where its files are, its points rubric and its measured run times;
and what solution notebooks call to save results (:func:`record_results`,
:func:`record_animation`) and to show digits (:func:`show_digits`).

Each homework lives in ``solutions/hwN/``:

===========================  =================================================================
``<notebook>.py``            jupytext source of the notebook (solutions between markers)
``<document>.typ``           Typst task sheet (``task`` or ``theory``) with worked solutions
``tests_hidden.py``          hidden tests: functions ``test_*(sub)`` taking the submission
``homework.json``            title, file names, limits and the rubric (below)
``runtime.json``             measured run times of the solution (written by ``--measure``) and
                             the table it saved with :func:`record_results` (full run)
``<name>.gif``               animations the full run saved with :func:`record_animation`
===========================  =================================================================

``homework.json``::

    {"title": ..., "notebook": "practice_template", "document": "task",
     "limits": {"time_s": 60, "memory_mb": 4096, "statement_time_s": 30, "load_time_s": 120},
     "rubric": [{"id": "1.1", "title": ..., "functions": ["ve_score"], "points": 1,
                 "tests": ["test_ve_score"], "time_s": 30}, ...],
     "manual": [{"id": "T1", "title": ..., "points": 2}, ...],
     "inputs": ["artifacts/*.safetensors"]}

A rubric item earns its points when every one of its tests passes (one rule, no partial
credit inside an item); ``manual`` items are graded by hand from the written answers.
``inputs`` are files next to the submitted notebook that the hidden tests may read
(trained weights, for homeworks whose deliverable is a model).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ANIMATIONS_FILE",
    "RESULTS_FILE",
    "Homework",
    "ManualItem",
    "RubricItem",
    "list_homeworks",
    "load_homework",
    "record_animation",
    "show_digits",
    "record_results",
    "repo_root",
]

DEFAULT_TIME_S = 60.0  # per hidden test
DEFAULT_MEMORY_MB = 4096  # address space of the grading process
DEFAULT_STATEMENT_TIME_S = 30.0  # each import / UPPERCASE constant while loading a notebook
DEFAULT_LOAD_TIME_S = 120.0  # hard cap on loading the notebook and the hidden tests
RESULTS_FILE = "results.json"  # a solution notebook's measured results, next to it
ANIMATIONS_FILE = "animations.json"  # the animations it saved: [{"file", "caption"}]
_ANIMATION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\.gif$")


@dataclass(frozen=True)
class RubricItem:
    id: str
    title: str
    points: float
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    time_s: float | None = None  # per-test limit; the homework default when None


@dataclass(frozen=True)
class ManualItem:
    id: str
    title: str
    points: float


def repo_root() -> Path:
    """The repository this visgen was installed from (editable install), else the cwd."""
    here = Path(__file__).resolve().parents[3]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def _solutions(root: str | Path | None) -> Path:
    """The folder of homework manifests and hidden tests: ``root`` is the instructor's
    repository or its ``solutions/`` folder (default: this repository's)."""
    path = Path(root) if root is not None else repo_root()
    if (path / "solutions").is_dir():
        path = path / "solutions"
    if not path.is_dir() or not any(path.glob("*/homework.json")):
        raise FileNotFoundError(
            f"no hidden tests in {path}: grading needs the instructor's tree (the repository "
            "with solutions/, which a student release does not ship); pass --instructor PATH"
        )
    return path


def list_homeworks(root: str | Path | None = None) -> list[str]:
    """Names (``hw1``, ``hw2``, …) of every folder under solutions/ with a homework.json."""
    root = _solutions(root)
    names = [p.parent.name for p in root.glob("*/homework.json")]
    return sorted(names, key=lambda n: (len(n), n))


def _field(data: dict, key: str, kind, where: str):
    if key not in data:
        raise ValueError(f"{where}: missing field {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{where}: field {key!r} must be {kind}, got {value!r}")
    return value


class Homework:
    """The manifest of one homework (``load_homework("hw1")``)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.name = directory.name
        where = str(directory / "homework.json")
        try:
            data = json.loads((directory / "homework.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{where} is not valid JSON: {err}") from err
        self.title: str = _field(data, "title", str, where)
        self.notebook: str = _field(data, "notebook", str, where)
        self.document: str | None = data.get("document")
        limits = data.get("limits", {})
        self.time_s = float(limits.get("time_s", DEFAULT_TIME_S))
        self.memory_mb = int(limits.get("memory_mb", DEFAULT_MEMORY_MB))
        self.statement_time_s = float(limits.get("statement_time_s", DEFAULT_STATEMENT_TIME_S))
        self.load_time_s = float(limits.get("load_time_s", DEFAULT_LOAD_TIME_S))
        self.inputs: tuple[str, ...] = tuple(data.get("inputs", ()))
        self.items: list[RubricItem] = []
        for i, raw in enumerate(_field(data, "rubric", list, where)):
            w = f"{where}: rubric[{i}]"
            self.items.append(
                RubricItem(
                    id=_field(raw, "id", str, w),
                    title=_field(raw, "title", str, w),
                    points=float(_field(raw, "points", (int, float), w)),
                    tests=tuple(_field(raw, "tests", list, w)),
                    functions=tuple(raw.get("functions", ())),
                    time_s=raw.get("time_s"),
                )
            )
        self.manual: list[ManualItem] = [
            ManualItem(
                _field(m, "id", str, f"{where}: manual[{i}]"),
                _field(m, "title", str, f"{where}: manual[{i}]"),
                float(_field(m, "points", (int, float), f"{where}: manual[{i}]")),
            )
            for i, m in enumerate(data.get("manual", []))
        ]
        ids = [it.id for it in self.items] + [m.id for m in self.manual]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where}: rubric ids must be unique, got {ids}")
        tests = [t for it in self.items for t in it.tests]
        if len(set(tests)) != len(tests):
            raise ValueError(f"{where}: a test may belong to one rubric item only")

    # --- files -----------------------------------------------------------------------
    @property
    def source_path(self) -> Path:
        return self.dir / f"{self.notebook}.py"

    @property
    def tests_path(self) -> Path:
        return self.dir / "tests_hidden.py"

    @property
    def document_path(self) -> Path | None:
        return None if self.document is None else self.dir / f"{self.document}.typ"

    @property
    def runtime_path(self) -> Path:
        return self.dir / "runtime.json"

    # --- points ----------------------------------------------------------------------
    @property
    def auto_points(self) -> float:
        return sum(it.points for it in self.items)

    @property
    def manual_points(self) -> float:
        return sum(m.points for m in self.manual)

    def item_of_function(self, function: str) -> RubricItem:
        for item in self.items:
            if function in item.functions:
                return item
        raise KeyError(f"no rubric item grades the function {function!r}")

    def runtime(self) -> dict:
        """Measured run times ({"full": {...}, "fast": {...}}), {} if never measured."""
        if not self.runtime_path.is_file():
            return {}
        return json.loads(self.runtime_path.read_text(encoding="utf-8"))

    def animations(self) -> list[dict]:
        """The GIFs of the full run (``[{"file", "caption"}]``, files in the homework's
        folder), [] if none."""
        return (self.runtime().get("full") or {}).get("animations", [])

    def __repr__(self) -> str:
        return f"Homework({self.name!r}, {self.title!r})"


def record_results(rows: list[dict], caption: str, path: str | Path = RESULTS_FILE) -> Path:
    """Write a solution notebook's result table (``rows``: dicts of the same keys, numbers or
    text) atomically to ``path``. ``python -m visgen.course.build --measure full`` runs the
    notebook in a temporary folder, keeps this file in ``runtime.json`` and the homework's
    README shows it as a table under the run times."""
    if not rows or not all(isinstance(r, dict) and r.keys() == rows[0].keys() for r in rows):
        raise ValueError("rows must be a non-empty list of dicts with the same keys")
    path = Path(path)
    table = {"caption": caption, "columns": list(rows[0]), "rows": [list(r.values()) for r in rows]}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def record_animation(
    videos, file: str, caption: str, *, nrow: int | None = None, scale: int = 4, fps: float = 4.0
) -> Path:
    """Save videos (N, F, C, H, W) in [−1, 1] as the looping GIF ``file`` (a plain name such
    as ``rollouts.gif``) in the working folder and list it with its caption in
    :data:`ANIMATIONS_FILE`. ``python -m visgen.course.build --measure full`` keeps the GIFs
    of the full run in ``solutions/hwN/``; ``make assignments`` copies them to the student
    folder and the homework's README shows them."""
    from visgen.viz import animation_bytes

    if not isinstance(file, str) or not _ANIMATION_NAME.match(file):
        raise ValueError(f"file must be a plain name ending in .gif, got {file!r}")
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError("caption must be a non-empty string")
    path = Path(file)
    data = animation_bytes(videos, nrow, scale=scale, fps=fps)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    index = Path(ANIMATIONS_FILE)
    listed = json.loads(index.read_text(encoding="utf-8")) if index.is_file() else []
    listed = [a for a in listed if a["file"] != file] + [{"file": file, "caption": caption}]
    tmp = index.with_name(f".{index.name}.tmp")
    tmp.write_text(json.dumps(listed, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, index)
    return path


def load_homework(name: str, root: str | Path | None = None) -> Homework:
    """Load ``solutions/<name>/homework.json`` (``name`` like ``hw1``)."""
    solutions = _solutions(root)
    directory = solutions / name
    if not (directory / "homework.json").is_file():
        known = ", ".join(list_homeworks(solutions)) or "none"
        raise ValueError(f"unknown homework {name!r} (known: {known})")
    return Homework(directory)


def show_digits(x, nrow: int, titles=None, scale: float = 0.9) -> None:
    """Show 8×8 digits in [−1, 1], (B, 1, 8, 8) or flattened (B, 64), in ``nrow`` rows below a
    notebook cell (``titles``: one per digit)."""
    import matplotlib.pyplot as plt  # pyplot only here: notebooks show, the library does not

    ncol = math.ceil(len(x) / nrow)
    fig, axes = plt.subplots(nrow, ncol, figsize=(scale * ncol, scale * nrow + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, im) in enumerate(zip(axes.flat, x.detach())):
        ax.imshow(im.reshape(8, 8).clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    plt.show()
