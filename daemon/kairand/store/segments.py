"""Running compiled segment queries (see kairand.segments.compiler for how they are built)."""

from __future__ import annotations

import datetime as dt

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.compiler import CompiledSegment, FacetMap, compile_segment
from kairand.segments.model import SegmentFilter
from kairand.store.database import Connection


def facet_map(conn: Connection) -> FacetMap:
    slots = {
        str(q): (str(kind), int(slot), bool(mixed))
        for q, kind, slot, mixed in conn.execute(
            "SELECT question, kind, slot, mixed FROM segment_slots"
        )
    }
    bits = {
        (str(q), str(v)): int(b)
        for q, v, b in conn.execute("SELECT question, value, bit FROM segment_bits")
    }
    return FacetMap(slots, bits)


def compile_for(
    conn: Connection, segment: SegmentFilter, on: dt.date, survey: SurveyDefinition | None
) -> CompiledSegment:
    """Compile SEGMENT with this store's current facet map (same transaction as its use)."""
    return compile_segment(segment, on, survey, facet_map(conn))


COUNT_CACHE_KIB = 16 * 1024
"""Page cache of a connection that answers live audience counts: keeps the facet index
(about 25 MB at 1M residents) mostly decrypted in memory between counts."""


def count_segment(
    conn: Connection, segment: SegmentFilter, on: dt.date, survey: SurveyDefinition | None
) -> int:
    conn.execute(f"PRAGMA cache_size = -{COUNT_CACHE_KIB}")
    return count(conn, compile_for(conn, segment, on, survey))


def count(conn: Connection, compiled: CompiledSegment) -> int:
    sql, params = compiled.count_sql()
    row = conn.execute(sql, params).fetchone()
    return int(row[0])


def resident_ids(conn: Connection, compiled: CompiledSegment) -> list[int]:
    """Matching residents.id values in ascending order (tests and small segments only)."""
    rows = conn.execute(f"SELECT id FROM ({compiled.sql}) ORDER BY id", compiled.params)
    return [int(r[0]) for r in rows]
