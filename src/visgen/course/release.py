"""``make release OUT=DIR``: the student repository — the course without its answers.

Writes ``DIR`` from the files git tracks here (no history): the library, the tour, the lecture
slides, the homework starters and task sheets (``assignments/``), the exam topics and
booking service, the docs and the library's tests — but not ``solutions/`` (notebook sources
with their worked solutions, the theory sheets' worked solutions, hidden tests, manifests),
not the grader's instructor-only tests and fixtures, not the CI script. The README and the
Makefile are the student versions (:func:`student_readme`; ``make tour`` and ``make test``).

Then it checks what it wrote (:func:`leaks`, :func:`broken_links`): no line of a solution
region, a worked solution or a hidden test of any homework appears in any file, no file is
a hidden test, and every relative link of every Markdown file resolves. ``visgen grade``
needs the instructor's tree, which the release does not contain, and says so.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.notebook import read_source

__all__ = ["answer_lines", "broken_links", "build_release", "leaks", "main", "student_readme"]

# tracked files that stay with the instructor (prefixes of paths relative to the repository)
INSTRUCTOR_ONLY = (
    "solutions/",
    ".ci/",
    "tests/data/grading/",
    "tests/test_homeworks.py",
    "tests/test_grading.py",
    "tests/test_grading_isolation.py",
    "tests/test_grader_hostile.py",
    "tests/test_release.py",
    "benchmarks/grading.py",
)
REPLACED = ("README.md", "Makefile")  # student versions written from templates
MIN_ANSWER_CHARS = 40  # shorter lines (`return x`, `for p in model.parameters():`) are generic
_SOLUTION_TYPST = re.compile(r"#solution\[")
_LINK = re.compile(r"\]\(([^)\s]+)\)")

MAKEFILE = """\
# visgen (student release) — the two commands of the README are `make tour` and `make test`.
# Both create the virtual environment from nothing (and reuse it when present).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv test tour clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
\ttest -x $(PY) || $(PYTHON) -m venv $(VENV)
\t$(PY) -m pip install -q --upgrade pip
\t$(PY) -m pip install -q -c constraints.txt -e ".[dev,notebooks,diffusers]"
\ttouch $(STAMP)

test: venv
\t$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal tests

tour: venv
\t$(PY) -m visgen tour --out runs/tour

clean:
\trm -rf $(VENV) runs .pytest_cache
"""


def _section(readme: str, title: str) -> str:
    """One ``## title`` section of the instructor's README, heading included."""
    match = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", readme, flags=re.S | re.M)
    if match is None:
        raise ValueError(f"README.md has no section '## {title}'")
    return match.group(0).rstrip() + "\n"


def student_readme(root: Path) -> str:
    """The release's README: what is inside, the two commands, how to open a notebook, the tour,
    the lectures, the homeworks (from their manifests) and the credits."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    lines = [
        "# visgen — Visual Generative Modelling, the course on a laptop CPU (student release)",
        "",
        "The course's library (`visgen`, in [`src/visgen/`](src/visgen)), its tour of every",
        "lecture's method, the lecture slides ([`lectures/`](lectures)), the homework starters",
        "and task sheets ([`assignments/`](assignments)) and the exam topics",
        "([`exam/exam_topics_visual_genai.md`](exam/exam_topics_visual_genai.md)). Everything",
        "runs on an ordinary laptop CPU with no downloads.",
        "",
        "## Quickstart",
        "",
        "```bash",
        "make tour    # set up .venv, train and sample every lecture's method, write "
        "runs/tour/index.html",
        "make test    # set up .venv, run the library's tests",
        "```",
        "",
        "Both need only `python3` (≥ 3.10) and `make`; the first run creates `.venv` (PyTorch CPU,",
        "pinned in `constraints.txt`).",
        "",
        _section(readme, "Notebooks"),
        _section(readme, "The tour"),
        _section(readme, "Lectures"),
        "## Homeworks",
        "",
        "Each homework is a notebook to complete plus a task sheet; the points of every task are",
        "shown in the notebook and in its README. Each notebook has public self-checks; your",
        "instructor grades it with the hidden tests (`visgen grade`, which needs the instructor's",
        "files: they are not part of this release).",
        "",
        "| # | homework | files | points (auto + by hand) |",
        "|---|---|---|---|",
    ]
    for name in list_homeworks(root):
        hw = load_homework(name, root)
        files = f"[`{name}/`](assignments/{name}): `{hw.notebook}.ipynb`"
        if hw.document:
            files += f", `{hw.document}.pdf`"
        lines.append(
            f"| {name[2:]} | {hw.title} | {files} | {hw.auto_points:g} + {hw.manual_points:g} |"
        )
    lines += ["", _section(readme, "Credits"), _section(readme, "Licence")]
    return "\n".join(lines)


def _tracked(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True
    ).stdout.decode()
    return [p for p in out.split("\0") if p]


def build_release(out: Path, root: Path | None = None) -> list[str]:
    """Write the student repository to ``out`` (must not exist or be empty); its files."""
    root = repo_root() if root is None else Path(root)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty")
    written = []
    for rel in _tracked(root):
        if rel.startswith(INSTRUCTOR_ONLY) or rel in REPLACED or not (root / rel).is_file():
            continue
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dst)
        written.append(rel)
    (out / "README.md").write_text(student_readme(root), encoding="utf-8")
    (out / "Makefile").write_text(MAKEFILE, encoding="utf-8")
    return sorted(written + list(REPLACED))


# --- checks -------------------------------------------------------------------------------
def _regions(text: str, begin: str, end: str) -> list[str]:
    lines, inside = [], False
    for line in text.split("\n"):
        if re.match(rf"^\s*{begin}\s*$", line):
            inside = True
        elif re.match(rf"^\s*{end}\s*$", line):
            inside = False
        elif inside:
            lines.append(line)
    return lines


def _typst_solutions(text: str) -> list[str]:
    """The text inside every ``#solution[...]`` of a Typst sheet (brackets balanced)."""
    found = []
    for match in _SOLUTION_TYPST.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"[": 1, "]": -1}.get(text[i], 0)
            i += 1
        found += text[match.end() : i - 1].split("\n")
    return found


