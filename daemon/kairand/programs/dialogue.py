"""The program dialogue in LINE (pure): join a program with its own purpose notice and
consent, choose school districts in two steps (中学校区 → 小学校区), change them, or leave the
program without leaving the city information service (and vice versa).

Reached by the program's name as a text (a rich-menu tile sends it) or by its own postbacks,
`k=ACTION&g=PROGRAM&v=CONSENT_VERSION&q=QUESTION&x=ARG&p=PAGE`, which the city survey's postback
decoder does not accept, so the two dialogues never take each other's buttons. State per
program is kept in program_members.conversation: {"step": "jh" | "el" | "q" | "done" | "leave"
| "reconsent", "jh": code, "sel": [district codes chosen so far], "page": n, "q": question,
"qsel": [options toggled so far], "mode": "onboard" | "edit"}.

After the districts, the program's further questions (choice / multi / year) are asked one at a
time in the survey's style: quick replies, paged when there are many options, 回答しない when
the question allows it, a date picker of which only the year (and month) is kept. A registered
member can change each answer from the program's menu.

Nothing of the districts or answers goes into LINE's chat history (S10, as in the city
survey): their buttons are postbacks without display text (`postback_item`), and the replies
say how many districts are chosen or registered, never which (nor the 中学校区 tapped).

When staff raise the program's consent version, registered members who agreed only to the older
notice are suspended (kairand.store.programs.suspend_outdated_members: step "reconsent", no
deliveries); their next visit shows the new notice, and agreeing restores the registration with
its answers unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kairand.conversation import texts
from kairand.conversation.events import Event
from kairand.conversation.machine import postback_item
from kairand.conversation.survey import Question
from kairand.programs.model import District, ProgramDefinition, junior_highs

MAX_QUICK_REPLY = 13
MAX_LABEL = 20
MAX_DATA = 300
ACTIONS = frozenset(
    {"menu", "yes", "no", "jh", "jhp", "tog", "elp", "more", "done", "edit", "leave", "lok", "lno"}
    # further questions: choice answer, multi toggle / finish, page, year picker, change one
    | {"ans", "qtg", "qdn", "qpg", "yr", "qed"}
)
_KEYS = frozenset("kgvqxp")
_VALUE = re.compile(r"^[a-z0-9_]{1,32}$")
_DATE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
Message = dict[str, Any]


@dataclass(frozen=True)
class MemberView:
    consent_version: int
    registered: bool
    conversation: Mapping[str, Any]
    districts: tuple[str, ...] = ()
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Stored values of the program's further questions (question code -> values)."""


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
class SetAnswer:
    program: str
    question: str
    values: tuple[tuple[str, int | None], ...]
    """(value, numeric value) pairs as in the answers table; empty: 回答しない."""


@dataclass(frozen=True)
class MarkRegistered:
    program: str


@dataclass(frozen=True)
class Leave:
    program: str


Operation = Join | SetState | SetDistricts | SetAnswer | MarkRegistered | Leave


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
    question: str = ""


def encode(
    action: str, program: str, version: int, arg: str = "", page: int = 0, question: str = ""
) -> str:
    parts = [f"k={action}", f"g={program}", f"v={version}"]
    if question:
        parts.append(f"q={question}")
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
        if not sep or key not in _KEYS or key in fields or not _VALUE.match(value):
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
    return ProgramPostback(
        fields["k"], fields["g"], version, fields.get("x", ""), page, fields.get("q", "")
    )


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


def _echoed(label: str, data: str) -> Message:
    """A button LINE posts into the chat as the resident's message (its label): only for steps
    that reveal nothing (consent, navigation, the menu). A district or an answer is a
    `postback_item` without display text, and replies count instead of naming (S10)."""
    return postback_item(label, data, label)


