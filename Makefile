# visgen — the two commands of the README are `make tour` and `make test`.
# Both create the virtual environment from nothing (and reuse it when present).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv test test-lib test-booking tour lint assignments instructor release slides seminars clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,notebooks,diffusers]"
	touch $(STAMP)

test: test-lib test-booking

test-lib: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal tests

test-booking:
	$(MAKE) -C exam/slot-booking-service test

tour: venv
	$(PY) -m visgen tour --out runs/tour

# Student folders assignments/hwN (starter notebook, task PDF, README) from solutions/hwN.
assignments: venv
	$(PY) -m visgen.course.build

# Solution notebooks and task PDFs with worked solutions, in build/instructor/hwN.
instructor: venv
	$(PY) -m visgen.course.build --instructor

# The student repository in OUT: library, tour, slides, starters, task sheets, exam topics;
# no solutions, hidden tests or history (checked for leaks and broken links).
release: venv
	@test -n "$(OUT)" || { echo "usage: make release OUT=DIR"; exit 2; }
	$(PY) -m visgen.course.release $(OUT)

# Redraw stale lecture figures (figures.py or visgen changed) and compile every
# lectures/NN-slug/slides.typ to slides.pdf; fails on any Typst warning.
slides: venv
	$(PY) -m visgen.course.slides

# Lecture seminars lectures/NN-slug/seminar.ipynb from their jupytext sources seminar.py.
seminars: venv
	$(PY) -m visgen.course.seminar

lint: venv
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache
