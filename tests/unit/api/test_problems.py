"""Problem details: every kind has a stable type URI listed in the schema and a Japanese title;
validation problems name the field staff must fix, also inside unions (segment conditions)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kairand.api.problems import PREFIX, TITLES, from_validation
from kairand.api.schema import PROBLEM_TYPES, AudienceCountRequest


def test_every_problem_kind_is_in_the_schema() -> None:
    """The TUI branches on `type`: the server emits exactly the types the schema lists."""
    assert {PREFIX + kind for kind in TITLES} == set(PROBLEM_TYPES)
    for status, title in TITLES.values():
        assert 400 <= status <= 599 and title and not title.isascii()


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"question": "area", "age_from": 50, "age_to": 20}, "segment.conditions.0"),
        ({"question": "area", "any_of": []}, "segment.conditions.0.any_of"),
        ({"question": "area", "any_of": ["x"], "age_from": 3}, "segment.conditions.0.age_from"),
        ({"question": "Area!", "any_of": ["x"]}, "segment.conditions.0.question"),
    ],
)
def test_union_errors_name_the_meant_condition(condition: dict, field: str) -> None:
    """A condition that fits neither kind is reported against the kind it came closest to,
    with a path free of pydantic's member names."""
    with pytest.raises(ValidationError) as info:
        AudienceCountRequest.model_validate({"segment": {"conditions": [condition]}})
    problem = from_validation(info.value)
    assert problem.field == field
    assert all(
        "[" not in e["field"] and "Condition" not in e["field"] for e in problem.extra["errors"]
    )
    assert problem.body()["title"] == "入力内容に誤りがあります"
