"""A PostgreSQL cluster from Debian's binaries, on a unix socket in its own folder: throwaway
(a temp dir, for tests and benchmarks) or kept (``make run-pg``: python -m harness.pg start DIR
prints the DATABASE_URL of database "booking" there, making the cluster on first use;
python -m harness.pg stop DIR stops it).

As root, the server runs as the ``postgres`` system user (or ``nobody``), since PostgreSQL
refuses to run as root. No TCP port is opened.
"""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import psycopg

from .load import children

SUPERUSER = "booking"


class PostgresMissing(RuntimeError):
    pass


def _major(bindir: Path) -> int:
    version = bindir.parent.name  # /usr/lib/postgresql/<major>/bin
    return int(version) if version.isdigit() else 0


def find_bindir() -> Path:
    """The newest Debian PostgreSQL server bin directory, else initdb's directory on PATH."""
    debian = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if debian:
        return max(debian, key=_major)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
        "/usr/lib/postgresql/*/bin or on PATH. Install Debian's package: "
        "apt-get install -y postgresql (.ci/run does this)."
    )


class Cluster:
    def __init__(self, root: Path | None = None):
        self.bindir = find_bindir()
        self.keep = root is not None
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="booking-pg-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.data = self.root / "data"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = "postgres"
            try:
                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
            shutil.chown(self.root, user)
            self.prefix = ["runuser", "-u", user, "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self.prefix, *args], check=True, capture_output=True, text=True, cwd=self.root
        )

    def running(self) -> bool:
        status = subprocess.run(
            [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            cwd=self.root,
        )
        return status.returncode == 0

    def start(self) -> "Cluster":
        if self.keep and self.running():
            return self
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._pg_ctl_start()
        return self

    def _initdb(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def _pg_ctl_start(self) -> None:
        options = (
            f"-k {self.root} -c listen_addresses='' -c fsync=off -c max_connections=300 "
            "-c synchronous_commit=on"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)

    def processes(self) -> list[int]:
        """The postmaster and its children (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        return [postmaster, *children(postmaster)]

    def url(self, dbname: str) -> str:
        return f"postgres://{SUPERUSER}@{quote(str(self.root), safe='')}/{dbname}"

    def execute(self, sql: str) -> None:
        with psycopg.connect(host=str(self.root), user=SUPERUSER, dbname="postgres") as conn:
            conn.autocommit = True
            conn.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(host=str(self.root), user=SUPERUSER, dbname="postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        return self.url(name) if exists else self.create_database(name)


def main(argv: list[str]) -> None:
    command, folder = argv
    cluster = Cluster(Path(folder))
    if command == "start":
        print(cluster.start().ensure_database("booking"))
    elif command == "stop":
        if cluster.running():
            cluster.stop()
    else:
        raise SystemExit(f"usage: python -m harness.pg start|stop FOLDER (not {command!r})")


if __name__ == "__main__":
    main(sys.argv[1:])
