"""The queue's pure rules: states, calling order, estimates, labels, QR tokens and links."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kairand.queue import core
from kairand.timeutil import JST

pytestmark = pytest.mark.req("W2")


def test_state_machine_happy_path_and_refusals() -> None:
    assert core.transition("waiting", "call") == "called"
    assert core.transition("called", "serve") == "serving"
    assert core.transition("serving", "done") == "done"
    assert core.transition("called", "recall", recalls=1, recall_limit=2) == "called"
    with pytest.raises(core.QueueRuleError) as exc:
        core.transition("called", "recall", recalls=2, recall_limit=2)
    assert exc.value.code == "recall_limit"
    for final in core.FINAL_STATES:
        for action in ("call", "recall", "serve", "done", "absent", "cancel", "transfer", "close"):
            with pytest.raises(core.QueueRuleError):
                core.transition(final, action)
    with pytest.raises(core.QueueRuleError):
        core.transition("waiting", "done")  # never served
    assert core.transition("waiting", "close") == "cancelled"
    assert core.transition("called", "close") == "absent"


def test_labels() -> None:
    assert core.label("A", 1) == "A-001"
    assert core.label("B", 999) == "B-999"
    assert core.label("B", 1000) == "B-1000"
    with pytest.raises(ValueError):
        core.label("A", 0)


@given(
    st.lists(st.tuples(st.integers(1, 500), st.booleans()), unique_by=lambda t: t[0], max_size=40)
)
def test_priority_first_then_numbers(items: list[tuple[int, bool]]) -> None:
    waiting = [core.Waiting(id=n * 10, number=n, priority=p) for n, p in items]
    ordered = core.order(waiting)
    flags = [w.priority for w in ordered]
    assert flags == sorted(flags, reverse=True)  # every priority ticket before the others
    for group in (True, False):
        numbers = [w.number for w in ordered if w.priority is group]
        assert numbers == sorted(numbers)
    if ordered:
        assert core.pick_next(waiting) == ordered[0]
        assert core.position(waiting, ordered[-1].id) == len(ordered) - 1
    assert core.position(waiting, -1) is None


def test_booked_priority_window() -> None:
    slot = 1_000_000.0
    assert core.is_priority(slot, slot - 15 * 60, 15)
    assert core.is_priority(slot, slot + 15 * 60, 15)
    assert not core.is_priority(slot, slot + 16 * 60, 15)
    assert not core.is_priority(None, slot, 15)


def test_estimate_uses_observed_median_per_counter() -> None:
    assert core.estimate_minutes(0, [600], 1, 10) == 0
    assert core.estimate_minutes(3, [], 1, 5.0) == 15  # the default until observed
    assert core.estimate_minutes(3, [240, 300, 360], 1, 99) == 15  # median 5 min
    assert core.estimate_minutes(4, [300], 2, 99) == 10  # two counters share
    assert core.estimate_minutes(1, [30], 1, 99) == 5  # never below five minutes
    assert core.position_text(3, 15) == "あと3人・約15分"


def test_call_text_matches_seed() -> None:
    assert core.call_text("A-012", 3) == "A-012番の方、3番窓口へお越しください。"


def test_open_hours_and_day_end_in_japan_time() -> None:
    morning = dt.datetime(2026, 10, 1, 8, 29, tzinfo=JST).timestamp()
    assert not core.is_open(morning, "08:30", "17:15")
    assert core.is_open(morning + 60, "08:30", "17:15")
    evening = dt.datetime(2026, 10, 1, 17, 15, tzinfo=JST).timestamp()
    assert not core.is_open(evening, "08:30", "17:15")
    assert core.day_end(morning) == dt.datetime(2026, 10, 2, tzinfo=JST).timestamp()


def test_token_is_random_and_round_trips_through_the_link() -> None:
    tokens = {core.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    token = next(iter(tokens))
    assert len(token) >= 22  # 128 bits
    link = core.qr_link("@123abcde", token)
    parts = urlsplit(link)
    assert parts.scheme == "https" and parts.netloc == "line.me"
    assert parts.path == "/R/oaMessage/%40123abcde/"
    text = unquote(parts.query)
    assert core.parse_token(text) == token


@pytest.mark.parametrize(
    "text",
    [
        "",
        "番号札の連携",
        "番号札の連携 ",
        "番号札の連携 abc def",
        "番号札の連携 " + "a" * 65,
        "hello",
    ],
)
def test_parse_token_refuses_other_text(text: str) -> None:
    assert core.parse_token(text) is None


def test_kiosk_printer_settings_refuse_incomplete_config() -> None:
    from kairan_tui.kiosk_print import PrinterConfigError, PrinterSettings, open_printer

    assert open_printer(PrinterSettings.from_table({})) is None
    net = PrinterSettings.from_table({"printer": "network", "network_host": "192.0.2.10"})
    assert net.kind == "network" and net.network_port == 9100
    for bad in (
        {"printer": "bluetooth"},
        {"printer": "usb"},
        {"printer": "serial"},
        {"printer": "network"},
        {"printer": "usb", "usb_vendor": "x", "usb_product": 1},
    ):
        with pytest.raises(PrinterConfigError):
            PrinterSettings.from_table(bad)


def test_stats_suppress_small_cells_and_csv_has_bom() -> None:
    from kairand.queue import stats

    base = dt.datetime(2026, 10, 1, 9, 0, tzinfo=JST).timestamp()
    facts = [
        stats.TicketFacts("hoiku", "done", base + i, base + 600 + i, base + 600 + i, base + 900 + i)
        for i in range(12)
    ] + [stats.TicketFacts("hoiku", "absent", base + 3600, base + 3700, None, base + 3800)]
    rows = stats.aggregate(facts, 10)
    nine, ten = rows
    assert (nine.hour, nine.tickets, nine.served, nine.absent) == (9, 12, 12, 0)
    assert nine.wait_minutes_mean == 10.0 and nine.service_minutes_mean == 5.0
    assert ten.tickets is None and ten.absent is None and ten.wait_minutes_mean is None
    data = stats.to_csv(rows, 10, {"hoiku": "保育所等利用申込"})
    assert data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8-sig")
    assert "2026-10-01,9時,保育所等利用申込,12,12,0,0,10.0,5.0" in text
    assert "2026-10-01,10時,保育所等利用申込,<10,0,<10,0,," in text  # zero is no person
