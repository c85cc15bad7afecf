"""The in-memory audience index counts and selects exactly what the SQL does, after any sequence of
answer changes, stops, purges, log prunes and restarts."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairand.conversation.survey import default_survey
from kairand.delivery.audience import audience_count, save_index, shared_index
from kairand.segments.bitmap import AudienceIndex
from kairand.segments.compiler import compile_segment
from kairand.segments.model import AgeCondition, ChoiceCondition, SegmentFilter
from kairand.store import programs as program_queries
from kairand.store import residents as resident_queries
from kairand.store import segments as segment_queries
from kairand.store import synthetic
from kairand.store.database import Connection, Store

SURVEY = default_survey()


def _codes(question: str) -> list[str]:
    found = SURVEY.question(question)
    assert found is not None
    return [o.code for o in found.options]


AREAS = _codes("area")
TOPICS = _codes("topics")
GENDERS = _codes("gender")
ON = dt.date(2026, 6, 1)
PEOPLE = 24


def _choice(question: str, codes: list[str]) -> st.SearchStrategy[ChoiceCondition]:
    return st.lists(st.sampled_from(codes), min_size=1, max_size=3, unique=True).map(
        lambda picked: ChoiceCondition(question=question, any_of=tuple(picked))
    )


_age = st.tuples(st.integers(30, 44), st.integers(0, 8)).map(
    lambda t: AgeCondition(question="birth_year", age_from=t[0], age_to=t[0] + t[1])
)
PROGRAMS = ("kodomo", "bousai")

_city_segments = st.one_of(
    st.just(SegmentFilter.everyone()),
    st.lists(
        st.one_of(
            _age,
            _choice("area", AREAS[:3]),
            _choice("topics", TOPICS[:3]),
            _choice("gender", GENDERS),
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda c: c.question,
    ).map(lambda conds: SegmentFilter(conditions=tuple(conds))),
)
# The same filters for a program's registered members (a program nobody joined included).
segments = st.one_of(
    _city_segments,
    st.tuples(_city_segments, st.sampled_from([*PROGRAMS, "nobody"])).map(
        lambda t: t[0].model_copy(update={"program": t[1]})
    ),
)

operation = st.one_of(
    st.tuples(st.just("area"), st.integers(0, PEOPLE - 1), st.sampled_from([None, *AREAS[:3]])),
    st.tuples(
        st.just("topics"),
        st.integers(0, PEOPLE - 1),
        st.lists(st.sampled_from(TOPICS[:3]), unique=True, max_size=3),
    ),
    st.tuples(st.just("year"), st.integers(0, PEOPLE - 1), st.integers(1980, 1996)),
    st.tuples(st.just("stop"), st.integers(0, PEOPLE - 1), st.booleans()),
    st.tuples(st.just("purge"), st.integers(0, PEOPLE - 1), st.booleans()),
    st.tuples(st.just("follow"), st.integers(0, 1000), st.just(None)),
    # Program membership: join (consent only), complete the registration, leave.
    st.tuples(st.just("join"), st.integers(0, PEOPLE - 1), st.sampled_from(PROGRAMS)),
    st.tuples(st.just("register"), st.integers(0, PEOPLE - 1), st.sampled_from(PROGRAMS)),
    st.tuples(st.just("leave"), st.integers(0, PEOPLE - 1), st.sampled_from(PROGRAMS)),
    st.tuples(st.just("prune"), st.just(0), st.just(None)),
    st.tuples(st.just("save"), st.just(0), st.just(None)),
    st.tuples(st.just("restart"), st.just(0), st.just(None)),
)


@pytest.fixture(autouse=True)
def small_build_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build from every row reads the facets in several chunks, as at a million."""
    monkeypatch.setattr(segment_queries, "BUILD_CHUNK", 5)


def _uid(i: int) -> str:
    return f"U{i:032x}"


