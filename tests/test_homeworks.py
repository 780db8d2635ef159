"""Every homework in solutions/: the committed student folder is current and leaks nothing,
the solution notebook runs end to end in FAST mode, and the grader gives the solution full
marks, the starter zero, and a notebook with one wrong function loses exactly its points."""

import ast

import nbformat
import pytest

from visgen.course.build import execute_notebook, expected_files
from visgen.course.document import count_solutions
from visgen.course.grade import grade
from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.notebook import build_notebook, read_source, write_notebook

HOMEWORKS = list_homeworks()
ASSIGNMENTS = repo_root() / "assignments"

# One graded function per homework, replaced by a plausible mistake. Functions that call it
# are graded with a reference in its place, so only its own rubric item may be lost.
MISTAKES = {
    "hw1": (
        "ddpm_step",
        '''
def ddpm_step(eps_model, x, k, betas, alphas_bar, noise):
    """Uses the forward variance β_k instead of the posterior variance β̃_k."""
    eps = eps_model(x, torch.full((x.shape[0],), k / len(betas), dtype=x.dtype))
    beta, abar = betas[k - 1].item(), alphas_bar[k - 1].item()
    mean = (x - beta / math.sqrt(1 - abar) * eps) / math.sqrt(1 - beta)
    return mean if k == 1 else mean + math.sqrt(beta) * noise
''',
    ),
    "hw2": (
        "dpm1_step",
        '''
def dpm1_step(v_fn, x, t, s):
    """The plain ε-form, which is singular at t = 1."""
    eps, _ = fm_eps_x0(v_fn(x, t), x, t)
    lam = lambda u: math.log((1 - u) / u) if 0 < u < 1 else math.copysign(math.inf, 0.5 - u)
    h = lam(s) - lam(t)
    return (1 - s) / (1 - t) * x - s * math.expm1(h) * eps if t < 1 else x * math.nan
''',
    ),
    "hw3": (
        "drop_labels",
        '''
def drop_labels(y, p, generator=None):
    """Uses label 0 as the "no label" class (and forgets the generator)."""
    return torch.where(torch.rand(y.shape[0]) < p, torch.zeros_like(y), y)
''',
    ),
    "hw4": (
        "consistency_sample",
        '''
def consistency_sample(f, x, ts, schedule, generator=None):
    """Re-noises x̂0 to the current level instead of the next one."""
    ts = [float(t) for t in ts]
    for i, t in enumerate(ts[:-1]):
        x0 = f(x, t)
        if ts[i + 1] == 0:
            return x0
        x = q_sample(x0, t, torch.randn(x.shape, generator=generator, dtype=x.dtype), schedule)
    return x
''',
    ),
    "hw5": (
        "mmd_rbf",
        '''
def mmd_rbf(x, y, sigma):
    """The biased V-statistic: self-pairs kept in the within-set means."""
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))
    return k(x, x).mean((-1, -2)) + k(y, y).mean((-1, -2)) - 2 * k(x, y).mean((-1, -2))
''',
    ),
}


def test_every_homework_is_covered():
    assert {"hw1", "hw2", "hw3"} <= set(HOMEWORKS)
    assert set(MISTAKES) == set(HOMEWORKS)


def _notebook(name: str, tmp_path, *, starter: bool, extra: str | None = None):
    hw = load_homework(name)
    nb = build_notebook(read_source(hw.source_path), starter=starter)
    if extra is not None:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    path = tmp_path / f"{hw.notebook}.ipynb"
    write_notebook(nb, path)
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
    assert len(starter.cells) == len(source.cells) - solution_only
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


@pytest.mark.parametrize("name", HOMEWORKS)
def test_starter_gets_zero(name, tmp_path):
    report = grade(name, _notebook(name, tmp_path, starter=True))
    assert report.score == 0
    for item in report.items:
        assert item.reasons and all("not implemented yet" in r for r in item.reasons), item.reasons
    assert report.notes == []


@pytest.mark.parametrize("name", HOMEWORKS)
def test_one_wrong_function_loses_exactly_its_points(name, tmp_path):
    function, wrong = MISTAKES[name]
    hw = load_homework(name)
    report = grade(name, _notebook(name, tmp_path, starter=False, extra=wrong))
    lost = [r for r in report.items if not r.passed]
    assert [r.item for r in lost] == [hw.item_of_function(function)], report.format_table()
    assert report.score == report.max_score - hw.item_of_function(function).points
