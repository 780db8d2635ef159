"""A deck's figures are current with the library, or listed as known stale with a reason.

``lectures/manifest.json`` records, per deck, the inputs its figures were drawn from
(:mod:`visgen.course.deck_inputs`: figures.py, the visgen modules the run imported, the cache
keys of the trained assets it loaded). These tests recompute them — no drawing, no training —
so CI fails on a deck whose inputs changed unless the manifest lists it under ``known_stale``,
and fails on a listed deck that is current (the list only shrinks).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from visgen.course import slides
from visgen.course.deck_inputs import stale_inputs

LECTURES = Path(__file__).resolve().parents[1] / "lectures"
DECKS = [d for d in slides.find_decks(LECTURES) if d.figures_script.is_file()]
MANIFEST = json.loads((LECTURES / slides.MANIFEST).read_text())


@pytest.mark.parametrize("deck", DECKS, ids=lambda d: d.name)
def test_deck_is_current_or_listed_as_known_stale(deck):
    entry = MANIFEST[deck.name]
    changes = stale_inputs(deck.figures_script, entry.get("inputs"))
    known = entry.get("known_stale")
    assert "figures.py changed" not in changes, f"{deck.figures_script} changed: redraw the deck"
    if known is None:
        assert not changes, (
            f"{deck.name} is stale ({'; '.join(changes)}): "
            f"python -m visgen.course.slides --only {deck.name[:2]} --figures always"
        )
    else:
        assert isinstance(known, str) and len(known) > 20, "say why the deck is known stale"
        assert changes, f"{deck.name} is current: remove it from known_stale in the manifest"


FIGURES_PY = """\
import matplotlib.pyplot as plt

from visgen.course.figurebook import FigureBook, num
from visgen.oracles import eight_gaussians
{extra_import}
book = FigureBook(__file__)


@book.figure
def dot(results):
    x = eight_gaussians().sample(16)
    {extra_use}
    results["n"] = num(len(x))
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot(x[:, 0], x[:, 1], ".")
    return fig


if __name__ == "__main__":
    book.run()
"""

TINY_SPEC = (
    '{"model": {"name": "mlp", "shape": [2], "width": 8, "depth": 1}, "method": {"name": "fm"}, '
    '"data": "moons", "train": {"steps": 2, "batch_size": 8}}'
)


def _scratch(tmp_path: Path, extra_import: str = "", extra_use: str = "") -> slides.Deck:
    lectures = tmp_path / "lectures"
    shutil.copytree(LECTURES / "theme", lectures / "theme")
    deck = lectures / "99-scratch"
    deck.mkdir()
    (deck / "slides.typ").write_text("")
    (deck / "figures.py").write_text(
        FIGURES_PY.format(extra_import=extra_import, extra_use=extra_use)
    )
    return slides.find_decks(lectures)[0]


def _record(deck: slides.Deck, env_cache: Path, monkeypatch) -> dict:
    monkeypatch.setenv("VISGEN_CACHE", str(env_cache))
    monkeypatch.setenv("VISGEN_FAST", "1")  # run_figures drops it: full budget, as for a deck
    _, inputs = slides.run_figures(deck)
    assert (deck.figures_dir / "dot.svg").is_file()
    manifest = {deck.name: {"inputs": inputs}}
    (deck.path.parent / slides.MANIFEST).write_text(json.dumps(manifest))
    return inputs


def _check(deck: slides.Deck) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "visgen.course.slides", "--lectures", str(deck.path.parent)]
    return subprocess.run([*cmd, "--check"], capture_output=True, text=True)


def test_the_record_holds_the_modules_the_run_imported_and_no_others(tmp_path, monkeypatch):
    deck = _scratch(tmp_path)
    inputs = _record(deck, tmp_path / "cache", monkeypatch)
    modules = inputs["modules"]
    assert "visgen/oracles.py" in modules and "visgen/course/figurebook.py" in modules
    # nothing the figures did not import: not the training stack, not the recorder, not the build
    assert not any(m.startswith(("visgen/train/", "visgen/course/slides")) for m in modules)
    assert "visgen/course/deck_inputs.py" not in modules
    assert inputs["assets"] == []
    assert stale_inputs(deck.figures_script, inputs) == []


def test_a_deliberately_stale_deck_fails_the_check_naming_the_input(tmp_path, monkeypatch):
    deck = _scratch(
        tmp_path,
        extra_import="from visgen.train import train_cached\n",
        extra_use=f"train_cached({TINY_SPEC}, progress=False)",
    )
    inputs = _record(deck, tmp_path / "cache", monkeypatch)
    (model,) = inputs["assets"]
    assert model["kind"] == "model" and model["key"].startswith("moons-fm-mlp-")
    assert "visgen/train/assets.py" in inputs["modules"]
    ok = _check(deck)
    assert ok.returncode == 0 and "ok    99-scratch: figures current" in ok.stdout, ok.stdout

    # the library changed under the figures: one module they imported is not what they ran
    manifest_path = deck.path.parent / slides.MANIFEST
    stale = json.loads(manifest_path.read_text())
    stale[deck.name]["inputs"]["modules"]["visgen/oracles.py"] = "0" * 64
    # and a named asset's recipe now trains something else (its recorded key is an old one)
    stale[deck.name]["inputs"]["assets"].append(
        {"kind": "model", "name": "fm_2d", "key": "eight_gaussians-fm-mlp-old", "asset": "fm_2d"}
    )
    manifest_path.write_text(json.dumps(stale))
    failed = _check(deck)
    assert failed.returncode == 1, failed.stdout
    assert "FAIL  99-scratch: stale" in failed.stdout
    assert "visgen/oracles.py changed" in failed.stdout
    assert "asset fm_2d: key eight_gaussians-fm-mlp-old is now eight_gaussians-fm-mlp-" in (
        failed.stdout
    )
    assert "figures.py changed" not in failed.stdout

    # listed as known stale, with its reason: accepted, and the changes are still printed
    stale[deck.name]["known_stale"] = "drawn before the oracle change; redraw pending"
    manifest_path.write_text(json.dumps(stale))
    listed = _check(deck)
    assert listed.returncode == 0, listed.stdout
    assert "known 99-scratch: stale (drawn before" in listed.stdout
    assert "visgen/oracles.py changed" in listed.stdout

    # a listed deck that is current fails: the list only shrinks
    current = {deck.name: {"inputs": inputs, "known_stale": "no longer true"}}
    manifest_path.write_text(json.dumps(current))
    wrong = _check(deck)
    assert wrong.returncode == 1 and "remove it from the list" in wrong.stdout


def test_an_edited_figures_py_or_a_deck_never_recorded_is_stale(tmp_path, monkeypatch):
    deck = _scratch(tmp_path)
    inputs = _record(deck, tmp_path / "cache", monkeypatch)
    with open(deck.figures_script, "a") as f:
        f.write("# edited\n")
    assert stale_inputs(deck.figures_script, inputs) == ["figures.py changed"]
    assert stale_inputs(deck.figures_script, None) == [
        "inputs not recorded: the figures predate the input record"
    ]