def _count_line(title: str, n: int) -> str:
    return f"登録した{title}は{n}件です。"


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
        event: Event,
    ) -> None:
        self.event = event
        self.code = code
        self.d = definition
        self.v = definition.consent_version
        self.districts = list(districts)
        self.by_code = {x.code: x for x in self.districts}
        self.member = member
        self.state = dict(member.conversation) if member else {}

    def pb(self, action: str, arg: str = "", page: int = 0, question: str = "") -> str:
        return encode(action, self.code, self.v, arg, page, question)

    # prompts

    def suspended(self) -> bool:
        """Registered under an older purpose notice, and waiting to agree to the new one."""
        return (
            self.member is not None
            and self.member.consent_version < self.v
            and self.state.get("step") == "reconsent"
        )

    def offer(self) -> Outcome:
        if self.suspended():
            text = (
                f"【{self.d.name}】\n利用目的の内容を改めました。改めて同意いただくまで、"
                f"{self.d.name}の配信を停止しています。\n\n■利用目的\n{self.d.purpose_notice}\n\n"
                "内容に同意して、受け取りを再開しますか。登録内容（学校区など）はそのまま引き継ぎます。"
            )
            items = [
                _echoed("同意して再開する", self.pb("yes")),
                _echoed("登録をやめる", self.pb("leave")),
            ]
            return Outcome((_text(text, items),))
        text = (
            f"【{self.d.name}】\n{self.d.description}\n\n■利用目的\n{self.d.purpose_notice}\n\n"
            "内容に同意して登録しますか。"
        )
        items = [
            _echoed("同意して登録する", self.pb("yes")),
            _echoed("登録しない", self.pb("no")),
        ]
        return Outcome((_text(text, items),))

    def menu(self) -> Outcome:
        assert self.member is not None
        # S10: the chat history keeps this text: how many districts, never which.
        title = self.d.district_title
        count = sum(1 for c in self.member.districts if c in self.by_code)
        chosen = (
            f"現在、{title}を{count}件登録しています。"
            if count
            else f"現在、登録している{title}はありません。"
        )
        text = f"【{self.d.name}】\n{chosen}\nご用件を選んでください。"
        items = [_echoed(f"{title}を変更", self.pb("edit"))]
        for question in self.d.questions[: MAX_QUICK_REPLY - 2]:
            label = f"{question.title}を変更"
            items.append(
                postback_item(label, self.pb("qed", question=question.code), _label(label))
            )
        items.append(_echoed("登録をやめる", self.pb("leave")))
        return Outcome((_text(text, items),))

    def jh_prompt(self, page: int, lead: str = "") -> Message:
        # S10: a district button posts nothing into the chat (no display text).
        entries = [
            postback_item(name, self.pb("jh", code)) for code, name in junior_highs(self.districts)
        ]
        fixed = []
        if self.state.get("sel"):
            fixed.append(_echoed("選択を完了", self.pb("done")))
        items, page = _paged(
            entries, fixed, page, lambda label, p: _echoed(label, self.pb("jhp", page=p))
        )
        head = lead + "まず、中学校区を選んでください（そのあと小学校区を選びます）。"
        return _text(head + self._chosen_line(), items)

    def el_prompt(self, jh: str, page: int, lead: str = "") -> Message:
        sel = set(self.state.get("sel", []))
        entries = [
            postback_item(("✓" if d.code in sel else "") + d.name, self.pb("tog", d.code))
            for d in self.districts
            if d.junior_high == jh
        ]
        fixed = [_echoed("他の中学校区も選ぶ", self.pb("more"))]
        if sel:
            fixed.append(_echoed("選択を完了", self.pb("done")))
        items, page = _paged(
            entries, fixed, page, lambda label, p: _echoed(label, self.pb("elp", jh, p))
        )
        # The chosen 中学校区 is not named either: the buttons below show its 小学校区.
        head = lead + "選んだ中学校区の小学校区から、受け取りたい学校区を選んでください（複数可）。"
        return _text(head + self._chosen_line(), items)

    # further questions

    def question(self, code: Any) -> Question | None:
        return next((q for q in self.d.questions if q.code == code), None)

    def ask_state(self, question: Question, mode: str) -> dict[str, Any]:
        current = self.member.answers.get(question.code, ()) if self.member else ()
        sel = list(current) if question.kind == "multi" and mode == "edit" else []
        return {"step": "q", "q": question.code, "qsel": sel, "page": 0, "mode": mode}

    def q_prompt(self, lead: str = "") -> Message:
        question = self.question(self.state.get("q"))
        assert question is not None
        offset = 1 if self.d.district_question else 0
        index = self.d.questions.index(question) + 1 + offset
        lines = [
            lead
            + texts.QUESTION_HEADER.format(i=index, n=len(self.d.questions) + offset)
            + question.text,
            texts.PURPOSE_LINE.format(purpose=question.purpose),
        ]
        code = question.code
        if question.kind in ("year", "year_month"):
            label = texts.PICK_YEAR if question.kind == "year" else texts.PICK_YEAR_MONTH
            lines.append(texts.YEAR_HINT.format(label=label))
            initial = min(max(2015, question.min_year), question.max_year)
            picker = {
                "type": "datetimepicker",
                "label": label,
                "data": self.pb("yr", question=code),
                "mode": "date",
                "initial": f"{initial}-01-01",
                "min": f"{question.min_year}-01-01",
                "max": f"{question.max_year}-12-31",
            }
            items: list[Message] = [{"type": "action", "action": picker}]
            if question.allow_skip:
                items.append(postback_item(texts.SKIP, self.pb("yr", "skip", question=code)))
            return _text("\n".join(lines), items)
        page = int(self.state.get("page", 0))
        fixed: list[Message] = []
        if question.kind == "choice":
            entries = [
                postback_item(o.label, self.pb("ans", o.code, question=code))
                for o in question.options
            ]
            if question.allow_skip:
                entries.append(postback_item(texts.SKIP, self.pb("ans", "skip", question=code)))
        else:
            chosen = set(self.state.get("qsel", []))
            entries = [
                postback_item(
                    (texts.CHECK if o.code in chosen else "") + o.label,
                    self.pb("qtg", o.code, question=code),
                )
                for o in question.options
            ]
            fixed.append(_echoed(texts.FINISH, self.pb("qdn", question=code)))
            count = sum(1 for o in question.options if o.code in chosen)
            lines.append(texts.SELECTED.format(n=count) if count else texts.SELECTED_NONE)
        items, page = _paged(
            entries,
            fixed,
            page,
            lambda label, p: _echoed(label, self.pb("qpg", page=p, question=code)),
        )
        if len(entries) + len(fixed) > MAX_QUICK_REPLY:
            size = MAX_QUICK_REPLY - len(fixed) - 2
            lines.append(texts.PAGE_LINE.format(page=page + 1, pages=-(-len(entries) // size)))
        return _text("\n".join(lines), items)

    def finish(self, ops: Sequence[Operation], districts: Sequence[str]) -> Outcome:
        """Registration complete: the completion message and MarkRegistered."""
        count = sum(1 for c in districts if c in self.by_code)
        text = self.d.completion + (
            "\n" + _count_line(self.d.district_title, count) if count else ""
        )
        return self._save({"step": "done"}, [_text(text)], *ops, MarkRegistered(self.code))

    def after_answer(
        self, question: Question, values: tuple[tuple[str, int | None], ...]
    ) -> Outcome:
        assert self.member is not None
        ops: list[Operation] = [SetAnswer(self.code, question.code, values)]
        if self.state.get("mode") == "edit" and self.member.registered:
            done = _text(texts.EDITED.format(title=question.title))
            return self._save({"step": "done"}, [done], *ops)
        index = self.d.questions.index(question)
        if index + 1 < len(self.d.questions):
            self.state = self.ask_state(self.d.questions[index + 1], "onboard")
            return self._save(self.state, [self.q_prompt()], *ops)
        return self.finish(ops, self.member.districts)

    def on_question(self, pb: ProgramPostback, event: Event) -> Outcome:
        question = self.question(self.state.get("q"))
        if self.state.get("step") != "q" or question is None or pb.question != question.code:
            return self.stale()
        if pb.action == "qpg":
            self.state = {**self.state, "page": pb.page}
            return self._save(self.state, [self.q_prompt()])
        if question.kind == "choice" and pb.action == "ans":
            if pb.arg == "skip" and question.allow_skip:
                return self.after_answer(question, ())
            if question.option(pb.arg) is None:
                return self.stale()
            return self.after_answer(question, ((pb.arg, None),))
        if question.kind == "multi" and pb.action == "qtg":
            if question.option(pb.arg) is None:
                return self.stale()
            sel = list(self.state.get("qsel", []))
            sel = [c for c in sel if c != pb.arg] if pb.arg in sel else [*sel, pb.arg]
            order = [o.code for o in question.options]
            sel = sorted(set(sel) & set(order), key=order.index)
            self.state = {**self.state, "qsel": sel}
            return self._save(self.state, [self.q_prompt()])
        if question.kind == "multi" and pb.action == "qdn":
            sel = [c for c in self.state.get("qsel", []) if question.option(c) is not None]
            if not sel and not question.allow_skip:
                return Outcome((_text(texts.NEED_ONE), self.q_prompt()))
            return self.after_answer(question, tuple((c, None) for c in sel))
        if question.kind in ("year", "year_month") and pb.action == "yr":
            if pb.arg == "skip" and question.allow_skip:
                return self.after_answer(question, ())
            match = _DATE.match(event.params.get("date", ""))
            if pb.arg or match is None:
                return self.stale()
            year, month = int(match.group(1)), int(match.group(2))
            if not (question.min_year <= year <= question.max_year) or not 1 <= month <= 12:
                message = texts.INVALID_YEAR.format(min=question.min_year, max=question.max_year)
                return Outcome((_text(message), self.q_prompt()))
            # Only the year (or year and month) is kept; the day is dropped here (S1).
            value = f"{year:04d}" if question.kind == "year" else f"{year:04d}-{month:02d}"
            return self.after_answer(question, ((value, year),))
        return self.stale()

    def _chosen_line(self) -> str:
        # S10: how many are chosen (as the survey's multi-select says), never which.
        count = sum(1 for c in self.state.get("sel", []) if c in self.by_code)
        return "\n" + texts.SELECTED.format(n=count) if count else ""

    def _save(self, state: dict[str, Any], replies: Sequence[Message], *ops: Operation) -> Outcome:
        return Outcome(tuple(replies), (*ops, SetState(self.code, state)))

    # events

    def on_text(self, text: str) -> Outcome:
        if self.member is None:
            return self.offer()
        if text.endswith("の解除"):
            return self.on_action(ProgramPostback("leave", self.code, self.v))
        if self.suspended():
            return self.offer()
        if self.member.registered:
            return self.menu()
        return self.resume()

    def resume(self) -> Outcome:
        step = self.state.get("step")
        if step == "q":
            if self.question(self.state.get("q")) is not None:
                return Outcome((self.q_prompt(),))
            # The program's questions changed under the resident: ask them from the first.
            assert self.member is not None
            if self.d.questions and self.member.districts:
                self.state = self.ask_state(self.d.questions[0], "onboard")
                return self._save(self.state, [self.q_prompt(texts.QUESTIONS_CHANGED + "\n")])
            if self.member.districts:
                return self.finish((), self.member.districts)
        if step == "el" and self.state.get("jh"):
            return Outcome((self.el_prompt(str(self.state["jh"]), 0),))
        return Outcome((self.jh_prompt(0),))

    def stale(self) -> Outcome:
        lead = _text("このボタンは現在お使いいただけません。最新のメッセージからお選びください。")
        if self.member is None:
            return Outcome((lead, *self.offer().replies))
        if self.suspended():
            return Outcome((lead, *self.offer().replies))
        if self.member.registered and self.state.get("step") in (None, "done"):
            return Outcome((lead, *self.menu().replies))
        resumed = self.resume()
        return Outcome((lead, *resumed.replies), resumed.ops)

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
            if self.suspended() and self.member is not None and self.member.districts:
                # Agreed to the new notice: the registration resumes with its answers.
                text = (
                    "改めてご同意いただき、ありがとうございます。登録内容はそのままで、"
                    f"{self.d.name}の配信を再開します。"
                )
                return self._save(
                    {"step": "done"},
                    [_text(text)],
                    Join(self.code, self.v),
                    MarkRegistered(self.code),
                )
            if not self.districts or self.d.district_question is None:
                return Outcome((_text("現在、登録を受け付けていません。"),))
            self.state = {"step": "jh", "sel": []}
            thanks = "ご同意ありがとうございます。"
            return self._save(self.state, [self.jh_prompt(0, thanks)], Join(self.code, self.v))
        if self.member is None:
            return self.offer()
        if pb.action == "leave":
            items = [
                _echoed("登録をやめる", self.pb("lok")),
                _echoed("続ける", self.pb("lno")),
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
            if self.suspended():
                return self._save(back, [_text("登録を続けます。"), *self.offer().replies])
            if self.member.registered and back.get("step") in (None, "done"):
                return self._save(back, [_text("登録を続けます。"), *self.menu().replies])
            return self._save(back, [_text("登録を続けます。"), *self.resume().replies])
        if self.suspended():
            return self.stale()
        if pb.action == "edit":
            self.state = {"step": "jh", "sel": list(self.member.districts)}
            return self._save(self.state, [self.jh_prompt(0)])
        if pb.action == "qed":
            question = self.question(pb.question)
            if question is None or not self.member.registered:
                return self.stale()
            self.state = self.ask_state(question, "edit")
            return self._save(self.state, [self.q_prompt()])
        if pb.action in ("ans", "qtg", "qdn", "qpg", "yr"):
            return self.on_question(pb, self.event)
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
            save = SetDistricts(self.code, self.d.district_question, tuple(sel))
            if self.member.registered:  # a change from the menu: nothing more is asked
                title = self.d.district_title
                text = f"{title}を変更しました。\n" + _count_line(title, len(sel))
                return self._save({"step": "done"}, [_text(text)], save)
            if self.d.questions:
                self.state = self.ask_state(self.d.questions[0], "onboard")
                lead = f"{self.d.district_title}（{len(sel)}件）を受け付けました。\n"
                return self._save(self.state, [self.q_prompt(lead)], save)
            return self.finish((save,), sel)
        return self.stale()


def handle(
    event: Event,
    code: str,
    definition: ProgramDefinition,
    districts: Sequence[District],
    member: MemberView | None,
) -> Outcome:
    """What one event of program CODE does (the caller checked `claims`)."""
    dialogue = _Dialogue(code, definition, districts, member, event)
    if event.kind == "text":
        return dialogue.on_text(event.text.strip())
    pb = decode(event.data)
    if pb is None:
        return dialogue.stale()
    return dialogue.on_action(pb)
