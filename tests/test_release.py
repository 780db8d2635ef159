"""The student release (`make release OUT=DIR`): everything a student needs and no answers.

Builds the release from this checkout's tracked files, then checks that no solution region,
worked solution, hidden test or other instructor line is in it (and that this check does find
a planted one), that every Markdown link resolves, and that the README's two commands work
there as far as a test can afford: `make -n tour` and `make -n test` (the targets exist and
expand), the library imports from the release's own `src/`, `visgen tour --list` lists the
chapters, pytest collects every test the release ships (none needs an instructor file), and
`visgen grade` says it needs the instructor's tree.
"""

import os
import shutil
import subprocess
import sys

import pytest

from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.release import answer_lines, broken_links, build_release, leaks

REPO = repo_root()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "visgen-student"
    build_release(out)
    return out


def _run(release, *args):
    env = {**os.environ, "PYTHONPATH": str(release / "src")}
    return subprocess.run(args, cwd=release, env=env, capture_output=True, text=True)


def test_release_holds_the_student_files_and_no_instructor_files(release):
    for name in list_homeworks():
        hw = load_homework(name)
        assert (release / "assignments" / name / f"{hw.notebook}.ipynb").is_file()
        assert (release / "assignments" / name / f"{hw.document}.pdf").is_file()
    for path in ("src/visgen/__init__.py", "exam/exam_topics_visual_genai.md", "LICENSE"):
        assert (release / path).is_file(), path
    assert list(release.glob("lectures/*/slides.pdf"))
    for path in ("solutions", ".git", ".ci", "tests/data/grading", "tests/test_homeworks.py"):
        assert not (release / path).exists(), path
    assert not list(release.rglob("tests_hidden.py"))


def test_release_leaks_no_answer_and_links_resolve(release, tmp_path):
    assert len(answer_lines(REPO)) > 500  # solution regions, worked solutions, hidden tests
    assert leaks(release) == []
    assert broken_links(release) == []
    # the check finds a planted answer line and a planted hidden-test file
    planted = tmp_path / "planted"
    shutil.copytree(release / "docs", planted / "docs")
    solution = (REPO / "solutions" / "hw4" / "tests_hidden.py").read_text().split("\n")
    line = next(x for x in solution if x.strip() in answer_lines(REPO))
    (planted / "docs" / "notes.md").write_text(f"# notes\n\n{line}\n")
    (planted / "docs" / "tests_hidden.py").write_text("")
    assert len(leaks(planted)) == 2


def test_readme_commands_work_in_the_release(release):
    readme = (release / "README.md").read_text()
    assert "make tour" in readme and "make test" in readme
    for target in ("tour", "test"):
        dry = _run(release, "make", "-n", target)
        assert dry.returncode == 0, dry.stderr
        assert ("-m visgen tour" if target == "tour" else "-m pytest") in dry.stdout
    where = _run(release, sys.executable, "-c", "import visgen; print(visgen.__file__)")
    assert where.stdout.strip().startswith(str(release)), where.stdout
    tour = _run(release, sys.executable, "-m", "visgen", "tour", "--list")
    assert tour.returncode == 0 and "L01" in tour.stdout, tour.stderr
    # `make test` there: every test module imports without the instructor's files
    tests = _run(
        release,
        sys.executable,
        "-m",
        "pytest",
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests",
    )
    assert tests.returncode == 0 and " tests collected" in tests.stdout, tests.stdout[-2000:]
    hw = load_homework("hw1")
    grading = _run(
        release,
        sys.executable,
        "-m",
        "visgen",
        "grade",
        "hw1",
        f"assignments/hw1/{hw.notebook}.ipynb",
    )
    assert grading.returncode == 2 and "--instructor" in grading.stderr, grading.stderr
