"""The tour: every lecture's method trained and sampled at toy scale, in one HTML report.

A chapter is one small module in :mod:`visgen.course.chapters` (found automatically) with a
function decorated by :func:`chapter`; the function receives a :class:`Context` and adds, in
order, explanations (``ctx.text``), figures (``ctx.figure``, ``ctx.images``), metric tables
(``ctx.table``, data-vs-data floors next to the numbers), animations (``ctx.animation``) and named metrics (``ctx.metric``,
collected in ``metrics.json``). Trained networks come from ``ctx.asset(name)`` or
``ctx.train(spec)`` (the cache of :mod:`visgen.train.assets`), so a second run only samples.
Sizes go through :func:`visgen.budget`; ``visgen tour --fast`` turns FAST mode on. See
docs/ARCHITECTURE.md ("Adding a tour chapter") for a complete example.

:func:`run_tour` runs the selected chapters (``jobs`` of them at once, in separate processes
that share the cache of trained models) and writes ``index.html`` (Jinja2 template, images
embedded as data URIs and also saved beside it as PNG files) and ``metrics.json``.
A chapter that raises is reported in the page with its traceback; the others still run.

Every chapter's cost is accounted: CPU seconds (its process and the children it waited for)
and wall seconds, and every cache entry it used (:func:`visgen.train.record_cache_events`:
trained now or loaded, the CPU-s of training, the wait for another process training it) —
a table in the page and ``cost`` in ``metrics.json``. With ``jobs > 1`` the chapters start
longest first by the committed table of measured costs (:mod:`visgen.course.costs`, also
behind ``visgen tour --budget``).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import datetime
import html
import importlib
import inspect
import json
import math
import multiprocessing
import os
import pkgutil
import platform
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from visgen.config import cpu_seconds, fast_mode, is_fast, set_threads
from visgen.course.costs import schedule
from visgen.train.assets import Trained, asset, record_cache_events, train_cached
from visgen.train.checkpoint import atomic_write_bytes
from visgen.viz import animation_bytes, image_grid, png_bytes

__all__ = ["Chapter", "Context", "all_chapters", "chapter", "run_tour", "select_chapters"]

_ID = re.compile(r"^L\d\d[a-z]?$")
_REGISTRY: dict[str, Chapter] = {}


@dataclass(frozen=True)
class Chapter:
    """One chapter of the tour (registered with :func:`chapter`)."""

    id: str  # "L01"; sorts the report
    title: str
    lecture: int
    run: Callable[[Context], None]
    summary: str = ""  # one sentence for the table of contents
    slides: str | None = None  # repository path of the lecture's slides
    code: tuple[str, ...] = ()  # dotted names of the library code the chapter runs


def chapter(
    id: str,
    title: str,
    *,
    lecture: int,
    summary: str = "",
    slides: str | None = None,
    code=(),
) -> Callable[[Callable[[Context], None]], Callable[[Context], None]]:
    """Register the decorated ``run(ctx)`` function as chapter ``id`` (``L01`` … ``L12``)."""
    if not _ID.match(id):
        raise ValueError(f"chapter id must look like 'L01' (optionally 'L01b'), got {id!r}")

    def register(run):
        existing = _REGISTRY.get(id)
        if existing is not None and existing.run.__qualname__ != run.__qualname__:
            raise ValueError(f"chapter {id} is already registered by {existing.run.__module__}")
        _REGISTRY[id] = Chapter(id, title, lecture, run, summary, slides, tuple(code))
        return run

    return register


def all_chapters() -> list[Chapter]:
    """Every chapter of :mod:`visgen.course.chapters`, sorted by id."""
    import visgen.course.chapters as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def select_chapters(only=None) -> list[Chapter]:
    """Chapters whose id matches ``only`` (``L03``, ``l3``, ``3``); all when ``only`` is empty."""
    chapters = all_chapters()
    if not only:
        return chapters
    wanted = []
    for item in only:
        m = re.fullmatch(r"[lL]?0*(\d+)([a-z]?)", str(item).strip())
        key = f"L{int(m.group(1)):02d}{m.group(2)}" if m else None
        hits = [c for c in chapters if key and (c.id == key or c.id.rstrip("abcdefgh") == key)]
        if not hits:
            raise ValueError(
                f"unknown chapter {item!r}; available: {', '.join(c.id for c in chapters)}"
            )
        wanted += [c for c in hits if c not in wanted]
    return sorted(wanted, key=lambda c: c.id)


def _repo_root() -> Path | None:
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").exists() else None


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _format(value) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def _inline(text: str) -> str:
    """Escape, then `code`, **bold** and *italic* — the only markup explanations use."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"<i>\1</i>", out)


