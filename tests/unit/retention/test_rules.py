"""Retention rules: calendar arithmetic, expiry planning and notice planning (pure)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kairand.retention.rules import (
    Annual,
    MonthsAfterInteraction,
    ResidentFacts,
    RetentionRule,
    RetentionRules,
    WhileFollowing,
    add_months,
    boundaries_between,
    describe_ja,
    next_boundary,
    next_wake,
    notice_time_for,
    plan_expiries,
    plan_notices,
)
from kairand.timeutil import JST


def t(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(dt.datetime(year, month, day, hour, minute, second, tzinfo=JST).timestamp())


ANNUAL = RetentionRules(rules=(RetentionRule(scope="registration", policy=Annual()),))


def resident(rid: int, registered: int | None, **kw: object) -> ResidentFacts:
    return ResidentFacts(
        resident_id=rid,
        followed_at=kw.pop("followed", registered or t(2026, 1, 1)),  # type: ignore[arg-type]
        registered_at=registered,
        last_interaction_at=kw.pop("last", registered or t(2026, 1, 1)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("after", "upto", "expected"),
    [
        (t(2027, 3, 31, 23, 58), t(2027, 3, 31, 23, 59), [t(2027, 3, 31, 23, 59)]),
        (t(2027, 3, 31, 23, 59), t(2027, 4, 1), []),  # already applied at the boundary
        (t(2027, 3, 1), t(2027, 3, 31, 23, 58, 59), []),  # one second early
        (t(2027, 3, 20), t(2027, 4, 20), [t(2027, 3, 31, 23, 59)]),  # a month of downtime
        (
            t(2026, 3, 20),
            t(2028, 4, 20),
            [t(2026, 3, 31, 23, 59), t(2027, 3, 31, 23, 59), t(2028, 3, 31, 23, 59)],
        ),
        (t(2027, 1, 1), t(2027, 12, 31), [t(2027, 3, 31, 23, 59)]),
    ],
)
def test_boundaries_between(after: int, upto: int, expected: list[int]) -> None:
    """K2: each annual boundary in (after, upto] is found once, in order, in Japan time."""
    assert boundaries_between(Annual(), after, upto) == expected


def test_configurable_boundary_and_notice() -> None:
    """K2: the boundary date and time are configurable; the notice precedes its boundary."""
    policy = Annual(month=9, day=30, time="18:00", notice_month=9, notice_day=15)
    assert next_boundary(policy, t(2027, 1, 1)) == t(2027, 9, 30, 18)
    assert notice_time_for(policy, t(2027, 9, 30, 18)) == t(2027, 9, 15, 10)
    # A notice date after the boundary in the calendar year belongs to the previous year.
    late = Annual(month=1, day=10, notice_month=12, notice_day=20)
    assert notice_time_for(late, t(2028, 1, 10, 23, 59)) == t(2027, 12, 20, 10)


@pytest.mark.parametrize(
    "bad", [{"month": 2, "day": 29}, {"month": 4, "day": 31}, {"time": "24:00"}, {"notice_day": 32}]
)
def test_impossible_dates_refused(bad: dict[str, object]) -> None:
    """K2: a boundary that does not exist every year is refused, not guessed."""
    with pytest.raises(ValidationError):
        Annual(**bad)  # type: ignore[arg-type]


def test_rule_scope_needs_question_and_targets_unique() -> None:
    """K2: a question rule names its question; one rule per target."""
    with pytest.raises(ValidationError):
        RetentionRule(scope="question", policy=WhileFollowing())
    with pytest.raises(ValidationError):
        RetentionRule(scope="registration", question="area", policy=WhileFollowing())
    rule = RetentionRule(scope="question", question="area", policy=Annual())
    with pytest.raises(ValidationError):
        RetentionRules(rules=(rule, rule))


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (t(2027, 1, 31, 12), 1, t(2027, 2, 28, 12)),
        (t(2028, 1, 31, 12), 1, t(2028, 2, 29, 12)),
        (t(2027, 11, 15), 3, t(2028, 2, 15)),
        (t(2027, 5, 31), -3, t(2027, 2, 28)),
        (t(2027, 3, 1), 12, t(2028, 3, 1)),
    ],
)
def test_add_months(start: int, months: int, expected: int) -> None:
    """K2: 'N months after last interaction' uses calendar months in Japan time."""
    assert add_months(start, months) == expected


def test_annual_registration_expiry_across_31_march() -> None:
    """K2: registrations made before 31 March 23:59 JST expire at it; later ones do not."""
    facts = [
        resident(1, t(2026, 6, 1)),
        resident(2, t(2027, 3, 31, 23, 58)),
        resident(3, t(2027, 4, 1, 0, 1)),
        resident(4, None, followed=t(2027, 2, 1)),  # followed, never finished the survey
    ]
    before = plan_expiries(ANNUAL, facts, t(2027, 3, 31, 3), t(2027, 3, 31, 23, 58, 59))
    assert before == []
    after = plan_expiries(ANNUAL, facts, t(2027, 3, 31, 3), t(2027, 4, 1, 3))
    assert [(e.resident_id, e.reason, e.boundary) for e in after] == [
        (1, "annual_expiry", t(2027, 3, 31, 23, 59)),
        (2, "annual_expiry", t(2027, 3, 31, 23, 59)),
        (4, "annual_expiry", t(2027, 3, 31, 23, 59)),
    ]
    # The next run, with the boundary already behind `since`, expires nothing again.
    assert plan_expiries(ANNUAL, facts, t(2027, 4, 1, 3), t(2027, 4, 2, 3)) == []


def test_question_rules_and_precedence() -> None:
    """K2: question-scoped rules delete only that question's answers; a whole-registration
    expiry wins over question expiries for the same resident."""
    rules = RetentionRules(
        rules=(
            RetentionRule(scope="question", question="area", policy=Annual()),
            RetentionRule(
                scope="question", question="gender", policy=MonthsAfterInteraction(months=6)
            ),
            RetentionRule(scope="registration", policy=MonthsAfterInteraction(months=24)),
        )
    )
    now = t(2027, 4, 1, 3)
    facts = [
        resident(
            1,
            t(2026, 6, 1),
            last=t(2027, 3, 1),
            first_answer_at={"area": t(2026, 6, 1), "gender": t(2026, 6, 1)},
        ),
        resident(
            2,
            t(2026, 6, 1),
            last=t(2026, 9, 1),
            first_answer_at={"area": t(2026, 6, 1), "gender": t(2026, 6, 1)},
        ),
        resident(3, t(2024, 6, 1), last=t(2025, 1, 1), first_answer_at={"area": t(2024, 6, 1)}),
        resident(4, t(2027, 4, 1, 1), first_answer_at={"area": t(2027, 4, 1, 1)}),
    ]
    plan = plan_expiries(rules, facts, t(2027, 3, 31, 3), now)
    got = [(e.resident_id, e.question, e.reason, e.before) for e in plan]
    assert got == [
        (1, "area", "annual_expiry", t(2027, 3, 31, 23, 59)),
        (2, "area", "annual_expiry", t(2027, 3, 31, 23, 59)),
        (2, "gender", "retention", None),
        (3, None, "retention", None),
    ]


def test_notices_window_once_and_never_after() -> None:
    """K2: one re-registration notice per resident and cycle, in the March window only, to
    registered residents who receive deliveries."""
    facts = [
        resident(1, t(2026, 6, 1)),
        resident(2, None, followed=t(2026, 7, 1)),
        resident(3, t(2026, 8, 1), deliveries_stopped=True),
        resident(4, t(2026, 9, 1)),
    ]
    assert plan_notices(ANNUAL, facts, t(2027, 2, 28, 23), set()) == []
    due = plan_notices(ANNUAL, facts, t(2027, 3, 1, 10), set())
    assert [n.resident_id for n in due] == [1, 4]
    assert "2027年3月31日（水）23時59分" in due[0].text and "4月1日" in due[0].text
    cycle = due[0].cycle
    again = plan_notices(ANNUAL, facts, t(2027, 3, 15), {(1, cycle), (4, cycle)})
    assert again == []
    assert plan_notices(ANNUAL, facts, t(2027, 4, 1, 0, 0), set()) == []
    silent = RetentionRules(
        rules=(RetentionRule(scope="registration", policy=Annual(notify=False)),)
    )
    assert plan_notices(silent, facts, t(2027, 3, 10), set()) == []


def test_next_wake() -> None:
    """K2: the worker wakes at the daily run time, the notice time and the boundary."""
    assert next_wake(ANNUAL, t(2027, 3, 31, 12)) == t(2027, 3, 31, 23, 59)
    assert next_wake(ANNUAL, t(2027, 2, 28, 12)) == t(2027, 3, 1, 3)
    assert next_wake(ANNUAL, t(2027, 3, 1, 4)) == t(2027, 3, 1, 10)
    assert next_wake(RetentionRules(), t(2027, 6, 1, 3)) == t(2027, 6, 2, 3)


def test_describe_ja() -> None:
    """S15: rules read in Japanese for the handling report."""
    text = "\n".join(describe_ja(ANNUAL))
    assert "毎年3月31日 23:59" in text and "再登録" in text
    assert "友だち登録中は保存" in describe_ja(RetentionRules())[0]


# -- property: splitting time into many runs expires exactly what one run would -------------

START = t(2025, 1, 1)
END = t(2030, 1, 1)
moments = st.integers(min_value=START, max_value=END)


@settings(max_examples=150, deadline=None)
@given(
    anchors=st.lists(moments, min_size=1, max_size=20),
    cuts=st.lists(moments, max_size=8),
    month=st.integers(1, 12),
)
def test_many_runs_equal_one_run(anchors: list[int], cuts: list[int], month: int) -> None:
    """K2: however the daemon's runs (and downtimes) split time, every resident is expired
    exactly once, by the first boundary after they registered."""
    rules = RetentionRules(
        rules=(RetentionRule(scope="registration", policy=Annual(month=month, day=28)),)
    )
    facts = {i: resident(i, anchor) for i, anchor in enumerate(anchors)}
    one = {e.resident_id: e.boundary for e in plan_expiries(rules, facts.values(), START, END)}
    alive = dict(facts)
    many: dict[int, int | None] = {}
    points = [START, *sorted(set(cuts)), END]
    for since, now in itertools.pairwise(points):
        # Only residents registered by then exist at a run.
        present = [
            f for f in alive.values() if f.registered_at is not None and f.registered_at <= now
        ]
        for expiry in plan_expiries(rules, present, since, now):
            assert expiry.resident_id not in many
            many[expiry.resident_id] = expiry.boundary
            del alive[expiry.resident_id]
    assert many == one


def test_question_scoped_annual_notice_only_to_those_with_answers() -> None:
    """K2: with an annual rule on one question, only residents who answered it are notified,
    once per cycle even when two rules share the boundary."""
    rules = RetentionRules(
        rules=(
            RetentionRule(scope="question", question="area", policy=Annual()),
            RetentionRule(scope="question", question="gender", policy=Annual()),
        )
    )
    facts = [
        resident(
            1, t(2026, 6, 1), first_answer_at={"area": t(2026, 6, 1), "gender": t(2026, 6, 1)}
        ),
        resident(2, t(2026, 6, 1), first_answer_at={"topics": t(2026, 6, 1)}),
        resident(3, t(2026, 6, 1), first_answer_at={"gender": t(2026, 6, 1)}),
    ]
    due = plan_notices(rules, facts, t(2027, 3, 5), set())
    assert [n.resident_id for n in due] == [1, 3]


@settings(max_examples=100, deadline=None)
@given(runs=st.lists(st.integers(t(2027, 1, 1), t(2028, 6, 1)), min_size=1, max_size=30))
def test_notices_once_per_cycle_and_only_inside_the_window(runs: list[int]) -> None:
    """K2: whatever the run times, each resident is notified at most once per cycle, and only
    between the notice time and the boundary."""
    facts = [resident(i, t(2026, 6, 1)) for i in range(3)]
    already: set[tuple[int, str]] = set()
    for now in sorted(runs):
        for notice in plan_notices(ANNUAL, facts, now, already):
            assert (notice.resident_id, notice.cycle) not in already
            assert notice_time_for(ANNUAL.rules[0].policy, notice.boundary) <= now  # type: ignore[arg-type]
            assert now < notice.boundary
            already.add((notice.resident_id, notice.cycle))
