"""A delivery's audience: validate a segment filter against the survey and count it in the store.

The shell around the pure segment cores (kairand.segments), which know no store. Counts come
from an in-memory bitmap index (kairand.segments.bitmap), one per open store, kept equal to the
store by its change log; filters it cannot express are counted with SQL.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from dataclasses import dataclass, field

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.bitmap import AudienceIndex
from kairand.segments.model import SegmentFilter, send_date, validate_against
from kairand.store import mail as mail_store
from kairand.store import segments as segment_queries
from kairand.store.database import Connection, Store

SAVE_EVERY = 100_000
"""Change-log entries the index may have applied before it is saved and the log pruned."""


@dataclass
class SharedIndex:
    """A store's audience index and the lock its reader threads take to use it."""

    index: AudienceIndex = field(default_factory=AudienceIndex)
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved: int = 0


_INDEXES: weakref.WeakKeyDictionary[Store, SharedIndex] = weakref.WeakKeyDictionary()


def shared_index(store: Store) -> SharedIndex:
    shared = _INDEXES.get(store)
    if shared is None:
        shared = _INDEXES.setdefault(store, SharedIndex())
    return shared


async def warm_index(store: Store) -> float:
    """Build STORE's audience index now (at start-up) rather than at the first count;
    returns the seconds it took."""
    shared = shared_index(store)
    start = time.perf_counter()

    def build(conn: Connection) -> None:
        with shared.lock:
            segment_queries.sync_index(conn, shared.index)

    await store.read(build, long=True)
    await save_index(store)
    return time.perf_counter() - start


async def save_index(store: Store) -> None:
    """Bring STORE's index up to date, save it for the next start-up and prune the change log
    up to it (nothing is written when nothing changed since the last save)."""
    shared = shared_index(store)

    def save(conn: Connection) -> None:
        # Not while another thread holds the index for long (a count building it on demand):
        # the store's writer would wait with it. The next save catches up.
        if not shared.lock.acquire(timeout=segment_queries.LOCK_WAIT):
            return
        try:
            # In the write transaction the index catches up with everything committed.
            segment_queries.sync_index(conn, shared.index)
            if shared.index.applied == shared.saved:
                return
            bitmaps, applied = shared.index.dump(), shared.index.applied
        finally:
            shared.lock.release()
        segment_queries.save_index(conn, bitmaps, applied, prune=False)
        shared.saved = applied

    await store.write(save)
    # The log up to the saved position, a bounded chunk per transaction (other writes,
    # webhook acks first of all, go in between).
    while not await store.write(
        segment_queries.prune_changes, shared.saved, segment_queries.PRUNE_CHUNK
    ):
        pass


async def audience_count(
    store: Store,
    segment: SegmentFilter,
    survey: SurveyDefinition,
    today: dt.date | None = None,
) -> int:
    """How many residents SEGMENT selects on TODAY (Japan time; now when None).

    Raises kairand.segments.model.SegmentError when the filter does not fit SURVEY.
    """
    validate_against(segment, survey)
    on = today if today is not None else send_date()
    shared = shared_index(store)
    result = await store.read(
        segment_queries.count_segment, segment, on, survey, shared.index, shared.lock
    )
    if shared.index.applied - shared.saved >= SAVE_EVERY:
        await save_index(store)
    return result


@dataclass(frozen=True)
class ChannelCounts:
    """An audience by channel: LINE residents and mail subscribers."""

    line: int
    mail: int

    @property
    def total(self) -> int:
        return self.line + self.mail


async def channel_counts(
    store: Store,
    segment: SegmentFilter,
    survey: SurveyDefinition,
    today: dt.date | None = None,
) -> ChannelCounts:
    """How many LINE residents and mail subscribers SEGMENT selects on TODAY (Japan time).

    Raises kairand.segments.model.SegmentError when the filter does not fit SURVEY.
    """
    on = today if today is not None else send_date()
    line = await audience_count(store, segment, survey, on)
    mail = await store.read(mail_store.count_matching, segment, on, survey)
    return ChannelCounts(line, mail)
