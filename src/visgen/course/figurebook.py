"""The figures and measured numbers of one lecture deck, written by the deck's ``figures.py``.

A ``figures.py`` registers figure functions on a :class:`FigureBook` and calls ``book.run()``::

    book = FigureBook(__file__)

    @book.figure
    def forward_process(results):
        fig, ax = plt.subplots(...)
        ...                                    # draw with visgen oracles, samplers, metrics
        results["ed_ancestral"] = num(ed)      # a number the slides print
        return fig

    if __name__ == "__main__":
        book.run()

``run`` empties the deck's ``figures/`` folder, calls every function with fixed seeds and one
CPU thread, saves ``figures/<name>.svg`` (or ``.png``) deterministically and writes the numbers to
``figures/results.json``, which the slides read with Typst's ``json(...)``: a number on a slide
is always the one the last run measured.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from visgen.config import set_threads

__all__ = ["FigureBook", "num", "save_figure"]

RESULTS = "results.json"
FORMATS = ("svg", "png")
PNG_DPI = 180

STYLE = {
    "font.family": "STIXGeneral",
    "mathtext.fontset": "stix",
    "font.size": 14,
    "axes.titlesize": 14,
    "axes.labelsize": 14,
    "legend.fontsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "svg.hashsalt": "visgen",  # deterministic SVG ids
    "svg.fonttype": "path",  # text as outlines: no font needed to render the SVG
}


def num(x: float, digits: int = 2) -> str:
    """A measured value as printed on a slide: `digits` significant digits, no exponent soup.

    ``num(0.003912) == "0.0039"``, ``num(1.27) == "1.3"``, ``num(3.2e-7) == "3.2×10⁻⁷"``,
    ``num(-1.04, 3) == "−1.04"`` (a typographic minus).
    """
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot print a non-finite measurement: {x}")
    if x == 0:
        return "0"
    exp = math.floor(math.log10(abs(x)))
    if -4 <= exp < 6:
        text = f"{x:.{max(digits - 1 - exp, 0)}f}"
    else:
        sup = str(exp).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
        text = f"{x / 10**exp:.{digits - 1}f}×10{sup}"
    return text.replace("-", "−")  # a typographic minus


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as SVG or palette PNG, with no date/software stamp, atomically."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {FORMATS}, got {path.name!r}")
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "svg":
        fig.savefig(tmp, format="svg", metadata={"Date": None})
    else:
        # a 256-colour palette keeps raster figures small in git and in the PDF
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=PNG_DPI)
        image = Image.open(buf).convert("RGB")
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        image.save(tmp, format="png", optimize=True)
    plt.close(fig)
    os.replace(tmp, path)


class FigureBook:
    """Registry of one deck's figure functions; ``run()`` regenerates them all."""

    def __init__(self, script: str | Path, seed: int = 0):
        self.dir = Path(script).resolve().parent / "figures"
        self.seed = seed
        self._entries: list[tuple[str, Callable, str]] = []

    def figure(self, fn: Callable | None = None, *, fmt: str = "svg"):
        """Decorator: ``fn(results) -> matplotlib Figure`` saved as ``figures/<fn name>.<fmt>``."""
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")

        def register(f: Callable) -> Callable:
            if any(name == f.__name__ for name, _, _ in self._entries):
                raise ValueError(f"two figures are named {f.__name__!r}")
            self._entries.append((f.__name__, f, fmt))
            return f

        return register if fn is None else register(fn)

    def run(self) -> dict[str, str]:
        """Draw every registered figure into an emptied ``figures/``; return the results."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        set_threads(1)
        self.dir.mkdir(parents=True, exist_ok=True)
        for old in self.dir.iterdir():
            if old.is_file():
                old.unlink()
        results: dict[str, str] = {}
        with plt.rc_context(STYLE):
            for name, fn, fmt in self._entries:
                start = time.perf_counter()
                random.seed(self.seed)
                np.random.seed(self.seed)
                torch.manual_seed(self.seed)
                fig = fn(results)
                save_figure(fig, self.dir / f"{name}.{fmt}")
                print(f"  {name}.{fmt}  ({time.perf_counter() - start:.1f} s)", flush=True)
        bad = {k: v for k, v in results.items() if not isinstance(v, str)}
        if bad:
            raise TypeError(f"results must be strings formatted with num(...); got {bad}")
        tmp = self.dir / (RESULTS + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, self.dir / RESULTS)
        return results