@dataclass
class Context:
    """What a chapter writes to: blocks of the page, metrics, files beside the report."""

    chapter: Chapter
    out: Path  # the report folder; this chapter's files go to out / chapter.id
    progress: bool = True
    blocks: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    _count: int = 0

    @property
    def fast(self) -> bool:
        """True in FAST mode (use :func:`visgen.budget` for sizes)."""
        return is_fast()

    def generator(self, salt: int = 0) -> torch.Generator:
        """A generator seeded from the chapter id and ``salt``: same report every run."""
        seed = int.from_bytes(f"{self.chapter.id}:{salt}".encode(), "little") % (2**63)
        return torch.Generator().manual_seed(seed)

    def asset(self, name: str) -> Trained:
        """A standard trained asset (:data:`visgen.train.ASSETS`), cached."""
        return asset(name, progress=self.progress)

    def train(self, spec: dict) -> Trained:
        """A model trained from ``spec`` (:func:`visgen.train.train_cached`), cached."""
        return train_cached(spec, progress=self.progress)

    def text(self, *paragraphs: str) -> None:
        """Paragraphs of explanation; `code`, **bold** and *italic* are the only markup."""
        self.blocks.append({"kind": "text", "paragraphs": [_inline(p) for p in paragraphs]})

    def _save(self, data: bytes, name: str | None, ext: str = "png") -> str:
        self._count += 1
        name = name or f"fig{self._count:02d}"
        rel = f"{self.chapter.id}/{name}.{ext}"
        atomic_write_bytes(self.out / rel, data)
        return rel

    def figure(self, fig, caption: str, name: str | None = None) -> None:
        """A matplotlib figure (see :func:`visgen.viz.figure`) with its caption."""
        data = png_bytes(fig)
        self._add_image(data, caption, name)

    def images(self, images, caption: str, nrow: int | None = None, scale: int = 4, name=None):
        """A grid of images (N, C, H, W) in [−1, 1], upscaled ``scale``× for the page."""
        from io import BytesIO

        from PIL import Image

        buf = BytesIO()
        Image.fromarray(image_grid(images, nrow, scale=scale)).save(buf, format="PNG")
        self._add_image(buf.getvalue(), caption, name)

    def animation(self, videos, caption: str, nrow: int | None = None, scale: int = 4,
                  fps: float = 4.0, fmt: str = "gif", name=None) -> None:  # fmt: skip
        """Videos (N, F, C, H, W) in [−1, 1] as one looping animation (one tile per video;
        ``fmt`` gif, png = APNG or webp), inlined in the page and saved beside it."""
        data = animation_bytes(videos, nrow, scale=scale, fps=fps, fmt=fmt)
        self._add_image(data, caption, name, ext=fmt)

    def _add_image(self, data: bytes, caption: str, name: str | None, ext: str = "png") -> None:
        rel = self._save(data, name, ext)
        mime = {"gif": "image/gif", "png": "image/png", "webp": "image/webp"}[ext]
        uri = f"data:{mime};base64," + base64.b64encode(data).decode()
        self.blocks.append({"kind": "image", "src": uri, "file": rel, "caption": _inline(caption)})

    def table(self, rows: list[dict], caption: str, columns: list[str] | None = None) -> None:
        """A metrics table: one dict per row. Rows with ``"_floor": True`` are reference rows
        (data vs data, the exact oracle) and are shown shaded; put them next to the results."""
        if not rows:
            raise ValueError("table needs at least one row")
        columns = columns or [k for k in rows[0] if not k.startswith("_")]
        body = [
            {"cells": [_format(r.get(c, "")) for c in columns], "floor": bool(r.get("_floor"))}
            for r in rows
        ]
        self.blocks.append(
            {"kind": "table", "caption": _inline(caption), "columns": columns, "rows": body}
        )
        clean = [{c: _json_safe(r.get(c)) for c in columns} for r in rows]
        self.metrics.setdefault("tables", []).append({"caption": caption, "rows": clean})

    def metric(self, name: str, value) -> None:
        """A named number (or list / dict of numbers) recorded in ``metrics.json``."""
        self.metrics.setdefault("values", {})[name] = _json_safe(value)


