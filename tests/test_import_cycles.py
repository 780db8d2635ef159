"""visgen's modules import each other without cycles, read from the source with :mod:`ast`.

* Packages are layers (``visgen.data`` < ``visgen.train`` < ``visgen.metrics`` < ...): no
  cycle between the top-level packages and modules of ``visgen``, counting every import,
  also one inside a function (a deferred import hides a cycle, it does not break it).
* Modules: no cycle at all, except through the few deferred imports listed in
  :data:`DEFERRED`, each inside one package, where two of its concepts recurse (a spec that
  names another asset), and never at import time.

Importing ``a.b.c`` runs the ``__init__`` of ``a`` and ``a.b`` first, so it counts as an
import of each of them that is not a parent of the importing module. Registries name their
provider modules as strings (:mod:`visgen._registry`): those are not imports.
"""

import ast
import textwrap
from pathlib import Path

import visgen

PACKAGE = Path(visgen.__file__).resolve().parent

# (importer, imported): why the loop is closed by an import inside a function
DEFERRED = {
    ("visgen.train.methods", "visgen.train.assets"): "a REPA method names its encoder asset",
    ("visgen.train.assets", "visgen.train.latent"): "latent data name their autoencoder asset",
}


def _modules(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package) of every module under ``package``."""
    out = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _imports(tree: ast.AST):
    """(node, inside a function) for every import outside ``if TYPE_CHECKING:``."""

    def visit(node, deferred):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, deferred
            inner = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            yield from visit(child, deferred or inner)

    yield from visit(tree, False)


def _targets(modules, module: str, is_package: bool, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    # `from pkg import sub` imports the submodule pkg.sub
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]


def _edges(package: Path = PACKAGE) -> dict[tuple[str, str], bool]:
    """(importer, imported module) → whether every such import is deferred (in a function)."""
    modules = _modules(package)
    edges: dict[tuple[str, str], bool] = {}
    for module, (path, is_package) in modules.items():
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        if is_package:
            parents.add(module)
        for node, deferred in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(modules, module, is_package, node):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # the target and the packages it runs
                    imported = ".".join(parts[:i])
                    if imported in modules and imported not in parents and imported != module:
                        key = (module, imported)
                        edges[key] = edges.get(key, True) and deferred
    return edges


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path a → … → a, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v):
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _package_cycle(edges) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if _layer(a) != _layer(b) and _layer(b) != "visgen":
            graph.setdefault(_layer(a), set()).add(_layer(b))
    return _cycle(graph)


def _module_cycle(edges, deferred) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if (a, b) not in deferred:
            graph.setdefault(a, set()).add(b)
    return _cycle(graph)


def test_packages_form_layers():
    cycle = _package_cycle(_edges())
    assert cycle is None, "import cycle between packages: " + " → ".join(cycle)


def test_modules_have_no_import_cycle():
    edges = _edges()
    for (a, b), why in DEFERRED.items():
        assert (a, b) in edges, f"stale DEFERRED entry {a} → {b} ({why}): remove it"
        assert edges[(a, b)], f"{a} imports {b} at import time; only a deferred import may ({why})"
        assert _layer(a) == _layer(b), f"{a} → {b}: a deferred import must stay in its package"
    cycle = _module_cycle(edges, DEFERRED)
    assert cycle is None, "import cycle between modules: " + " → ".join(cycle)


# The imports behind the data ↔ train and metrics ↔ train cycles that issue 14 broke, as
# they were (each hidden behind a deferred import or a package __init__).
OLD = {
    "__init__.py": "",
    "data/__init__.py": "from visgen.data.registry import get_dataset\n",
    "data/registry.py": """
        def _load(name):
            from visgen.train.latent import latent_dataset  # the encoder is a trained asset
        """,
    "train/__init__.py": """
        from visgen.train.latent import latent_dataset
        from visgen.train.repa import probe_accuracy
        """,
    "train/latent.py": "from visgen.data.registry import Dataset, get_dataset\n",
    "train/repa.py": "from visgen.metrics.probe import linear_probe\n",
    "metrics/__init__.py": """
        from visgen.metrics.images import image_metrics
        from visgen.metrics.probe import linear_probe
        """,
    "metrics/images.py": """
        def _extractors(data):
            from visgen.train import asset
        """,
    "metrics/probe.py": "",
}


def test_the_check_finds_the_old_cycles(tmp_path):
    for name, text in OLD.items():
        path = tmp_path / "visgen" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    edges = _edges(tmp_path / "visgen")
    assert edges[("visgen.data.registry", "visgen.train.latent")]  # deferred, still counted
    assert _package_cycle(edges) is not None
    assert set(_module_cycle(edges, {})) >= {"visgen.data.registry", "visgen.train.latent"}
    (tmp_path / "visgen" / "data" / "registry.py").write_text("")  # break data ↔ train
    assert set(_package_cycle(_edges(tmp_path / "visgen"))) == {"visgen.metrics", "visgen.train"}
