"""The trusted side of grading: the hidden tests run here, the notebook in the sandbox.

Started by :mod:`visgen.course.grade` as ``python -m visgen.course._runner SPEC FD``. It
imports the homework's hidden tests (they never leave this process), starts a sandbox
(:mod:`visgen.course.sandbox`), has it load the notebook's definitions, and runs each test
with ``sub`` a :class:`Submission`: ``sub.f(...)`` calls the notebook's ``f`` in the sandbox
(:mod:`visgen.course.rpc`), and every check of the test runs here, on what came back, against
references computed here. The sandbox cannot reach this process's memory, files or events;
whatever it sends is data.

Each test runs under this process's alarm (its time limit plus a grace); the sandbox gets
the remaining time with every call and its own alarm stops the notebook's code first, so
the reason can name the line. A sandbox that dies, times out stubbornly or breaks the
protocol is killed and a fresh one (definitions loaded again) serves the next test.
Events go to the grader as JSON lines: ``isolation``, ``loaded``, ``start``, ``result``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sys
import time
from pathlib import Path

from visgen.course.extract import extract_definitions
from visgen.course.rpc import Channel, PeerLost, ProtocolError, RemoteError
from visgen.course.sandbox import Sandbox, SandboxLimits
from visgen.course.testing import GraderError

_REASON_CHARS = 600
_CONTROL_S = 30.0  # a control request (begin, end, replace) that takes longer: sandbox stuck


class GradingTimeout(BaseException):
    """This process's alarm: the test ran past its limit."""


class SandboxLost(BaseException):
    """The sandbox exited, was killed, or could not start."""


class MissingDefinition(AssertionError):
    pass


def _alarm(seconds: float) -> None:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.0))


def _on_alarm(signum, frame):
    raise GradingTimeout


