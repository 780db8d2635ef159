"""The grading worker: a child process that loads a submission and runs hidden tests.

Started by :mod:`visgen.course.grade` as ``python -m visgen.course._worker SPEC FD``. It sets
its own resource limits (address space, file size, no core dumps), loads the hidden tests,
then the submission's definitions (:mod:`visgen.course.extract`) statement by statement,
and runs each test under a soft time limit (SIGALRM). Events go to the inherited pipe FD as
JSON lines; the parent enforces the hard time limit and restarts a crashed worker.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import linecache
import os
import resource
import signal
import sys
import time
import traceback
import types

from visgen.course.extract import extract_definitions

_REASON_CHARS = 600


class GradingTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so `except Exception` in student code misses it."""


class MissingDefinition(AssertionError):
    pass


class Submission:
    """What hidden tests receive as ``sub``: the notebook's definitions, by attribute."""

    def __init__(self, module: types.ModuleType, failed: dict[str, str]):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_failed", failed)

    @contextlib.contextmanager
    def replaced(self, **definitions):
        """Swap notebook globals for reference versions while testing one function, so a
        function is graded on its own even when it calls other graded functions."""
        namespace = self._module.__dict__
        missing = object()
        old = {name: namespace.get(name, missing) for name in definitions}
        namespace.update(definitions)
        try:
            yield self
        finally:
            for name, value in old.items():
                if value is missing:
                    namespace.pop(name, None)
                else:
                    namespace[name] = value

    def __getattr__(self, name):
        try:
            return getattr(self._module, name)
        except AttributeError:
            pass
        if name in self._failed:
            raise MissingDefinition(f"`{name}` could not be loaded: {self._failed[name]}")
        raise MissingDefinition(
            f"`{name}` is not defined in the notebook (the grader keeps only imports, "
            "functions, classes and UPPERCASE constants)"
        )


class _CappedStream:
    """A text stream that keeps the first `cap` characters and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.kept, self.total = cap, [], 0

    def write(self, s):
        s = str(s)
        if self.total < self.cap:
            self.kept.append(s[: self.cap - self.total])
        self.total += len(s)
        return len(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def reset(self):
        self.kept, self.total = [], 0


def _alarm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.0))


def _on_alarm(signum, frame):
    raise GradingTimeout


def _student_frame(tb):
    """(function, cell, line) of the innermost traceback frame in notebook code."""
    found = None
    for frame, lineno in traceback.walk_tb(tb):
        name = frame.f_code.co_filename
        if name.startswith("<cell "):
            found = (frame.f_code.co_name, name[6:-1], lineno)
    return found


def _test_line(tb, tests_file: str):
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == tests_file:
            line = linecache.getline(tests_file, lineno).strip()
    return line


def describe(
    exc: BaseException, limit_s: float, memory_mb: int, tests_file: str, limit_of: str = "this test"
) -> str:
    """A one-line reason a student can act on."""
    tb = exc.__traceback__
    where = _student_frame(tb)
    at = f" (in `{where[0]}`, code cell {where[1]}, line {where[2]})" if where else ""
    if isinstance(exc, GradingTimeout):
        reason = f"took longer than {limit_s:g} s (the time limit of {limit_of}){at}"
    elif isinstance(exc, MissingDefinition):
        reason = str(exc)
    elif isinstance(exc, NotImplementedError) and where:
        reason = f"`{where[0]}` is not implemented yet (raises NotImplementedError)"
    elif isinstance(exc, MemoryError) or "can't allocate memory" in str(exc):
        reason = f"ran out of memory (limit {memory_mb} MB){at}"
    elif isinstance(exc, AssertionError) and not where:
        reason = str(exc).strip() or f"check failed: {_test_line(tb, tests_file)}"
    else:
        msg = str(exc).strip().split("\n")[0]
        reason = f"{type(exc).__name__}: {msg}{at}"
        if isinstance(exc, NameError) and where:
            reason += (
                " — the grader keeps only imports, functions, classes and UPPERCASE"
                " constants; define lowercase globals inside the function"
            )
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"


def _limits(spec: dict) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec["file_bytes"], spec["file_bytes"]))
    memory = spec["memory_mb"] * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _load_tests(path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("tests_hidden", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tests_hidden"] = module
    spec.loader.exec_module(module)
    return module


def _load_submission(cells, spec, emit) -> Submission:
    extraction = extract_definitions(cells)
    module = types.ModuleType("submission")
    module.__file__ = "<notebook>"
    sys.modules["submission"] = module
    for index, text in extraction.sources.items():
        filename = f"<cell {index}>"
        lines = [line + "\n" for line in text.split("\n")]
        linecache.cache[filename] = (len(text), None, lines, filename)
    notes, failed = list(extraction.notes), {}
    if not extraction.definitions:
        notes.append("no imports, functions, classes or UPPERCASE constants found")
    for d in extraction.definitions:
        code = compile(d.node, f"<cell {d.cell}>", "exec")
        _alarm(spec["statement_time_s"])
        try:
            exec(code, module.__dict__)
        except BaseException as exc:  # a bad statement must not stop grading
            if isinstance(exc, KeyboardInterrupt):
                raise
            _alarm(0)
            reason = describe(exc, spec["statement_time_s"], spec["memory_mb"], "", "one statement")
            if isinstance(exc, SystemExit):
                reason = "called exit()"
            label = ", ".join(d.names)
            notes.append(f"code cell {d.cell}: `{label}` ({d.kind}) failed to load: {reason}")
            failed.update(dict.fromkeys(d.names, reason))
        finally:
            _alarm(0)
    emit({"event": "loaded", "notes": notes})
    return Submission(module, failed)


def main(spec_path: str, fd: int) -> None:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def emit(event: dict) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    _limits(spec)
    signal.signal(signal.SIGALRM, _on_alarm)
    from visgen.config import set_threads

    set_threads(1)
    tests = _load_tests(spec["tests_file"])
    stream = _CappedStream(spec["output_chars"])
    sys.stdout = sys.stderr = stream
    sub = _load_submission(spec["cells"], spec, emit)
    for test in spec["tests"]:
        name, limit = test["name"], test["time_s"]
        os.makedirs(spec["workdir"], exist_ok=True)
        os.chdir(spec["workdir"])
        stream.reset()
        emit({"event": "start", "name": name})
        start = time.perf_counter()
        reason = None
        _alarm(limit)
        try:
            getattr(tests, name)(sub)
        except BaseException as exc:  # every failure becomes a reason
            _alarm(0)
            if isinstance(exc, KeyboardInterrupt):
                raise
            reason = (
                "called exit()"
                if isinstance(exc, SystemExit)
                else describe(exc, limit, spec["memory_mb"], spec["tests_file"])
            )
        finally:
            _alarm(0)
        event = {
            "event": "result",
            "name": name,
            "passed": reason is None,
            "reason": reason,
            "seconds": round(time.perf_counter() - start, 3),
        }
        if stream.total > spec["output_chars"]:
            event["printed"] = stream.total
        emit(event)
    out.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
