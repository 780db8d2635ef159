"""The homework machinery on its own: starter generation, definition extraction, and a grader
that scores (never crashes on) notebooks that loop, exit, hog memory, delete files or print
megabytes. Uses the fixture homework in tests/data/grading/hwx."""

import json
import shutil
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pytest

from visgen.course.extract import extract_definitions
from visgen.course.grade import grade, main
from visgen.course.homework import load_homework
from visgen.course.notebook import STARTER_TODO, build_notebook, notebook_code_cells

FIXTURE = Path(__file__).parent / "data" / "grading"


def _source(text: str) -> nbformat.NotebookNode:
    return jupytext.reads(textwrap.dedent(text).lstrip(), fmt="py:percent")


def test_starter_replaces_solutions_and_drops_hidden_content():
    src = _source(
        '''
        # %% [markdown]
        # Explain.
        # <!-- BEGIN SOLUTION -->
        # Because of the model answer.
        # <!-- END SOLUTION -->

        # %%
        def f(x):
            """Doc."""
            if x:
                # BEGIN SOLUTION
                return x + 1
                # END SOLUTION
            return 0
        # BEGIN HIDDEN
        assert f(1) == 2
        # END HIDDEN

        # %% tags=["solution-only", "plot"]
        print(f(2))
        '''
    )
    starter = build_notebook(src, starter=True)
    solution = build_notebook(src, starter=False)
    assert [c.cell_type for c in starter.cells] == ["markdown", "code"]
    assert "model answer" not in starter.cells[0].source
    assert "*Your answer here.*" in starter.cells[0].source
    code = starter.cells[1].source
    assert f"        {STARTER_TODO}\n        raise NotImplementedError\n    return 0" in code
    assert "x + 1" not in code and "assert" not in code and "BEGIN" not in code
    assert len(solution.cells) == 3 and solution.cells[2].metadata["tags"] == ["plot"]
    assert "return x + 1" in solution.cells[1].source and "SOLUTION" not in solution.cells[1].source
    assert "assert f(1) == 2" in solution.cells[1].source
    for nb in (starter, solution):
        assert nb.metadata["kernelspec"]["name"] == "python3"
        assert all(c.get("outputs", []) == [] for c in nb.cells)
    # deterministic: the same source gives the same bytes
    assert nbformat.writes(build_notebook(src, starter=True)) == nbformat.writes(starter)


@pytest.mark.parametrize(
    "body, message",
    [
        ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n# END SOLUTION\n", "without its BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN HIDDEN\n# END HIDDEN\n# END SOLUTION\n", "inside solution"),
    ],
)
def test_unbalanced_markers_are_reported_with_their_cell(body, message):
    src = _source("# %%\n" + body)
    with pytest.raises(ValueError, match=message) as err:
        build_notebook(src, starter=True)
    assert "cell 1" in str(err.value)


def test_extraction_keeps_only_definitions():
    cells = [
        "%matplotlib inline\nimport math\nfrom os import path as p\nSTEPS = 10\nT_MAX: float = 2.0\n"
        "A, B = 1, 2\nlowercase = 3\nmixed_Case = 4\nprint('side effect')\ntrain()",
        "@staticmethod\ndef f(x):\n    !ls\n    return x\nclass Net:\n    pass\nfor i in range(3):\n    pass",
        "def broken(:\n    pass",
    ]
    out = extract_definitions(cells)
    kinds = [(d.kind, d.names) for d in out.definitions]
    assert kinds == [
        ("import", ["math"]),
        ("import", ["p"]),
        ("constant", ["STEPS"]),
        ("constant", ["T_MAX"]),
        ("constant", ["A", "B"]),
        ("function", ["f"]),
        ("class", ["Net"]),
    ]
    assert out.notes == ["code cell 3 skipped: syntax error at line 1: invalid syntax"]
    namespace = {}
    for d in out.definitions:
        exec(compile(d.node, "<test>", "exec"), namespace)
    assert namespace["f"] is not None and namespace["STEPS"] == 10 and "lowercase" not in namespace


