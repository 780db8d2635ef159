#!/usr/bin/env bash
# Smoke test of a core install (no extras): every command the README shows runs, and the one
# that needs an extra says which. Usage: bash .ci/core_install.sh (from anywhere).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=build/ci-core-venv
OUT=build/ci-core
export VISGEN_CACHE="${VISGEN_CACHE:-$ROOT/.cache/visgen}"
PYTHON="${PYTHON:-python3}"

echo "== core install: pip install -c constraints.txt . (no extras) into $VENV"
start=$SECONDS
rm -rf "$VENV" "$OUT"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -c constraints.txt .
"$VENV/bin/python" - <<'PY'
import importlib.util
extras = ("nbformat", "nbclient", "jupytext", "typst", "ipykernel", "diffusers")
present = [m for m in extras if importlib.util.find_spec(m) is not None]
assert not present, f"the core install has extras' packages: {present}"
print("no extras installed:", ", ".join(extras))
PY

mkdir -p "$OUT"
cd "$OUT"  # outside the source tree: the installed package, not src/
run() { echo "\$ $*"; "$@"; }
run "$ROOT/$VENV/bin/visgen" --help
run "$ROOT/$VENV/bin/python" -m visgen --help
run "$ROOT/$VENV/bin/visgen" tour --list
run "$ROOT/$VENV/bin/visgen" tour --fast --only L04 --out tour --quiet --jobs 1
echo "\$ visgen grade hw1 notebook.ipynb   (needs the notebooks extra)"
if message=$("$ROOT/$VENV/bin/visgen" grade hw1 notebook.ipynb 2>&1); then
  echo "visgen grade ran without the notebooks extra?"; exit 1
fi
echo "$message"
[ "$message" = "error: visgen grade needs the 'notebooks' extra: pip install 'visgen[notebooks]'" ]
echo "== core install smoke test passed in $((SECONDS - start)) s wall, load average $(cut -d' ' -f1-3 /proc/loadavg);"
echo "   CPU time (user system) of this script, then of its child processes:"
times
