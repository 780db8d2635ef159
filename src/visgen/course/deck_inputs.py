"""What a deck's figures were drawn from, recorded when they are drawn and checked without drawing.

A deck's figures and numbers are a function of three inputs, and ``lectures/manifest.json``
stores each of them per deck (``"inputs"``) when ``figures.py`` runs:

* ``figures.py`` — the SHA-256 of the deck's script;
* ``modules`` — the SHA-256 of every visgen source file the run imported: the ``visgen``
  modules in ``sys.modules`` once ``figures.py`` has finished;
* ``assets`` — every trained-asset cache entry the run used (:func:`visgen.train.cache_entry`
  records a :class:`~visgen.train.CacheEvent` for each: models, few-step students, tuned grids),
  with its cache key; a model that is a named asset of :data:`visgen.train.ASSETS` keeps its name.

:func:`stale_inputs` recomputes them — file hashes, and :func:`visgen.train.asset_key` of each
named asset at full budget (builds the model config, trains nothing) — and names each input that
changed. It never draws and never trains, so CI runs it on every deck on every commit
(``tests/test_deck_inputs.py``), and ``make slides`` redraws only the decks it names.

Why ``sys.modules`` after the run, not a static import walk: the library imports by name at run
time (the registries import their ``providers`` on lookup, ``visgen.course`` loads the tour
lazily, methods import their assets inside functions), so an ``ast`` walk from ``figures.py``
misses code the figures run, and following every ``import`` it can see includes code they
never reach. ``sys.modules`` holds exactly the modules the run executed. It over-approximates
in one way only — a module imported for one function counts in full — which can mark a deck
stale that would redraw identically, never the reverse. This recorder imports nothing of
visgen before the script does (it hooks :mod:`visgen.train.assets` the moment the script
imports it), so its own imports are not counted. Out of scope: third-party packages (pinned by
``constraints.txt``) and the cached weights themselves (their key stands for them: the key
hashes the normalised spec and ``CACHE_VERSION``, which is bumped when code changes what a spec
trains). Keys of entries that are not named assets (anonymous ``train_cached`` specs, students,
grids) are recorded for the reader; they are computed by code in ``figures.py`` or in the
recorded modules, so a change to them changes input (a) or (b).

Run ``python -m visgen.course.deck_inputs figures.py OUT.json`` in the deck's folder (the slide
build does): it runs the script as ``__main__`` and writes the inputs to ``OUT.json``.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.util
import json
import runpy
import sys
from pathlib import Path

__all__ = ["current_inputs", "module_hashes", "record", "stale_inputs"]

_ASSETS_MODULE = "visgen.train.assets"


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _package_root() -> Path:
    """The folder holding the ``visgen`` package (``src/``): module paths are relative to it."""
    spec = importlib.util.find_spec("visgen")
    return Path(spec.origin).resolve().parent.parent


def module_hashes(names) -> dict[str, str]:
    """``{"visgen/x/y.py": sha256}`` for the visgen modules among ``names`` (this one excluded)."""
    root = _package_root()
    out = {}
    for name in names:
        if name != "visgen" and not name.startswith("visgen."):
            continue
        if name == __name__:
            continue
        module = sys.modules.get(name)
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if not origin or not origin.endswith(".py"):
            continue
        path = Path(origin).resolve()
        if root in path.parents:
            out[path.relative_to(root).as_posix()] = _sha256(path)
    return dict(sorted(out.items()))


class _RecordOnImport(importlib.abc.MetaPathFinder):
    """Opens a cache-event recorder in :mod:`visgen.train.assets` as soon as it is imported."""

    def __init__(self, events: list):
        self.events = events

    def find_spec(self, fullname, path, target=None):
        if fullname != _ASSETS_MODULE:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader, events = spec.loader, self.events

        class _Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                loader.exec_module(module)
                module._RECORDERS.append(events)

            def __getattr__(self, name):  # get_source, get_filename, ...: the real loader's
                return getattr(loader, name)

        spec.loader = _Loader()
        return spec


def _entries(events: list) -> list[dict]:
    """One record per cache entry used (first use wins), named assets marked by ``asset``."""
    from visgen.config import fast_mode
    from visgen.train.assets import ASSETS, asset_key

    seen, out = set(), []
    for e in events:
        if e.file in seen:
            continue
        seen.add(e.file)
        entry = {"kind": e.kind, "name": e.name, "key": e.key}
        if e.kind == "model" and e.name in ASSETS:
            with fast_mode(False):
                if asset_key(e.name) == e.key:
                    entry["asset"] = e.name
        out.append(entry)
    return out


def record(script: Path, out: Path) -> dict:
    """Run ``script`` as ``__main__`` (in its folder) and write its inputs to ``out``."""
    script = Path(script).resolve()
    events: list = []
    hook = _RecordOnImport(events)
    sys.meta_path.insert(0, hook)
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.meta_path.remove(hook)
    inputs = {
        "figures.py": _sha256(script),
        "modules": module_hashes(list(sys.modules)),
        "assets": _entries(events) if _ASSETS_MODULE in sys.modules else [],
    }
    Path(out).write_text(json.dumps(inputs, indent=1, sort_keys=True) + "\n")
    return inputs


def current_inputs(script: Path, recorded: dict) -> dict:
    """Today's value of each input in ``recorded`` (missing files and assets map to ``None``)."""
    root = _package_root()
    modules = {}
    for rel in recorded.get("modules", {}):
        path = root / rel
        modules[rel] = _sha256(path) if path.is_file() else None
    assets = []
    named = [a for a in recorded.get("assets", []) if "asset" in a]
    if named:
        from visgen.config import fast_mode
        from visgen.train.assets import ASSETS, asset_key

        with fast_mode(False):
            for a in named:
                key = asset_key(a["asset"]) if a["asset"] in ASSETS else None
                assets.append({**a, "key": key})
    return {"figures.py": _sha256(script), "modules": modules, "assets": assets}


def stale_inputs(script: Path, recorded: dict | None) -> list[str]:
    """What changed since ``figures.py`` drew the figures: one line per input, empty if none.

    ``recorded`` is the manifest's ``inputs`` of the deck (``None``: never recorded).
    """
    script = Path(script)
    if not recorded or "modules" not in recorded:
        changed = recorded and recorded.get("figures.py") not in (None, _sha256(script))
        return ["figures.py changed"] * bool(changed) + [
            "inputs not recorded: the figures predate the input record"
        ]
    now = current_inputs(script, recorded)
    changes = []
    if now["figures.py"] != recorded.get("figures.py"):
        changes.append("figures.py changed")
    for rel, sha in recorded["modules"].items():
        if now["modules"][rel] is None:
            changes.append(f"{rel} removed")
        elif now["modules"][rel] != sha:
            changes.append(f"{rel} changed")
    was = {a["asset"]: a["key"] for a in recorded.get("assets", []) if "asset" in a}
    for a in now["assets"]:
        name = a["asset"]
        if a["key"] is None:
            changes.append(f"asset {name} is no longer registered")
        elif a["key"] != was[name]:
            changes.append(f"asset {name}: key {was[name]} is now {a['key']}")
    return changes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m visgen.course.deck_inputs figures.py OUT.json", file=sys.stderr)
        return 2
    script, out = argv
    sys.argv = [script]  # the script sees itself as argv[0], as under `python figures.py`
    record(Path(script), Path(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
