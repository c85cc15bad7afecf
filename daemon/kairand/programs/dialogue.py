"""The program dialogue in LINE (pure): join a program with its own purpose notice and
consent, choose school districts in two steps (中学校区 → 小学校区), change them, or leave the
program without leaving the city information service (and vice versa).

Reached by the program's name as a text (a rich-menu tile sends it) or by its own postbacks,
`k=ACTION&g=PROGRAM&v=CONSENT_VERSION&x=ARG&p=PAGE`, which the city survey's postback decoder
does not accept, so the two dialogues never take each other's buttons. State per program is
kept in program_members.conversation: {"step": "jh" | "el" | "done" | "leave", "jh": code,
"sel": [district codes chosen so far], "page": n}.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kairand.conversation.events import Event
from kairand.programs.model import District, ProgramDefinition, junior_highs

MAX_QUICK_REPLY = 13
MAX_LABEL = 20
MAX_DATA = 300
ACTIONS = frozenset(
    {"menu", "yes", "no", "jh", "jhp", "tog", "elp", "more", "done", "edit", "leave", "lok", "lno"}
)
_VALUE = re.compile(r"^[a-z0-9_]{1,32}$")
Message = dict[str, Any]


@dataclass(frozen=True)
class MemberView:
    consent_version: int
    registered: bool
    conversation: Mapping[str, Any]
    districts: tuple[str, ...] = ()


# -- operations (applied by the inbox in the event's transaction) -----------------------------


@dataclass(frozen=True)
class Join:
    program: str
    consent_version: int


@dataclass(frozen=True)
class SetState:
    program: str
    state: Mapping[str, Any]


@dataclass(frozen=True)
class SetDistricts:
    program: str
    question: str
    codes: tuple[str, ...]


@dataclass(frozen=True)
class MarkRegistered:
    program: str


@dataclass(frozen=True)
class Leave:
    program: str


Operation = Join | SetState | SetDistricts | MarkRegistered | Leave


@dataclass(frozen=True)
class Outcome:
    replies: tuple[Message, ...] = ()
    ops: tuple[Operation, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ProgramPostback:
    action: str
    program: str
    version: int
    arg: str = ""
    page: int = 0


def encode(action: str, program: str, version: int, arg: str = "", page: int = 0) -> str:
    parts = [f"k={action}", f"g={program}", f"v={version}"]
    if arg:
        parts.append(f"x={arg}")
    if page:
        parts.append(f"p={page}")
    data = "&".join(parts)
    assert len(data) <= MAX_DATA
    return data


def decode(data: str) -> ProgramPostback | None:
    if not data.startswith("k=") or len(data) > MAX_DATA:
        return None
    fields: dict[str, str] = {}
    for part in data.split("&"):
        key, sep, value = part.partition("=")
        if not sep or key not in "kgvxp" or key in fields or not _VALUE.match(value):
            return None
        fields[key] = value
    if fields.get("k") not in ACTIONS or "g" not in fields or "v" not in fields:
        return None
    try:
        version, page = int(fields["v"]), int(fields.get("p", "0"))
    except ValueError:
        return None
    if not 0 <= page <= 100:
        return None
    return ProgramPostback(fields["k"], fields["g"], version, fields.get("x", ""), page)


def claims(event: Event, programs: Mapping[str, ProgramDefinition]) -> str | None:
    """The program code this event belongs to, or None (the city dialogue handles it)."""
    if event.kind == "postback":
        pb = decode(event.data)
        return pb.program if pb is not None and pb.program in programs else None
    if event.kind == "text":
        text = event.text.strip()
        for code, definition in programs.items():
            if text in (definition.name, f"{definition.name}の登録", f"{definition.name}の解除"):
                return code
    return None


# -- message builders ------------------------------------------------------------------------


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _item(label: str, data: str, display: str | None = None) -> Message:
    action: Message = {"type": "postback", "label": _label(label), "data": data}
    action["displayText"] = display or label
    return {"type": "action", "action": action}


def _text(text: str, items: Sequence[Message] = ()) -> Message:
    message: Message = {"type": "text", "text": text[:5000]}
    if items:
        assert len(items) <= MAX_QUICK_REPLY
        message["quickReply"] = {"items": list(items)}
    return message


def _paged(
    entries: list[Message], fixed: list[Message], page: int, make_nav: Any
) -> tuple[list[Message], int]:
    """One page of ENTRIES with FIXED appended and 前へ/次へ when needed."""
    if len(entries) + len(fixed) <= MAX_QUICK_REPLY:
        return entries + fixed, 0
    size = MAX_QUICK_REPLY - len(fixed) - 2
    pages = max(1, -(-len(entries) // size))
    page = min(max(page, 0), pages - 1)
    items = entries[page * size : (page + 1) * size]
    nav = []
    if page > 0:
        nav.append(make_nav("前へ", page - 1))
    if page < pages - 1:
        nav.append(make_nav("次へ", page + 1))
    return items + nav + fixed, page


class _Dialogue:
    def __init__(
        self,
        code: str,
        definition: ProgramDefinition,
        districts: Sequence[District],
        member: MemberView | None,
    ) -> None:
        self.code = code
        self.d = definition
        self.v = definition.consent_version
        self.districts = list(districts)
        self.by_code = {x.code: x for x in self.districts}
        self.member = member
        self.state = dict(member.conversation) if member else {}

    def pb(self, action: str, arg: str = "", page: int = 0) -> str:
        return encode(action, self.code, self.v, arg, page)

    # prompts

    def offer(self) -> Outcome:
        text = (
            f"【{self.d.name}】\n{self.d.description}\n\n■利用目的\n{self.d.purpose_notice}\n\n"
            "内容に同意して登録しますか。"
        )
        items = [
            _item("同意して登録する", self.pb("yes"), "同意して登録する"),
            _item("登録しない", self.pb("no"), "登録しない"),
        ]
        return Outcome((_text(text, items),))

    def menu(self) -> Outcome:
        assert self.member is not None
        names = [self.by_code[c].name for c in self.member.districts if c in self.by_code]
        chosen = "、".join(names) if names else "（なし）"
        text = (
            f"【{self.d.name}】\n現在の{self.d.district_title}：{chosen}\nご用件を選んでください。"
        )
        items = [
            _item(f"{self.d.district_title}を変更", self.pb("edit")),
            _item("登録をやめる", self.pb("leave")),
        ]
        return Outcome((_text(text, items),))

    def jh_prompt(self, page: int, lead: str = "") -> Message:
        entries = [_item(name, self.pb("jh", code)) for code, name in junior_highs(self.districts)]
        fixed = []
        if self.state.get("sel"):
            fixed.append(_item("選択を完了", self.pb("done")))
        items, page = _paged(
            entries, fixed, page, lambda label, p: _item(label, self.pb("jhp", page=p))
        )
        head = lead + "まず、中学校区を選んでください（そのあと小学校区を選びます）。"
        return _text(head + self._chosen_line(), items)

    def el_prompt(self, jh: str, page: int, lead: str = "") -> Message:
        sel = set(self.state.get("sel", []))
        entries = [
            _item(("✓" if d.code in sel else "") + d.name, self.pb("tog", d.code))
            for d in self.districts
            if d.junior_high == jh
        ]
        fixed = [_item("他の中学校区も選ぶ", self.pb("more"))]
        if sel:
            fixed.append(_item("選択を完了", self.pb("done")))
        items, page = _paged(
            entries, fixed, page, lambda label, p: _item(label, self.pb("elp", jh, p))
        )
        jh_name = next((n for c, n in junior_highs(self.districts) if c == jh), jh)
        head = lead + f"{jh_name}の小学校区から、受け取りたい学校区を選んでください（複数可）。"
        return _text(head + self._chosen_line(), items)

    def _chosen_line(self) -> str:
        sel = [self.by_code[c].name for c in self.state.get("sel", []) if c in self.by_code]
        return f"\n選択中：{'、'.join(sel)}" if sel else ""

    def _save(self, state: dict[str, Any], replies: Sequence[Message], *ops: Operation) -> Outcome:
        return Outcome(tuple(replies), (*ops, SetState(self.code, state)))

    # events

    def on_text(self, text: str) -> Outcome:
        if self.member is None:
            return self.offer()
        if text.endswith("の解除"):
            return self.on_action(ProgramPostback("leave", self.code, self.v))
        if self.member.registered:
            return self.menu()
        return self.resume()

    def resume(self) -> Outcome:
        step = self.state.get("step")
        if step == "el" and self.state.get("jh"):
            return Outcome((self.el_prompt(str(self.state["jh"]), 0),))
        return Outcome((self.jh_prompt(0),))

    def stale(self) -> Outcome:
        lead = _text("このボタンは現在お使いいただけません。最新のメッセージからお選びください。")
        if self.member is None:
            return Outcome((lead, *self.offer().replies))
        if self.member.registered and self.state.get("step") in (None, "done"):
            return Outcome((lead, *self.menu().replies))
        return Outcome((lead, *self.resume().replies))

    def on_action(self, pb: ProgramPostback) -> Outcome:
        if pb.version != self.v and pb.action not in ("leave", "lok", "lno", "menu"):
            # The purpose notice changed since the button was sent: show it again.
            return (
                self.offer()
                if self.member is None or self.member.consent_version < self.v
                else self.stale()
            )
        if pb.action == "menu":
            return self.on_text(self.d.name)
        if pb.action == "no":
            return Outcome(
                (
                    _text(
                        f"{self.d.name}の登録は行いませんでした。市政情報の受け取りは変わりません。"
                    ),
                )
            )
        if pb.action == "yes":
            if self.member is not None and self.member.consent_version >= self.v:
                return self.on_text(self.d.name)
            if not self.districts or self.d.district_question is None:
                return Outcome((_text("現在、登録を受け付けていません。"),))
            self.state = {"step": "jh", "sel": []}
            thanks = "ご同意ありがとうございます。"
            return self._save(self.state, [self.jh_prompt(0, thanks)], Join(self.code, self.v))
        if self.member is None:
            return self.offer()
        if pb.action == "leave":
            items = [
                _item("登録をやめる", self.pb("lok"), "登録をやめる"),
                _item("続ける", self.pb("lno"), "続ける"),
            ]
            text = (
                f"{self.d.name}の登録をやめると、選んだ学校区などの登録内容は削除されます。"
                "市政情報の受け取りは変わりません。よろしいですか。"
            )
            back = {k: v for k, v in self.state.items() if k != "back"}
            return self._save({"step": "leave", "back": back}, [_text(text, items)])
        if pb.action == "lok":
            if self.state.get("step") != "leave":
                return self.stale()
            done = f"{self.d.name}の登録をやめました。登録内容は削除しました。市政情報の受け取りは変わりません。"  # noqa: E501
            return Outcome((_text(done),), (Leave(self.code),))
        if pb.action == "lno":
            back = dict(self.state.get("back") or {"step": "done"})
            self.state = back
            if self.member.registered and back.get("step") in (None, "done"):
                return self._save(back, [_text("登録を続けます。"), *self.menu().replies])
            return self._save(back, [_text("登録を続けます。"), *self.resume().replies])
        if pb.action == "edit":
            self.state = {"step": "jh", "sel": list(self.member.districts)}
            return self._save(self.state, [self.jh_prompt(0)])
        step = self.state.get("step")
        if step not in ("jh", "el"):
            return self.stale()
        if pb.action == "jhp":
            return Outcome((self.jh_prompt(pb.page),))
        if pb.action == "more":
            self.state = {**self.state, "step": "jh"}
            return self._save(self.state, [self.jh_prompt(0)])
        if pb.action == "jh":
            if pb.arg not in {c for c, _ in junior_highs(self.districts)}:
                return self.stale()
            self.state = {**self.state, "step": "el", "jh": pb.arg}
            return self._save(self.state, [self.el_prompt(pb.arg, 0)])
        if pb.action == "elp":
            return Outcome((self.el_prompt(pb.arg, pb.page),))
        if pb.action == "tog":
            district = self.by_code.get(pb.arg)
            if district is None or step != "el":
                return self.stale()
            sel = list(self.state.get("sel", []))
            if pb.arg in sel:
                sel.remove(pb.arg)
            else:
                sel.append(pb.arg)
            self.state = {**self.state, "sel": sel, "jh": district.junior_high}
            return self._save(self.state, [self.el_prompt(district.junior_high, 0)])
        if pb.action == "done":
            sel = [c for c in self.state.get("sel", []) if c in self.by_code]
            if not sel:
                return Outcome((_text("学校区を1つ以上選んでください。"), self.jh_prompt(0)))
            assert self.d.district_question is not None
            names = "、".join(self.by_code[c].name for c in sel)
            text = f"{self.d.completion}\n登録した{self.d.district_title}：{names}"
            return self._save(
                {"step": "done"},
                [_text(text)],
                SetDistricts(self.code, self.d.district_question, tuple(sel)),
                MarkRegistered(self.code),
            )
        return self.stale()


def handle(
    event: Event,
    code: str,
    definition: ProgramDefinition,
    districts: Sequence[District],
    member: MemberView | None,
) -> Outcome:
    """What one event of program CODE does (the caller checked `claims`)."""
    dialogue = _Dialogue(code, definition, districts, member)
    if event.kind == "text":
        return dialogue.on_text(event.text.strip())
    pb = decode(event.data)
    if pb is None:
        return dialogue.stale()
    return dialogue.on_action(pb)