def _apply(conn: Connection, op: str, who: int, value: object) -> None:
    uid = _uid(who)
    exists = conn.execute("SELECT 1 FROM residents WHERE line_user_id = ?", (uid,)).fetchone()
    if op == "follow":
        new = _uid(10_000 + who)
        if conn.execute("SELECT 1 FROM residents WHERE line_user_id = ?", (new,)).fetchone():
            return
        synthetic.insert_residents(
            conn,
            [synthetic.SyntheticResident(new, True, False, {"area": [AREAS[who % 3]]})],
            1_700_000_000,
        )
        return
    if op in ("register", "leave"):
        # Act on an existing membership (the WHO-th one), so the change is never a no-op.
        memberships = [
            (program, member)
            for program, member, registered_at in conn.execute(
                "SELECT program, resident_id, registered_at FROM program_members"
                " ORDER BY program, resident_id"
            )
            if op == "leave" or registered_at is None
        ]
        if not memberships:
            return
        program, member = memberships[who % len(memberships)]
        if op == "register":
            program_queries.mark_member_registered(conn, program, member, 1_700_000_100)
        else:
            program_queries.remove_member(conn, program, member, ())
        return
    if not exists:
        return
    if op == "join":
        assert isinstance(value, str)
        program_queries.join(conn, value, exists_id(conn, uid), 1, 1_700_000_000)
    elif op == "area":
        synthetic.set_choices(conn, uid, "area", [value] if isinstance(value, str) else [])
    elif op == "topics":
        assert isinstance(value, list)
        synthetic.set_choices(conn, uid, "topics", value)
    elif op == "year":
        assert isinstance(value, int)
        rid = conn.execute("SELECT id FROM residents WHERE line_user_id = ?", (uid,)).fetchone()
        resident_queries.replace_answer(
            conn, int(rid[0]), "birth_year", ((f"{value:04d}", value),), 0
        )
    elif op == "stop":
        synthetic.set_stopped(conn, uid, bool(value))
    elif op == "purge":
        # Both ways a resident goes: the explicit purge, and the foreign-key cascade.
        if value:
            resident_queries.delete(conn, uid)
        else:
            synthetic.delete_resident(conn, uid)


def exists_id(conn: Connection, uid: str) -> int:
    return int(
        conn.execute("SELECT id FROM residents WHERE line_user_id = ?", (uid,)).fetchone()[0]
    )


def _sql_count(store: Store, segment: SegmentFilter) -> int:
    compiled = compile_segment(segment, ON, SURVEY)  # the answers plan: no facets involved
    return store.read_sync(segment_queries.count, compiled)


def _index_count(store: Store, index: AudienceIndex, segment: SegmentFilter) -> int:
    lock = threading.Lock()
    return store.read_sync(segment_queries.count_segment, segment, ON, SURVEY, index, lock)


def _sql_ids(store: Store, segment: SegmentFilter) -> list[int]:
    compiled = compile_segment(segment, ON, SURVEY)
    return store.read_sync(segment_queries.resident_ids, compiled)


def _index_ids(store: Store, index: AudienceIndex, segment: SegmentFilter) -> list[int]:
    """The ids a delivery's freeze takes from the index (kairand.store.segments.select_ids)."""
    ids = store.read_sync(segment_queries.select_ids, segment, ON, index, threading.Lock())
    assert ids is not None, "a built index that covers the filter must answer the freeze"
    return list(ids)


@pytest.mark.req("N4")
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(operation, min_size=3, max_size=25),
    checks=st.lists(segments, min_size=1, max_size=4),
    seed_topics=st.lists(st.sampled_from(TOPICS[:3]), unique=True, max_size=2),
)
def test_index_equals_sql_after_random_changes(store: Store, ops, checks, seed_topics) -> None:
    """N4: from a random population, through random answer edits, stops, both kinds of purge,
    new follows, program joins, registrations and leaves, log prunes (behind a second,
    lagging index), saves and restarts (a fresh index, from the saved bitmaps when they are
    usable), every count the bitmap index gives, for the city and per program, equals the
    SQL answers-plan count, and every set of ids a delivery's freeze takes from it is the
    SQL's, in the same order."""

    def reset(conn: Connection) -> None:
        synthetic.delete_all_residents(conn)
        for code in PROGRAMS:
            program_queries.put_program(conn, code, code, "{}", 1_700_000_000)
        synthetic.insert_residents(
            conn,
            [
                synthetic.SyntheticResident(
                    _uid(i),
                    registered=i % 7 != 3,
                    choices={"area": [AREAS[i % 3]], "topics": seed_topics[: i % 3]},
                    years={"birth_year": 1980 + i % 15},
                )
                for i in range(PEOPLE)
            ],
            1_700_000_000,
        )
        # Some start as registered members, some with consent only.
        for i in range(0, PEOPLE, 4):
            rid = exists_id(conn, _uid(i))
            program_queries.join(conn, PROGRAMS[i % 2], rid, 1, 1_700_000_000)
            if i % 8 == 0:
                program_queries.mark_member_registered(conn, PROGRAMS[i % 2], rid, 1_700_000_000)

    store.write_sync(reset)
    index = AudienceIndex()
    lagging = AudienceIndex()
    _index_count(store, lagging, SegmentFilter.everyone())
    for op, who, value in ops:
        if op == "restart":
            index = AudienceIndex()
        elif op == "prune":
            _index_count(store, index, SegmentFilter.everyone())
            store.write_sync(segment_queries.prune_changes, index.applied)
        elif op == "save":
            _index_count(store, index, SegmentFilter.everyone())
            store.write_sync(segment_queries.save_index, index.dump(), index.applied)
        else:
            store.write_sync(_apply, op, who, value)
        for segment in checks:
            assert _index_count(store, index, segment) == _sql_count(store, segment)
            assert _index_ids(store, index, segment) == _sql_ids(store, segment)
    for segment in checks:
        # The lagging index saw none of the changes; after a prune it must rebuild.
        assert _index_count(store, lagging, segment) == _sql_count(store, segment)


