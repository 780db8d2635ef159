"""Hostile notebooks (issue 22): every way a dishonest submission tried to earn points it did not
earn must end at 0 points ("failed" or "no grade"), leave the repository, the instructor's tree
and the home directory as they were, leave no process behind, and put neither hidden-test
source nor the grader's environment in the report.

The attacks, as a student would write them (they worked against the grader before the sandbox,
which ran notebook code in the process that held the hidden tests):

* load time (UPPERCASE constants, on every homework): replace the hidden tests in
  ``sys.modules`` with no-ops; read the instructor's solution from ``solutions/`` and answer
  with it; rewrite ``solutions/hwN/tests_hidden.py`` on disk (persistent: the next, untouched
  notebook would pass); delete files in ``$HOME`` and in the repository; start processes in a
  new session; echo the environment;
* call time (one per function of the fixture homework ``hwx``): forge "passed" events on every
  descriptor; steal the answers from the hidden tests' file or memory; start ``setsid``
  sleepers and a double-forked daemon; fork until refused; delete files; print a fake report
  and kill the parent; rewrite the hidden tests; put secrets in an exception's message;
  send malformed and duplicated frames on the grader's socket.

The suite refuses to run hostile code without the sandbox's namespaces (it needs root on
Linux, as in CI): it fails rather than risk the machine.
"""

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest

from visgen.course.build import homework_notebook
from visgen.course.grade import grade
from visgen.course.homework import list_homeworks, load_homework, repo_root
from visgen.course.notebook import write_notebook
from visgen.course.release import answer_lines
from visgen.course.rpc import Channel
from visgen.course.sandbox import Sandbox, SandboxLimits, _view

REPO = repo_root()
FIXTURE = Path(__file__).parent / "data" / "grading"
SKIP_DIRS = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SKIP_DIRS |= {"runs", ".cache", "build", "dist"}


def _digest(root: Path) -> str:
    """Paths, sizes and contents of every file under root (caches and venvs aside)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _processes_with(mark: str) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if mark.encode() in cmdline:
                found.append(entry + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.fixture(scope="module")
def isolation(tmp_path_factory):
    """The sandbox's isolation on this machine; the suite fails (never runs) without it."""
    sandbox = Sandbox(
        tmp_path_factory.mktemp("probe"),
        inputs=None,
        limits=SandboxLimits(memory_mb=2048),
        protect=[str(REPO)],
    )
    try:
        facts = sandbox.handshake()
    finally:
        sandbox.stop()
    if not facts.get("namespaces"):
        pytest.fail(
            "the grader's sandbox has no namespaces here (run as root on Linux): hostile code "
            f"is not run without them ({facts})"
        )
    return facts


class _Watch:
    """Counts, from the host, the processes whose command line carries the mark (a sandbox's
    processes are visible from outside its PID namespace): proof that the spawning happened."""

    def __init__(self, mark):
        self.mark, self.seen, self.stop = mark, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.02):
            self.seen = max(self.seen, len(_processes_with(self.mark)))


@pytest.fixture
def world(tmp_path, monkeypatch, isolation):
    """An instructor's tree (a copy), a home directory with files, a canary in the environment;
    after the test: all unchanged, no process of the attack alive."""
    mark = secrets.token_hex(8)
    instructor = tmp_path / "instructor"
    shutil.copytree(REPO / "solutions", instructor / "solutions")
    shutil.copytree(FIXTURE / "hwx", instructor / "solutions" / "hwx")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("not a real key\n")
    (home / "thesis.tex").write_text("\\documentclass{article}\n")
    canary = f"canary-{mark}"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VISGEN_GRADER_CANARY", canary)
    before = {p: _digest(p) for p in (REPO, instructor, home)}
    world = {
        "mark": mark,
        "instructor": instructor,
        "home": home,
        "canary": canary,
        "student": tmp_path / "student",
        "watch": _Watch(mark),
    }
    yield world
    world["watch"].stop.set()
    deadline = time.monotonic() + 5
    while _processes_with(mark) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(mark) == [], "processes started by the notebook survived the grader"
    for path, digest in before.items():
        assert _digest(path) == digest, f"{path} changed while a hostile notebook was graded"


def _context(world) -> str:
    return textwrap.dedent(
        f"""\
        import ast
        import gc
        import json
        import os
        import pathlib
        import shutil
        import signal
        import socket
        import stat
        import subprocess
        import sys
        import time

        MARK = {world["mark"]!r}
        REPO = {str(REPO)!r}
        INSTRUCTOR = {str(world["instructor"])!r}
        GRADER_HOME = {str(world["home"])!r}
        """
    )


