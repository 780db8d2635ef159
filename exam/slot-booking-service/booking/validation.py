"""Input checks shared by URLs, forms, the API and the models: every bad value becomes a clear
4xx, never a database error (a 500).

* Ids are 1 .. 2**63 - 1 (the range of a 64-bit primary key); larger numbers overflow SQLite's
  INTEGER and PostgreSQL's bigint, so they are refused before any query.
* Dates lie in 2000 .. 2100: year 9999 or 0001 would overflow when a wall-clock time is
  converted to UTC.
* Titles, names, rooms and the like are one line of printable text: a line break in an exam
  title would otherwise end up in an email Subject header (which Django refuses to send).
"""

import datetime as dt
import re
import unicodedata

from django.core.exceptions import ValidationError

MAX_ID = 2**63 - 1
MIN_YEAR, MAX_YEAR = 2000, 2100
_ID = re.compile(r"[1-9][0-9]{0,18}")


def parse_id(value) -> int | None:
    """An id typed by a client (ASCII digits, no sign, in range), or None."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        return None
    number = int(value)
    return number if number <= MAX_ID else None


class IdConverter:
    """``<id:exam_id>`` in URL patterns: only ids a database can hold match; others are 404."""

    regex = _ID.pattern

    def to_python(self, value: str) -> int:
        number = parse_id(value)
        if number is None:
            raise ValueError(value)  # Django then tries the next pattern (finally 404)
        return number

    def to_url(self, value) -> str:
        return str(value)


class TokenConverter:
    """``<token:token>``: URL-safe base64 secrets (feed tokens, sign-in links), 16-100 chars."""

    regex = r"[A-Za-z0-9_-]{16,100}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


def _unprintable(char: str) -> bool:
    # Cc: control characters (NUL, TAB, CR, LF, ...); Cf: format (bidi overrides, ...);
    # Zl/Zp: Unicode line and paragraph separators.
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def one_line(value: str) -> None:
    """Validator: printable text on one line (no control characters, no line breaks)."""
    if any(_unprintable(c) for c in value):
        raise ValidationError(
            "Use one line of plain text: no line breaks, tabs or control characters.",
            code="one_line",
        )


def flatten(text: str) -> str:
    """``text`` as one line (for email headers): control characters become spaces."""
    return " ".join("".join(" " if _unprintable(c) else c for c in text).split())


def year_in_range(value: dt.date | dt.datetime) -> None:
    """Validator for dates and naive wall-clock times typed by instructors."""
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValidationError(
            f"Enter a date between the years {MIN_YEAR} and {MAX_YEAR}.", code="year_range"
        )
