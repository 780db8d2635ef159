"""Inside the sandbox: load a notebook's definitions and run its functions for the grader.

Executed by the sandbox's boot (:mod:`visgen.course.sandbox`) as
``python -I -B -m visgen.course._harness FD WORKDIR INPUTS``. Nothing here is trusted: the
grader treats every answer of this process as the notebook's own words. It serves the
grader's requests (:mod:`visgen.course.rpc`): ``load`` (the definitions, statement by
statement, each under an alarm), ``begin``/``end`` of a test (a fresh working directory with
the input files; the characters printed), ``replace``/``restore`` (grader functions standing
in for notebook functions), and calls of the notebook's functions, each under the alarm the
grader's remaining test time allows.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import shutil
import signal
import socket
import sys
import time
import traceback
import types

from visgen.course.extract import extract_definitions
from visgen.course.rpc import Channel, PeerLost

OUTPUT_CHARS = 64 * 1024  # what one test may print before the rest is dropped
_MISSING = object()


class GradingTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so that `except Exception` in notebook code misses it."""


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


class _Alarm:
    """Nested deadlines for notebook code; paused while the grader is working."""

    def __init__(self):
        self.stack = []

    def enter(self, seconds):
        deadline = None if seconds is None else time.monotonic() + max(float(seconds), 0.0)
        outer = self.stack[-1] if self.stack else None
        if outer is not None and (deadline is None or outer < deadline):
            deadline = outer
        self.stack.append(deadline)
        self.resume()

    def exit(self):
        signal.setitimer(signal.ITIMER_REAL, 0)
        self.stack.pop()

    def pause(self):
        signal.setitimer(signal.ITIMER_REAL, 0)

    def resume(self):
        deadline = self.stack[-1] if self.stack else None
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise GradingTimeout
        signal.setitimer(signal.ITIMER_REAL, left)


def _on_alarm(signum, frame):
    raise GradingTimeout


def where(exc: BaseException):
    """[function, code cell, line] of the innermost notebook frame of a traceback, or None."""
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        name = frame.f_code.co_filename
        if name.startswith("<cell ") and name.endswith(">"):
            found = [frame.f_code.co_name, int(name[6:-1]), lineno]
    return found


class Harness:
    def __init__(self, sock, workdir: str, inputs: str):
        self.workdir, self.inputs = workdir, inputs or None
        self.module = types.ModuleType("submission")
        self.module.__file__ = "<notebook>"
        sys.modules["submission"] = self.module
        self.saved = []  # stack of {name: old value} for replace/restore
        self.stream = _CappedStream(OUTPUT_CHARS)
        self.alarm = _Alarm()
        self.channel = Channel(
            sock,
            side="sandbox",
            resolve=self.resolve,
            describe=where,
            handlers={
                "load": self.load,
                "begin": self.begin,
                "end": self.end,
                "replace": self.replace,
                "restore": self.restore,
            },
        )
        self.channel.timer = self.alarm

    def resolve(self, name):
        if name not in self.module.__dict__:
            raise NameError(f"name {name!r} is not defined in the notebook")
        return self.module.__dict__[name]

    def load(self, header, request):
        """Execute the notebook's definitions one by one; {index: error} of those that failed."""
        extraction = extract_definitions(request["cells"])
        for index, text in extraction.sources.items():
            filename = f"<cell {index}>"
            lines = [line + "\n" for line in text.split("\n")]
            linecache.cache[filename] = (len(text), None, lines, filename)
        failed = {}
        limit = request["statement_time_s"]
        for i, d in enumerate(extraction.definitions):
            code = compile(d.node, f"<cell {d.cell}>", "exec")
            self.alarm.enter(limit)
            try:
                exec(code, self.module.__dict__)
            except BaseException as exc:  # a bad statement must not stop the loading
                if isinstance(exc, PeerLost):
                    raise
                failed[str(i)] = self.channel._error(exc)
            finally:
                self.alarm.exit()
        if "torch" in sys.modules:  # one thread, as everywhere in the course
            sys.modules["torch"].set_num_threads(1)
        return {"failed": failed}

    def begin(self, header, request):
        self.channel.reset()
        self.stream.total, self.stream.kept = 0, []
        run = os.path.join(self.workdir, "run")
        shutil.rmtree(run, ignore_errors=True)
        if self.inputs and os.path.isdir(self.inputs):
            shutil.copytree(self.inputs, run)
        else:
            os.makedirs(run, exist_ok=True)
        os.chdir(run)
        return None

    def end(self, header, request):
        printed = self.stream.total
        self.channel.reset()
        return {"printed": printed}

    def replace(self, header, definitions):
        namespace = self.module.__dict__
        self.saved.append({name: namespace.get(name, _MISSING) for name in definitions})
        namespace.update(definitions)
        return None

    def restore(self, header, request):
        namespace = self.module.__dict__
        for name, value in self.saved.pop().items() if self.saved else ():
            if value is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = value
        return None


def main(fd: int, workdir: str, inputs: str) -> None:
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the file-size cap fail instead
    sock = socket.socket(fileno=fd)
    harness = Harness(sock, workdir, inputs)
    sys.stdout = sys.stderr = harness.stream
    with contextlib.suppress(PeerLost):  # the grader is gone: so are we
        harness.channel.serve()
    os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
