"""The tour's cost accounting: cache events (trained vs loaded, nested entries, one trainer
among racing processes), the committed cost table behind ``visgen tour --budget``, the
longest-first schedule and README's cost table. Times are never compared with a clock: only
the structure, the trained/loaded classification and accounting identities are checked."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from visgen.cli import main
from visgen.config import cpu_seconds, is_fast
from visgen.course import costs, run_tour
from visgen.train.assets import _locked, cache_entry, record_cache_events, spec_key

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("VISGEN_CACHE", str(root))  # spawned workers inherit it
    return root


@pytest.fixture
def demo_module(chapter_module):
    return chapter_module("tour_cost_chapters", ("L94", "L93"))


def test_first_run_trains_second_run_loads(tmp_path, cache, demo_module):
    quiet = {"progress": False, "log": lambda s: None}
    key = spec_key(demo_module.TINY_SPEC)
    first = run_tour(tmp_path / "a", ["L94", "L93"], fast=True, jobs=2, **quiet)
    second = run_tour(tmp_path / "b", ["L94", "L93"], fast=True, jobs=2, **quiet)
    a, b = first["chapters"]["L94"]["cost"], second["chapters"]["L94"]["cost"]
    assert [(e["key"], e["kind"], e["trained"]) for e in a["entries"]] == [(key, "model", True)]
    assert [(e["key"], e["trained"]) for e in b["entries"]] == [(key, False)]
    assert a["trained"] == 1 and a["loaded"] == 0 and b["trained"] == 0 and b["loaded"] == 1
    assert b["trained_cpu_s"] == 0 < a["trained_cpu_s"] <= a["cpu_s"]
    assert a["entries"][0]["file"] == f"{key}.json" and (cache / a["entries"][0]["file"]).exists()
    assert a["entries"][0]["name"] == "moons-fm-mlp"  # a spec without an asset name
    # the same model both times, and a chapter that uses no cache has no entries
    values = first["chapters"]["L94"]["values"], second["chapters"]["L94"]["values"]
    assert values[0] == values[1]
    assert first["chapters"]["L93"]["cost"]["entries"] == []
    # the run's total counts the worker processes, so it covers the chapters' CPU
    assert first["cpu_seconds"] >= first["chapters_cpu_seconds"] - 0.2
    assert len(first["load_average"]) == 2 and sorted(first["order"]) == ["L93", "L94"]
    assert first["jobs"] == 2  # chapters that ran at once
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["chapters"]["L94"]["cost"]["entries"][0]["trained"] is True
    page = (tmp_path / "a" / "index.html").read_text()
    assert 'id="cost"' in page and "moons-fm-mlp (" in page  # trained now, with its CPU-s
    assert "moons-fm-mlp" in (tmp_path / "b" / "index.html").read_text().split('id="cost"')[1]
    # the committed table's format: record the two runs, then ask what a run would cost
    table = costs.record(second, costs.record(first, costs.load_table(tmp_path / "none.json")))
    section = table["fast"]
    assert section["entries"][key]["cpu_s"] == round(a["entries"][0]["cpu_s"], 1)  # kept
    assert section["chapters"]["L94"]["entries"] == [key]
    assert section["chapters"]["L94"]["base_cpu_s"] == round(b["cpu_s"], 1)  # the cached run's
    cached, fresh = (
        costs.estimate(["L94"], True, table=table, root=root)[0]
        for root in (cache, tmp_path / "empty")
    )
    base, train = section["chapters"]["L94"]["base_cpu_s"], section["entries"][key]["cpu_s"]
    assert cached["expected"] == base and cached["cached"] == 1 and cached["train"] == []
    assert fresh["expected"] == base + train == fresh["fresh"] and fresh["train"] == [
        "moons-fm-mlp"
    ]


def test_nested_entries_are_counted_once(tmp_path):
    def busy(n):
        total = 0
        for i in range(n):
            total += i * i
        return total

    start = cpu_seconds()
    with record_cache_events() as events:
        with cache_entry(tmp_path, "outer", kind="model", name="outer") as cached:
            assert not cached
            busy(200_000)
            with cache_entry(tmp_path, "sub/inner", kind="grid", name="inner") as inner_cached:
                assert not inner_cached
                busy(400_000)
                (tmp_path / "sub" / "inner.json").write_text("{}")
            (tmp_path / "outer.json").write_text("{}")
        with cache_entry(tmp_path, "outer", kind="model", name="outer") as cached:
            assert cached
    total = cpu_seconds() - start
    inner, outer, again = events
    assert (inner.name, inner.key, inner.file) == ("inner", "inner", "sub/inner.json")
    assert inner.trained and outer.trained and not again.trained
    # exclusive times: the outer entry does not count the inner one's, and they add up
    # (counting the inner entry in the outer one too would exceed the total by inner.cpu_s)
    assert inner.cpu_s > 0 and outer.cpu_s > 0
    assert inner.cpu_s + outer.cpu_s + again.cpu_s <= total + 1e-6
    # the block has closed: nothing records any more
    with cache_entry(tmp_path, "outer", kind="model", name="outer"):
        pass
    assert len(events) == 3


RACER = """
import json, sys, pathlib
from visgen.train.assets import record_cache_events, train_cached
sys.path.insert(0, sys.argv[2])
from tour_cost_chapters import TINY_SPEC
pathlib.Path(sys.argv[1]).write_text("ready")
with record_cache_events() as events:
    net = train_cached(TINY_SPEC, progress=False)
