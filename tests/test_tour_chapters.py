"""The tour's chapters L01–L03 run end to end in FAST mode and write a complete report."""

import json

from visgen.course import run_tour


def test_tour_l01_to_l03_fast(tmp_path):
    report = run_tour(
        tmp_path, ["L01", "L02", "L03"], fast=True, progress=False, log=lambda s: None
    )
    assert report["failed"] == [] and report["fast"] is True
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    page = (tmp_path / "index.html").read_text()
    for cid in ("L01", "L02", "L03"):
        chapter = metrics["chapters"][cid]
        assert chapter["status"] == "ok" and chapter["tables"]
        assert f'id="{cid}"' in page
        assert any((tmp_path / cid).glob("*.png"))
    # results stand next to reference rows (data floor or exact oracle), shown shaded
    assert page.count('class="floor"') >= 10
    values = metrics["chapters"]["L03"]["values"]
    assert values["2d.fm.velocity_relative_l2"] <= 0.1
    l02 = metrics["chapters"]["L02"]["values"]
    assert abs(l02["likelihood.model_nats"] - l02["likelihood.true_nats"]) < 0.1
