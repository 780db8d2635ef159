import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

import visgen.course.tour as tour
from visgen.cli import main
from visgen.course import chapter, run_tour, select_chapters
from visgen.viz import figure, scatter


def test_cli_train_then_sample(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--method",
                "fm",
                "--data",
                "digits",
                "--steps",
                "20",
                "--out",
                str(out),
                "--conditional",
                "--width",
                "32",
                "--quiet",
            ]
        )
        == 0
    )
    assert "trained fm on digits for 20 steps" in capsys.readouterr().out
    cfg = json.loads((out / "checkpoint.json").read_text())["config"]
    assert cfg["model"]["num_classes"] == 10 and cfg["method"]["label_dropout"] == 0.1
    png = tmp_path / "grid.png"
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(out),
                "--sampler",
                "heun",
                "--steps",
                "4",
                "--n",
                "12",
                "--out",
                str(png),
                "--label",
                "3",
            ]
        )
        == 0
    )
    assert "12 samples, heun, 7 network evaluations" in capsys.readouterr().out
    w, h = Image.open(png).size
    assert w > 8 * 3 and h > 8 * 3
    # resume: a longer run in the same folder refuses (a different configuration)...
    with pytest.raises(SystemExit, match="different run"):
        main(
            [
                "train",
                "--method",
                "fm",
                "--data",
                "digits",
                "--steps",
                "30",
                "--out",
                str(out),
                "--conditional",
                "--width",
                "32",
                "--quiet",
                "--resume",
            ]
        )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["train", "--method", "fm", "--data", "cifar10", "--steps", "5", "--out", "x"],
            "unknown dataset",
        ),
        (
            ["train", "--method", "fm", "--data", "moons", "--steps", "0", "--out", "x"],
            "--steps must be",
        ),
        (
            [
                "train",
                "--method",
                "fm",
                "--data",
                "moons",
                "--steps",
                "5",
                "--out",
                "x",
                "--conditional",
            ],
            "needs labels",
        ),
        (["sample", "--checkpoint", "missing", "--out", "x.png"], "no checkpoint"),
        (["tour", "--only", "L77", "--out", "x"], "unknown chapter"),
    ],
)
def test_cli_errors_are_clear(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_python_dash_m_help():
    proc = subprocess.run(
        [sys.executable, "-m", "visgen", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for command in ("train", "sample", "tour"):
        assert command in proc.stdout


# the CLI with the notebooks extra's modules missing, as after `pip install visgen`
WITHOUT_NOTEBOOKS = """
import sys
for name in ("nbformat", "nbclient", "jupytext", "typst", "ipykernel"):
    sys.modules[name] = None  # import raises ModuleNotFoundError, as if not installed
from visgen.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv, rc, expected",
    [
        (["--help"], 0, "grade     grade a homework notebook against its hidden tests (needs"),
        (["tour", "--list"], 0, "L04  Fast solvers"),
        (
            ["grade", "hw1", "notebook.ipynb"],
            1,
            "error: visgen grade needs the 'notebooks' extra: pip install 'visgen[notebooks]'",
        ),
    ],
)
def test_cli_runs_without_the_notebooks_extra(argv, rc, expected):
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_NOTEBOOKS, *argv], capture_output=True, text=True
    )
    assert proc.returncode == rc, proc.stderr
    assert expected in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def demo_chapters():
    @chapter(
        "L98",
        "A demo chapter",
        lecture=1,
        summary="shows every block",
        slides="lectures/01-ddpm-dsm/slides.pdf",
        code=["visgen.sampling.sample_euler"],
    )
    def demo(ctx):
        ctx.text("The *velocity* `v = ε − x0` is **learned**.", "Second paragraph <not html>.")
        fig, (ax,) = figure()
        scatter(ax, torch.randn(100, 2, generator=ctx.generator()), title="points")
        ctx.figure(fig, "A scatter plot.")
        ctx.images(torch.zeros(4, 1, 8, 8), "Four grey digits.", nrow=2)
        ctx.table(
            [
                {"method": "model", "ED": 0.0123},
                {"method": "data vs data", "ED": 0.0025, "_floor": True},
            ],
            "Energy distance.",
        )
        ctx.metric("ed", 0.0123)
        ctx.metric("fast", ctx.fast)

    @chapter("L99", "A failing chapter", lecture=2)
    def broken(ctx):
        ctx.text("before the failure")
        raise RuntimeError("deliberate failure")

    yield
    tour._REGISTRY.pop("L98")
    tour._REGISTRY.pop("L99")


def test_tour_writes_report(tmp_path, demo_chapters):
    assert [c.id for c in select_chapters(["98", "l99"])] == ["L98", "L99"]
    report = run_tour(tmp_path, ["L98", "L99"], fast=True, progress=False, log=lambda s: None)
    assert report["failed"] == ["L99"] and report["fast"] is True
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["chapters"]["L98"]["values"] == {"ed": 0.0123, "fast": True}
    assert metrics["chapters"]["L98"]["tables"][0]["rows"][1] == {
        "method": "data vs data",
        "ED": 0.0025,
    }
    assert metrics["chapters"]["L99"]["status"] == "error"
    page = (tmp_path / "index.html").read_text()
    assert (
        "<i>velocity</i>" in page and "<code>v = ε − x0</code>" in page and "<b>learned</b>" in page
    )
    assert "&lt;not html&gt;" in page
    assert page.count("data:image/png;base64,") == 2
    assert (tmp_path / "L98" / "fig01.png").exists() and (tmp_path / "L98" / "fig02.png").exists()
    assert 'class="floor"' in page and "0.0123" in page
    assert "deliberate failure" in page and "This chapter failed" in page
    assert "src/visgen/sampling/ode.py" in page  # the code link


def test_chapter_registry_rejects_bad_ids():
    with pytest.raises(ValueError, match="chapter id"):
        chapter("lecture1", "x", lecture=1)


@pytest.fixture
def demo_module(chapter_module):
    return chapter_module("tour_demo_chapters", ("L96", "L97"))


def test_parallel_tour_writes_the_same_report(tmp_path, demo_module):
    quiet = {"progress": False, "log": lambda s: None}
    seq = run_tour(tmp_path / "seq", ["L96", "L97"], fast=True, **quiet)
    par = run_tour(tmp_path / "par", ["L96", "L97"], fast=True, jobs=2, **quiet)
    assert seq["failed"] == par["failed"] == ["L97"]
    a, b = seq["chapters"]["L96"]["values"], par["chapters"]["L96"]["values"]
    assert a["pid"] == os.getpid() != b["pid"]  # really ran in another process
    assert a["sum"] == b["sum"] and a["fast"] is b["fast"] is True
    assert seq["chapters"]["L96"]["tables"] == par["chapters"]["L96"]["tables"]
    png = "L96/fig01.png"
    assert (tmp_path / "seq" / png).read_bytes() == (tmp_path / "par" / png).read_bytes()
    page = (tmp_path / "par" / "index.html").read_text()
    assert "deliberate failure in a worker" in page and page.index('id="L96"') < page.index(
        'id="L97"'
    )


def test_tour_rejects_bad_jobs(tmp_path):
    with pytest.raises(ValueError, match="jobs"):
        run_tour(tmp_path, ["L01"], jobs=0)


def test_a_bad_code_link_fails_before_any_chapter_runs(tmp_path):
    ran = []

    @chapter(
        "L95", "A chapter with a broken code link", lecture=1, code=("visgen.nowhere.nothing",)
    )
    def bad_link(ctx):
        ran.append(ctx.chapter.id)

    try:
        with pytest.raises(ValueError, match="visgen.nowhere.nothing"):
            run_tour(tmp_path, ["L95"], fast=True, progress=False, log=lambda s: None)
    finally:
        tour._REGISTRY.pop("L95")
    assert ran == [] and not (tmp_path / "index.html").exists()