def _links(ch: Chapter, out: Path) -> tuple[dict | None, list[dict]]:
    root = _repo_root()

    def rel(path: Path) -> str:
        return os.path.relpath(path, out.resolve())

    slides = None
    if ch.slides:
        target = root / ch.slides if root else None
        slides = {"label": ch.slides, "href": rel(target) if target and target.exists() else None}
    code = []
    for name in ch.code:
        module, _, attr = name.rpartition(".")
        try:
            obj = inspect.unwrap(getattr(importlib.import_module(module), attr))
            path = Path(inspect.getsourcefile(obj))
            line = inspect.getsourcelines(obj)[1]
        except (ImportError, AttributeError, TypeError, OSError) as err:
            raise ValueError(f"chapter {ch.id} lists code {name!r} that cannot be found") from err
        label = f"{path.relative_to(root)}:{line}" if root and root in path.parents else path.name
        code.append({"name": name, "where": label, "href": rel(path)})
    return slides, code


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # not available on this platform
        return None


def _split(events: list[dict]) -> tuple[dict, dict]:
    """({key: event} of the entries trained, {key: event} of those only loaded)."""
    trained = {e["key"]: e for e in events if e["trained"]}
    return trained, {e["key"]: e for e in events if e["key"] not in trained}


def _cost_rows(chapters: list[Chapter], results: dict) -> list[dict]:
    """Rows of the page's cost table, one per chapter."""
    rows = []
    for ch in chapters:
        cost = results[ch.id]["cost"]
        trained, loaded = _split(cost["entries"])
        rows.append(
            {
                "id": ch.id,
                "cpu": cost["cpu_s"],
                "wall": cost["wall_s"],
                "trained_cpu": cost["trained_cpu_s"],
                "trained": ", ".join(f"{e['name']} ({e['cpu_s']:.0f} s)" for e in trained.values()),
                "loaded": ", ".join(e["name"] for e in loaded.values()),
                "wait": cost["wait_s"],
            }
        )
    return rows


def _render(out: Path, sections: list[dict], meta: dict) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("visgen.course", "templates"), autoescape=select_autoescape()
    )
    page = env.get_template("tour.html").render(sections=sections, meta=meta)
    atomic_write_bytes(out / "index.html", page.encode())


def _run_chapter(ch: Chapter, out: Path, progress: bool) -> dict:
    """Run one chapter; what the report needs of it (blocks, metrics, times, traceback)."""
    ctx = Context(ch, out, progress)
    t0, c0 = time.perf_counter(), cpu_seconds()
    error = None
    with record_cache_events() as events:
        try:
            ch.run(ctx)
        except Exception:
            error = traceback.format_exc()
    return {
        "blocks": ctx.blocks,
        "metrics": ctx.metrics,
        "seconds": time.perf_counter() - t0,
        "cpu": cpu_seconds() - c0,
        "cache": [dataclasses.asdict(e) for e in events],
        "error": error,
    }


def _cost(run: dict) -> dict:
    """A chapter's cost for ``metrics.json`` and the page: CPU and wall seconds, the cache
    entries it trained (CPU-s of training, nested entries excluded) and those it only loaded
    (counted once each; ``entries`` lists every use)."""
    trained, loaded = _split(run["cache"])
    return {
        "cpu_s": round(run["cpu"], 2),
        "wall_s": round(run["seconds"], 2),
        "trained_cpu_s": round(sum(e["cpu_s"] for e in trained.values()), 2),
        "trained": len(trained),
        "loaded": len(loaded),
        "wait_s": round(sum(e["wait_s"] for e in run["cache"]), 2),
        "entries": [
            {**e, **{k: round(e[k], 3) for k in ("cpu_s", "wall_s", "wait_s")}}
            for e in run["cache"]
        ],
    }


def _run_chapter_in_worker(module: str, chapter_id: str, out: Path, fast: bool) -> dict:
    """:func:`_run_chapter` in a fresh process: import the chapter's module, pin threads."""
    importlib.import_module(module)
    set_threads(1)
    with fast_mode(fast):
        return _run_chapter(_REGISTRY[chapter_id], out, progress=False)


