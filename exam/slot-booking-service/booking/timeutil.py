"""Wall-clock times in an exam's time zone <-> UTC instants.

Slots are typed and shown as wall-clock times in the exam's IANA zone and stored as UTC. A
series is generated in wall-clock time first and converted slot by slot, so "09:00 every day"
stays 09:00 across a daylight-saving change (its UTC offset changes instead).
"""

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.UTC


def to_utc(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """Interpret a naive wall-clock time in ``tz``; refuse times that do not exist or repeat."""
    earlier = wall.replace(tzinfo=tz, fold=0)
    later = wall.replace(tzinfo=tz, fold=1)
    if earlier.utcoffset() != later.utcoffset():
        back = earlier.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back != wall:
            raise ValueError(
                f"{wall:%Y-%m-%d %H:%M} does not exist in {tz.key}: the clocks jump forward "
                "at that time. Choose another time."
            )
        raise ValueError(
            f"{wall:%Y-%m-%d %H:%M} happens twice in {tz.key}: the clocks go back at that "
            "time. Choose another time."
        )
    return earlier.astimezone(UTC)


def series(
    first_day: dt.date,
    days: int,
    first_start: dt.time,
    per_day: int,
    length: dt.timedelta,
    gap: dt.timedelta,
    tz: ZoneInfo,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """UTC (start, end) pairs of ``per_day`` slots on ``days`` consecutive days, in wall time."""
    slots = []
    for day in range(days):
        start = dt.datetime.combine(first_day + dt.timedelta(days=day), first_start)
        for _ in range(per_day):
            slots.append((to_utc(start, tz), to_utc(start + length, tz)))
            start += length + gap
    return slots


def local(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz)


def describe(instant: dt.datetime, tz: ZoneInfo) -> str:
    """'Mon 30 Mar 2026, 09:00 CEST' in the given zone (for messages and emails)."""
    return f"{local(instant, tz):%a %d %b %Y, %H:%M %Z}"
