"""The lecture-6 tour chapter: its oracle section and its 8-Gaussian section with tiny budgets."""

import math

import pytest

import visgen.course.chapters.l06_flow_maps as l06
from visgen.course import select_chapters
from visgen.course.tour import Context

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


def test_l06_oracle_and_gmm_sections(tmp_path, monkeypatch):
    monkeypatch.setenv("VISGEN_CACHE", str(tmp_path / "cache"))
    tiny = {name: (v[0], (30, 30), {"batch_size": 64}) for name, v in l06.METHODS_2D.items()}
    monkeypatch.setattr(l06, "METHODS_2D", tiny)
    (ch,) = select_chapters(["L06"])
    ctx = Context(ch, tmp_path, progress=False)
    l06._oracle_section(ctx)
    values = ctx.metrics["values"]
    assert all(v <= 1e-8 for k, v in values.items() if "Heun" not in k), values
    l06._gmm_section(ctx)
    kinds = [b["kind"] for b in ctx.blocks]
    assert kinds.count("image") == len(tiny) and kinds.count("table") == 2
    assert (tmp_path / "L06" / "fig01.png").stat().st_size > 5_000
    gmm = [v for k, v in ctx.metrics["values"].items() if k.startswith("gmm.")]
    assert len(gmm) == 3 * (len(tiny) - 1) + 1 and all(math.isfinite(v) for v in gmm)
    # a second run only samples: the students come from the cache
    cached = sorted(p.name for p in (tmp_path / "cache" / "fewstep").glob("*.json"))
    assert len(cached) == len(tiny)
    l06._gmm_section(Context(ch, tmp_path / "again", progress=False))
    assert sorted(p.name for p in (tmp_path / "cache" / "fewstep").glob("*.json")) == cached
