"""Running compiled segment queries (see kairand.segments.compiler for how they are built)."""

from __future__ import annotations

from kairand.segments.compiler import CompiledSegment
from kairand.store.database import Connection


def count(conn: Connection, compiled: CompiledSegment) -> int:
    sql, params = compiled.count_sql()
    row = conn.execute(sql, params).fetchone()
    return int(row[0])


def resident_ids(conn: Connection, compiled: CompiledSegment) -> list[int]:
    """Matching residents.id values in ascending order (tests and small segments only)."""
    rows = conn.execute(f"SELECT id FROM ({compiled.sql}) ORDER BY id", compiled.params)
    return [int(r[0]) for r in rows]