def _clip(text: str, n: int = _REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _at(where) -> str:
    return f" (in `{where[0]}`, code cell {where[1]}, line {where[2]})" if where else ""


def describe_remote(err: RemoteError, memory_mb: int, limit: str) -> str:
    """A one-line reason for an exception the notebook's code raised in the sandbox."""
    name, message, where = err.type_name, err.message, err.where
    if name == "GradingTimeout":
        return f"took longer than {limit}{_at(where)}"
    if name == "SystemExit":
        return "called exit()"
    if name == "NotImplementedError" and where:
        return f"`{where[0]}` is not implemented yet (raises NotImplementedError)"
    if name == "MemoryError" or "can't allocate memory" in message:
        return f"ran out of memory (limit {memory_mb} MB){_at(where)}"
    reason = (
        f"{name}: {message.split(chr(10))[0]}{_at(where)}" if message else f"{name}{_at(where)}"
    )
    if name == "NameError" and where:
        reason += (
            " — the grader keeps only imports, functions, classes and UPPERCASE constants;"
            " define lowercase globals inside the function"
        )
    return reason


class _Function:
    """``sub.f``: calls the notebook's ``f`` in the sandbox."""

    def __init__(self, runner, name):
        self.runner, self.name = runner, name

    def __call__(self, *args, **kwargs):
        return self.runner.call(self.name, args, kwargs)

    def __repr__(self):
        return f"<notebook function {self.name}>"


class Submission:
    """What hidden tests receive as ``sub``: the notebook's definitions, by attribute."""

    def __init__(self, runner):
        object.__setattr__(self, "_runner", runner)

    def __getattr__(self, name):
        runner = self._runner
        if name.startswith("_"):
            raise AttributeError(name)
        if name in runner.failed:
            raise MissingDefinition(f"`{name}` could not be loaded: {runner.failed[name]}")
        if name not in runner.defined:
            raise MissingDefinition(
                f"`{name}` is not defined in the notebook (the grader keeps only imports, "
                "functions, classes and UPPERCASE constants)"
            )
        return _Function(runner, name)

    @contextlib.contextmanager
    def replaced(self, **definitions):
        """Run the notebook with grader functions standing in for some of its own, so that a
        function is graded on its own even when it calls other graded functions."""
        runner = self._runner
        channel = runner.channel
        runner.control("replace", definitions)
        for name, fn in definitions.items():
            channel.standins[channel.object_ids[id(fn)]] = name
        try:
            yield self
        finally:
            if not channel.broken:
                runner.control("restore", None)


class Runner:
    def __init__(self, spec: dict, emit):
        self.spec, self.emit = spec, emit
        self.tests = self._import_tests(spec["tests_file"])
        self.extraction = extract_definitions(spec["cells"])
        self.sandbox, self.channel = None, None
        self.defined, self.failed = set(), {}
        self.load_failure = None  # the reason every test fails once loading has failed
        self.sandboxes = 0

    @staticmethod
    def _import_tests(path):
        spec = importlib.util.spec_from_file_location("tests_hidden", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["tests_hidden"] = module
        spec.loader.exec_module(module)
        return module

    # --- the sandbox ---
    def _start(self):
        spec = self.spec
        self.sandboxes += 1
        limits = SandboxLimits(spec["memory_mb"], spec["file_bytes"], spec["cpu_s"])
        scratch = Path(spec["scratch"]) / f"sandbox{self.sandboxes}"
        sandbox = Sandbox(scratch, inputs=spec["inputs"], limits=limits, protect=spec["protect"])
        self.sandbox = sandbox
        try:
            isolation = sandbox.handshake()
        except (OSError, RuntimeError, ProtocolError, PeerLost) as err:
            tail = sandbox.log_tail()
            ending = sandbox.stop()
            self.sandbox = None
            raise SandboxLost(
                f"the sandbox could not start ({ending}): {tail or _clip(err, 200)}"
            ) from None
        if self.sandboxes == 1:
            self.emit({"event": "isolation", "isolation": isolation})
        self.channel = Channel(sandbox.sock, side="grader")
        _alarm(spec["load_time_s"])
        try:
            reply = self.channel.control(
                "load",
                {"cells": spec["cells"], "statement_time_s": spec["statement_time_s"]},
            )
        except GradingTimeout:
            self._stop()
            self.load_failure = (
                f"loading the notebook's definitions took longer than {spec['load_time_s']:g} s"
            )
            raise SandboxLost(self.load_failure) from None
        except (PeerLost, ProtocolError, RemoteError) as err:
            ending = self._stop(grace=2.0)
            self.load_failure = f"loading the notebook failed: the notebook's process {ending}"
            if isinstance(err, ProtocolError | RemoteError):
                self.load_failure += f" ({_clip(err, 200)})"
            raise SandboxLost(self.load_failure) from None
        finally:
            _alarm(0)
        self._loaded(reply)

    def _loaded(self, reply):
        failures = reply.get("failed") if isinstance(reply, dict) else None
        if not isinstance(failures, dict):
            raise ProtocolError("the sandbox's load report is malformed")
        definitions = self.extraction.definitions
        notes, failed = list(self.extraction.notes), {}
        if not definitions:
            notes.append("no imports, functions, classes or UPPERCASE constants found")
        for key, error in failures.items():
            if not (key.isdigit() and int(key) < len(definitions) and isinstance(error, dict)):
                raise ProtocolError("the sandbox's load report names unknown definitions")
            d = definitions[int(key)]
            err = RemoteError(
                _clip(error.get("type", "Error"), 60),
                _clip(error.get("message", ""), 400),
                None,
            )
            if err.type_name == "GradingTimeout":
                reason = f"took longer than {self.spec['statement_time_s']:g} s"
            else:
                reason = describe_remote(err, self.spec["memory_mb"], "")
            notes.append(
                f"code cell {d.cell}: `{', '.join(d.names)}` ({d.kind}) failed to load: {reason}"
            )
            failed.update(dict.fromkeys(d.names, reason))
        self.failed = failed
        self.defined = {n for d in definitions for n in d.names} - set(failed)
        if self.sandboxes == 1:
            self.emit({"event": "loaded", "notes": notes})

    def _stop(self, grace: float = 0.0) -> str:
        if self.sandbox is None:
            return "was not running"
        ending = self.sandbox.stop(grace)
        self.sandbox, self.channel = None, None
        return ending

    def control(self, kind, value):
        """A control request under a short alarm (the sandbox only answers it)."""
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        end = time.monotonic() + remaining
        _alarm(_CONTROL_S if remaining == 0 else min(remaining, _CONTROL_S))
        try:
            return self._guard(lambda: self.channel.control(kind, value))
        finally:
            _alarm(0 if remaining == 0 else max(end - time.monotonic(), 1e-3))

    def call(self, name, args, kwargs):
        return self._guard(lambda: self.channel.call(f"sub:{name}", "__call__", args, kwargs))

    def _guard(self, fn):
        try:
            return fn()
        except PeerLost:
            ending = self._stop(grace=2.0)
            raise SandboxLost(f"the notebook's process died ({ending})") from None

    # --- tests ---
    def run_test(self, name: str, limit: float) -> dict:
        start = time.perf_counter()
        result = self._run(name, limit)
        result["seconds"] = round(time.perf_counter() - start, 3)
        return result

    def _run(self, name, limit):
        if self.load_failure:
            return {"status": "no grade", "reason": self.load_failure}
        try:
            if self.sandbox is None:
                self._start()
            self.control("begin", {"test": name})
        except SandboxLost as err:
            return {"status": "no grade", "reason": str(err)}
        except ProtocolError as err:
            self._stop()
            return {"status": "no grade", "reason": f"the notebook's process {_clip(err)}"}
        channel, memory = self.channel, self.spec["memory_mb"]
        deadline = time.monotonic() + limit
        channel.deadline = lambda: max(deadline - time.monotonic(), 0.0)
        limit_text = f"{limit:g} s (the time limit of this test)"
        status, reason = "failed", None
        _alarm(limit + max(1.0, 0.1 * limit))
        try:
            getattr(self.tests, name)(Submission(self))
            status = "passed"
        except GradingTimeout:
            reason = f"took longer than {limit_text}"
        except RemoteError as err:
            reason = describe_remote(err, memory, limit_text)
        except SandboxLost as err:
            status, reason = "no grade", str(err)
        except ProtocolError as err:
            status = "no grade"
            reason = f"the notebook's process broke the grading protocol: {_clip(err, 300)}"
        except GraderError as err:
            status, reason = "error", f"grader error: {_clip(err)}"
        except MissingDefinition as err:
            reason = str(err)
        except AssertionError as err:
            reason = str(err).strip() or f"a check of {name} failed"
        except Exception as err:  # the grader could not use what came back
            reason = f"{type(err).__name__}: {_clip(str(err).split(chr(10))[0], 300)}"
        finally:
            _alarm(0)
        notes = list(channel.notes)
        if status != "passed" and notes:
            status = "error"
            reason = f"grader error: {notes[0]} (report this to the instructor; {reason})"
        result = {"status": status, "reason": None if reason is None else _clip(reason)}
        if self.channel is channel and not channel.broken:
            try:
                end = self.control("end", None)
                printed = end.get("printed") if isinstance(end, dict) else None
                if isinstance(printed, int) and printed > 64 * 1024:
                    result["printed"] = printed
            except (GradingTimeout, SandboxLost, ProtocolError, RemoteError):
                self._stop()
        elif self.sandbox is not None:
            self._stop()
        channel.close_test()
        return result

    def close(self):
        self._stop()


def main(spec_path: str, fd: int) -> None:
    import resource

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def emit(event: dict) -> None:
        out.write(json.dumps(event) + "\n")
        out.flush()

    signal.signal(signal.SIGALRM, _on_alarm)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    memory = (spec["memory_mb"] + 2048) * 2**20  # the references, and what the sandbox sends
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the grader
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    from visgen.config import set_threads

    set_threads(1)
    runner = Runner(spec, emit)
    try:
        for test in spec["tests"]:
            emit({"event": "start", "name": test["name"]})
            result = runner.run_test(test["name"], float(test["time_s"]))
            emit({"event": "result", "name": test["name"], **result})
    finally:
        runner.close()
    out.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