# --- the attacks, as module-level helpers of the hostile notebooks --------------------------------
HELPERS = '''
def vg_candidates(name):
    """Every readable copy of an instructor file: known places, then a walk from visgen."""
    import visgen

    places = [pathlib.Path(INSTRUCTOR) / "solutions", pathlib.Path(REPO) / "solutions"]
    places += [p / "solutions" for p in pathlib.Path(visgen.__file__).resolve().parents]
    found = []
    for place in places:
        for path in place.glob(f"*/{name}") if place.is_dir() else []:
            if os.access(path, os.R_OK):
                found.append(path)
    return found


def vg_hijack():
    """Replace the hidden tests in memory by no-ops (they were loaded before the notebook)."""
    hits = 0
    for module in list(sys.modules.values()):
        for name in dir(module):
            if name.startswith("test_") and callable(getattr(module, name, None)):
                setattr(module, name, lambda sub: None)
                hits += 1
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "test_square" in obj:
            for key in list(obj):
                if key.startswith("test_"):
                    obj[key] = lambda sub: None
                    hits += 1
    return hits


def vg_steal(notebook):
    """The instructor's solution functions (imports, defs and constants of its source)."""
    for path in vg_candidates(f"{notebook}.py"):
        namespace = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) or (
                isinstance(node, ast.Assign)
                and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
            ):
                try:
                    exec(compile(ast.Module([node], []), str(path), "exec"), namespace)
                except Exception:
                    pass
        return namespace
    return {}


def vg_persist():
    """Rewrite every hidden-test file on disk: every test passes from now on."""
    written = []
    for path in vg_candidates("tests_hidden.py"):
        try:
            names = [n for n in path.read_text().split() if n.startswith("test_")]
            with open(path, "w") as f:
                for name in names:
                    f.write(f"def {name.split('(')[0]}(sub):\\n    pass\\n")
            written.append(str(path))
        except OSError:
            pass
    for path in (
        pathlib.Path(REPO) / "solutions" / f"hostile-{MARK}",
        pathlib.Path(GRADER_HOME) / f"hostile-{MARK}",
        pathlib.Path("/root") / f"hostile-{MARK}",
    ):
        try:
            path.write_text(MARK)
            written.append(str(path))
        except OSError:
            pass
    return written


def vg_vandalise():
    """Delete the home directory, the instructor's tree and parts of the repository."""
    deleted = []
    targets = [os.path.expanduser("~"), GRADER_HOME, INSTRUCTOR, REPO + "/solutions"]
    targets += [REPO + "/README.md", REPO + "/src/visgen/course/testing.py"]
    for target in targets:
        try:
            if os.path.isdir(target):
                shutil.rmtree(target)
            else:
                os.remove(target)
            deleted.append(target)
        except OSError:
            pass
    return deleted


def vg_spawn():
    """Processes that should outlive the grader: setsid sleepers and a double-forked daemon."""
    pids, sleep = [], shutil.which("sleep")
    for _ in range(2):  # argv[0] carries the mark: the survivors are found by it
        try:
            pids.append(
                subprocess.Popen([f"sleep-{MARK}", "600"], executable=sleep, start_new_session=True).pid
            )
        except OSError:
            pass
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork() == 0:
            try:
                os.execv(sleep, [f"sleep-{MARK}", "601"])
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    # stay until all three run under their marked name, then long enough for the host's watch
    # (it polls every 20 ms) to see them however fast the grading ends on this machine
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and vg_marked() < 3:
        time.sleep(0.01)
    time.sleep(1.0)
    return pids


def vg_marked():
    """How many processes visible here carry the mark in their command line."""
    count = 0
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and MARK.encode() in pathlib.Path(f"/proc/{entry}/cmdline").read_bytes():
                count += 1
        except OSError:
            pass
    return count


def vg_forge(names):
    """Fake "passed" events and fake frames on every descriptor this process has."""
    events = b"".join(
        json.dumps({"event": "result", "name": n, "passed": True, "status": "passed"}).encode()
        + b"\\n"
        for n in names
    )
    sent = 0
    for fd in (int(f) for f in os.listdir("/proc/self/fd")):
        for payload in (events, b"VGR1" + b"\\xff" * 12, events):  # garbage, twice
            try:
                os.write(fd, payload)
                sent += 1
            except OSError:
                pass
    return sent


def vg_fake_report():
    """A full-marks table on our outputs and the parent's, then the parent killed before it
    can print its own."""
    table = "hwx: fixture — notebook\\n\\n  a square 2 / 2 ok\\n  total (autograded) 10 / 10\\n"
    for fd in (1, 2):
        try:
            os.write(fd, table.encode())
        except OSError:
            pass
    for fd in (1, 2):
        try:
            with open(f"/proc/{os.getppid()}/fd/{fd}", "w") as out:
                out.write(table)
        except OSError:
            pass
    for pid in {os.getppid(), 1}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def vg_secrets():
    """Everything secret this process can read: environments, hidden tests, the home."""
    found = {"environ": dict(os.environ)}
    for path in ["/proc/1/environ", *[str(p) for p in vg_candidates("tests_hidden.py")]]:
        try:
            found[path] = pathlib.Path(path).read_bytes()[:2000].decode(errors="replace")
        except OSError:
            pass
    try:
        found["home"] = os.listdir(GRADER_HOME)
    except OSError:
        pass
    return found
'''

