"""Fresh, migrated databases in a second: migrate a template once, then copy it."""

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import SERVICE_DIR
from .pg import Cluster


def manage(*args: str, database_url: str, **env: str) -> str:
    """Run ``manage.py`` against ``database_url`` in a subprocess; return its stdout."""
    full_env = {**os.environ, "DATABASE_URL": database_url, **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py picks config.settings
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=SERVICE_DIR,
        env=full_env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


class SqliteDatabases:
    vendor = "sqlite"

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="booking-sqlite-"))
        self.template = self.root / "template.sqlite3"
        manage("migrate", "--noinput", database_url=f"sqlite:///{self.template}")
        self._names = itertools.count()

    def fresh(self) -> str:
        path = self.root / f"db{next(self._names)}.sqlite3"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresDatabases:
    vendor = "postgresql"

    def __init__(self):
        self.cluster = Cluster().start()
        try:
            url = self.cluster.create_database("booking_template")
            manage("migrate", "--noinput", database_url=url)
        except BaseException:
            self.cluster.stop()
            raise
        self._names = itertools.count()

    def fresh(self) -> str:
        return self.cluster.create_database(f"db{next(self._names)}", template="booking_template")

    def close(self) -> None:
        self.cluster.stop()
