"""The segment filter (pure): which registered residents a delivery goes to.

JSON form (the staff API and the TUI send exactly this):

    {"all_registered": true}                                   # everyone registered
    {"conditions": [                                           # AND of every condition
        {"question": "area", "any_of": ["honmachi", "ekimae"]},   # choice / multi: any of
        {"question": "birth_year", "age_from": 30, "age_to": 49}  # year / year_month: age range
    ]}

Rules that hold for every filter (enforced by the compiler, not by the JSON):
- only registered residents (`registered_at IS NOT NULL`) are ever selected;
- residents with `deliveries_stopped = 1` are never selected.
With `"program": "kodomo"` (any program other than the default `city`), the two rules above
are replaced by: only the program's registered members (program_members.registered_at set).

Age from a birth year (residents give only the year, or year and month; never the day).
Kairan uses **the age reached in the calendar year of the send date** (Japan time):

    age = send_year - birth_year

so a resident born in 1985 counts as 41 on every day of 2026, before and after their birthday.
A condition `age_from..age_to` therefore selects birth years
`send_year - age_to .. send_year - age_from` (both ends inclusive). This is the 「その年に迎える
年齢」 convention used for many municipal programmes (e.g. 節目健診 "those who turn 40 this year"),
and it is the only rule that is exact with year-only data: the alternative (age on the day)
would be unknowable for half of each birth year. For year_month answers the month is ignored
so that both kinds of question behave the same. `age_from` / `age_to` may each be omitted
(open-ended); at least one must be given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairand.conversation.survey import SurveyDefinition
from kairand.timeutil import JST

MAX_AGE = 150

Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
Age = Annotated[int, Field(ge=0, le=MAX_AGE)]


class ChoiceCondition(BaseModel):
    """A choice or multi question: the resident chose at least one of `any_of`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: Code
    any_of: Annotated[tuple[Code, ...], Field(min_length=1, max_length=100)]


class AgeCondition(BaseModel):
    """A year / year_month question: age (see module docstring) within age_from..age_to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    question: Code
    age_from: Age | None = None
    age_to: Age | None = None

    @model_validator(mode="after")
    def _range(self) -> AgeCondition:
        if self.age_from is None and self.age_to is None:
            raise ValueError("give age_from, age_to or both")
        if self.age_from is not None and self.age_to is not None and self.age_from > self.age_to:
            raise ValueError("age_from is greater than age_to")
        return self

    def birth_years(self, send_year: int) -> tuple[int, int]:
        """Inclusive birth-year range selected on a send date in SEND_YEAR."""
        low = send_year - (self.age_to if self.age_to is not None else MAX_AGE)
        high = send_year - (self.age_from if self.age_from is not None else 0)
        return low, high


Condition = ChoiceCondition | AgeCondition


class SegmentFilter(BaseModel):
    """Who receives a delivery. Either all registered residents (explicitly) or an AND of
    conditions; an empty filter is refused so nobody sends to everyone by accident."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    program: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,15}$")] = "city"
    """The program (配信サービス) the delivery belongs to: only its registered members are
    selected. `city` (the default program) is the resident's own registration."""
    all_registered: bool = False
    conditions: Annotated[tuple[Condition, ...], Field(max_length=20)] = ()

    @model_validator(mode="after")
    def _explicit(self) -> SegmentFilter:
        if self.all_registered and self.conditions:
            raise ValueError("all_registered cannot be combined with conditions")
        if not self.all_registered and not self.conditions:
            raise ValueError(
                "a segment needs at least one condition, or all_registered: true to send to "
                "every registered resident"
            )
        return self

    @classmethod
    def everyone(cls) -> SegmentFilter:
        return cls(all_registered=True)


class SegmentError(ValueError):
    """The filter does not fit the survey. `field` is the JSON path of the offending value
    (e.g. conditions[1].any_of[0]); `message_ja` is shown to staff."""

    def __init__(self, field: str, message: str, message_ja: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.message_ja = message_ja


def validate_against(segment: SegmentFilter, survey: SurveyDefinition) -> None:
    """Raise SegmentError naming the first field that does not fit SURVEY."""
    for i, cond in enumerate(segment.conditions):
        where = f"conditions[{i}]"
        question = survey.question(cond.question)
        if question is None:
            raise SegmentError(
                f"{where}.question",
                f"unknown question {cond.question!r}",
                f"条件{i + 1}の質問「{cond.question}」は現在のアンケートにありません。",
            )
        if isinstance(cond, ChoiceCondition):
            if question.kind not in ("choice", "multi"):
                raise SegmentError(
                    f"{where}.any_of",
                    f"question {cond.question!r} is a {question.kind} question: use age_from/"
                    "age_to",
                    f"「{question.title}」は年の質問です。年齢の範囲で指定してください。",
                )
            for j, code in enumerate(cond.any_of):
                if question.option(code) is None:
                    raise SegmentError(
                        f"{where}.any_of[{j}]",
                        f"unknown option {code!r} for question {cond.question!r}",
                        f"「{question.title}」に選択肢「{code}」はありません。",
                    )
            if len(set(cond.any_of)) != len(cond.any_of):
                raise SegmentError(
                    f"{where}.any_of",
                    "an option is listed twice",
                    f"「{question.title}」で同じ選択肢が重複しています。",
                )
        else:
            if question.kind not in ("year", "year_month"):
                raise SegmentError(
                    f"{where}.age_from",
                    f"question {cond.question!r} is a {question.kind} question: use any_of",
                    f"「{question.title}」は選択式の質問です。選択肢で指定してください。",
                )
    seen = [c.question for c in segment.conditions]
    for i, code in enumerate(seen):
        if code in seen[:i]:
            raise SegmentError(
                f"conditions[{i}].question",
                f"question {code!r} is used in two conditions",
                "同じ質問を2つの条件で使うことはできません。1つの条件にまとめてください。",
            )


def send_date(at: dt.datetime | None = None) -> dt.date:
    """The Japan-time calendar date of AT (now when None); ages are computed on it."""
    moment = at if at is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("send time must be timezone-aware")
    return moment.astimezone(JST).date()


# -- a straightforward evaluation, the reference the SQL compiler is tested against ------------


@dataclass(frozen=True)
class ResidentFacts:
    """What the filter may look at for one resident (plain data, no I/O)."""

    registered: bool
    deliveries_stopped: bool
    answers: Mapping[str, Sequence[str]]
    """question code -> chosen option codes (choice/multi)."""
    years: Mapping[str, int]
    """question code -> year (year / year_month questions)."""
    programs: frozenset[str] = frozenset()
    """Non-default programs the resident is a registered member of."""


def matches(segment: SegmentFilter, facts: ResidentFacts, on: dt.date) -> bool:
    if segment.program != "city":
        if segment.program not in facts.programs:
            return False
    elif not facts.registered or facts.deliveries_stopped:
        return False
    for cond in segment.conditions:
        if isinstance(cond, ChoiceCondition):
            chosen = facts.answers.get(cond.question, ())
            if not any(code in chosen for code in cond.any_of):
                return False
        else:
            year = facts.years.get(cond.question)
            if year is None:
                return False
            age = on.year - year
            if cond.age_from is not None and age < cond.age_from:
                return False
            if cond.age_to is not None and age > cond.age_to:
                return False
    return True


def evaluate(
    segment: SegmentFilter, residents: Iterable[tuple[Any, ResidentFacts]], on: dt.date
) -> set[Any]:
    """The keys of RESIDENTS (key, facts) that SEGMENT selects on date ON."""
    return {key for key, facts in residents if matches(segment, facts, on)}