# call time: each function of the fixture homework is one attack (their tests run one by one)
FIXTURE_ATTACKS = """
NAMES = ["test_square", "test_cube", "test_cube_negative", "test_loop", "test_stubborn",
         "test_leave", "test_hog", "test_wipe", "test_chatty", "test_read_input"]


def square(x):
    vg_forge(NAMES)


def cube(x):
    vg_hijack()
    if vg_candidates("tests_hidden.py") or "tests_hidden" in sys.modules:
        return x**3  # the answer, read off the hidden tests
    return None


def loop():
    vg_spawn()


def stubborn():
    children = 0
    while children < 10_000:
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    return children


def wipe():
    vg_vandalise()


def leave():
    vg_fake_report()


def hog():
    vg_persist()


def chatty():
    raise RuntimeError(json.dumps(vg_secrets()))


def read_input():
    for fd in (int(f) for f in os.listdir("/proc/self/fd")):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                frame = json.dumps({"re": 1, "kind": "ok", "value": "hello"}).encode()
                os.write(fd, b"VGR1" + len(frame).to_bytes(4, "little") + bytes(8) + frame)
                os.write(fd, b"VGR1" + len(frame).to_bytes(4, "little") + bytes(8) + frame)
        except OSError:
            pass
"""

# load time: constants run while the notebook loads, on every homework
LOAD_ATTACKS = """
HIJACKED = vg_hijack()
PERSISTED = vg_persist()
VANDALISED = vg_vandalise()
SPAWNED = vg_spawn()
LEAKED = exec("raise RuntimeError(json.dumps(vg_secrets()))")
"""