print(json.dumps([[e.trained, e.wait_s] for e in events]))
print(float(next(net.model.parameters()).flatten()[0]))
"""


def test_racing_processes_train_an_entry_once(tmp_path, cache, demo_module):
    """Two processes that need the same untrained entry: one trains, the other waits on the
    lock and loads (without the lock both would find no checkpoint and both would train)."""
    key = spec_key(demo_module.TINY_SPEC)
    ready = [tmp_path / f"ready{i}" for i in range(2)]
    with _locked(cache / f"{key}.lock"):  # hold the entry until both processes wait for it
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, str(r), str(ROOT / "tests")],
                stdout=subprocess.PIPE,
                text=True,
                env=os.environ,
            )  # fmt: skip
            for r in ready
        ]
        while not all(r.exists() for r in ready):
            assert all(p.poll() is None for p in procs), "a racer ended early"
            time.sleep(0.05)
        time.sleep(0.5)  # both are now at (or in) flock
    outs = [p.communicate(timeout=120)[0].splitlines() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    events = [json.loads(out[0]) for out in outs]
    assert sorted(len(e) for e in events) == [1, 1]
    assert sorted(e[0][0] for e in events) == [False, True]  # exactly one trained
    assert outs[0][1] == outs[1][1]  # and both have the same weights


def test_schedule_and_makespan():
    table = {
        "full": {
            "chapters": {
                "L01": {"base_cpu_s": 10.0, "entries": ["a", "b"], "measured": "t"},
                "L02": {"base_cpu_s": 5.0, "entries": ["b"], "measured": "t"},
                "L03": {"cpu_s": 50.0, "measured": "t"},  # no breakdown
            },
            "entries": {
                "a": {"kind": "model", "name": "A", "file": "a.json", "cpu_s": 30.0},
                "b": {"kind": "student", "name": "B", "file": "fewstep/b.json", "cpu_s": 100.0},
            },
            "sources": {"t": "a test"},
        },
        "fast": {"chapters": {}, "entries": {}, "sources": {}},
    }
    empty = Path("/nonexistent-visgen-cache")
    rows = {r["id"]: r for r in costs.estimate(["L01", "L02", "L03", "L04"], False,
                                               table=table, root=empty)}  # fmt: skip
    assert rows["L01"]["fresh"] == 140 == rows["L01"]["expected"]
    assert rows["L02"]["fresh"] == 105 and rows["L02"]["expected"] == 5  # b: trained by L01
    assert rows["L03"]["expected"] == 50 and rows["L03"]["cached"] is None
    assert rows["L04"]["fresh"] is None  # never measured
    # a never-measured chapter first (it may be the longest), then longest expected first
    assert costs.schedule(["L01", "L02", "L03", "L04"], False, table=table, root=empty) == [
        "L04",
        "L01",
        "L03",
        "L02",
    ]
    assert costs.makespan([140, 50, 5], 2) == 140 and costs.makespan([140, 50, 5], 1) == 195
    assert costs.makespan([3, 3, 2, 2, 2], 2) == 7  # greedy in the given order (LPT)
    text = costs.budget_report(["L01", "L02", "L03"], False, 2, table=table, root=empty)
    assert "A, B" in text and "a test" in text and "L01 L03 L02" in text


def test_simulation_makes_a_chapter_wait_for_an_entry_another_is_training(tmp_path):
    table = {
        "full": {
            "chapters": {
                "L01": {"base_cpu_s": 10.0, "entries": ["a"], "measured": "t"},
                "L02": {"base_cpu_s": 5.0, "entries": ["a"], "measured": "t"},
                "L03": {"base_cpu_s": 1.0, "entries": ["b"], "measured": "t"},
            },
            "entries": {
                "a": {"kind": "model", "name": "A", "file": "a.json", "cpu_s": 100.0},
                "b": {"kind": "model", "name": "B", "file": "b.json", "cpu_s": 20.0},
            },
            "sources": {"t": "a test"},
        },
        "fast": {"chapters": {}, "entries": {}, "sources": {}},
    }
    # L02 asks for a first (after 2.5 of its base) and trains it during [2.5, 102.5]; L01 asks
    # at 5 and idles until 102.5, then 5 more; L03 starts on the first free core (L02's, at
    # 105): 0.5 + 20 + 0.5
    run = costs.simulate(["L01", "L02", "L03"], False, 2, table=table, root=tmp_path)
    assert run["finish"] == {"L01": 107.5, "L02": 105.0, "L03": 126.0} and run["wall"] == 126.0
    assert run["wait"] == {"L01": 97.5, "L02": 0.0, "L03": 0.0}
    assert run["trains"] == {"L01": [], "L02": ["a"], "L03": ["b"]}
    (tmp_path / "a.json").write_text("{}")  # cached: nobody trains or waits
    run = costs.simulate(["L01", "L02", "L03"], False, 2, table=table, root=tmp_path)
    assert run["finish"] == {"L01": 10.0, "L02": 5.0, "L03": 26.0} and not any(run["wait"].values())
    with pytest.raises(ValueError, match="jobs"):
        costs.simulate(["L01"], False, 0, table=table, root=tmp_path)


def test_readme_cost_table_is_generated_from_the_committed_table():
    readme = (ROOT / "README.md").read_text()
    assert costs.readme_table() in readme, "run: python -m visgen.course.costs --readme"


def test_cli_budget_prints_costs_without_running(tmp_path, cache, capsys):
    assert main(["tour", "--budget", "--only", "L07", "L04", "--out", str(tmp_path / "r")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    section = costs.load_table()["fast" if is_fast() else "full"]  # conftest: FAST
    fresh = {c: f"{costs.chapter_costs(section, c)['fresh']:.0f}" for c in ("L04", "L07")}
    assert [r[:2] for r in rows if r and r[0].startswith("L")] == [[c, fresh[c]] for c in fresh]
    assert not (tmp_path / "r").exists() and not cache.exists()
    with pytest.raises(SystemExit, match="unknown chapter"):
        main(["tour", "--budget", "--only", "L77"])
