"""Course tooling: the tour of every lecture's method (``visgen tour``) and the lecture slides
(``python -m visgen.course.slides``)."""

from visgen.course.tour import Chapter, Context, all_chapters, chapter, run_tour, select_chapters

__all__ = ["Chapter", "Context", "all_chapters", "chapter", "run_tour", "select_chapters"]