def _write(world, name: str, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    world["student"].mkdir(exist_ok=True)
    path = world["student"] / name
    nbformat.write(nb, path)
    return path


def _assert_no_secrets(report, world):
    text = json.dumps(report.as_dict())
    assert world["canary"] not in text, "the grader's environment reached the report"
    hidden = answer_lines(REPO)  # hidden-test and solution lines
    leaked = [line for line in hidden if line in text]
    assert leaked == [], f"instructor lines in the report: {leaked[:3]}"


def test_sandbox_confines_the_notebook(tmp_path, isolation):
    """From inside: an unprivileged uid that owns nothing, no network, no other processes,
    a read-only library, no instructor files, a clean environment, the limits."""
    assert isolation["network"] == "none" and isolation["view"] == "minimal"
    probe = textwrap.dedent(
        """
        import os, resource, socket

        def probe(paths):
            facts = {"uid": os.getuid(), "groups": os.getgroups(), "env": sorted(os.environ)}
            try:
                os.setuid(0)
                facts["root"] = True
            except PermissionError:
                facts["root"] = False
            try:
                socket.create_connection(("1.1.1.1", 80), timeout=2)
                facts["network"] = True
            except OSError:
                facts["network"] = False
            facts["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            facts["visible"] = [p for p in paths if os.path.exists(p)]
            import visgen
            try:
                open(os.path.join(os.path.dirname(visgen.__file__), "x.py"), "w")
                facts["library_writable"] = True
            except OSError:
                facts["library_writable"] = False
            facts["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
            facts["memory"] = resource.getrlimit(resource.RLIMIT_AS)[0]
            facts["cpu"] = resource.getrlimit(resource.RLIMIT_CPU)[0]
            facts["fsize"] = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            facts["home"] = os.listdir(os.path.expanduser("~"))
            facts["tmp"] = os.listdir("/tmp")
            return facts
        """
    )
    (tmp_path / "grader-secret.txt").write_text("secret\n")
    home_files = [p for p in Path.home().iterdir() if p.name != ".pyenv"][:3]
    hidden = [
        REPO / "solutions" / "hw1" / "tests_hidden.py",
        REPO / "README.md",
        REPO / ".git",
        REPO / "tests",
        tmp_path / "grader-secret.txt",
        *home_files,
    ]
    assert all(p.exists() for p in hidden)  # on the host, every one of them is there
    hidden = [str(p) for p in hidden]
    sandbox = Sandbox(
        tmp_path / "sb", inputs=None, limits=SandboxLimits(memory_mb=2048), protect=[str(REPO)]
    )
    try:
        sandbox.handshake()
        channel = Channel(sandbox.sock, side="grader")
        assert channel.control("load", {"cells": [probe], "statement_time_s": 30}) == {"failed": {}}
        channel.control("begin", {"test": "probe"})
        facts = channel.call("sub:probe", "__call__", [hidden], {})
    finally:
        sandbox.stop()
    assert facts["uid"] >= 1 << 30 and facts["groups"] == [] and not facts["root"]
    assert not facts["network"]
    assert len(facts["pids"]) <= 2, facts["pids"]  # itself (and at most its own children)
    assert facts["visible"] == [] and not facts["library_writable"]
    assert "VISGEN_GRADER_CANARY" not in facts["env"] and "HOME" in facts["env"]
    assert facts["nproc"] == 64 and facts["memory"] == 2048 * 2**20
    assert facts["cpu"] == 3600 and facts["fsize"] == 256 * 2**20
    # private and empty, but for the read-only library when the checkout lies under /tmp
    library = {Path(p).parts[2] for p in _view([str(REPO)]) if Path(p).parts[1:2] == ("tmp",)}
    assert facts["home"] == [] and set(facts["tmp"]) == library


def test_call_time_attacks_score_nothing(world):
    """One attack per graded function of the fixture homework: 0 of 10, nothing changed."""
    path = _write(
        world, "hostile.ipynb", [_context(world) + HELPERS, FIXTURE_ATTACKS + LOAD_ATTACKS]
    )
    report = grade("hwx", path, instructor=world["instructor"])
    assert report.score == 0, report.format_table()
    status = {r.item.id: r.status for r in report.items}
    assert set(status.values()) <= {"failed", "no grade"}, status
    reason = {r.item.id: " ".join(r.reasons) for r in report.items}
    assert status["a"] == "no grade" and "protocol" in reason["a"]  # forged events
    assert "cube(2) should be 8, got None" in reason["b"]  # nothing to steal
    assert status["i"] == "no grade" and "protocol" in reason["i"]  # forged frames
    notes = "\n".join(report.notes)
    assert "`LEAKED` (constant) failed to load: RuntimeError" in notes
    _assert_no_secrets(report, world)
    assert world["watch"].seen >= 3  # the sleepers did start (and the fixture sees them gone)


@pytest.mark.parametrize("name", list_homeworks())
def test_hostile_starter_scores_zero(name, world):
    """The starter with every load-time attack, its graded functions answering with the
    instructor's solution when that can be read: 0 points on every homework, every point lost
    as "not implemented yet" (this is also the test that the plain starter scores zero)."""
    hw = load_homework(name)
    nb = homework_notebook(hw, starter=True)
    stolen = [f"STOLEN = vg_steal({hw.notebook!r})"]
    for f in (f for it in hw.items for f in it.functions):
        stolen.append(
            f"def {f}(*args, **kwargs):\n"
            f"    if {f!r} not in STOLEN:\n        raise NotImplementedError\n"
            f"    return STOLEN[{f!r}](*args, **kwargs)"
        )
    nb.cells.append(nbformat.v4.new_code_cell(_context(world) + HELPERS))
    nb.cells.append(nbformat.v4.new_code_cell(LOAD_ATTACKS + "\n\n".join(stolen)))
    world["student"].mkdir(exist_ok=True)
    path = world["student"] / f"{hw.notebook}.ipynb"
    write_notebook(nb, path)
    report = grade(name, path, instructor=world["instructor"])
    assert report.score == 0, report.format_table()
    for item in report.items:
        assert all("is not implemented yet" in r for r in item.reasons), item.reasons
    # the starter's own cells load cleanly; only the constant that raises on purpose fails
    assert [n for n in report.notes if "`LEAKED` (constant) failed" not in n] == []
    assert len(report.notes) == 1
    _assert_no_secrets(report, world)
    assert world["watch"].seen >= 3  # the sleepers did start (and the fixture sees them gone)


def test_attacks_are_real_without_the_sandbox(world, tmp_path):
    """The same helpers, run as plain code with the instructor's tree readable, do what they
    claim (so the tests above prove the sandbox stops them, not that they are broken)."""
    script = tmp_path / "attack.py"
    script.write_text(
        _context(world)
        + HELPERS
        + "print(json.dumps({'stolen': sorted(vg_steal('practice_template'))[:3], "
        "'hidden': [str(p) for p in vg_candidates('tests_hidden.py')][:1]}))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        check=True,
    ).stdout
    facts = json.loads(out)
    assert facts["stolen"] and facts["hidden"], facts
