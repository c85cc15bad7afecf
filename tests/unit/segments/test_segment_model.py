"""Segment filter model: JSON form, validation against the survey, the age rule."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from kairand.conversation.survey import default_survey
from kairand.segments.model import (
    AgeCondition,
    ChoiceCondition,
    ResidentFacts,
    SegmentError,
    SegmentFilter,
    matches,
    send_date,
    validate_against,
)

SURVEY = default_survey()


def test_json_round_trip_and_condition_kinds() -> None:
    """S1, N4: the JSON form parses choice and age conditions and round-trips unchanged."""
    raw = {
        "conditions": [
            {"question": "area", "any_of": ["honmachi", "ekimae"]},
            {"question": "birth_year", "age_from": 30, "age_to": 49},
        ]
    }
    seg = SegmentFilter.model_validate(raw)
    assert isinstance(seg.conditions[0], ChoiceCondition)
    assert isinstance(seg.conditions[1], AgeCondition)
    assert SegmentFilter.model_validate_json(seg.model_dump_json()) == seg
    validate_against(seg, SURVEY)


def test_everyone_must_be_explicit() -> None:
    """N4: an empty filter is refused; all_registered must be said, and not mixed."""
    with pytest.raises(ValidationError, match="all_registered"):
        SegmentFilter.model_validate({})
    with pytest.raises(ValidationError, match="cannot be combined"):
        SegmentFilter.model_validate(
            {"all_registered": True, "conditions": [{"question": "area", "any_of": ["asahi"]}]}
        )
    assert SegmentFilter.model_validate({"all_registered": True}).all_registered


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"question": "nope", "any_of": ["x"]}, "conditions[0].question", "unknown question"),
        ({"question": "area", "any_of": ["asahi", "mars"]}, "conditions[0].any_of[1]", "mars"),
        ({"question": "birth_year", "any_of": ["1990"]}, "conditions[0].any_of", "year"),
        ({"question": "area", "age_from": 3}, "conditions[0].age_from", "any_of"),
    ],
)
def test_unknown_codes_name_the_field(raw: dict, field: str, fragment: str) -> None:
    """N4: a filter that does not fit the survey gets an error naming the offending field."""
    seg = SegmentFilter.model_validate({"conditions": [raw]})
    with pytest.raises(SegmentError) as info:
        validate_against(seg, SURVEY)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert info.value.message_ja


def test_bad_age_ranges_refused() -> None:
    """N4: age ranges must be ordered, non-negative and give at least one end."""
    for bad in ({"age_from": 50, "age_to": 40}, {"age_from": -1}, {}):
        with pytest.raises(ValidationError):
            AgeCondition.model_validate({"question": "birth_year", **bad})


def test_age_is_years_since_birth_year_on_the_japan_send_date() -> None:
    """N4: age = send year (Japan time) - birth year, whatever the birthday; the send date
    is the Japan-time date (23:30 UTC on 31 Dec is already next year in Japan)."""
    seg = SegmentFilter(conditions=(AgeCondition(question="birth_year", age_from=40, age_to=40),))

    def person(year: int) -> ResidentFacts:
        return ResidentFacts(True, False, {}, {"birth_year": year})

    on = dt.date(2026, 1, 1)
    assert matches(seg, person(1986), on)
    assert not matches(seg, person(1985), on)
    assert not matches(seg, person(1987), on)
    assert AgeCondition(question="birth_year", age_from=40, age_to=40).birth_years(2026) == (
        1986,
        1986,
    )
    new_year_utc = dt.datetime(2025, 12, 31, 23, 30, tzinfo=dt.UTC)
    assert send_date(new_year_utc) == dt.date(2026, 1, 1)
    open_ended = AgeCondition(question="birth_year", age_from=65)
    assert open_ended.birth_years(2026)[1] == 1961


def test_stopped_and_unregistered_never_match() -> None:
    """N4: deliveries_stopped and unregistered residents are excluded from every filter."""
    everyone = SegmentFilter.everyone()
    on = dt.date(2026, 5, 1)
    assert matches(everyone, ResidentFacts(True, False, {}, {}), on)
    assert not matches(everyone, ResidentFacts(True, True, {}, {}), on)
    assert not matches(everyone, ResidentFacts(False, False, {}, {}), on)
