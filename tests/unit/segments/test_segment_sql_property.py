"""The compiled SQL selects exactly what a straightforward Python evaluation selects."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kairand.conversation.survey import default_survey
from kairand.segments.compiler import compile_segment
from kairand.segments.model import (
    AgeCondition,
    ChoiceCondition,
    ResidentFacts,
    SegmentFilter,
    evaluate,
    validate_against,
)
from kairand.store import segments as segment_queries
from kairand.store import synthetic
from kairand.store.database import Store

SURVEY = default_survey()


def _codes(question_id: str) -> list[str]:
    question = SURVEY.question(question_id)
    assert question is not None, question_id
    return [o.code for o in question.options]


AREAS = _codes("area")
TOPICS = _codes("topics")
GENDERS = _codes("gender")

resident = st.fixed_dictionaries(
    {
        # Weighted towards matching residents so that most filters select someone.
        "registered": st.sampled_from([True, True, True, True, False]),
        "stopped": st.sampled_from([False, False, False, False, True]),
        "area": st.sampled_from([None, *AREAS[:3]]),
        "gender": st.sampled_from([None, *GENDERS]),
        "topics": st.lists(st.sampled_from(TOPICS[:3]), unique=True, max_size=3),
        "year": st.sampled_from([None, *range(1980, 1996)]),
    }
)


def choice(question: str, codes: list[str]) -> st.SearchStrategy[ChoiceCondition]:
    return st.lists(st.sampled_from(codes), min_size=1, max_size=3, unique=True).map(
        lambda picked: ChoiceCondition(question=question, any_of=tuple(picked))
    )


@st.composite
def age(draw: st.DrawFn) -> AgeCondition:
    low = draw(st.integers(30, 44))
    high = low + draw(st.integers(0, 8))
    mode = draw(st.sampled_from(["both", "both", "from", "to"]))
    return AgeCondition(
        question="birth_year",
        age_from=low if mode in ("both", "from") else None,
        age_to=high if mode in ("both", "to") else None,
    )


conditions = st.lists(
    st.one_of(
        age(),
        choice("area", AREAS[:3]),
        choice("topics", TOPICS[:3]),
        choice("gender", GENDERS),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda c: c.question,
).map(lambda conds: SegmentFilter(conditions=tuple(conds)))
# Mostly condition filters; "everyone" now and then.
segment = st.integers(0, 9).flatmap(
    lambda k: st.just(SegmentFilter.everyone()) if k == 0 else conditions
)


change = st.tuples(st.integers(0, 29), st.sampled_from([None, *AREAS[:3]]), st.booleans())


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    people=st.lists(resident, min_size=30, max_size=80),
    changes=st.lists(change, max_size=10),
    seg=segment,
    on=st.dates(dt.date(2024, 1, 1), dt.date(2027, 12, 31)),
)
def test_compiled_sql_equals_python_evaluation(store: Store, people, changes, seg, on) -> None:
    """N4: on random populations and filters (birth years and ages drawn close together so
    range edges are hit often), then random later edits (an answer replaced, deliveries
    stopped or restarted), the SQL compiled from a segment — both the facet plan and the
    answers plan — selects exactly the residents the reference Python evaluation selects
    (registered, not stopped, AND of any-of / age-on-send-date conditions)."""
    validate_against(seg, SURVEY)
    rows = []
    state = []
    for i, p in enumerate(people):
        choices = {"topics": p["topics"]} if p["topics"] else {}
        if p["area"]:
            choices["area"] = [p["area"]]
        if p["gender"]:
            choices["gender"] = [p["gender"]]
        years = {"birth_year": p["year"]} if p["year"] is not None else {}
        uid = f"U{i:032x}"
        rows.append(synthetic.SyntheticResident(uid, p["registered"], p["stopped"], choices, years))
        state.append([uid, p["registered"], p["stopped"], choices, years])

    def load(conn):
        synthetic.delete_all_residents(conn)
        synthetic.insert_residents(conn, rows, 1_700_000_000)
        for index, area, stop in changes:
            if index >= len(state):
                continue
            uid, _, _, choices, _ = state[index]
            synthetic.set_choices(conn, uid, "area", [area] if area else [])
            synthetic.set_stopped(conn, uid, stop)
            state[index][2] = stop
            if area:
                choices["area"] = [area]
            else:
                choices.pop("area", None)
        return synthetic.resident_ids_by_line_id(conn)

    ids = store.write_sync(load)
    facts = [(uid, ResidentFacts(reg, stop, ch, ys)) for uid, reg, stop, ch, ys in state]
    expected = {ids[uid] for uid in evaluate(seg, facts, on)}
    event(f"selected {'some' if expected else 'none'}")
    facets = store.read_sync(segment_queries.facet_map)
    for compiled in (compile_segment(seg, on, SURVEY), compile_segment(seg, on, SURVEY, facets)):
        got = set(store.read_sync(segment_queries.resident_ids, compiled))
        assert got == expected, compiled.sql
        assert store.read_sync(segment_queries.count, compiled) == len(expected)
        # Values never enter the SQL text.
        for cond in seg.conditions:
            if isinstance(cond, ChoiceCondition):
                assert all(code not in compiled.sql for code in cond.any_of)
    if seg.conditions:
        assert "segment_facets" in compile_segment(seg, on, SURVEY, facets).sql
