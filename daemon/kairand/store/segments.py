"""Running compiled segment queries (see kairand.segments.compiler for how they are built)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pyroaring import BitMap

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.bitmap import AudienceIndex, FacetRow, NotCovered
from kairand.segments.compiler import C_SLOTS, Y_SLOTS, CompiledSegment, FacetMap, compile_segment
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
    conn: Connection,
    segment: SegmentFilter,
    on: dt.date,
    survey: SurveyDefinition | None,
    index: AudienceIndex | None = None,
    lock: threading.Lock | None = None,
) -> int:
    """How many residents SEGMENT selects on ON, in this transaction's snapshot: from INDEX
    (brought up to the snapshot under LOCK) when it covers the filter, else with SQL."""
    # The index unless another thread holds it longer than LOCK_WAIT (building it from every
    # row takes seconds at a million residents: the SQL answers sooner meanwhile).
    if index is not None and lock is not None and lock.acquire(timeout=LOCK_WAIT):
        try:
            if sync_index(conn, index):
                try:
                    return index.count(segment, on, facet_map(conn))
                except NotCovered:
                    pass
        finally:
            lock.release()
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


# -- the in-memory audience index (kairand.segments.bitmap) --------------------------------

FACET_COLUMNS = ", ".join(
    ["eligible"] + [f"c{k}" for k in range(C_SLOTS)] + [f"y{k}" for k in range(Y_SLOTS)]
)


SEPARATOR = "\x1f"
MEMBER_PROGRAMS = (
    "SELECT group_concat(m.program, char(31)) FROM program_members m"
    " WHERE m.resident_id = c.resident_id AND m.registered_at IS NOT NULL"
)
"""The programs a changed resident (c) is a registered member of, joined by SEPARATOR."""


def _facet_row(resident: int, values: Sequence[Any]) -> FacetRow:
    return (
        resident,
        int(values[0]),
        [int(v) for v in values[1 : 1 + C_SLOTS]],
        [None if v is None else int(v) for v in values[1 + C_SLOTS :]],
    )


def sync_index(conn: Connection, index: AudienceIndex) -> bool:
    """Bring INDEX to this transaction's snapshot: when it is new or the log was pruned past
    it, from the saved index (or every facet row when none is usable); then the residents
    changed since. False when INDEX is already ahead
    of this snapshot (another reader saw newer data): the caller counts with SQL then."""
    seq, pruned, saved = conn.execute(
        "SELECT seq, pruned, saved FROM segment_clock WHERE id = 1"
    ).fetchone()
    if index.applied > seq:
        return False
    if index.applied < 0 or index.applied < pruned:
        if saved is not None and saved >= pruned:
            index.restore(conn.execute("SELECT key, data FROM segment_index"), int(saved))
        else:
            build_index(conn, index, int(seq))
            return True
    if index.applied < seq:
        changed = conn.execute(
            f"SELECT c.resident_id, f.resident_id, {FACET_COLUMNS}, ({MEMBER_PROGRAMS})"
            " FROM segment_changes c"
            " LEFT JOIN segment_facets f ON f.resident_id = c.resident_id WHERE c.seq > ?",
            (index.applied,),
        )
        for row in changed:
            facets = None if row[1] is None else _facet_row(row[0], row[2:-1])
            index.update(row[0], facets, row[-1].split(SEPARATOR) if row[-1] else ())
        index.applied = int(seq)
    return True


FREEZE_CATCH_UP = 20_000
"""Change-log entries the index may be behind for a delivery's freeze to use it (catching up
costs ~10 µs an entry; beyond this the SQL is no slower)."""

LOCK_WAIT = 0.05
"""Seconds a freeze waits for the index (another thread counting or catching it up: about a
millisecond; building it from every row: seconds, and the SQL is sooner)."""


def select_ids(
    conn: Connection,
    segment: SegmentFilter,
    on: dt.date,
    index: AudienceIndex,
    lock: threading.Lock,
) -> BitMap | None:
    """The residents SEGMENT selects on ON in this transaction's snapshot (a compressed set in
    ascending order: 230 bytes for 1M consecutive ids, where an array takes 4-8 MB), from
    INDEX brought up to it under LOCK: about a millisecond at 100,000 where the SQL takes
    tens. None when the index is not built yet, far behind (FREEZE_CATCH_UP) or cannot
    express the filter: the caller selects with SQL then (never a build here, which takes
    seconds at a million residents, nor a wait for one: the index is being built while
    another thread holds LOCK for longer than LOCK_WAIT)."""
    if not lock.acquire(timeout=LOCK_WAIT):
        return None
    try:
        seq, pruned = conn.execute("SELECT seq, pruned FROM segment_clock WHERE id = 1").fetchone()
        if not 0 <= index.applied <= seq or index.applied < pruned:
            return None
        if seq - index.applied > FREEZE_CATCH_UP or not sync_index(conn, index):
            return None
        try:
            return index.select(segment, on, facet_map(conn))
        except NotCovered:
            return None
    finally:
        lock.release()


BUILD_CHUNK = 16_384
"""Facet rows read and grouped at a time when the index is built from every row."""


def build_index(conn: Connection, index: AudienceIndex, applied: int) -> None:
    """Fill INDEX from every facet row (reflecting log position APPLIED), reading only the
    columns of the slots in use, a chunk at a time."""
    used = conn.execute("SELECT kind, slot FROM segment_slots").fetchall()
    c_slots = sorted({int(k) for kind, k in used if kind == "c" and int(k) < C_SLOTS})
    y_slots = sorted({int(k) for kind, k in used if kind == "y" and int(k) < Y_SLOTS})
    columns = ["resident_id", "eligible"] + [f"c{k}" for k in c_slots] + [f"y{k}" for k in y_slots]
    facets = conn.execute(f"SELECT {', '.join(columns)} FROM segment_facets")
    members = conn.execute(
        "SELECT program, resident_id FROM program_members WHERE registered_at IS NOT NULL"
    )

    def chunks(cursor: Any) -> Iterator[list[Any]]:
        while chunk := cursor.fetchmany(BUILD_CHUNK):
            yield chunk

    index.load(chunks(facets), c_slots, y_slots, applied, chunks(members))


PRUNE_CHUNK = 20_000
"""Log entries forgotten in one write transaction (a first save after a bulk import or a
rebuild can leave a million: pruned at once they held the store's writer, and every
webhook ack behind it, for most of a second)."""


def prune_changes(conn: Connection, through: int, limit: int | None = None) -> bool:
    """Forget log entries up to THROUGH (an index has applied them); older indexes rebuild.
    LIMIT: at most that many of the oldest in this transaction. True when none is left
    up to THROUGH."""
    upto = through
    if limit is not None:
        row = conn.execute(
            "SELECT seq FROM segment_changes WHERE seq <= ? ORDER BY seq LIMIT 1 OFFSET ?",
            (through, limit - 1),
        ).fetchone()
        upto = through if row is None else min(through, int(row[0]))
    conn.execute("DELETE FROM segment_changes WHERE seq <= ?", (upto,))
    conn.execute("UPDATE segment_clock SET pruned = max(pruned, ?) WHERE id = 1", (upto,))
    return upto == through


def save_index(
    conn: Connection, bitmaps: list[tuple[str, bytes]], applied: int, prune: bool = True
) -> None:
    """Keep an index's bitmaps (reflecting log position APPLIED) for the next start-up, and
    (PRUNE) forget the log up to it: a restart then applies only the changes made after
    APPLIED. Without PRUNE the caller forgets it in chunks (`prune_changes` with a limit)."""
    conn.execute("DELETE FROM segment_index")
    conn.executemany("INSERT INTO segment_index (key, data) VALUES (?, ?)", bitmaps)
    conn.execute("UPDATE segment_clock SET saved = ? WHERE id = 1", (applied,))
    if prune:
        prune_changes(conn, applied)
