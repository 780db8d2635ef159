"""Course tooling: the tour (``visgen tour``), the lecture slides
(``python -m visgen.course.slides``) and the homeworks.

* :mod:`visgen.course.tour` — the tour of every lecture's method;
* :mod:`visgen.course.slides`, :mod:`visgen.course.typeset` — Typst slides and strict PDF builds;
* :mod:`visgen.course.notebook` — homework source → starter / solution notebooks;
* :mod:`visgen.course.document` — homework task sheets (student and instructor builds);
* :mod:`visgen.course.build` — ``make assignments`` (starters, PDFs, READMEs, run times);
* :mod:`visgen.course.grade` — ``visgen grade hwN NOTEBOOK``: :mod:`~visgen.course.extract`
  (the definitions), :mod:`~visgen.course._runner` (the hidden tests, trusted),
  :mod:`~visgen.course.sandbox` and :mod:`~visgen.course._harness` (the notebook's code,
  isolated), :mod:`~visgen.course.rpc` (the wire between them);
* :mod:`visgen.course.release` — ``make release OUT=DIR``, the student repository;
* :mod:`visgen.course.homework` — a homework's manifest and rubric;
* :mod:`visgen.course.testing` — helpers for the hidden tests.

The tour's names are loaded on first use, so the grader's processes and
``python -m visgen.course.grade`` do not import the training stack.
"""

import importlib

__all__ = ["Chapter", "Context", "all_chapters", "chapter", "run_tour", "select_chapters"]


def __getattr__(name):
    if name in __all__:
        return getattr(importlib.import_module("visgen.course.tour"), name)
    raise AttributeError(f"module 'visgen.course' has no attribute {name!r}")