def answer_lines(root: Path) -> set[str]:
    """Lines only the instructor has: solution and hidden regions, solution-only cells, worked
    solutions and hidden tests of every homework (stripped; long enough to be specific; no
    imports; not lines the public library or the starters contain anyway)."""
    found = []
    for name in list_homeworks(root):
        hw = load_homework(name, root)
        for cell in read_source(hw.source_path).cells:
            if "solution-only" in cell.metadata.get("tags", []):
                found += cell.source.split("\n")
            for marker in ("SOLUTION", "HIDDEN"):
                found += _regions(cell.source, f"# BEGIN {marker}", f"# END {marker}")
                found += _regions(cell.source, f"<!-- BEGIN {marker} -->", f"<!-- END {marker} -->")
        if hw.document_path is not None:
            found += _typst_solutions(hw.document_path.read_text(encoding="utf-8"))
        found += hw.tests_path.read_text(encoding="utf-8").split("\n")
    answers = {
        line.strip()
        for line in found
        if len(line.strip()) >= MIN_ANSWER_CHARS
        and not line.strip().startswith(("import ", "from "))
    }
    public = set()
    for path in [*(root / "src").rglob("*.py"), *(root / "assignments").rglob("*.ipynb")]:
        public |= {line.strip() for line in _text_lines(path)}
    return answers - public


def _text_lines(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            line
            for cell in data.get("cells", [])
            for line in "".join(cell.get("source", [])).split("\n")
        ]
    try:
        return path.read_text(encoding="utf-8").split("\n")
    except (UnicodeDecodeError, OSError):
        return []  # binary: PDFs are checked at their Typst source by the build


def leaks(release: Path, root: Path | None = None) -> list[str]:
    """``path: line`` for every answer line found in the release, and every hidden-test file."""
    root = repo_root() if root is None else Path(root)
    answers = answer_lines(root)
    found = []
    for path in sorted(p for p in Path(release).rglob("*") if p.is_file()):
        rel = path.relative_to(release)
        if path.name == "tests_hidden.py" or rel.parts[0] == "solutions":
            found.append(f"{rel}: an instructor file")
            continue
        for line in _text_lines(path):
            if line.strip() in answers:
                found.append(f"{rel}: {line.strip()[:100]}")
    return found


def broken_links(release: Path) -> list[str]:
    """``file: target`` for every relative Markdown link that points nowhere."""
    broken = []
    for doc in sorted(Path(release).rglob("*.md")):
        for target in _LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                broken.append(f"{doc.relative_to(release)}: {target}")
    return broken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m visgen.course.release",
        description="Write the student repository (no solutions, hidden tests or history).",
    )
    parser.add_argument("out", type=Path, help="an empty or new folder")
    args = parser.parse_args(argv)
    try:
        files = build_release(args.out)
    except (FileExistsError, subprocess.CalledProcessError, ValueError) as err:
        print(f"visgen.course.release: {err}", file=sys.stderr)
        return 2
    problems = leaks(args.out) + broken_links(args.out)
    if problems:
        print("the release is not clean:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files to {args.out} (checked: no answers, no broken links)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
