"""The sandbox: the only process that runs a submission's code.

:class:`Sandbox` runs this file as a script (the *boot*: standard library only), which
isolates itself and then executes the harness (:mod:`visgen.course._harness`). Where the OS allows
it (Linux, started as root — the grading machine and CI) the boot

* enters new mount, network, PID, IPC and UTS namespaces: no network (only a loopback that
  is down), no view of other processes, and the harness is PID 1 of its namespace, so when it
  dies the kernel kills every process it started — ``setsid`` and double forks included;
* builds a new root on a tmpfs and ``chroot``\\ s into it: read-only bind mounts of ``/usr``,
  the Python installation, the virtual environment and the ``visgen`` package (nothing else of
  the repository: no ``solutions/``, no hidden tests, no ``.git``), a fresh ``/proc``, the few
  device nodes Python needs, a minimal ``/etc``, private tmpfs ``/tmp``, ``$HOME`` and
  ``/submission`` (the working folder), and the submission's input files read-only;
* switches to a dedicated unprivileged uid/gid that owns nothing on the host (fresh per
  sandbox, no supplementary groups, ``no_new_privs``) and sets limits on address space, file
  size, CPU time, processes (per uid, so per sandbox), open files and core dumps;
* replaces the environment by a fixed one (no variable of the grader's survives).

Elsewhere (not root, or namespaces refused, e.g. in an unprivileged container) it runs with
the limits, the clean environment and a private working directory only, as the grader's own
user: :attr:`Sandbox.isolation` says which, and the grader's report shows it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["Sandbox", "SandboxLimits"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUTS = 0x04000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 1, 38, 36
_UID_BASE, _UID_SPAN = 0x40000000, 0x10000000  # uids nobody owns: 2^30 … 2^30 + 2^28
_DEVICES = ("null", "zero", "full", "random", "urandom")
STUDENT_HOME = "/home/student"
WORK, INPUTS = "/submission", "/submission-inputs"  # the working folder; the input files


class SandboxLimits:
    """Per-sandbox resource limits (bytes, seconds, counts)."""

    def __init__(self, memory_mb=4096, file_bytes=256 * 2**20, cpu_s=3600, processes=64):
        self.memory_mb, self.file_bytes = int(memory_mb), int(file_bytes)
        self.cpu_s, self.processes = int(cpu_s), int(processes)


class Sandbox:
    """A running, isolated harness process and the grader's end of its socket.

    ``inputs``: a folder copied into the working directory before every test (read-only
    view); ``protect``: paths that must not be visible inside (the instructor's tree, the
    grading folder); ``scratch``: a private folder of the grader for the new root.
    """

    def __init__(self, scratch: Path, *, inputs: Path | None, limits: SandboxLimits, protect):
        scratch.mkdir(parents=True, exist_ok=True)
        self.scratch = scratch
        parent, child = socket.socketpair()
        config = {
            "scratch": str(scratch),
            "inputs": str(inputs) if inputs else None,
            "limits": vars(limits),
            "protect": [str(Path(p).resolve()) for p in protect],
            "uid": _UID_BASE + secrets.randbelow(_UID_SPAN),
        }
        config_path = scratch / "sandbox.json"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        log = open(scratch / "sandbox.log", "wb")  # noqa: SIM115 (the child owns it)
        # run as a script: the boot imports nothing but the standard library
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", __file__, str(config_path), str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=_clean_environment(),
            start_new_session=True,
        )
        log.close()
        child.close()
        self.sock = parent
        self.isolation: dict = {}

    def handshake(self, timeout_s: float = 60.0) -> dict:
        """The boot's report of the isolation it achieved: one JSON line, sent before any
        notebook code runs (so it is the boot's word, not the notebook's)."""
        self.sock.settimeout(timeout_s)
        line = b""
        try:
            while not line.endswith(b"\n") and len(line) < 1 << 16:
                chunk = self.sock.recv(1)
                if not chunk:
                    raise OSError("the sandbox closed its socket before reporting")
                line += chunk
        finally:
            self.sock.settimeout(None)
        report = json.loads(line)
        if not isinstance(report, dict) or report.get("kind") != "isolation":
            raise RuntimeError("the sandbox did not report its isolation")
        self.isolation = report["isolation"]
        return self.isolation

    def log_tail(self, n: int = 300) -> str:
        try:
            text = (self.scratch / "sandbox.log").read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line for line in text.strip().split("\n") if line.strip()]
        return "".join(c if c.isprintable() else " " for c in lines[-1]) if lines else ""

    def stop(self, grace: float = 0.0) -> str:
        """Kill the sandbox (and everything it started); how it ended. ``grace``: seconds to
        let a sandbox that is already exiting report its own exit status."""
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            code = self.proc.wait(timeout=grace) if grace else self.proc.poll()
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the boot kills its whole tree
            try:
                code = self.proc.wait(timeout=2)
            except Exception:  # a wait that fails: kill for sure
                code = None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if code is None:
            code = self.proc.wait()
        return _ending(code)


def _ending(code: int) -> str:
    if code < 0 or code >= 128:
        number = -code if code < 0 else code - 128
        try:
            return f"killed by signal {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exit code {code}"


def _clean_environment() -> dict:
    """The only environment the boot and the harness ever see."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": STUDENT_HOME,
        "USER": "student",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "VISGEN_FAST": "1",
        "VISGEN_CACHE": "/tmp/visgen-cache",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
    }