def _solutions(tmp_path, **limits) -> Path:
    root = tmp_path / "solutions"
    shutil.copytree(FIXTURE, root)
    if limits:
        manifest = root / "hwx" / "homework.json"
        data = json.loads(manifest.read_text())
        data["limits"].update(limits)
        manifest.write_text(json.dumps(data))
    return root


def _notebook(tmp_path, text: str, name="submission.ipynb") -> Path:
    folder = tmp_path / "student"
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    (folder / "artifacts" / "data.txt").write_text("hello\n")
    path = folder / name
    nbformat.write(jupytext.reads(textwrap.dedent(text).lstrip(), fmt="py:percent"), path)
    return path


GOOD = """
# %%
import os
N = 3

def square(x):
    return x * x

def cube(x):
    return x ** N

def read_input():
    with open(os.path.join("artifacts", "data.txt")) as f:
        return f.read().strip()

# %%
def loop():
    return 1

def stubborn():
    return 1

def leave():
    return 1

def hog():
    return 1

def wipe():
    return 1

def chatty():
    return 1
"""

NASTY = """
# %%
import os
import shutil
import signal
import sys
import time
import module_that_does_not_exist
BROKEN = 1 / 0
SLOW = time.sleep(100)
raise RuntimeError("a top-level statement: never run by the grader")

def square(x):
    return x * x

def cube(x):
    return x * x

def loop():
    while True:
        pass

def stubborn():
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass

def wipe():
    for entry in os.listdir("."):
        shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(os.path.join("..", "harness"), ignore_errors=True)
    return 1

def leave():
    os._exit(3)

def hog():
    return len(bytearray(8 * 2**30))

def chatty():
    for _ in range(100):
        print("x" * 100_000)
    os.write(1, b"y" * 1_000_000)
    return 1

def read_input():
    with open(os.path.join("artifacts", "data.txt")) as f:
        return f.read().strip()

# %%
def unfinished(:
    pass
"""


def test_good_notebook_gets_full_marks(tmp_path):
    report = grade("hwx", _notebook(tmp_path, GOOD), instructor=_solutions(tmp_path))
    assert report.score == report.max_score == 10, report.format_table()
    assert report.notes == []


def test_misbehaving_notebook_is_scored_not_crashed_on(tmp_path):
    report = grade("hwx", _notebook(tmp_path, NASTY), instructor=_solutions(tmp_path))
    by_id = {r.item.id: r for r in report.items}
    reason = {r.item.id: " ".join(r.reasons) for r in report.items}
    assert by_id["a"].points == 2  # unaffected by the chaos around it
    assert "cube(2) should be 8, got 4" in reason["b"]
    assert "took longer than 1.5 s" in reason["c"] and "`loop`" in reason["c"]
    assert "took longer than 1.5 s" in reason["d"]  # killed by the parent, worker restarted
    assert "died (exit code 3)" in reason["e"] and by_id["e"].status == "no grade"
    assert "ran out of memory (limit 1536 MB)" in reason["f"]
    assert by_id["g"].passed  # deleting its own working files is not an error...
    assert by_id["i"].passed  # ...and the restarted worker gets fresh files
    chatty = by_id["h"].tests[0]
    assert chatty.passed and chatty.printed >= 10_000_000
    assert report.score == 2 + 1 + 1 + 1
    notes = "\n".join(report.notes)
    assert "module_that_does_not_exist" in notes and "ModuleNotFoundError" in notes
    assert "`BROKEN` (constant) failed to load: ZeroDivisionError" in notes
    assert "`SLOW` (constant) failed to load: took longer than 1.5 s" in notes
    assert "code cell 2 skipped: syntax error" in notes
    table = report.format_table()
    assert "total (autograded)" in table and "5 / 10" in table and "graded by hand" in table


def test_loading_that_never_finishes_zeroes_every_test(tmp_path):
    text = "# %%\nimport signal, time\nHANG = (signal.signal(signal.SIGALRM, signal.SIG_IGN), time.sleep(60))\n"
    report = grade("hwx", _notebook(tmp_path, text), instructor=_solutions(tmp_path, load_time_s=6))
    assert report.score == 0
    assert all("took longer than 6 s" in r for item in report.items for r in item.reasons)


