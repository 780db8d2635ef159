"""A small concurrent HTTP client: many requests, a fixed number in flight, each timed."""

import dataclasses
import http.client
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit


@dataclasses.dataclass
class Response:
    status: int | None  # None: no HTTP response (connection refused or reset)
    seconds: float
    body: bytes = b""
    error: str = ""
    cookies: dict = dataclasses.field(default_factory=dict)  # set by the response
    location: str = ""

    def json(self):
        return json.loads(self.body)


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    headers=None,
    body=None,
    form=None,
    timeout: float = 60,
) -> Response:
    """One request; ``body`` is sent as JSON, ``form`` as an urlencoded form."""
    parts = urlsplit(base_url)
    if form is not None:
        payload, kind = urlencode(form).encode(), "application/x-www-form-urlencoded"
    else:
        payload, kind = (
            (json.dumps(body).encode(), "application/json") if body is not None else (None, None)
        )
    headers = {**(headers or {}), **({"Content-Type": kind} if payload else {})}
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        cookies = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
        return Response(
            response.status,
            time.perf_counter() - started,
            data,
            cookies={name: morsel.value for name, morsel in cookies.items()},
            location=response.headers.get("Location", ""),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def run_all(calls, concurrency: int) -> list:
    """Run zero-argument callables with ``concurrency`` in flight; results in input order."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda call: call(), calls))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the given processes (from /proc; gone ones = 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