# --- the boot (runs as the grader's user until it drops its privileges) ----------------------
_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = [None if v is None else str(v).encode() for v in (source, target, fstype, data)]
    _check(_c().mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]), f"mount {target}")


def _bind(source: str, root: Path, *, writable=False, at: str | None = None) -> None:
    target = root / (at or source).lstrip("/")
    if os.path.isdir(source):
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | (0 if writable else _MS_RDONLY)
    if not source.startswith("/dev/"):
        flags |= _MS_NODEV
    _mount(None, target, None, flags)


def _view(protect: list[str]) -> list[str]:
    """Read-only paths the harness needs: system files, Python, its packages, visgen."""
    import importlib.util

    package = importlib.util.find_spec("visgen").submodule_search_locations[0]
    wanted = {"/usr", "/etc/ld.so.cache", sys.base_prefix, sys.prefix, package}
    wanted |= {p for p in sys.path if p and os.path.isdir(p) and "site-packages" in p}
    paths = sorted(os.path.realpath(p) for p in wanted if os.path.exists(p))
    for p in paths:
        for q in protect:
            if q == p or q.startswith(p.rstrip("/") + "/"):
                raise RuntimeError(f"the sandbox would see {q} through {p}")
    kept = []
    for p in paths:  # drop paths inside another one
        if not any(p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def _build_root(config: dict) -> Path:
    """Mount the sandbox's file system (we are root in a new mount namespace)."""
    scratch = Path(config["scratch"])
    root = scratch / "root"
    root.mkdir(mode=0o700, exist_ok=True)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=16m,mode=0755")
    uid = config["uid"]
    # private /tmp and $HOME first: a checkout under /tmp (CI's mktemp -d) is then bound
    # inside the private /tmp (read-only, root's) instead of being hidden by it
    for path, size, mode in (("/tmp", "256m", 0o1777), (STUDENT_HOME, "64m", 0o700)):
        target = root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={size},mode={mode:o}")
        os.chown(target, uid, uid)
    for path in _view(config["protect"]):
        _bind(path, root)
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        host = f"/{name}"
        if os.path.islink(host) and not (root / name).exists():
            os.symlink(os.readlink(host), root / name)  # merged /usr: /lib → usr/lib
        elif os.path.isdir(host) and not os.path.islink(host):
            _bind(host, root)  # a system without merged /usr keeps libc here
    (root / "dev").mkdir(exist_ok=True)
    for name in _DEVICES:
        _bind(f"/dev/{name}", root, writable=True)
    os.symlink("/proc/self/fd", root / "dev" / "fd")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", root / "dev" / name)
    (root / "proc").mkdir()
    _mount("proc", root / "proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/false\nstudent:x:{uid}:{uid}::{STUDENT_HOME}:/bin/false\n"
    )
    (etc / "group").write_text(f"root:x:0:\nstudent:x:{uid}:\n")
    (etc / "hostname").write_text("sandbox\n")
    work = root / WORK.lstrip("/")
    work.mkdir()
    _mount("tmpfs", work, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=1g,mode=0700")
    os.chown(work, uid, uid)
    if config["inputs"]:
        _bind(config["inputs"], root, at=INPUTS)
    with contextlib.suppress(OSError):
        _c().sethostname(b"sandbox", 7)
    return root


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise RuntimeError("could not switch to the sandbox uid")
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise RuntimeError("the sandbox uid could become root again")


def _set_limits(limits: dict) -> None:
    memory = limits["memory_mb"] * 2**20
    for name, value in (
        ("RLIMIT_AS", memory),
        ("RLIMIT_FSIZE", limits["file_bytes"]),
        ("RLIMIT_CPU", limits["cpu_s"]),
        ("RLIMIT_CORE", 0),
        ("RLIMIT_NOFILE", 256),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _kill_descendants(pid: int) -> None:
    """Kill every process below ``pid`` (we are their subreaper, so orphans are ours too)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
    stack, found = [pid], []
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    for child in found:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)


def boot(config_path: str, fd: int) -> int:
    """Isolate, report, and exec the harness; the parent waits and forwards its exit."""
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    _c().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    isolation = {"user": "the grader's", "namespaces": False, "network": "host", "view": "host"}
    if os.geteuid() == 0:
        flags = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWUTS
        if _c().unshare(flags) == 0:
            isolation.update(namespaces=True, network="none", view="minimal")
        else:
            isolation["why"] = f"unshare: {os.strerror(ctypes.get_errno())}"
    else:
        isolation["why"] = "the grader does not run as root"
    _c().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = os.getpid()
    pid = os.fork()
    if pid:  # the boot's parent: wait for the harness, then clean up below it
        signal.signal(signal.SIGTERM, lambda *_: (_kill_descendants(me), os._exit(143)))
        os.close(fd)
        _, status = os.waitpid(pid, 0)
        _kill_descendants(me)
        code = os.waitstatus_to_exitcode(status)
        return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as shells do
    _c().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() not in (me, 0):  # 0: we are PID 1 of the new namespace
        os._exit(1)
    try:
        workdir = Path(config["scratch"]) / "work"
        if isolation["namespaces"]:
            root = _build_root(config)
            os.chroot(root)
            os.chdir(WORK)
            _drop_privileges(config["uid"])
            isolation["user"] = f"uid {config['uid']} (owns nothing on the host)"
            home, inputs = STUDENT_HOME, INPUTS if config["inputs"] else None
        else:
            workdir.mkdir(exist_ok=True)
            os.chdir(workdir)
            home, inputs = str(workdir), config["inputs"]
        _c().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        _set_limits(config["limits"])
        if isolation["namespaces"]:  # the uid is this sandbox's alone: a per-sandbox cap
            resource.setrlimit(resource.RLIMIT_NPROC, (config["limits"]["processes"],) * 2)
        isolation["limits"] = {
            "memory_mb": config["limits"]["memory_mb"],
            "processes": config["limits"]["processes"] if isolation["namespaces"] else None,
        }
        sock = socket.socket(fileno=fd)
        sock.sendall(json.dumps({"kind": "isolation", "isolation": isolation}).encode() + b"\n")
        sock.detach()
        env = _clean_environment()
        env["HOME"] = home
        argv = [sys.executable, "-I", "-B", "-m", "visgen.course._harness", str(fd)]
        argv += [os.getcwd(), inputs or ""]
        os.execve(sys.executable, argv, env)
    except BaseException as exc:  # report and die: nothing else may run
        print(f"sandbox boot failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        os._exit(70)


if __name__ == "__main__":
    sys.exit(boot(sys.argv[1], int(sys.argv[2])))