def test_unreadable_notebook_and_missing_functions(tmp_path):
    solutions = _solutions(tmp_path)
    bad = tmp_path / "garbage.ipynb"
    bad.write_text("{not json")
    report = grade("hwx", bad, instructor=solutions)
    assert report.score == 0 and "not a readable notebook" in report.items[0].reasons[0]
    empty = _notebook(tmp_path, "# %%\nprint('no definitions')\n", "empty.ipynb")
    report = grade("hwx", empty, instructor=solutions)
    assert report.score == 0
    assert "`square` is not defined in the notebook" in report.items[0].reasons[0]
    assert report.notes == ["no imports, functions, classes or UPPERCASE constants found"]


def test_cli_json_and_errors(tmp_path, capsys):
    solutions = _solutions(tmp_path)
    path = _notebook(tmp_path, GOOD)
    assert main(["hwx", str(path), "--json", "--instructor", str(solutions)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["score"] == data["max_score"] == 10
    assert {i["id"] for i in data["items"]} == set("abcdefghi")
    assert data["manual"] == [{"id": "M", "title": "written answer", "max_points": 3}]
    assert main(["hw99", str(path), "--instructor", str(solutions)]) == 2
    assert "unknown homework 'hw99'" in capsys.readouterr().err
    assert main(["hwx", str(tmp_path / "missing.ipynb"), "--instructor", str(solutions)]) == 2


def test_code_cells_of_a_notebook_that_fails_validation(tmp_path):
    path = tmp_path / "loose.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["a = 1\n", "B = 2"]}]}))
    assert notebook_code_cells(path) == ["a = 1\nB = 2"]


def test_manifest_errors_name_the_field(tmp_path):
    root = _solutions(tmp_path)
    manifest = root / "hwx" / "homework.json"
    data = json.loads(manifest.read_text())
    del data["rubric"][0]["points"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"rubric\[0\]: missing field 'points'"):
        load_homework("hwx", root)


def test_recorded_results_reach_the_readme(tmp_path):
    from visgen.course.build import render_readme
    from visgen.course.homework import record_results

    path = record_results(
        [
            {"samples": "teacher", "NFE": 50, "FD": 12.345},
            {"samples": "student", "NFE": 4, "FD": 20.0},
        ],
        "Digits: Fréchet distance.",
        tmp_path / "results.json",
    )
    table = json.loads(path.read_text())
    assert table["columns"] == ["samples", "NFE", "FD"] and table["rows"][1] == ["student", 4, 20.0]
    with pytest.raises(ValueError, match="same keys"):
        record_results([{"a": 1}, {"b": 2}], "x", tmp_path / "bad.json")
    solutions = tmp_path / "solutions"
    shutil.copytree(FIXTURE / "hwx", solutions / "hwx")
    (solutions / "hwx" / "runtime.json").write_text(
        json.dumps({"full": {"seconds": 61.0, "date": "d", "machine": "m", "results": table}})
    )
    readme = render_readme(load_homework("hwx", solutions))
    assert "## Measured results (full budget)\n\nDigits: Fréchet distance.\n" in readme
    assert (
        "| samples | NFE | FD |\n|---|---|---|\n| teacher | 50 | 12.3 |\n| student | 4 | 20 |"
        in readme
    )


def test_recorded_animations_reach_the_readme_and_the_student_folder(tmp_path, monkeypatch):
    import torch

    from visgen.course.build import expected_files, render_readme
    from visgen.course.homework import ANIMATIONS_FILE, record_animation

    monkeypatch.chdir(tmp_path)  # the notebook's working folder
    video = torch.zeros(2, 3, 1, 4, 4)
    record_animation(video, "clip.gif", "Two black clips.")
    record_animation(video + 1, "clip.gif", "Two white clips.")  # replaces its entry
    listed = json.loads(Path(ANIMATIONS_FILE).read_text())
    assert listed == [{"file": "clip.gif", "caption": "Two white clips."}]
    gif = Path("clip.gif").read_bytes()
    assert gif.startswith(b"GIF89a")
    with pytest.raises(ValueError, match="plain name ending in .gif"):
        record_animation(video, "../clip.gif", "Outside the folder.")
    solutions = tmp_path / "solutions"
    shutil.copytree(FIXTURE / "hwx", solutions / "hwx")
    shutil.copy("clip.gif", solutions / "hwx" / "clip.gif")  # what --measure full keeps
    (solutions / "hwx" / "fixture.py").write_text("# %%\nX = 1\n")  # a one-cell notebook
    (solutions / "hwx" / "runtime.json").write_text(
        json.dumps({"full": {"seconds": 61.0, "date": "d", "machine": "m", "animations": listed}})
    )
    hw = load_homework("hwx", solutions)
    assert "## Generated videos (full budget)\n\nTwo white clips.\n\n![clip.gif](clip.gif)\n" in (
        render_readme(hw)
    )
    assert expected_files(hw)["clip.gif"] == gif


def test_input_files_are_read_only_inside_the_submission(tmp_path):
    """`inputs` are copied from the notebook's folder, never through a link that leaves it."""
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "data.txt").write_text("hello\n")  # what read_input would need
    path = _notebook(tmp_path, GOOD)
    shutil.rmtree(path.parent / "artifacts")
    (path.parent / "artifacts").symlink_to(secret)
    report = grade("hwx", path, instructor=_solutions(tmp_path))
    lost = {r.item.id for r in report.items if not r.passed}
    assert lost == {"i"}, report.format_table()
    assert "FileNotFoundError" in report.items[-1].reasons[0]


# The grader's own reference failing, three ways: it raises, it is NaN, and a stand-in it lends
# the notebook returns NaN for a finite input. Each is the grader's error, never the student's.
GRADER_FAULTS = """

def test_square(sub):  # the reference raises
    got = sub.square(3)
    check(got == reference(lambda x: x * x / 0, 3), f"square(3) should be 9, got {got!r}")


def test_cube(sub):  # a stand-in for the notebook's square returns NaN
    with sub.replaced(square=lambda x: x * float("nan")):
        got = sub.cube(2)
    check(got == 8, f"cube(2) should be 8, got {got!r}")


def test_cube_negative(sub):  # the reference is NaN
    assert_close(sub.cube(-2), float("nan"), "cube(-2)")
"""


def test_a_failing_reference_is_a_grader_error(tmp_path, capsys):
    solutions = _solutions(tmp_path)
    tests = solutions / "hwx" / "tests_hidden.py"
    text = tests.read_text().replace("import check", "import assert_close, check, reference")
    tests.write_text(text + GRADER_FAULTS)  # later definitions replace the fixture's tests
    good = GOOD.replace("return x ** N", "return square(x) * x")  # cube calls square
    path = _notebook(tmp_path, good)
    report = grade("hwx", path, instructor=solutions)
    status = {r.item.id: r.status for r in report.items}
    assert status == {**dict.fromkeys("cdefghi", "passed"), "a": "error", "b": "error"}, status
    assert report.grader_errors == ["a", "b"] and report.score == 10 - 3
    reasons = {r.item.id: r.reasons for r in report.items}
    assert "the reference failed: ZeroDivisionError" in reasons["a"][0]
    assert "stand-in for `square` returned NaN or inf" in reasons["b"][0]
    assert "the reference for cube(-2) contains NaN" in reasons["b"][1]
    assert all("grader error" in r for r in reasons["a"] + reasons["b"])
    table = report.format_table()
    assert "GRADER ERROR in a, b" in table and "not the notebook's fault" in table
    # the command says so too: exit code 3, and the JSON lists the items
    assert main(["hwx", str(path), "--json", "--instructor", str(solutions)]) == 3
    assert json.loads(capsys.readouterr().out)["grader_errors"] == ["a", "b"]
