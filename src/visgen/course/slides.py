"""Build the lecture slides: ``python -m visgen.course.slides`` (``make slides``).

A deck is a folder ``lectures/NN-slug/`` holding ``slides.typ`` (Typst, importing
``lectures/theme/``) and optionally ``figures.py`` (a :class:`~visgen.course.figurebook.FigureBook`
that draws ``figures/*`` with visgen). Adding a lecture means adding such a folder. For each deck
the build

1. re-runs ``figures.py`` when one of its inputs changed since the figures were drawn — the
   script, a visgen module the run imported, or the cache key of a trained asset it loaded
   (:mod:`visgen.course.deck_inputs` records them in ``lectures/manifest.json``;
   ``--figures always|never`` overrides);
2. compiles ``slides.typ`` to ``slides.pdf`` with :func:`~visgen.course.typeset.typeset`
   (embedded fonts, fixed date, any warning is an error);
3. checks that every slide fits on its page and that the deck has 25–45 pages;
4. records pages and hashes in ``lectures/manifest.json``, which the tests compare with the
   sources so a stale PDF or a hand-edited figure fails CI.

``--check`` only recomputes the inputs (no drawing, no training, no compiling) and prints, per
deck, each input that changed. A deck whose figures are known to be stale is listed in the
manifest with the reason (``"known_stale"``): the check (and ``tests/test_deck_inputs.py``)
accepts it while it is stale and fails once it is current, so the list only shrinks; a redraw
removes the deck from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from visgen.course.deck_inputs import stale_inputs
from visgen.course.typeset import Typeset, TypstBuildError, typeset

__all__ = [
    "PAGE_RANGE",
    "Deck",
    "SlideCheckError",
    "build",
    "check_inputs",
    "check_slides",
    "compile_deck",
    "find_decks",
    "main",
]

PAGE_RANGE = (25, 45)
MANIFEST = "manifest.json"
_DECK_DIR = re.compile(r"^\d\d-[a-z0-9-]+$")


class SlideCheckError(RuntimeError):
    """A deck compiled but breaks a layout rule (overflowing slide, page count out of range)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Deck:
    """One lecture folder ``lectures/NN-slug``."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def source(self) -> Path:
        return self.path / "slides.typ"

    @property
    def pdf(self) -> Path:
        return self.path / "slides.pdf"

    @property
    def figures_script(self) -> Path:
        return self.path / "figures.py"

    @property
    def figures_dir(self) -> Path:
        return self.path / "figures"

    def figure_hashes(self) -> dict[str, str]:
        if not self.figures_dir.is_dir():
            return {}
        return {
            p.name: _sha256(p.read_bytes())
            for p in sorted(self.figures_dir.iterdir())
            if p.is_file() and not p.name.startswith(".")
        }


def find_decks(lectures: Path, only: list[str] | None = None) -> list[Deck]:
    """Every ``NN-slug/slides.typ`` under ``lectures``; ``only`` filters by prefix (``01``)."""
    lectures = Path(lectures)
    if not (lectures / "theme").is_dir():
        raise FileNotFoundError(f"{lectures} has no theme/ folder; pass the repository's lectures/")
    decks = [
        Deck(p)
        for p in sorted(lectures.iterdir())
        if p.is_dir() and _DECK_DIR.match(p.name) and (p / "slides.typ").is_file()
    ]
    if only:
        decks = [d for d in decks if any(d.name.startswith(o) for o in only)]
        if not decks:
            raise ValueError(f"no deck matches {only}")
    return decks


def run_figures(deck: Deck) -> tuple[float, dict]:
    """Run the deck's figures.py at full budget (VISGEN_FAST unset) under the input recorder;
    return the seconds taken and the inputs (:func:`visgen.course.deck_inputs.record`)."""
    env = {k: v for k, v in os.environ.items() if k != "VISGEN_FAST"}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "inputs.json"
        cmd = [sys.executable, "-m", "visgen.course.deck_inputs", deck.figures_script.name, out]
        subprocess.run(cmd, cwd=deck.path, env=env, check=True)
        inputs = json.loads(out.read_text())
    return time.perf_counter() - start, inputs


def check_inputs(
    lectures: Path, only: list[str] | None = None
) -> dict[str, tuple[list[str], str | None]]:
    """Per deck with a figures.py: its changed inputs
    (:func:`~visgen.course.deck_inputs.stale_inputs`) and its known-stale reason (``None``
    unless the manifest lists one). No drawing, no training."""
    manifest = _read_manifest(Path(lectures))
    out = {}
    for deck in find_decks(lectures, only):
        if deck.figures_script.is_file():
            entry = manifest.get(deck.name, {})
            out[deck.name] = (
                stale_inputs(deck.figures_script, entry.get("inputs")),
                entry.get("known_stale"),
            )
    return out


def check_slides(doc: Typeset, page_range: tuple[int, int] = PAGE_RANGE) -> int:
    """Every slide on exactly one page and the page count in range; returns the page count.

    The theme labels each slide's start ``<slide>`` (with its title) and its end
    ``<slide-end>`` (with the page it ended on), so slide i must end on page i.
    """
    slides, ends = doc.query("slide"), doc.query("slide-end")
    if len(slides) != len(ends):
        raise SlideCheckError(
            f"{doc.source}: {len(slides)} slide starts but {len(ends)} ends; "
            "build every page with the theme's slide/section functions"
        )
    for i, (meta, page) in enumerate(zip(slides, ends), start=1):
        if page != i:
            raise SlideCheckError(
                f"{doc.source}: slide {i} ({meta['title']!r}) does not fit on one page; "
                "shorten it, split it or pass size: to #slide"
            )
    pages = doc.pages
    if pages != len(slides):
        raise SlideCheckError(f"{doc.source}: {pages} pages for {len(slides)} slides")
    lo, hi = page_range
    if not lo <= pages <= hi:
        raise SlideCheckError(f"{doc.source}: {pages} slides, expected {lo}–{hi}")
    return pages


def compile_deck(deck: Deck, page_range: tuple[int, int] = PAGE_RANGE) -> Typeset:
    """Compile and check one deck (no files written)."""
    doc = typeset(deck.source, deck.path.parent)
    check_slides(doc, page_range)
    return doc


def _read_manifest(lectures: Path) -> dict:
    path = lectures / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class BuildReport:
    deck: str
    pages: int = 0
    compile_s: float = 0.0
    figures_s: float | None = None
    pdf_changed: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def build(
    lectures: Path, only: list[str] | None = None, figures: str = "auto"
) -> list[BuildReport]:
    """Build the decks under ``lectures`` (see the module docstring); return one report each."""
    if figures not in ("auto", "always", "never"):
        raise ValueError(f"figures must be 'auto', 'always' or 'never', got {figures!r}")
    lectures = Path(lectures).resolve()
    manifest = _read_manifest(lectures)
    reports = []
    for deck in find_decks(lectures, only):
        rep = BuildReport(deck.name)
        entry = dict(manifest.get(deck.name, {}))
        try:
            if deck.figures_script.is_file():
                changed = stale_inputs(deck.figures_script, entry.get("inputs"))
                stale = bool(changed) or not deck.figures_dir.is_dir()
                if figures == "always" or (figures == "auto" and stale):
                    print(f"[{deck.name}] drawing figures", flush=True)
                    rep.figures_s, entry["inputs"] = run_figures(deck)
                    entry.pop("known_stale", None)
                    entry["figures"] = deck.figure_hashes()
                elif stale:
                    rep.notes.append("figures are stale (kept: --figures never)")
            start = time.perf_counter()
            doc = compile_deck(deck)
            rep.compile_s = time.perf_counter() - start
            rep.pages = doc.pages
            old = deck.pdf.read_bytes() if deck.pdf.is_file() else None
            if old != doc.pdf:
                _write_atomic(deck.pdf, doc.pdf)
                rep.pdf_changed = True
            entry["pages"] = rep.pages
            entry["pdf"] = _sha256(doc.pdf)
            manifest[deck.name] = entry
        except (TypstBuildError, SlideCheckError, subprocess.CalledProcessError) as err:
            rep.error = str(err)
        reports.append(rep)
    data = json.dumps(dict(sorted(manifest.items())), indent=1, sort_keys=True) + "\n"
    _write_atomic(lectures / MANIFEST, data.encode())
    return reports


def _report_inputs(checked: dict[str, tuple[list[str], str | None]]) -> int:
    failed = False
    for name, (changes, known) in checked.items():
        if not changes and not known:
            print(f"ok    {name}: figures current")
        elif not changes:
            failed = True
            print(f"FAIL  {name}: current, but listed as known stale: remove it from the list")
        elif known:
            print(f"known {name}: stale ({known}): " + "; ".join(changes))
        else:
            failed = True
            print(
                f"FAIL  {name}: stale, redraw with --only {name[:2]} --figures always: "
                + "; ".join(changes)
            )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m visgen.course.slides",
        description="Draw stale figures, compile lectures/NN-slug/slides.typ to slides.pdf, "
        "fail on any Typst warning or layout error.",
    )
    p.add_argument("--lectures", type=Path, default=Path("lectures"), help="lectures folder")
    p.add_argument("--only", nargs="*", help="deck prefixes, e.g. 01 03")
    p.add_argument(
        "--figures",
        choices=("auto", "always", "never"),
        default="auto",
        help="redraw figures when stale (auto), always, or never",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="only say which decks' figure inputs changed (no drawing, no compiling); "
        "exit 1 if a deck not listed as known stale is stale, or a listed one is current",
    )
    args = p.parse_args(argv)
    if args.check:
        try:
            return _report_inputs(check_inputs(args.lectures, args.only))
        except (FileNotFoundError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:
        reports = build(args.lectures, args.only, args.figures)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = False
    for r in reports:
        if r.error:
            failed = True
            print(f"FAIL {r.deck}: {r.error}", file=sys.stderr)
            continue
        figs = "" if r.figures_s is None else f", figures {r.figures_s:.1f} s"
        state = "written" if r.pdf_changed else "unchanged"
        notes = "".join(f" [{n}]" for n in r.notes)
        print(
            f"ok   {r.deck}: {r.pages} slides, compile {r.compile_s:.2f} s{figs}, PDF {state}{notes}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
