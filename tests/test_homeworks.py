"""Every homework in solutions/: the committed student folder is current and leaks nothing,
the solution notebook runs end to end in FAST mode, and the grader gives the solution full
marks (the starter scoring zero: tests/test_grader_hostile.py, which grades every starter
with hostile cells added; one wrong function losing exactly its points:
tests/test_grading_isolation.py)."""

import ast

import nbformat
import pytest

from visgen.course.build import execute_notebook, expected_files, homework_notebook
from visgen.course.document import count_solutions
from visgen.course.grade import grade
from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.notebook import build_notebook, read_source, write_notebook

HOMEWORKS = list_homeworks()
ASSIGNMENTS = repo_root() / "assignments"


def test_every_homework_is_covered():
    assert {"hw1", "hw2", "hw3", "hw4", "hw5", "hw7"} <= set(HOMEWORKS)


def _notebook(name: str, tmp_path, *, starter: bool):
    hw = load_homework(name)
    path = tmp_path / f"{hw.notebook}.ipynb"
    write_notebook(homework_notebook(hw, starter=starter), path)
    return path


@pytest.mark.parametrize("name", HOMEWORKS)
def test_rubric_matches_hidden_tests_and_source(name):
    hw = load_homework(name)
    tree = ast.parse(hw.tests_path.read_text())
    defined = {
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    }
    used = {t for item in hw.items for t in item.tests}
    assert defined == used, (
        f"hidden tests without rubric item: {defined - used}; missing: {used - defined}"
    )
    source = ast.parse(
        "\n".join(c.source for c in read_source(hw.source_path).cells if c.cell_type == "code")
    )
    functions = {n.name: n for n in ast.walk(source) if isinstance(n, ast.FunctionDef)}
    for item in hw.items:
        assert item.functions, f"rubric item {item.id} names no function"
        for f in item.functions:
            assert f in functions, f"rubric item {item.id}: {f} is not defined in the notebook"


@pytest.mark.parametrize("name", HOMEWORKS)
def test_committed_assignment_is_up_to_date(name):
    hw = load_homework(name)
    for filename, data in expected_files(hw).items():
        path = ASSIGNMENTS / name / filename
        assert path.is_file() and path.read_bytes() == data, (
            f"{path} is stale: run `make assignments`"
        )


@pytest.mark.parametrize("name", HOMEWORKS)
def test_starter_leaks_no_solution(name):
    hw = load_homework(name)
    starter = nbformat.read(ASSIGNMENTS / name / f"{hw.notebook}.ipynb", as_version=4)
    source = read_source(hw.source_path)
    text = "\n".join(c.source for c in starter.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN", "END HIDDEN"):
        assert marker not in text
    solution_only = sum("solution-only" in c.metadata.get("tags", []) for c in source.cells)
    assert len(starter.cells) == len(source.cells) - solution_only + 1  # + the points table
    assert starter.cells[1].source.startswith(f"**Points.** {hw.auto_points:g} points")
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in starter.cells
        if c.cell_type == "code"
    )
    assert starter.metadata["kernelspec"]["name"] == "python3"
    tree = ast.parse("\n".join(c.source for c in starter.cells if c.cell_type == "code"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for f in (f for item in hw.items for f in item.functions):
        body = functions[f].body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring stays
        assert len(body) == 1 and isinstance(body[0], ast.Raise), f"the starter's {f} is not a stub"
        assert ast.unparse(body[0].exc) == "NotImplementedError"
    assert count_solutions(hw.document_path, instructor=False) == 0
    assert count_solutions(hw.document_path, instructor=True) >= 1


@pytest.mark.parametrize("name", HOMEWORKS)
def test_solution_notebook_runs_in_fast_mode(name, tmp_path):
    # runs, not how fast: times are benchmarks (benchmarks/homeworks.py, the READMEs)
    hw = load_homework(name)
    nb = build_notebook(read_source(hw.source_path), starter=False)
    execute_notebook(nb, tmp_path, fast=True)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


@pytest.mark.parametrize("name", HOMEWORKS)
def test_solution_gets_full_marks(name, tmp_path):
    report = grade(name, _notebook(name, tmp_path, starter=False))
    assert report.score == report.max_score > 0, report.format_table()
