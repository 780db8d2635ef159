"""Parsing a roster CSV (columns name, email, group) into accepted and rejected rows.

A file that cannot be read as a whole (too large, not UTF-8, no header) is refused with one
message and changes nothing; row-level problems reject only that row, with the reason.
"""

import csv
import dataclasses
import io

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .validation import one_line

REQUIRED = ("name", "email")
OPTIONAL = ("group",)


class RosterFileError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Rejected:
    line: int
    text: str
    reason: str


@dataclasses.dataclass(frozen=True)
class RosterRow:
    line: int
    name: str
    email: str
    group: str

    def reject(self, reason: str) -> Rejected:
        return Rejected(self.line, f"{self.name}, {self.email}, {self.group}", reason)


def _delimiter(header_line: str) -> str:
    """Comma, semicolon (spreadsheets in many European locales) or tab: what the header uses."""
    return max([",", ";", "\t"], key=header_line.count)


def parse(data: bytes) -> tuple[list[RosterRow], list[Rejected]]:
    """Accepted and rejected rows of a roster file (read at most ROSTER_MAX_BYTES + 1 bytes)."""
    limit = settings.ROSTER_MAX_BYTES
    if len(data) > limit:
        raise RosterFileError(f"The file is larger than the limit of {limit // 1024} KiB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterFileError(
            "The file is not UTF-8 text. Save it from your spreadsheet as 'CSV UTF-8'."
        ) from exc
    if "\x00" in text:
        raise RosterFileError("The file is binary, not CSV text.")
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise RosterFileError("The file is empty; the first row must be: name,email,group")
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(lines[0]), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        missing = [c for c in REQUIRED if c not in header]
        if missing or len(set(header)) != len(header):
            raise RosterFileError(
                "The first row must name the columns name, email and (optionally) group; "
                f"it reads: {', '.join(header)}"
            )
        accepted, rejected, seen = [], [], {}
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            raw = ", ".join(fields)
            if len(fields) != len(header):
                reason = f"expected {len(header)} columns, found {len(fields)}"
                rejected.append(Rejected(line, raw, reason))
                continue
            values = {h: f.strip() for h, f in zip(header, fields, strict=True)}
            row = RosterRow(line, values["name"], values["email"].lower(), values.get("group", ""))
            reason = _problem(row, seen)
            if reason:
                rejected.append(Rejected(line, raw, reason))
            else:
                seen[row.email] = line
                accepted.append(row)
    except csv.Error as exc:
        raise RosterFileError(f"Line {reader.line_num} is not valid CSV: {exc}.") from exc
    if not accepted and not rejected:
        raise RosterFileError("The file has a header but no students.")
    return accepted, rejected


def _problem(row: RosterRow, seen: dict[str, int]) -> str:
    if not row.name:
        return "the name is empty"
    if len(row.name) > 200 or len(row.group) > 100:
        return "the name (200 characters) or group (100 characters) is too long"
    try:
        one_line(row.name)
        one_line(row.group)
    except ValidationError:
        return "the name or group holds a line break or a control character"
    if len(row.email) > 254:
        return "the email address is longer than 254 characters"
    try:
        validate_email(row.email)
    except ValidationError:
        return f"{row.email!r} is not an email address"
    if row.email in seen:
        return f"the same email as line {seen[row.email]}"
    return ""
