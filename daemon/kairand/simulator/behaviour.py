"""How a synthetic resident uses the conversation — a pure function, no I/O.

Given the messages a resident just received and the resident's traits, `react` decides what the
resident does next: tap one of the last message's quick-reply items, pick a date in a datetime
picker, type text, block the account, or nothing (done, or abandoned). Nothing here knows the
survey's postback formats: options are matched by their *label text* to the resident's traits
(area names, 男性/女性/回答しない, topic names, 同意, age and birth-year wording), so the resident
answers whatever survey staff design.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass, field, replace
from typing import Any

from kairand.simulator.population import TOPICS, Resident

DECLINE_WORDS = ("回答しない", "答えない", "答えたくない", "選択しない", "その他")
NEXT_PAGE_WORDS = ("次へ", "次のページ", "もっと見る", "ほかの")
PAGE_WORDS = (*NEXT_PAGE_WORDS, "前へ", "前のページ")
MAX_PAGE_TURNS = 4
CHANGE_WORDS = ("変更", "回答し直す", "やり直")
DESTRUCTIVE_WORDS = ("削除", "停止", "退会")
CHECK_MARKS = ("✓", "✔", "☑", "✅", "●", "■", "[x]", "[X]")
DONE_WORDS = (
    "完了",
    "決定",
    "以上",
    "終了",
    "登録する",
    "これで",
    "選び終",
    "確定",
    "おわり",
    "終わ",
)
NEGATIVE_WORDS = ("しない", "しません", "いいえ", "やめる", "拒否", "キャンセル")
SETTINGS_WORDS = ("設定を変更", "設定変更", "受信設定", "設定")


@dataclass(frozen=True, slots=True)
class Action:
    """What the resident does; the simulator turns it into a webhook event."""

    kind: str  # "postback" | "text" | "unfollow"
    data: str = ""
    params: dict[str, str] | None = None
    text: str = ""
    label: str = ""


@dataclass(frozen=True, slots=True)
class Memory:
    """What a resident remembers of the current conversation."""

    tapped: tuple[str, ...] = ()  # option names tapped in the current survey run
    pages_turned: int = 0  # consecutive 「次へ」 taps on the current question
    abandoned: bool = False
    finished: bool = False
    blocked: bool = False
    settings_changes: int = 0
    program_asked: bool = False  # a guardian has opened the child-safety registration


@dataclass(frozen=True, slots=True)
class Reaction:
    action: Action | None
    memory: Memory
    reason: str = ""  # for logs and tests: "answered", "abandoned", "finished", "blocked", ...


@dataclass(frozen=True, slots=True)
class Option:
    label: str
    action: dict[str, Any] = field(hash=False)

    @property
    def type(self) -> str:
        return str(self.action.get("type", ""))

    @property
    def selected(self) -> bool:
        """Shown as already chosen (a multi-select marks chosen options, e.g. 「✓ 子育て」)."""
        return self.label.lstrip().startswith(CHECK_MARKS)

    @property
    def name(self) -> str:
        """The label without a selection mark."""
        text = self.label.strip()
        for mark in CHECK_MARKS:
            text = text.removeprefix(mark)
        return text.strip()


def quick_reply_options(messages: list[dict[str, Any]]) -> list[Option]:
    """The tappable quick-reply items of the last message (LINE shows only those)."""
    if not messages:
        return []
    items = ((messages[-1].get("quickReply") or {}).get("items")) or []
    out = []
    for item in items:
        action = item.get("action") or {}
        if action.get("type") in ("postback", "message", "datetimepicker"):
            out.append(Option(str(action.get("label", "")), action))
    return out


def template_options(messages: list[dict[str, Any]]) -> list[Option]:
    """Buttons/confirm template actions of the last message (a survey may use them instead)."""
    if not messages:
        return []
    template = messages[-1].get("template") or {}
    return [
        Option(str(a.get("label", "")), a)
        for a in template.get("actions", []) or []
        if a.get("type") in ("postback", "message", "datetimepicker")
    ]


def _tap(option: Option, resident: Resident, rng: random.Random) -> Action:
    action = option.action
    if option.type == "message":
        return Action("text", text=str(action.get("text", option.label)), label=option.label)
    if option.type == "datetimepicker":
        return Action(
            "postback",
            data=str(action.get("data", "")),
            params=pick_datetime(action, resident, rng),
            label=option.label,
        )
    return Action("postback", data=str(action.get("data", "")), label=option.label)


def _parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def pick_datetime(action: dict[str, Any], resident: Resident, rng: random.Random) -> dict[str, str]:
    """A datetime-picker answer inside [min, max]: the birth date for a date picker."""
    mode = action.get("mode", "date")
    lo = _parse_date(action.get("min")) or dt.date(1900, 1, 1)
    hi = _parse_date(action.get("max")) or dt.date(2100, 12, 31)
    chosen = min(max(resident.birth_date, lo), hi)
    if mode == "date":
        return {"date": chosen.isoformat()}
    hour, minute = rng.randint(8, 20), rng.choice((0, 15, 30, 45))
    if mode == "time":
        return {"time": f"{hour:02d}:{minute:02d}"}
    return {"datetime": f"{chosen.isoformat()}T{hour:02d}:{minute:02d}"}


_YEAR_RANGE = re.compile(r"(\d{4})\s*[〜~～\-－]\s*(\d{4})")
_DECADE_YEAR = re.compile(r"(\d{4})年代")
_YEAR = re.compile(r"(\d{4})")
_AGE_RANGE = re.compile(r"(\d{1,2})\s*[〜~～\-－]\s*(\d{1,3})\s*歳")
_AGE_DECADE = re.compile(r"(\d{1,2})代")
_AGE_OVER = re.compile(r"(\d{1,3})\s*歳以上")
_AGE_UNDER = re.compile(r"(\d{1,3})\s*歳(未満|以下)")


def age_matches(label: str, resident: Resident) -> bool | None:
    """True/False if the label describes an age or birth-year band; None if it does not."""
    age, year = resident.age, resident.birth_date.year
    if m := _YEAR_RANGE.search(label):
        return int(m[1]) <= year <= int(m[2])
    if m := _DECADE_YEAR.search(label):
        return int(m[1]) <= year <= int(m[1]) + 9
    if m := _AGE_OVER.search(label):
        return age >= int(m[1])
    if m := _AGE_UNDER.search(label):
        return age < int(m[1]) or (m[2] == "以下" and age == int(m[1]))
    if m := _AGE_RANGE.search(label):
        return int(m[1]) <= age <= int(m[2])
    if m := _AGE_DECADE.search(label):
        return int(m[1]) <= age <= int(m[1]) + 9
    if (m := _YEAR.search(label)) and ("年" in label or label.strip().isdigit()):
        return int(m[1]) == year
    return None


def _contains_any(label: str, words: tuple[str, ...]) -> bool:
    return any(w in label for w in words)


def choose(
    options: list[Option], resident: Resident, memory: Memory, rng: random.Random
) -> Option | None:
    """The option this resident taps, matched by label to the resident's traits."""
    if not options:
        return None
    names = [o.name for o in options]
    pages = [o for o in options if _contains_any(o.name, NEXT_PAGE_WORDS)]
    can_page = bool(pages) and memory.pages_turned < MAX_PAGE_TURNS

    pickers = [o for o in options if o.type == "datetimepicker"]
    if pickers:
        return pickers[0]

    consent = [o for o in options if "同意" in o.name and not _contains_any(o.name, NEGATIVE_WORDS)]
    if consent:
        if resident.consents:
            return consent[0]
        refuse = [o for o in options if o not in consent]
        return refuse[0] if refuse else None

    if resident.school_district:
        # A guardian: the junior-high district first, then the elementary one, then done.
        mine = [o for o in options if o.name in (resident.school_district, resident.junior_high)]
        fresh = [o for o in mine if not o.selected and o.name not in memory.tapped]
        if fresh:
            return fresh[0]
        if any(o.selected and o.name == resident.school_district for o in options):
            done = [o for o in options if _contains_any(o.name, DONE_WORDS)]
            if done:
                return done[0]
        # A program's own question about who is registering (保護者 / 地域の方 / ...): read
        # by its labels, the first one the resident recognises as themselves.
        relation = [o for o in options if resident.relation and resident.relation in o.name]
        if relation:
            return relation[0]

    if any("男性" in n or "女性" in n for n in names):
        wanted = ("男性" if resident.gender == "male" else "女性") if resident.states_gender else ""
        for o in options:
            if wanted and wanted in o.name:
                return o
        for o in options:
            if _contains_any(o.name, DECLINE_WORDS):
                return o

    areas = [
        o for o in options if o.name in resident_area_names(resident) or resident.area in o.name
    ]
    if areas:
        return areas[0]

    topics_offered = [o for o in options if any(t in o.name for t in _all_topics(resident))]
    if topics_offered:
        # Options shown as selected (✓) or tapped before are not tapped again: a survey that
        # toggles would otherwise unselect them.
        fresh = [
            o
            for o in topics_offered
            if any(t in o.name for t in resident.interests)
            and not o.selected
            and o.name not in memory.tapped
        ]
        if fresh:
            return fresh[0]
        if can_page:
            return pages[0]
        done = [o for o in options if _contains_any(o.name, DONE_WORDS)]
        if done:
            return done[0]
        untapped = [o for o in topics_offered if o.name not in memory.tapped and not o.selected]
        return rng.choice(untapped) if untapped else rng.choice(options)

    ages = [(o, age_matches(o.name, resident)) for o in options]
    if any(m is not None for _, m in ages):
        for o, m in ages:
            if m:
                return o

    if can_page:  # nothing here fits the resident: the right option may be on the next page
        return pages[0]
    if memory.settings_changes:
        # Came through 「設定を変更」: pick something to change rather than something to end.
        change = [o for o in options if _contains_any(o.name, CHANGE_WORDS)]
        if change:
            return rng.choice(change)
    yes = [o for o in options if o.name in ("はい", "OK", "ＯＫ") or o.name.startswith("はい")]
    if yes and rng.random() < 0.85:
        return yes[0]
    decline = [o for o in options if _contains_any(o.name, DECLINE_WORDS)]
    if decline and rng.random() < 0.3:
        return decline[0]
    done = [o for o in options if _contains_any(o.name, DONE_WORDS) and o.name not in memory.tapped]
    if done and rng.random() < 0.5:
        return done[0]
    # Residents rarely delete their registration or stop deliveries by accident.
    calm = [
        o
        for o in options
        if not _contains_any(o.name, DESTRUCTIVE_WORDS) and not _contains_any(o.name, PAGE_WORDS)
    ]
    return rng.choice(calm or options)


