"""The course machinery: homework notebooks from one source, task sheets, and the grader.

* :mod:`visgen.course.notebook` — jupytext source → starter / solution notebooks;
* :mod:`visgen.course.document` — Typst task sheets (student and instructor builds);
* :mod:`visgen.course.build` — ``make assignments`` (starters, PDFs, READMEs, run times);
* :mod:`visgen.course.extract` and :mod:`visgen.course.grade` — ``visgen grade hwN NOTEBOOK``;
* :mod:`visgen.course.homework` — a homework's manifest and rubric;
* :mod:`visgen.course.testing` — helpers for the hidden tests.

Submodules are imported on use, so ``python -m visgen.course.grade`` starts cleanly.
"""
