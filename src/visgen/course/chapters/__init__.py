"""Tour chapters: one module per chapter, each registering a function with
:func:`visgen.course.chapter`. Every module here is imported by :func:`visgen.course.all_chapters`."""