def resident_area_names(resident: Resident) -> tuple[str, ...]:
    # "中央地区" also matches a label "中央".
    short = resident.area.removesuffix("地区").removesuffix("地域").removesuffix("町")
    return (resident.area, short) if short else (resident.area,)


def _all_topics(resident: Resident) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*TOPICS, *resident.interests)))


def react(
    resident: Resident,
    messages: list[dict[str, Any]],
    memory: Memory,
    rng: random.Random,
    *,
    kind: str = "reply",
    rich_menu_actions: list[dict[str, Any]] | None = None,
    program_keyword: str = "",
) -> Reaction:
    """What `resident` does after receiving `messages` by `kind` (reply/push/multicast)."""
    if memory.blocked:
        return Reaction(None, memory, "blocked")
    if kind in ("push", "multicast") and rng.random() < resident.block_rate:
        return Reaction(Action("unfollow"), replace(memory, blocked=True), "blocked")
    options = quick_reply_options(messages) or template_options(messages)
    if not options:
        # A message without choices ends the survey (thanks / delivery): maybe change settings.
        if kind == "reply" and memory.tapped and not memory.finished:
            memory = replace(memory, finished=True, tapped=())
            if resident.school_district and not memory.program_asked and program_keyword:
                return Reaction(
                    Action("text", text=program_keyword),
                    replace(memory, program_asked=True, finished=False),
                    "join_program",
                )
            settings = settings_action(rich_menu_actions or [])
            if settings is not None and rng.random() < resident.settings_change_rate:
                return Reaction(
                    settings,
                    replace(memory, finished=False, settings_changes=memory.settings_changes + 1),
                    "change_settings",
                )
            return Reaction(None, memory, "finished")
        return Reaction(None, memory, "read")
    if memory.abandoned:
        return Reaction(None, memory, "abandoned")
    if rng.random() < resident.abandon_rate:
        return Reaction(None, replace(memory, abandoned=True), "abandoned")
    option = choose(options, resident, memory, rng)
    if option is None:
        return Reaction(None, replace(memory, abandoned=True), "abandoned")
    action = _tap(option, resident, rng)
    paged = _contains_any(option.name, PAGE_WORDS)
    return Reaction(
        action,
        replace(
            memory,
            tapped=memory.tapped if paged else (*memory.tapped, option.name),
            pages_turned=memory.pages_turned + 1 if paged else 0,
            finished=False,
        ),
        "answered",
    )


def settings_action(rich_menu_actions: list[dict[str, Any]]) -> Action | None:
    """The rich-menu tap that reopens the survey: a postback or message area labelled 設定."""
    for word in SETTINGS_WORDS:
        for action in rich_menu_actions:
            label = str(action.get("label", "")) + str(action.get("displayText", ""))
            text = str(action.get("text", ""))
            if word in label or word in text:
                if action.get("type") == "postback":
                    return Action("postback", data=str(action.get("data", "")), label=label)
                if action.get("type") == "message":
                    return Action("text", text=text or label, label=label)
    return None


def free_text(resident: Resident, rng: random.Random) -> Action:
    """A resident typing instead of tapping (the bot must cope)."""
    samples = (
        "こんにちは",
        "よろしくお願いします",
        "ごみの日はいつですか",
        "ありがとうございます",
        "?",
    )
    return Action("text", text=rng.choice(samples))
