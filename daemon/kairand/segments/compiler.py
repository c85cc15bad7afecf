"""Compile a SegmentFilter to one parameterised SQL query (pure: text and parameters only;
it is executed by kairand.store.segments).

The query selects the column `id` (residents.id) of every matching resident, each once.
Values never enter the SQL text: question codes, option codes and years are all `?`
parameters; the text depends only on the filter's shape (number of conditions and options).

Two plans:

- Facets (used when the store's facet map covers every condition): one compact row per
  resident in `segment_facets` (kept up to date by triggers, see migration 0005): choice /
  multi answers as option bitmasks, year answers as the year. The whole filter is one
  predicate over that row; with an age condition it is a covering index range scan.
- Answers (the general fallback): the most selective condition drives
  (`residents.id IN (subquery)`: SQLite walks the answers index for that condition and looks
  residents up by rowid); every other condition is a correlated EXISTS probe on the answers
  primary key (resident_id, question, value), which is covering. Selectivity is estimated
  from the survey (share of options chosen, share of the year range): no statistics are
  read, so compiling stays pure and instant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.model import AgeCondition, ChoiceCondition, Condition, SegmentFilter

BASE = "r.registered_at IS NOT NULL AND r.deliveries_stopped = 0"
DEFAULT_PROGRAM = "city"
MEMBERS = (
    "SELECT m.resident_id FROM program_members m"
    " WHERE m.program = ? AND m.registered_at IS NOT NULL"
)
"""A non-default program's registered members: the one condition that replaces BASE (and the
facets' `eligible`) for its deliveries, so a per-program audience is the same plan restricted
by one IN (...) that an in-memory index can mirror as a member set."""


def _base(segment: SegmentFilter, column: str, eligible: str) -> tuple[str, list[object]]:
    if segment.program == DEFAULT_PROGRAM:
        return eligible, []
    return f"{column} IN ({MEMBERS})", [segment.program]


C_SLOTS = 8
Y_SLOTS = 4
MAX_BITS = 62


@dataclass(frozen=True)
class FacetMap:
    """Which facet column holds which question, and which bit which option (read from the
    store's segment_slots / segment_bits tables)."""

    slots: dict[str, tuple[str, int, bool]]
    """question -> (kind 'c' | 'y', slot, mixed)."""
    bits: dict[tuple[str, str], int]
    """(question, option code) -> bit."""


class _NotCovered(Exception):
    pass


def _facet_predicate(cond: Condition, facets: FacetMap, year: int) -> tuple[str, list[object]]:
    slot = facets.slots.get(cond.question)
    if slot is None:
        return "0", []  # nobody ever answered this question
    kind, index, mixed = slot
    if mixed:
        raise _NotCovered
    if isinstance(cond, ChoiceCondition):
        if kind != "c" or index >= C_SLOTS:
            raise _NotCovered
        mask = 0
        for code in cond.any_of:
            bit = facets.bits.get((cond.question, code))
            if bit is None:
                continue  # nobody ever chose it
            if bit >= MAX_BITS:
                raise _NotCovered
            mask |= 1 << bit
        if mask == 0:
            return "0", []
        return f"(f.c{index} & ?) != 0", [mask]
    assert isinstance(cond, AgeCondition)
    if kind != "y" or index >= Y_SLOTS:
        raise _NotCovered
    low, high = cond.birth_years(year)
    return f"f.y{index} BETWEEN ? AND ?", [low, high]


def _compile_facets(
    segment: SegmentFilter, on: dt.date, facets: FacetMap
) -> CompiledSegment | None:
    base, params = _base(segment, "f.resident_id", "f.eligible = 1")
    parts = [base]
    # Age conditions first: the planner ranges over the covering index on y0.
    ordered = sorted(segment.conditions, key=lambda c: not isinstance(c, AgeCondition))
    try:
        for cond in ordered:
            sql, values = _facet_predicate(cond, facets, on.year)
            parts.append(sql)
            params.extend(values)
    except _NotCovered:
        return None
    where = " AND ".join(parts)
    return CompiledSegment(
        f"SELECT f.resident_id AS id FROM segment_facets f WHERE {where}", tuple(params)
    )


@dataclass(frozen=True)
class CompiledSegment:
    sql: str
    params: tuple[object, ...]

    def count_sql(self) -> tuple[str, tuple[object, ...]]:
        return f"SELECT count(*) FROM ({self.sql})", self.params


def _selectivity(cond: Condition, survey: SurveyDefinition | None, year: int) -> float:
    question = survey.question(cond.question) if survey is not None else None
    if isinstance(cond, ChoiceCondition):
        total = len(question.options) if question is not None and question.options else 10
        share = len(cond.any_of) / total
        # A single-answer question splits the population; a multi one overlaps: weigh it up.
        return min(1.0, share * (2.0 if question is not None and question.kind == "multi" else 1))
    low, high = cond.birth_years(year)
    if question is not None:
        span = max(1, question.max_year - question.min_year + 1)
        low, high = max(low, question.min_year), min(high, question.max_year)
    else:
        span = 100
    return max(0.0, (high - low + 1) / span)


def _condition_sql(cond: Condition, alias: str, year: int) -> tuple[str, list[object]]:
    """Predicate over answers row ALIAS for COND (without the resident link)."""
    if isinstance(cond, ChoiceCondition):
        marks = ", ".join("?" for _ in cond.any_of)
        return (
            f"{alias}.question = ? AND {alias}.value IN ({marks})",
            [cond.question, *cond.any_of],
        )
    assert isinstance(cond, AgeCondition)
    low, high = cond.birth_years(year)
    return (
        f"{alias}.question = ? AND {alias}.number BETWEEN ? AND ?",
        [cond.question, low, high],
    )


def compile_segment(
    segment: SegmentFilter,
    on: dt.date,
    survey: SurveyDefinition | None = None,
    facets: FacetMap | None = None,
) -> CompiledSegment:
    """SQL selecting `id` of the residents SEGMENT selects on send date ON (Japan time).

    With FACETS (the store's current facet map) the facet plan is used when it covers every
    condition. SURVEY only guides the choice of driving condition in the answers plan.
    Results never depend on either.
    """
    base, params = _base(segment, "r.id", BASE)
    if segment.all_registered or not segment.conditions:
        return CompiledSegment(f"SELECT r.id AS id FROM residents r WHERE {base}", tuple(params))
    if facets is not None:
        compiled = _compile_facets(segment, on, facets)
        if compiled is not None:
            return compiled
    ordered = sorted(segment.conditions, key=lambda c: _selectivity(c, survey, on.year))
    driver, rest = ordered[0], ordered[1:]
    driver_sql, driver_params = _condition_sql(driver, "a0", on.year)
    parts = [f"r.id IN (SELECT a0.resident_id FROM answers a0 WHERE {driver_sql})", base]
    params = [*driver_params, *params]
    for i, cond in enumerate(rest, start=1):
        alias = f"a{i}"
        cond_sql, cond_params = _condition_sql(cond, alias, on.year)
        parts.append(
            f"EXISTS (SELECT 1 FROM answers {alias} WHERE {alias}.resident_id = r.id"
            f" AND {cond_sql})"
        )
        params.extend(cond_params)
    sql = "SELECT r.id AS id FROM residents r WHERE " + " AND ".join(parts)
    return CompiledSegment(sql, tuple(params))
