"""The slot calendar and contact validation are pure: table-driven and property tests."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from kairand.reservations import calendar
from kairand.reservations.contact import Invalid, normalise_kana, normalise_phone
from kairand.reservations.model import DayOverride, Period, Service, example_service

JST = calendar.JST
SERVICE = example_service()


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return dt.datetime(year, month, day, hour, minute, tzinfo=JST).timestamp()


@pytest.mark.req("W5")
@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (dt.date(2026, 10, 1), None),  # Thursday
        (dt.date(2026, 10, 3), "weekly"),  # Saturday
        (dt.date(2026, 10, 12), "holiday"),  # スポーツの日
        (dt.date(2026, 11, 3), "holiday"),  # 文化の日
        (dt.date(2026, 11, 23), "holiday"),  # 勤労感謝の日 (Monday)
        (dt.date(2026, 12, 28), None),  # last working day of the year
        (dt.date(2026, 12, 29), "year_end"),
        (dt.date(2026, 12, 31), "year_end"),
        (dt.date(2027, 1, 1), "year_end"),
        (dt.date(2027, 1, 4), None),
        (dt.date(2027, 1, 11), "holiday"),  # 成人の日
        (dt.date(2026, 9, 22), "holiday"),  # 国民の休日 (between two holidays in 2026)
    ],
)
def test_closed_days(day: dt.date, reason: str | None) -> None:
    assert calendar.closed_reason(SERVICE, day) == reason
    assert bool(calendar.slots_on(SERVICE, day)) == (reason is None)


def test_substitute_holiday_is_closed() -> None:
    # 2026-05-06 is a 振替休日 (Constitution Day week falls on a Sunday).
    assert calendar.holiday_name(dt.date(2026, 5, 6)) is not None
    assert calendar.closed_reason(SERVICE, dt.date(2026, 5, 6)) == "holiday"


@pytest.mark.req("W5")
def test_slots_follow_the_template_and_capacity() -> None:
    slots = calendar.slots_on(SERVICE, dt.date(2026, 10, 1))
    assert [s.key[-5:] for s in slots] == [
        "09:00", "09:30", "10:00", "10:30", "11:00", "11:30",
        "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30",
    ]  # fmt: skip
    assert {s.capacity for s in slots} == {3}
    assert slots[0].start.utcoffset() == dt.timedelta(hours=9)


@pytest.mark.req("W5")
def test_override_closure_and_period_capacity() -> None:
    service = SERVICE.model_copy(
        update={
            "overrides": (
                # Open a Saturday morning with 5 per slot; close a Thursday.
                DayOverride(
                    date=dt.date(2026, 10, 3),
                    periods=(Period(start="09:00", end="10:00", capacity=5),),
                ),
                DayOverride(date=dt.date(2026, 10, 8)),
            ),
            "closures": (dt.date(2026, 10, 9),),
        }
    )
    sat = calendar.slots_on(service, dt.date(2026, 10, 3))
    assert [(s.key, s.capacity) for s in sat] == [("2026-10-03T09:00", 5), ("2026-10-03T09:30", 5)]
    assert calendar.slots_on(service, dt.date(2026, 10, 8)) == []
    assert calendar.closed_reason(service, dt.date(2026, 10, 9)) == "closure"
    assert calendar.slots_on(service, dt.date(2026, 10, 9)) == []


def test_partial_slot_at_period_end_is_unused() -> None:
    service = SERVICE.model_copy(
        update={"slot_minutes": 40, "weekly": {"thu": (Period(start="09:00", end="10:30"),)}}
    )
    assert [s.key[-5:] for s in calendar.slots_on(service, dt.date(2026, 10, 1))] == [
        "09:00",
        "09:40",
    ]


@pytest.mark.parametrize(
    ("now", "key", "open_"),
    [
        (at(2026, 9, 1, 9, 0), "2026-10-01T09:00", True),  # 30 days ahead: open
        (at(2026, 8, 31, 23, 59), "2026-10-01T09:00", False),  # 31 days ahead: not yet
        (at(2026, 9, 30, 8, 59), "2026-10-01T09:00", True),  # 24 h 1 min before
        (at(2026, 9, 30, 9, 0), "2026-10-01T09:00", False),  # exactly 24 h before: closed
        (at(2026, 10, 2, 9, 0), "2026-10-01T09:00", False),  # in the past
    ],
)
def test_booking_window(now: float, key: str, open_: bool) -> None:
    slot = calendar.slot_for(SERVICE, key)
    assert slot is not None
    assert calendar.in_window(SERVICE, slot, now) == open_


def _strptime_key(key: object) -> dt.datetime | None:
    try:
        parsed = dt.datetime.strptime(key, calendar.KEY_FORMAT)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None
    return parsed.replace(tzinfo=calendar.JST)


@given(
    st.one_of(
        st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)).map(
            lambda d: d.strftime(calendar.KEY_FORMAT)
        ),
        st.text(alphabet="0123456789-T:W+Z ０１", max_size=20),
        st.sampled_from(["2026-W40-1T09:00", "2026-02-30T09:00", "2026-10-01T24:00", ""]),
    )
)
def test_parse_key_takes_exactly_the_canonical_keys(key: str) -> None:
    """parse_key accepts the canonical "YYYY-MM-DDTHH:MM" keys strptime accepts (and no ISO
    week dates or other shapes fromisoformat would)."""
    expected = _strptime_key(key)
    if expected is not None and expected.strftime(calendar.KEY_FORMAT) != key:
        expected = None  # strptime also takes unpadded fields; keys are never written so
    assert calendar.parse_key(key) == expected


def test_forged_slot_keys_are_not_slots() -> None:
    for key in ("2026-10-01T09:15", "2026-10-03T09:00", "2026-13-01T09:00", "x", ""):
        assert calendar.slot_for(SERVICE, key) is None


def test_reminder_times() -> None:
    slot = calendar.slot_for(SERVICE, "2026-10-05T09:00")
    assert slot is not None
    service = SERVICE.model_copy(update={"reminder_days_before": (3, 1)})
    times = calendar.reminder_times(service, slot.start)
    assert [(k, w.isoformat()) for k, w in times] == [
        ("d3", "2026-10-02T08:00:00+09:00"),
        ("d1", "2026-10-04T08:00:00+09:00"),
        ("day", "2026-10-05T08:00:00+09:00"),
    ]
    # A slot before the morning time gets no same-day reminder after it started.
    late = service.model_copy(update={"reminder_morning": "09:30"})
    assert [k for k, _ in calendar.reminder_times(late, slot.start)] == ["d3", "d1"]


def test_invalid_definitions_are_refused() -> None:
    with pytest.raises(ValidationError):
        Period(start="10:00", end="09:00")
    with pytest.raises(ValidationError):
        Period(start="25:00", end="26:00")
    with pytest.raises(ValidationError):
        SERVICE.model_copy(update={}).model_validate(
            {**SERVICE.model_dump(), "weekly": {"funday": []}}
        )
    with pytest.raises(ValidationError):
        Service.model_validate(
            {
                **SERVICE.model_dump(),
                "weekly": {
                    "mon": [{"start": "09:00", "end": "11:00"}, {"start": "10:00", "end": "12:00"}]
                },
            }
        )


@given(
    st.dates(dt.date(2024, 1, 1), dt.date(2030, 12, 31)),
    st.integers(5, 120),
    st.integers(0, 10),
)
def test_slots_are_inside_periods_and_never_overlap(day: dt.date, minutes: int, cap: int) -> None:
    service = SERVICE.model_copy(update={"slot_minutes": minutes, "capacity": cap})
    slots = calendar.slots_on(service, day)
    for a, b in itertools.pairwise(slots):
        assert a.end <= b.start
    for slot in slots:
        assert slot.start.date() == day
        assert calendar.slot_for(service, slot.key) == slot
        assert slot.capacity == cap
    if calendar.is_year_end(day) or calendar.holiday_name(day) or day.weekday() >= 5:
        assert slots == []


@given(st.floats(at(2025, 1, 1), at(2030, 1, 1)))
def test_bookable_slots_are_in_the_window(now: float) -> None:
    first, last = calendar.window_dates(SERVICE, now)
    for day in calendar.dates_in_window(SERVICE, now):
        for slot in calendar.bookable_slots(SERVICE, day, now):
            assert slot.start.timestamp() - now >= SERVICE.closes_hours_before * 3600
            assert first <= slot.start.date() <= last


@given(st.floats(at(2025, 1, 1), at(2030, 1, 1)), st.integers(-2, 70))
def test_bookable_slots_are_exactly_the_slots_in_the_window(now: float, offset: int) -> None:
    """bookable_slots computes the window bounds once per day: the same slots as in_window."""
    day = calendar.today(now) + dt.timedelta(days=offset)
    expected = [
        s
        for s in calendar.slots_on(SERVICE, day)
        if calendar.in_window(SERVICE, s, now) and s.capacity > 0
    ]
    assert calendar.bookable_slots(SERVICE, day, now) == expected


def _window_uncached(service: Service, now: float) -> tuple[calendar.Slot, ...]:
    return tuple(
        s
        for day in calendar.dates_in_window(service, now)
        for s in calendar.bookable_slots(service, day, now)
    )


@given(
    st.floats(at(2026, 9, 1), at(2027, 2, 1)),
    st.lists(
        st.one_of(
            st.floats(0, 3 * 86400),
            st.sampled_from(["first_closes", "just_before", "midnight", "first_date_moves"]),
        ),
        max_size=25,
    ),
    st.integers(0, 30),
)
def test_window_slots_follow_the_clock(start: float, steps: list[float | str], hours: int) -> None:
    """window_slots is memoised per service object until the window can change: as the clock
    moves on — by any amount, or exactly onto a slot's closing time or a midnight — it always
    equals the window computed afresh (it would fail if an entry outlived its validity)."""
    service = SERVICE.model_copy(update={"closes_hours_before": hours, "capacity": 2})
    now = start
    for step in steps:
        window = _window_uncached(service, now)
        assert calendar.window_slots(service, now) == window
        if step == "first_closes" and window:
            now = window[0].start.timestamp() - hours * 3600
        elif step == "just_before" and window:
            now = window[0].start.timestamp() - hours * 3600 - 0.001
        elif step == "midnight":
            now = calendar._next_midnight(now)
        elif step == "first_date_moves":
            now = calendar._next_midnight(now + hours * 3600) - hours * 3600
        elif isinstance(step, float):
            now += step
    assert calendar.window_slots(service, now) == _window_uncached(service, now)
    # The clock going back (a test, a corrected clock) is answered afresh too.
    assert calendar.window_slots(service, start) == _window_uncached(service, start)


def test_window_slots_follow_a_settings_edit() -> None:
    """A staff edit makes new service objects: the memo of the old one is never answered."""
    now = at(2026, 9, 20, 9)
    before = calendar.window_slots(SERVICE, now)
    assert dt.date(2026, 9, 24) in {s.start.date() for s in before}
    edited = SERVICE.model_copy(
        update={"capacity": 7, "overrides": (DayOverride(date=dt.date(2026, 9, 24)),)}
    )
    after = calendar.window_slots(edited, now)
    assert dt.date(2026, 9, 24) not in {s.start.date() for s in after}
    assert {s.capacity for s in after} == {7}
    assert calendar.window_slots(SERVICE, now) == before


# -- contact (W8) ---------------------------------------------------------------------------


@pytest.mark.req("W8")
@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("スイタ ハナコ", "スイタ ハナコ"),
        ("すいた　はなこ", "スイタ ハナコ"),  # hiragana, full-width space
        ("ｽｲﾀ ﾊﾅｺ", "スイタ ハナコ"),  # half-width katakana
        ("ｶﾞｯｺｳ ﾀﾛｳ", "ガッコウ タロウ"),  # half-width voiced marks combine
        ("  ヴィヴィアン  ", "ヴィヴィアン"),
        ("おおの　ゆうこ", "オオノ ユウコ"),
        ("ｺｰﾀﾞｲ", "コーダイ"),
    ],
)
def test_kana_is_normalised(typed: str, stored: str) -> None:
    assert normalise_kana(typed) == stored


@pytest.mark.req("W8")
@pytest.mark.parametrize(
    "typed", ["山田花子", "Yamada", "ヤマダ1", "", "   ", "ヤマダ😀", "ア" * 31]
)
def test_kana_rejects_everything_else(typed: str) -> None:
    assert isinstance(normalise_kana(typed), Invalid)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3096), min_size=1, max_size=30
    )
)
def test_any_hiragana_becomes_katakana(text: str) -> None:
    result = normalise_kana(text)
    assert isinstance(result, str)
    assert all(0x30A1 <= ord(ch) <= 0x30FA for ch in result)
    assert normalise_kana(result) == result  # idempotent


@pytest.mark.req("W8")
@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("09012345678", "090-1234-5678"),
        ("090-1234-5678", "090-1234-5678"),
        ("０９０－１２３４－５６７８", "090-1234-5678"),  # full-width digits and hyphens
        ("080 1234 5678", "080-1234-5678"),
        ("+81 90 1234 5678", "090-1234-5678"),
        ("0663841231", "06-6384-1231"),  # Suita City Hall
        ("06-6384-1231", "06-6384-1231"),
        ("0120-123-456", "0120-123-456"),
        ("05012345678", "050-1234-5678"),
    ],
)
def test_phone_is_normalised(typed: str, stored: str) -> None:
    assert normalise_phone(typed) == stored


@pytest.mark.req("W8")
@pytest.mark.parametrize(
    "typed", ["", "12345", "090-1234-567", "abc", "+1 212 555 0100", "0000000000", "090-1234-56789"]
)
def test_phone_rejects_everything_else(typed: str) -> None:
    assert isinstance(normalise_phone(typed), Invalid)


@given(st.text(max_size=40))
def test_contact_validation_never_raises(text: str) -> None:
    assert isinstance(normalise_kana(text), str | Invalid)
    assert isinstance(normalise_phone(text), str | Invalid)
