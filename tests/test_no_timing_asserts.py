"""No test asserts how long something took: CI machines differ (AMD/Intel, idle/loaded), so a
time bar fails on a slow or busy machine without anything being wrong. Times are benchmarks
(``benchmarks/``, BENCHMARKS.md, the homework READMEs); tests assert counts and errors.

The check reads every Python file under ``tests/`` and ``solutions/`` (hidden tests and
solution notebooks) with :mod:`ast`: a name assigned from a clock (``time.time``,
``perf_counter``, ``monotonic``, ``process_time``, their ``_ns`` forms, ``timeit``'s timer,
``datetime.now``), or from an expression using such a name, is a *time*; an ``assert``, a
``check(...)``/``assert_*(...)``/``self.assert*(...)`` call, or an ``if`` that raises or calls
``pytest.fail`` must not test a time.
"""

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLOCKS = {
    "time",
    "time_ns",
    "perf_counter",
    "perf_counter_ns",
    "monotonic",
    "monotonic_ns",
    "process_time",
    "process_time_ns",
    "thread_time",
    "thread_time_ns",
    "default_timer",
    "now",
    "utcnow",
}
CLOCK_MODULES = {"time", "timeit", "datetime"}


def _clock_aliases(tree: ast.AST) -> set[str]:
    """Names bound by ``from time import perf_counter [as pc]`` and the like."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES
        for alias in node.names
        if alias.name in CLOCKS
    }


def _reads_clock(node: ast.AST, aliases: set[str], times: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            if isinstance(f, ast.Attribute) and f.attr in CLOCKS:
                base = ast.unparse(f.value).split(".")[-1]
                if base in CLOCK_MODULES:
                    return True
            if isinstance(f, ast.Name) and f.id in aliases:
                return True
        if isinstance(sub, (ast.Name, ast.Attribute)) and ast.unparse(sub) in times:
            return True
    return False


def _assignments(tree: ast.AST):
    """(value, target names) of every assignment, e.g. ``self.start = time.time()``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)) and node.value:
            targets = [node.target]
        else:
            continue
        yield node.value, [name for t in targets for name in _names(t)]


def _names(target: ast.AST) -> list[str]:
    """``a``, ``self.start``; the elements of ``a, b = ...``; ``x`` of ``x[i] = ...``."""
    if isinstance(target, (ast.Name, ast.Attribute)):
        return [ast.unparse(target)]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for elt in target.elts for name in _names(elt)]
    if isinstance(target, (ast.Starred, ast.Subscript)):
        return _names(target.value)
    return []


def _is_assertion_call(call: ast.Call) -> bool:
    name = ast.unparse(call.func).split(".")[-1]
    return name == "check" or name.startswith(("assert_", "assert")) or name == "fail"


def timing_assertions(source: str) -> list[int]:
    """Line numbers of the assertions on elapsed time in ``source``."""
    tree = ast.parse(source)
    aliases = _clock_aliases(tree)
    times: set[str] = set()
    assignments = list(_assignments(tree))
    while True:  # names derived from clocks, to a fixed point (start, end, end - start, ...)
        found = {
            name
            for value, names in assignments
            if _reads_clock(value, aliases, times)
            for name in names
        }
        if found <= times:
            break
        times |= found
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            tested = node.test
        elif isinstance(node, ast.Call) and _is_assertion_call(node):
            tested = ast.Tuple(elts=[*node.args, *(k.value for k in node.keywords)])
        elif isinstance(node, ast.If) and any(
            isinstance(s, ast.Raise)
            or (
                isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Call)
                and _is_assertion_call(s.value)
            )
            for s in node.body
        ):
            tested = node.test
        else:
            continue
        if _reads_clock(tested, aliases, times):
            lines.append(node.lineno)
    return sorted(set(lines))


def _python_files():
    for folder in ("tests", "solutions"):
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", list(_python_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_assertion_on_elapsed_time(path):
    lines = timing_assertions(path.read_text(encoding="utf-8"))
    assert not lines, (
        f"{path.relative_to(ROOT)} asserts on elapsed time at line(s) {lines}: CI machines "
        "differ, so move the time to benchmarks/ and assert counts or errors instead"
    )


# The assertion issue 14 removed from tests/test_homeworks.py, and other spellings of it.
CAUGHT = {
    "issue 14's FAST-run bar": """
        import time
        FAST_RUN_LIMIT_S = 90
        def test_solution_notebook_runs_in_fast_mode(name, tmp_path):
            start = time.perf_counter()
            execute_notebook(nb, tmp_path, fast=True)
            seconds = time.perf_counter() - start
            assert seconds < FAST_RUN_LIMIT_S, f"{name}: the FAST solution run took {seconds:.0f} s"
        """,
    "a clock inside the assert": """
        import time
        t0 = time.time()
        run()
        assert time.time() - t0 < 5
        """,
    "an imported alias and check()": """
        from time import monotonic as clock
        begin = clock()
        run()
        check(clock() - begin < 1.0, "too slow")
        """,
    "a derived name and an if that raises": """
        import time
        class Bench:
            def go(self):
                self.start = time.process_time_ns()
                run()
                elapsed = (time.process_time_ns() - self.start) / 1e9
                if elapsed > 2:
                    raise AssertionError("slow")
        """,
    "timeit and pytest.fail": """
        import timeit
        import pytest
        t = timeit.default_timer()
        run()
        took = timeit.default_timer() - t
        if took > 3:
            pytest.fail("slow")
        """,
}
ALLOWED = {
    "a time printed, counts asserted": """
        import time
        start = time.perf_counter()
        y = run()
        print(f"took {time.perf_counter() - start:.1f} s")
        assert den.nfe == 8 and len(y) == 3
        """,
    "a time limit handed to a sandbox": """
        report = grade(name, notebook, time_s=60)
        assert report.score == report.max_score
        """,
}


@pytest.mark.parametrize("source", CAUGHT.values(), ids=CAUGHT.keys())
def test_the_check_catches_timing_assertions(source):
    assert len(timing_assertions(textwrap.dedent(source))) == 1


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_the_check_allows_timing_that_is_not_asserted(source):
    assert timing_assertions(textwrap.dedent(source)) == []
