"""A throwaway PostgreSQL cluster from Debian's binaries, on a unix socket in a temp dir.

As root, the server runs as the ``postgres`` system user (or ``nobody``), since PostgreSQL
refuses to run as root. No TCP port is opened.
"""

import glob
import os
import pwd
import shutil
import subprocess
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
    def __init__(self):
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="booking-pg-"))
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

    def start(self) -> "Cluster":
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
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
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
