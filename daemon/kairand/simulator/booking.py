"""How a synthetic resident books a window appointment — a pure function, no I/O.

Like the survey behaviour, nothing here knows Kairan's postback formats: the resident reads the
message text and the quick-reply labels (dates 「10月1日(木) 残り12」, times 「9:30（残り2）」,
「予約する」, 「…を取消」) the way a person would, types a kana name and a phone number when asked,
and takes another time when told the slot filled up. Plans: book and keep it, book then cancel,
book then change; some residents mistype their name once; and some book, keep the booking and
never come (no-shows: `Plan.no_show`, what the desk marks 不来庁).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from typing import Any

from kairand.simulator.behaviour import Action

FAMILY = ("スイタ", "ヤマダ", "タナカ", "サトウ", "スズキ", "タカハシ", "イトウ", "ワタナベ")
GIVEN = ("ハナコ", "タロウ", "サクラ", "ケンタ", "ユウコ", "ミドリ", "ショウタ", "アオイ")
_DATE_LABEL = re.compile(r"^\d{1,2}月\d{1,2}日")
_TIME_LABEL = re.compile(r"^\d{1,2}:\d{2}（残り\d+）")
_NUMBER = re.compile(r"予約番号：(\d{6})")
MARKERS = (
    "予約日を選んで",
    "空いている時間",
    "満席になりました",
    "カタカナで入力",
    "お名前",
    "電話番号",
    "以下の内容で予約",
    "以下の内容に予約",
    "予約を受け付けました",
    "予約を変更しました",
    "すでにご予約",
    "予約できる空きがありません",
    "ほかに予約できる空きはありません",
    "現在のご予約",
    "取り消します。よろしいですか",
    "の予約を取り消しました",
    "受付期間外",
    "予約を受け付けていない日",
    "空きがありません",
    "窓口の来庁予約",
    "そのボタンは古い",
)


TAP_TIME_S = (1.0, 4.0)
"""Seconds a person takes to read a reply and tap one of its buttons (the simulator's default
think time)."""
TYPING_TIME_S = (3.0, 8.0)
"""Further seconds to type an answer on a phone: a 4-8 character katakana name with flick
input, or an 11-digit phone number. Mobile typing averages about 36 words a minute (≈ 3
characters a second) (Palin et al., "How do People Type on Mobile Devices?", MobileHCI 2019,
37,000 volunteers); kana input with conversion and checking the result is slower."""

NO_SHOW_RATE = 0.12
"""Share of residents who book, keep the booking and never come (no-shows at Japanese
municipal reservation windows are commonly reported around one in ten)."""


@dataclass(frozen=True)
class Plan:
    intent: str
    """keep | cancel | change"""
    kana: str
    phone: str
    typo: bool
    """Types the name in kanji first (and is asked again)."""
    patience: int = 10
    """How many 満席 answers the resident takes before giving up for today."""
    no_show: bool = False
    """Keeps the booking and never comes to the window (the desk marks 不来庁)."""


@dataclass(frozen=True)
class BookerMemory:
    state: str = "starting"
    """starting | booking | booked | cancelling | done | gave_up"""
    number: str = ""
    full_seen: int = 0
    typed_wrong: bool = False
    changed: bool = False


def plan_for(seed: int, intent: str | None = None) -> Plan:
    rng = random.Random(seed * 7919 + 17)
    chosen = intent or rng.choices(("keep", "cancel", "change"), (0.8, 0.1, 0.1))[0]
    kana = f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}"
    if rng.random() < 0.5:
        kana = _hiragana(kana)
    phone = f"0{rng.choice('789')}0-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    # Most people try a few other times; a persistent few keep trying until nothing is left.
    patience = rng.randint(3, 12) if rng.random() < 0.8 else 60
    typo = rng.random() < 0.05
    # Drawn last: the earlier draws (and every existing plan) are unchanged by it.
    no_show = rng.random() < NO_SHOW_RATE
    return Plan(chosen, kana, phone, typo=typo, patience=patience, no_show=no_show)


def _hiragana(katakana: str) -> str:
    """Some residents type their name in hiragana (Kairan converts it)."""
    return "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in katakana)


def is_booking_message(messages: list[dict[str, Any]]) -> bool:
    text = _text(messages)
    return any(marker in text for marker in MARKERS)


def _text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("text", "")) for m in messages if isinstance(m, dict))


def _items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        for item in (message.get("quickReply") or {}).get("items", []):
            action = item.get("action") if isinstance(item, dict) else None
            if isinstance(action, dict):
                out.append(action)
    return out


def _tap(action: dict[str, Any]) -> Action:
    return Action("postback", data=str(action.get("data", "")), label=str(action.get("label", "")))


def _pick(actions: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """Most people take one of the first few offered (the rush piles onto the earliest)."""
    return actions[min(len(actions) - 1, int(rng.expovariate(1.2)))]


def react(
    plan: Plan, memory: BookerMemory, messages: list[dict[str, Any]], rng: random.Random
) -> tuple[Action | None, BookerMemory, str]:
    """(what to do, new memory, outcome label for counters)."""
    text = _text(messages)
    actions = _items(messages)
    labelled = {str(a.get("label", "")): a for a in actions}
    if "予約を受け付けました" in text or "予約を変更しました" in text:
        match = _NUMBER.search(text)
        number = match.group(1) if match else ""
        changed = "予約を変更しました" in text
        memory = replace(memory, state="booked", number=number, changed=memory.changed or changed)
        if plan.intent == "cancel" or (plan.intent == "change" and not memory.changed):
            return Action("text", text="予約の確認"), memory, "booked"
        return None, replace(memory, state="done"), "changed" if changed else "booked"
    if "現在のご予約" in text and memory.number:
        wanted = "取消" if plan.intent == "cancel" else "変更"
        for label, action in labelled.items():
            if label.startswith(memory.number) and label.endswith(wanted):
                return _tap(action), replace(memory, state="cancelling"), "view"
        return None, replace(memory, state="done"), "view"
    if "取り消します。よろしいですか" in text:
        return _tap(labelled["取り消す"]), memory, "cancel_confirm"
    if "の予約を取り消しました" in text:
        return None, replace(memory, state="done", number=""), "cancelled"
    if "すでにご予約" in text:
        return None, replace(memory, state="done"), "limit"
    if "予約できる空きがありません" in text or "ほかに予約できる空きはありません" in text:
        return None, replace(memory, state="gave_up"), "gave_up"
    if "カタカナで入力" in text or ("お名前" in text and "入力してください" in text):
        if plan.typo and not memory.typed_wrong:
            return Action("text", text="吹田花子"), replace(memory, typed_wrong=True), "typo"
        return Action("text", text=plan.kana), memory, "kana"
    if "電話番号" in text and ("入力してください" in text or "市外局番" in text):
        return Action("text", text=plan.phone), memory, "phone"
    if "以下の内容" in text:
        for label in ("予約する", "変更する"):
            if label in labelled:
                return _tap(labelled[label]), memory, "confirm"
    times = [a for label, a in labelled.items() if _TIME_LABEL.match(label)]
    full = "満席になりました" in text
    if full and memory.full_seen >= plan.patience:
        return None, replace(memory, state="gave_up"), "gave_up"
    if times:
        memory = replace(memory, state="booking", full_seen=memory.full_seen + full)
        # After 満席, people spread over the times offered instead of all taking the first.
        choice = rng.choice(times) if full else _pick(times, rng)
        return _tap(choice), memory, "full" if full else "time"
    dates = [a for label, a in labelled.items() if _DATE_LABEL.match(label)]
    if dates:
        return _tap(_pick(dates, rng)), replace(memory, state="booking"), "date"
    services = [
        a for a in actions if a.get("type") == "postback" and "予約" not in str(a.get("label"))
    ]
    if "窓口の来庁予約" in text and services:
        return _tap(services[0]), replace(memory, state="booking"), "service"
    if "日付を選び直す" in labelled:
        return _tap(labelled["日付を選び直す"]), memory, "other_date"
    if "新しく予約する" in labelled and memory.state != "done":
        return _tap(labelled["新しく予約する"]), memory, "restart"
    return None, replace(memory, state="gave_up"), "stuck"
