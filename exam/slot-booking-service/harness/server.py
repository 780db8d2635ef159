"""A gunicorn server of the service on a free local port, for tests and benchmarks."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import SERVICE_DIR
from .load import children, request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, database_url: str, *, static_root: str, workers: int = 4, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            "STATIC_ROOT": static_root,
            "SITE_URL": self.url,
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            **env,
        }
        self.workers = workers
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "config.wsgi",
                    "--workers",
                    str(self.workers),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--backlog",
                    "2048",
                    "--timeout",
                    "60",
                    "--graceful-timeout",
                    "5",
                    "--no-control-socket",
                ],
                cwd=SERVICE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_text()}")
            ready = request(self.url, "GET", "/login/", timeout=2).status == 200
            if ready and len(self.worker_pids()) == self.workers:
                return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.log_text()}")

    def worker_pids(self) -> list[int]:
        return children(self.process.pid)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
