"""Fixed-window counters in the database, shared by all worker processes (no cache server).

One statement, atomic on SQLite >= 3.35 and PostgreSQL: INSERT ... ON CONFLICT DO UPDATE
... RETURNING hits.
"""

import time

from django.db import connection

from .models import ThrottleWindow


def _bucket(seconds: int) -> int:
    return int(time.time()) // seconds


def hit(name: str, seconds: int) -> int:
    """Count one event for ``name`` in the current window of ``seconds``; return the count."""
    table = connection.ops.quote_name(ThrottleWindow._meta.db_table)
    bucket = _bucket(seconds)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE name = %s AND bucket < %s", [name, bucket])  # noqa: S608
        cursor.execute(
            f"INSERT INTO {table} (name, bucket, hits) VALUES (%s, %s, 1) "  # noqa: S608
            f"ON CONFLICT (name, bucket) DO UPDATE SET hits = {table}.hits + 1 RETURNING hits",
            [name, bucket],
        )
        return cursor.fetchone()[0]


def count(name: str, seconds: int) -> int:
    row = ThrottleWindow.objects.filter(name=name, bucket=_bucket(seconds)).first()
    return row.hits if row else 0


def reset(name: str) -> None:
    ThrottleWindow.objects.filter(name=name).delete()
