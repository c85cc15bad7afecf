"""The simulator's booking residents read labels like a person (pure behaviour)."""

from __future__ import annotations

import random

from kairand.simulator import booking


def _message(text: str, *labels: str) -> dict:
    items = [
        {"type": "action", "action": {"type": "postback", "label": label, "data": f"d:{label}"}}
        for label in labels
    ]
    return {"type": "text", "text": text, "quickReply": {"items": items}}


def test_a_booker_walks_the_dialogue_and_retries_when_full() -> None:
    plan = booking.plan_for(5, "keep")
    rng = random.Random(1)
    memory = booking.BookerMemory()
    steps = [
        (
            _message("保育所等利用申込の予約日を選んでください。", "10月1日(木) 残り3", "やめる"),
            "date",
        ),
        (_message("10月1日(木)の空いている時間です", "9:00（残り1）", "日付を選び直す"), "time"),
        (_message("予約の確認のため、お名前をカタカナで入力してください。"), "kana"),
        (_message("日中に連絡がつく電話番号を入力してください。"), "phone"),
        (_message("以下の内容で予約します。よろしいですか？", "予約する", "やめる"), "confirm"),
        (_message("申し訳ありません。ご希望の時間は満席になりました。", "9:30（残り2）"), "full"),
        (_message("以下の内容で予約します。よろしいですか？", "予約する"), "confirm"),
        (_message("予約を受け付けました。\n予約番号：000042\n手続き：保育所等利用申込"), "booked"),
    ]
    actions = []
    for messages, expected in steps:
        action, memory, outcome = booking.react(plan, memory, [messages], rng)
        assert outcome == expected
        actions.append(action)
    first, kana, phone = actions[0], actions[2], actions[3]
    assert first is not None and first.data == "d:10月1日(木) 残り3"
    assert kana is not None and kana.kind == "text" and phone is not None and phone.kind == "text"
    assert actions[-1] is None
    assert (memory.state, memory.number, memory.full_seen) == ("done", "000042", 1)


def test_a_canceller_asks_to_see_the_booking_and_cancels_it() -> None:
    plan = booking.plan_for(5, "cancel")
    rng = random.Random(1)
    memory = booking.BookerMemory()
    booked = _message("予約を受け付けました。\n予約番号：000007")
    action, memory, _ = booking.react(plan, memory, [booked], rng)
    assert action is not None and action.text == "予約の確認"
    listing = _message("現在のご予約です。", "000007を変更", "000007を取消")
    action, memory, _ = booking.react(plan, memory, [listing], rng)
    assert action is not None and action.data == "d:000007を取消"
    confirm = _message("予約番号000007を取り消します。よろしいですか？", "取り消す", "取り消さない")
    action, memory, _ = booking.react(plan, memory, [confirm], rng)
    assert action is not None and action.data == "d:取り消す"
    done = _message("予約番号000007の予約を取り消しました。")
    action, memory, outcome = booking.react(plan, memory, [done], rng)
    assert action is None and outcome == "cancelled" and memory.number == ""


def test_no_room_means_giving_up() -> None:
    plan = booking.plan_for(1)
    text = "申し訳ありません。保育所等利用申込は、現在予約できる空きがありません。"
    action, memory, outcome = booking.react(
        plan, booking.BookerMemory(), [_message(text)], random.Random(0)
    )
    assert (action, memory.state, outcome) == (None, "gave_up", "gave_up")
    assert booking.is_booking_message([_message(text)])
    assert not booking.is_booking_message([_message("友だち追加ありがとうございます。")])


def test_some_residents_book_and_never_come() -> None:
    """About one in eight plans is a no-show (keeps the booking, never comes); the draw comes
    last, so every other trait of a plan is what it was before no-shows existed."""
    plans = [booking.plan_for(seed) for seed in range(2000)]
    share = sum(p.no_show for p in plans) / len(plans)
    assert 0.09 < share < 0.15
    assert any(p.no_show and p.intent == "keep" for p in plans)
    assert booking.plan_for(7) == booking.plan_for(7)  # deterministic per resident


async def test_the_simulator_reports_who_will_not_come() -> None:
    """attendance(): each held booking and whether its holder comes; no-shows in the summary
    (counts only)."""
    from kairand.simulator import Simulator, SimulatorConfig

    async with Simulator(SimulatorConfig(seed=3, population=0, auto_react=False)) as sim:
        sim.bookers["U1"] = (
            booking.Plan("keep", "ア", "090", False, no_show=False),
            booking.BookerMemory(state="done", number="000001"),
        )
        sim.bookers["U2"] = (
            booking.Plan("keep", "イ", "090", False, no_show=True),
            booking.BookerMemory(state="done", number="000002"),
        )
        sim.bookers["U3"] = (
            booking.Plan("cancel", "ウ", "090", False, no_show=True),
            booking.BookerMemory(state="done", number=""),  # cancelled: holds nothing
        )
        assert sim.attendance() == {"000001": True, "000002": False}
        summary = sim.summary()
        assert (summary["bookings_held"], summary["booking_no_shows"]) == (2, 1)
