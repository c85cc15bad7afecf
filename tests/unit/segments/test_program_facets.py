"""Per-program audiences are counted by the bitmap index (a bitmap of registered members per
program, kept by the change log's program_members triggers), and a store upgraded from an
index saved without program bitmaps rebuilds rather than trusting it."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from kairand.conversation.survey import default_survey
from kairand.segments.bitmap import AudienceIndex
from kairand.segments.compiler import compile_segment
from kairand.segments.model import ChoiceCondition, SegmentFilter
from kairand.store import programs as program_queries
from kairand.store import segments as segment_queries
from kairand.store import synthetic
from kairand.store.database import Connection, Store
from kairand.store.migrations import all_migrations, migrate

SURVEY = default_survey()
ON = dt.date(2026, 6, 1)
KODOMO = SegmentFilter(program="kodomo", all_registered=True)
KODOMO_ASAHI = SegmentFilter(
    program="kodomo", conditions=(ChoiceCondition(question="area", any_of=("asahi",)),)
)


def populate(conn: Connection) -> None:
    """Ten residents (areas alternating asahi/minato); 0-5 joined kodomo, 0-3 registered."""
    program_queries.put_program(conn, "kodomo", "こども", "{}", 1_700_000_000)
    synthetic.insert_residents(
        conn,
        [
            synthetic.SyntheticResident(
                f"U{i:032x}", choices={"area": ["asahi" if i % 2 == 0 else "minato"]}
            )
            for i in range(10)
        ],
        1_700_000_000,
    )
    ids = [r[0] for r in conn.execute("SELECT id FROM residents ORDER BY id")]
    for i, rid in enumerate(ids[:6]):
        program_queries.join(conn, "kodomo", rid, 1, 1_700_000_000)
        if i < 4:
            program_queries.mark_member_registered(conn, "kodomo", rid, 1_700_000_000)


def sql(store: Store, segment: SegmentFilter) -> int:
    return store.read_sync(segment_queries.count, compile_segment(segment, ON, SURVEY))


def indexed(store: Store, index: AudienceIndex, segment: SegmentFilter) -> int:
    lock = threading.Lock()
    return store.read_sync(segment_queries.count_segment, segment, ON, SURVEY, index, lock)


@pytest.mark.req("N4")
def test_program_audiences_come_from_the_index(store: Store) -> None:
    store.write_sync(populate)
    index = AudienceIndex()
    assert indexed(store, index, KODOMO) == sql(store, KODOMO) == 4
    assert indexed(store, index, KODOMO_ASAHI) == sql(store, KODOMO_ASAHI) == 2
    assert len(index.programs["kodomo"]) == 4
    # The index answers by itself (no SQL fallback).
    facets = store.read_sync(segment_queries.facet_map)
    assert index.count(KODOMO_ASAHI, ON, facets) == 2
    assert index.count(SegmentFilter(program="unknown", all_registered=True), ON, facets) == 0


@pytest.mark.req("N4")
def test_an_index_saved_before_program_facets_is_rebuilt(tmp_path: Path) -> None:
    store = Store(tmp_path / "upgrade.db", b"k" * 32)
    try:
        before = [m for m in all_migrations() if m.version < 19]
        migrate(store.raw_writer(), before)
        store.write_sync(populate)
        old = AudienceIndex()
        indexed(store, old, SegmentFilter.everyone())
        # What the code before m0019 saved: no program bitmaps.
        bitmaps = [(key, data) for key, data in old.dump() if not key.startswith("p:")]
        store.write_sync(segment_queries.save_index, bitmaps, old.applied)
        migrate(store.raw_writer())
        saved = store.read_sync(
            lambda conn: conn.execute("SELECT saved FROM segment_clock").fetchone()[0]
        )
        assert saved is None
        assert indexed(store, AudienceIndex(), KODOMO) == sql(store, KODOMO) == 4
    finally:
        store.close()
