"""Compiler plan choice: the facet plan only when it covers the filter, else the answers plan."""

from __future__ import annotations

import datetime as dt

from kairand.segments.compiler import FacetMap, compile_segment
from kairand.segments.model import SegmentFilter

ON = dt.date(2026, 6, 1)
SEG = SegmentFilter.model_validate(
    {
        "conditions": [
            {"question": "area", "any_of": ["asahi", "minato"]},
            {"question": "birth_year", "age_from": 30, "age_to": 39},
        ]
    }
)


def facets(area_slot: int = 0, asahi_bit: int = 0, mixed: bool = False) -> FacetMap:
    return FacetMap(
        {"area": ("c", area_slot, mixed), "birth_year": ("y", 0, False)},
        {("area", "asahi"): asahi_bit, ("area", "minato"): 1},
    )


def test_facet_plan_parameterised() -> None:
    """N4: the facet plan is one predicate over segment_facets with every value a parameter."""
    compiled = compile_segment(SEG, ON, None, facets())
    assert "segment_facets" in compiled.sql and "asahi" not in compiled.sql
    assert compiled.params == (1996 - 9, 1996, 0b11)


def test_uncovered_questions_fall_back_to_answers() -> None:
    """N4: a question beyond the facet slots, an option beyond bit 61, or a question seen
    with both kinds of answer rows use the answers-table plan instead."""
    for bad in (facets(area_slot=8), facets(asahi_bit=62), facets(mixed=True)):
        compiled = compile_segment(SEG, ON, None, bad)
        assert "segment_facets" not in compiled.sql and "answers" in compiled.sql


def test_never_answered_matches_nobody() -> None:
    """N4: a question or option nobody has ever answered selects nobody (no slot / no bit)."""
    empty = FacetMap({"birth_year": ("y", 0, False)}, {})
    assert " AND 0" in compile_segment(SEG, ON, None, empty).sql
    only_age = FacetMap({"area": ("c", 0, False), "birth_year": ("y", 0, False)}, {})
    assert " AND 0" in compile_segment(SEG, ON, None, only_age).sql
