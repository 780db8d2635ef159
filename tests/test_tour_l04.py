"""The lecture-4 tour chapter's oracle section (no trained model needed)."""

import math

import visgen.course.chapters.l04_fast_solvers as l04
from visgen.course import select_chapters
from visgen.course.tour import Context


def test_l04_oracle_section(tmp_path, monkeypatch):
    monkeypatch.setattr(l04, "NFES", (6, 12, 16, 24))  # the report uses 4..128; keep CI short
    monkeypatch.setattr(l04, "GRID_NFES", (4, 8))
    (ch,) = select_chapters(["L04"])
    ctx = Context(ch, tmp_path, progress=False)
    l04._gmm_section(ctx)
    kinds = [b["kind"] for b in ctx.blocks]
    assert kinds.count("image") == 2 and kinds.count("table") == 2
    assert (tmp_path / "L04" / "fig01.png").stat().st_size > 10_000
    errors = ctx.metrics["values"]
    assert all(math.isfinite(v) for v in errors.values())
    # at 16 NFE every multistep solver beats first order by a clear margin
    first = errors["gmm.DDIM.error_nfe16"]
    assert abs(errors["gmm.Euler.error_nfe16"] - first) < 1e-9  # DDIM ≡ Euler on flow matching
    for name in ("DPM-Solver-2M", "DPM-Solver++(2M)", "DPM-Solver++(3M)", "UniPC"):
        assert errors[f"gmm.{name}.error_nfe16"] < first / 2, name
