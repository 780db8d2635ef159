"""Test and benchmark harness: throwaway databases, a gunicorn server, seed data, an HTTP load
client. Used by tests/ and benchmarks/; not imported by the service itself."""

from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parent.parent