def _residents_by_area(conn: Connection, n: int, areas: int) -> None:
    """N residents, the I-th in area I % AREAS (of the survey's first ones)."""
    synthetic.insert_residents(
        conn,
        [
            synthetic.SyntheticResident(_uid(i), choices={"area": [AREAS[i % areas]]})
            for i in range(n)
        ],
        1_700_000_000,
    )


@pytest.mark.req("N4")
async def test_service_counts_from_the_index_saves_and_restarts(store: Store, monkeypatch) -> None:
    """The staff API's count path uses the store's shared index, saves it and prunes the
    change log once it has applied enough of it; a restarted daemon (a fresh index) starts
    from the saved bitmaps plus the later changes and still agrees with SQL."""
    monkeypatch.setattr("kairand.delivery.audience.SAVE_EVERY", 3)

    await store.write(_residents_by_area, 10, 3)
    segment = SegmentFilter(conditions=(ChoiceCondition(question="area", any_of=(AREAS[0],)),))
    assert await audience_count(store, segment, SURVEY, ON) == 4
    shared = shared_index(store)
    assert shared.index.applied > 0
    pruned, saved = await store.read(
        lambda conn: conn.execute("SELECT pruned, saved FROM segment_clock").fetchone()
    )
    assert pruned == saved == shared.index.applied
    await store.write(synthetic.set_choices, _uid(1), "area", [AREAS[0]])
    assert await audience_count(store, segment, SURVEY, ON) == 5
    await store.write(synthetic.set_choices, _uid(2), "area", [AREAS[0]])

    def no_full_load(*args: object) -> None:
        raise AssertionError("a restart with a saved index must not rebuild from every row")

    monkeypatch.setattr(AudienceIndex, "load", no_full_load)
    restarted = AudienceIndex()
    assert _index_count(store, restarted, segment) == 6 == _sql_count(store, segment)


@pytest.mark.req("N4")
async def test_a_save_forgets_the_log_a_chunk_per_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N4: a save after many changes (a bulk import) forgets the change log in transactions
    of at most PRUNE_CHUNK entries, so no single one holds the store's writer (and the
    webhook's acks) for long; in the end the log is empty up to the saved position."""
    monkeypatch.setattr(segment_queries, "PRUNE_CHUNK", 3)

    await store.write(_residents_by_area, 10, 1)
    deleted: list[int] = []
    prune = segment_queries.prune_changes

    def counting(conn: Connection, through: int, limit: int | None = None) -> bool:
        before = conn.execute("SELECT count(*) FROM segment_changes").fetchone()[0]
        done = prune(conn, through, limit)
        deleted.append(before - conn.execute("SELECT count(*) FROM segment_changes").fetchone()[0])
        return done

    monkeypatch.setattr(segment_queries, "prune_changes", counting)
    await save_index(store)
    left, pruned, saved = await store.read(
        lambda conn: (
            conn.execute("SELECT count(*) FROM segment_changes").fetchone()[0],
            *conn.execute("SELECT pruned, saved FROM segment_clock").fetchone(),
        )
    )
    assert left == 0 and pruned == saved == shared_index(store).index.applied
    assert sum(deleted) >= 10 and max(deleted) <= 3 and len(deleted) >= 4


@pytest.mark.req("N4")
async def test_a_count_does_not_wait_for_an_index_being_built(store: Store) -> None:
    """N4: while another thread holds the index (building it from every row takes seconds at
    a million residents), a count answers from the SQL after LOCK_WAIT, and correctly; so
    does a delivery's freeze (None: the caller selects with SQL), and a save is skipped
    rather than holding the store's writer."""

    await store.write(_residents_by_area, 9, 3)
    segment = SegmentFilter(conditions=(ChoiceCondition(question="area", any_of=(AREAS[0],)),))
    shared = shared_index(store)
    assert await audience_count(store, segment, SURVEY, ON) == 3  # built
    with shared.lock:  # as while the daemon's start-up build runs
        started = time.monotonic()
        assert await audience_count(store, segment, SURVEY, ON) == 3
        ids = await store.read(segment_queries.select_ids, segment, ON, shared.index, shared.lock)
        assert ids is None
        await save_index(store)  # skipped, not waited for: the store's writer stays free
        assert time.monotonic() - started < 1.0
