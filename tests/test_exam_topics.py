"""The exam topic list covers all twelve lectures and links only to things that exist: a deck's
slides where the deck is built, "planned" elsewhere; the README's slide links resolve too."""

from __future__ import annotations

import re
from pathlib import Path

from visgen.course.slides import find_decks

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ROOT / "exam" / "exam_topics_visual_genai.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _local_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:", t)]


def _missing(doc: Path, links: list[str]) -> list[str]:
    return [t for t in links if not (doc.parent / t.split("#")[0]).exists()]


def test_every_link_of_the_topic_list_resolves():
    links = _local_links(TOPICS)
    assert len(links) > 30
    assert not _missing(TOPICS, links)


def test_readme_links_to_slides_and_exam_resolve():
    readme = ROOT / "README.md"
    links = [t for t in _local_links(readme) if t.startswith(("lectures/", "exam/"))]
    assert any(t.endswith("slides.pdf") for t in links)
    assert not _missing(readme, links)


def _sections() -> dict[int, str]:
    parts = re.split(r"^## Lecture (\d+) ", TOPICS.read_text(), flags=re.M)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}


def test_all_twelve_lectures_have_topics():
    sections = _sections()
    assert sorted(sections) == list(range(1, 13))
    for n, body in sections.items():
        assert body.count("\n| ") >= 3, f"lecture {n} lists no topics"


def test_built_decks_are_linked_and_the_rest_marked_planned():
    sections = _sections()
    built = {int(d.name[:2]): d for d in find_decks(ROOT / "lectures")}
    for n, body in sections.items():
        slides_line = next(line for line in body.splitlines() if line.startswith("Slides:"))
        if n in built:
            assert f"../lectures/{built[n].name}/slides.pdf" in slides_line, n
        else:
            assert "*planned*" in slides_line, n
