"""Lecture slides: every deck compiles with no Typst warning, each slide fits its page, the page
count is in range, and the committed PDF, figures and manifest match the current sources.

Compile-only: figures are committed and never redrawn here (``make slides`` redraws them).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from visgen.course import slides
from visgen.course.figurebook import FigureBook, num
from visgen.course.typeset import TypstBuildError, typeset

LECTURES = Path(__file__).resolve().parents[1] / "lectures"
DECKS = slides.find_decks(LECTURES)
MANIFEST = json.loads((LECTURES / slides.MANIFEST).read_text())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lectures_one_to_three_have_decks():
    names = [d.name for d in DECKS]
    assert names[:3] == ["01-ddpm-dsm", "02-sde-pf-ode", "03-flow-matching"], names


@pytest.mark.parametrize("deck", DECKS, ids=lambda d: d.name)
def test_deck_builds_cleanly_and_committed_pdf_is_current(deck):
    doc = slides.compile_deck(deck)  # raises on any warning, an overflowing slide, page range
    lo, hi = slides.PAGE_RANGE
    assert lo <= doc.pages <= hi
    assert deck.pdf.is_file(), f"{deck.pdf} missing: run `make slides`"
    assert doc.pdf == deck.pdf.read_bytes(), f"{deck.pdf} is out of date: run `make slides`"
    assert MANIFEST[deck.name]["pages"] == doc.pages
    assert MANIFEST[deck.name]["pdf"] == _sha(deck.pdf)


@pytest.mark.parametrize("deck", DECKS, ids=lambda d: d.name)
def test_every_figure_is_drawn_by_the_decks_figures_py(deck):
    entry = MANIFEST[deck.name]
    assert deck.figures_script.is_file()
    assert entry["inputs"]["figures.py"] == _sha(deck.figures_script), (
        f"{deck.figures_script} changed since its figures were drawn: run `make slides`"
    )
    assert deck.figure_hashes() == entry["figures"], (
        f"{deck.figures_dir} differs from what figures.py wrote (edited or pasted figure?)"
    )
    used = re.findall(r'image\("([^"]+)"', deck.source.read_text())
    assert used, "a deck without figures"
    for path in used:
        assert path.startswith("figures/") and path[len("figures/") :] in entry["figures"], path


@pytest.mark.parametrize("deck", DECKS, ids=lambda d: d.name)
def test_no_semicolon_is_swallowed_after_an_embedded_value(deck):
    # Typst ends an embedded expression at a ";" and drops it: "#R.ed; floor" prints "0.1 floor"
    embedded = r"#(?:[A-Za-z_][\w.]*(?:\([^()]*\))?(?:\[[^\[\]]*\])*|\([^()]*\));"
    hits = re.findall(embedded, deck.source.read_text())
    assert not hits, f"write \\; after {hits}"


def _scratch_lectures(tmp_path: Path, body: str) -> slides.Deck:
    lectures = tmp_path / "lectures"
    shutil.copytree(LECTURES / "theme", lectures / "theme")
    deck = lectures / "99-scratch"
    deck.mkdir()
    (deck / "slides.typ").write_text(
        '#import "../theme/theme.typ": *\n#import "../theme/notation.typ": *\n'
        "#show: deck.with(number: 99, title: [Scratch], short: [Scratch])\n" + body
    )
    return slides.find_decks(lectures)[0]


def test_a_typst_warning_fails_the_build(tmp_path):
    deck = _scratch_lectures(tmp_path, '#slide[A][#text(font: "No Such Font")[x]]\n')
    with pytest.raises(TypstBuildError, match="unknown font family"):
        typeset(deck.source, deck.path.parent)


def test_an_overflowing_slide_is_named(tmp_path):
    filler = "".join(f"- line {i}\n" for i in range(40))
    body = "#slide[Fits][short]\n" + f"#slide[Too long][\n{filler}]\n" + "#slide[After][x]\n"
    deck = _scratch_lectures(tmp_path, body)
    with pytest.raises(slides.SlideCheckError, match=r"slide 3 \('Too long'\) does not fit"):
        slides.compile_deck(deck)


def test_page_count_out_of_range_fails(tmp_path):
    deck = _scratch_lectures(tmp_path, "#slide[Only][one]\n")
    assert slides.compile_deck(deck, page_range=(1, 5)).pages == 2  # title + one slide
    with pytest.raises(slides.SlideCheckError, match="2 slides, expected 25–45"):
        slides.compile_deck(deck)


def test_build_redraws_figures_only_when_an_input_changes(tmp_path):
    pages = "".join(f'#slide[S{i}][#image("figures/dot.svg", height: 2cm)]\n' for i in range(24))
    deck = _scratch_lectures(tmp_path, pages)
    (deck.path / "figures.py").write_text(
        "import matplotlib.pyplot as plt\n"
        "from visgen.course.figurebook import FigureBook\n"
        "book = FigureBook(__file__)\n\n\n"
        "@book.figure\n"
        "def dot(results):\n"
        "    fig, ax = plt.subplots(figsize=(1, 1))\n"
        "    ax.plot([0], [0], 'o')\n"
        "    return fig\n\n\n"
        "book.run()\n"
    )
    lectures = deck.path.parent
    (first,) = slides.build(lectures)
    assert first.error is None and first.figures_s is not None and first.pages == 25
    (second,) = slides.build(lectures)
    assert second.figures_s is None and not second.pdf_changed
    manifest = json.loads((lectures / slides.MANIFEST).read_text())
    entry = manifest[deck.name]
    assert entry["pages"] == 25 and set(entry["figures"]) == {"dot.svg", "results.json"}
    assert entry["inputs"]["figures.py"] == _sha(deck.path / "figures.py")
    assert "visgen/course/figurebook.py" in entry["inputs"]["modules"]
    # a library module the figures imported changed since they were drawn: redrawn
    entry["inputs"]["modules"]["visgen/course/figurebook.py"] = "0" * 64
    (lectures / slides.MANIFEST).write_text(json.dumps(manifest))
    (third,) = slides.build(lectures)
    assert third.figures_s is not None
    with open(deck.path / "figures.py", "a") as f:
        f.write("# edited\n")
    (fourth,) = slides.build(lectures)
    assert fourth.figures_s is not None


def test_figurebook_is_deterministic(tmp_path):
    import matplotlib.pyplot as plt

    script = tmp_path / "deck" / "figures.py"
    script.parent.mkdir()
    book = FigureBook(script)

    @book.figure
    def line(results):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.plot([0, 1], [1, 0])
        results["x"] = num(0.0123456)
        return fig

    @book.figure(fmt="png")
    def dots(results):
        import torch

        fig, ax = plt.subplots(figsize=(2, 1))
        ax.scatter(*torch.randn(2, 50))
        return fig

    (book.dir / "stale.svg").parent.mkdir()
    (book.dir / "stale.svg").write_text("old")
    first = {p.name: p.read_bytes() for p in (book.run(), book.dir)[1].iterdir()}
    assert sorted(first) == ["dots.png", "line.svg", "results.json"]  # stale file removed
    second = {p.name: p.read_bytes() for p in (book.run(), book.dir)[1].iterdir()}
    assert first == second
    assert json.loads(first["results.json"]) == {"x": "0.012"}


def test_num_formats_measurements():
    assert num(0.003912) == "0.0039"
    assert num(1.27) == "1.3"
    assert num(3.2e-7) == "3.2×10⁻⁷"
    assert num(0) == "0"
    assert num(-1.04, 3) == "−1.04"
    with pytest.raises(ValueError):
        num(float("nan"))
