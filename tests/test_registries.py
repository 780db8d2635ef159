"""Import order never changes behaviour: every registered asset, model and training method is
found in a fresh interpreter that imported nothing else first (visgen._registry)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from visgen._registry import Registry

REGISTRIES = {
    "assets": "visgen.train.assets:ASSETS",
    "models": "visgen.nn:MODELS",
    "methods": "visgen.train.methods:METHODS",
}


def _fresh(code: str, tmp_path) -> dict:
    """Run ``code`` in a new interpreter (empty trained-model cache); its printed JSON."""
    env = {**os.environ, "VISGEN_CACHE": str(tmp_path / "cache"), "VISGEN_FAST": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_issue_14_lookups_work_in_a_fresh_interpreter(tmp_path):
    got = _fresh(
        """
        import json
        from visgen.train import asset_key
        key = asset_key("fm_shapes16")  # registered by visgen.fewstep.tasks, never imported here
        from visgen.nn import build_model
        net = build_model({"name": "flowmap", "base": {"name": "mlp", "shape": [2]}})
        print(json.dumps({"key": key, "net": type(net).__module__}))
        """,
        tmp_path,
    )
    assert got["key"].startswith("shapes16-fm-mlp-")
    assert got["net"] == "visgen.fewstep.flowmap"
    assert not (tmp_path / "cache").exists()  # resolved, nothing trained


def test_every_asset_resolves_its_spec_without_training(tmp_path):
    """List ASSETS in a fresh interpreter and resolve every recipe to its normalised spec
    (models built, methods made, dependencies pinned by cache key): nothing is trained."""
    got = _fresh(
        """
        import json
        from visgen.train import ASSETS, asset_key, normalize_spec
        specs = {name: normalize_spec(ASSETS[name]()) for name in ASSETS}
        print(json.dumps({n: [asset_key(n), s["method"]["name"]] for n, s in specs.items()}))
        """,
        tmp_path,
    )
    # the standard assets of lectures 1-7, whichever module registers them
    assert {
        "fm_2d",
        "fm_digits",
        "classifier_digits",
        "vae_shapes16",
        "repa_encoder_digits",
        "repa_encoder_shapes16",
        "fm_digits_unet",
        "fm_shapes16",
    } <= set(got)
    assert got["vae_shapes16"][1] == "vae"
    assert len({key for key, _ in got.values()}) == len(got)  # one cache entry each
    assert not (tmp_path / "cache").exists()


def test_every_registering_module_is_a_declared_provider(tmp_path):
    """Load each registry through its providers alone, then import every visgen module: if
    that adds an entry, its module registers without being listed and `asset(name)` (or
    `build_model`, `make_method`) would depend on import order."""
    got = _fresh(
        f"""
        import importlib, json, pkgutil
        import visgen
        registries = {REGISTRIES!r}
        def load(spec):
            module, name = spec.split(":")
            return getattr(importlib.import_module(module), name)
        first = {{k: sorted(load(v)) for k, v in registries.items()}}
        for info in pkgutil.walk_packages(visgen.__path__, "visgen."):
            if info.name != "visgen.__main__":
                importlib.import_module(info.name)
        late = {{}}
        for k, v in registries.items():
            reg = load(v)
            for name in set(reg) - set(first[k]):
                entry = reg[name]
                late[f"{{k}}:{{name}}"] = getattr(entry, "__module__", "?")
        print(json.dumps({{"first": first, "late": late}}))
        """,
        tmp_path,
    )
    assert got["late"] == {}, (
        "registered by modules missing from their registry's providers (add them there): "
        f"{got['late']}"
    )
    assert "flowmap" in got["first"]["models"] and "vae" in got["first"]["methods"]


# --- the Registry itself ----------------------------------------------------------------


@pytest.fixture
def provider(tmp_path, monkeypatch):
    """A module `visgen_test_provider` that registers 'late' into the registry it is given."""
    (tmp_path / "visgen_test_provider.py").write_text(
        "import builtins\nbuiltins.REGISTRY_UNDER_TEST['late'] = 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "visgen_test_provider", raising=False)
    registry = Registry("thing", {"early": 1}, providers=("visgen_test_provider",))
    monkeypatch.setattr("builtins.REGISTRY_UNDER_TEST", registry, raising=False)
    return registry


def test_registry_imports_its_providers_on_a_miss_or_a_listing_only(provider):
    assert provider["early"] == 1 and "visgen_test_provider" not in sys.modules  # a hit: no import
    assert provider["late"] == 2 and "visgen_test_provider" in sys.modules  # a miss: import
    assert sorted(provider) == ["early", "late"] and len(provider) == 2


def test_registry_lists_after_loading(provider):
    assert "late" in provider
    assert dict(provider) == {"early": 1, "late": 2}


def test_registry_errors_name_the_kind_and_the_choices(provider):
    with pytest.raises(ValueError, match=r"unknown thing 'nope'; expected one of 'early', 'late'"):
        provider.lookup("nope")
    with pytest.raises(ValueError, match="thing 'early' is already registered"):
        provider["early"] = 3
    provider["early"] = 1  # the same entry again (a module imported twice) is fine