def _run_parallel(chapters: list[Chapter], out: Path, fast: bool, jobs: int, log):
    """Chapters in ``jobs`` processes (spawned: forking a process that has run torch can hang).

    Trained assets are shared through the cache, whose file locks make two chapters that need
    the same model train it once; each chapter seeds its own generators, so the report is the
    same as a sequential run's.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {
            pool.submit(_run_chapter_in_worker, ch.run.__module__, ch.id, out, fast): ch.id
            for ch in chapters
        }
        log(
            f"[tour] {len(chapters)} chapters in {jobs} processes, longest expected first: "
            f"{' '.join(futures.values())}"
        )
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future.result()


def run_tour(
    out,
    only=None,
    *,
    fast: bool | None = None,
    progress: bool = True,
    jobs: int = 1,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the chapters (``only``: ids, default all) and write the report to ``out``.

    ``fast=True`` forces FAST budgets, ``False`` forces full ones, ``None`` follows
    ``VISGEN_FAST``. ``jobs > 1`` runs that many chapters at once in separate processes (one
    thread each; progress bars off). Returns the contents of ``metrics.json``; its ``failed``
    lists chapters that raised.
    """
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out = Path(out)
    chapters = select_chapters(only)
    set_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    fast_now = is_fast() if fast is None else fast
    # resolve every chapter's slide and code links first: a bad one fails before any training
    links = {ch.id: _links(ch, out) for ch in chapters}
    start, start_cpu, load_start = time.perf_counter(), cpu_seconds(), _load_average()
    order, processes = chapters, 1
    if jobs > 1 and len(chapters) > 1:
        by_id = {ch.id: ch for ch in chapters}
        order = [by_id[cid] for cid in schedule(list(by_id), fast_now)]
        processes = min(jobs, len(chapters))
        runs = _run_parallel(order, out, fast_now, processes, log)
    else:

        def sequential():
            with fast_mode(fast_now):
                for ch in chapters:
                    log(f"[tour] {ch.id} {ch.title} ...")
                    yield ch.id, _run_chapter(ch, out, progress)

        runs = sequential()
    done = {}
    for cid, run in runs:
        done[cid] = run
        if run["error"]:
            log(f"[tour] {cid} FAILED:\n{run['error']}")
        log(f"[tour] {cid} done in {run['seconds']:.1f} s ({run['cpu']:.1f} s CPU)")
    sections, results = [], {}
    for ch in chapters:
        run = done[ch.id]
        slides, code = links[ch.id]
        sections.append(
            {
                "chapter": ch,
                "blocks": run["blocks"],
                "seconds": run["seconds"],
                "error": run["error"],
                "slides": slides,
                "code": code,
            }
        )
        results[ch.id] = {
            "title": ch.title,
            "lecture": ch.lecture,
            "seconds": round(run["seconds"], 2),
            "cpu_seconds": round(run["cpu"], 2),  # ≈ wall time on an idle machine (1 thread)
            "status": "error" if run["error"] else "ok",
            "cost": _cost(run),
            **run["metrics"],
        }
    # the pool's workers have ended and been waited for: cpu_seconds() counts them
    total, total_cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    meta = {
        "fast": fast_now,
        "jobs": processes,  # chapters run at once (1: in this process)
        "order": [ch.id for ch in order],  # the order chapters started in
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(total, 1),
        "cpu_seconds": round(total_cpu, 1),  # chapters + process start-up and the report
        "chapters_cpu_seconds": round(sum(r["cpu"] for r in done.values()), 1),
        "load_average": [load_start, _load_average()],  # 1-minute, at the start and the end
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "version": importlib.import_module("visgen").__version__,
    }
    failed = [ch.id for ch in chapters if done[ch.id]["error"]]
    report = {**meta, "failed": failed, "chapters": results}
    atomic_write_bytes(out / "metrics.json", json.dumps(_json_safe(report), indent=1).encode())
    _render(out, sections, {**meta, "costs": _cost_rows(chapters, results)})
    log(f"[tour] wrote {out / 'index.html'} in {total:.1f} s ({total_cpu:.1f} s CPU)")
    return report
