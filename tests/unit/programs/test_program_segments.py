"""The segment compiler per program: a program's delivery selects exactly its registered
members (facets plan and answers plan agree with the reference evaluation), and the default
program still selects exactly what it selected before programs existed."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.programs import service
from kairand.segments.compiler import compile_segment
from kairand.segments.model import ResidentFacts, SegmentFilter, evaluate
from kairand.store import programs as program_store
from kairand.store import segments as segment_queries
from kairand.store.database import Connection, Store
from tests.support.programs_support import KODOMO, Q, populate, setup_program

ON = dt.date(2026, 12, 1)


def facts(store: Store) -> list[tuple[str, ResidentFacts]]:
    def read(conn: Connection) -> list[tuple[str, ResidentFacts]]:
        rows = conn.execute(
            "SELECT id, line_user_id, registered_at IS NOT NULL, deliveries_stopped FROM residents"
        ).fetchall()
        out = []
        for rid, user, registered, stopped in rows:
            answers: dict[str, list[str]] = {}
            for q, v in conn.execute(
                "SELECT question, value FROM answers WHERE resident_id = ?", (rid,)
            ):
                answers.setdefault(q, []).append(v)
            member = program_store.member(conn, KODOMO, rid)
            programs = frozenset({KODOMO}) if member and member.registered_at else frozenset()
            out.append(
                (user, ResidentFacts(bool(registered), bool(stopped), answers, {}, programs))
            )
        return out

    return store.read_sync(read)


SEGMENTS = [
    {"program": KODOMO, "all_registered": True},
    {"program": KODOMO, "conditions": [{"question": Q, "any_of": ["asahi", "hikari"]}]},
    {
        "program": KODOMO,
        "conditions": [
            {"question": Q, "any_of": ["minato"]},
            {"question": "area", "any_of": ["asahi"]},
        ],
    },
    {"all_registered": True},
    {"conditions": [{"question": "area", "any_of": ["asahi"]}]},
]


@pytest.mark.req("K1")
@pytest.mark.parametrize("raw", SEGMENTS)
async def test_program_segments_match_reference(store: Store, raw: dict) -> None:
    await setup_program(store)
    populate(store, 400)
    segment = SegmentFilter.model_validate(raw)
    expected = evaluate(segment, facts(store), ON)
    ids = {
        v: k
        for k, v in store.read_sync(
            lambda c: dict(c.execute("SELECT line_user_id, id FROM residents").fetchall())
        ).items()
    }
    facet = store.read_sync(lambda c: segment_queries.compile_for(c, segment, ON, None))
    answers = compile_segment(segment, ON)
    for compiled in (facet, answers):
        got = {ids[i] for i in store.read_sync(segment_queries.resident_ids, compiled)}
        assert got == expected
    if segment.program == KODOMO:
        assert "program_members" in facet.sql and KODOMO in facet.params
        survey = store.read_sync(service.survey_for, KODOMO)
        assert survey is not None and survey.question(Q) is not None


def test_default_program_sql_unchanged() -> None:
    """Existing residents keep receiving exactly what they did: the default program's plan is
    the pre-program plan, with no membership condition."""
    everyone = compile_segment(SegmentFilter.everyone(), ON)
    assert "program_members" not in everyone.sql and everyone.params == ()
    assert SegmentFilter.model_validate({"all_registered": True}).program == "city"
