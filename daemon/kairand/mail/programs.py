"""Joining a program by mail (K9 with K1/K2): the pure dialogue by which a registered
mail subscriber joins a program such as 子ども安全情報, sees its purpose notice, agrees by
number, chooses school districts in two steps (中学校区 → 小学校区, as in LINE:
kairand.programs.dialogue), answers the program's further questions, and later changes its
districts or leaves the program without leaving the mail service.

No I/O: the intake shell (kairand.mail.intake) loads the membership, calls `start` (the mail's
first line is the program's name) or `step` (a conversation is under way), applies the returned
operations (the same operation types as the LINE program dialogue) and sends the replies.

State per program (stored in mail_program_members.conversation): {"step": "consent" | "jh" |
"el" | "q" | "menu" | "done", "jh": junior-high code, "sel": [district codes chosen so far],
"q": index of the further question, "mode": "onboard" | "edit"}.

Numbers: in every step the person replies with numbers on the first line; 0 means 「これで決定」
(districts) or 「回答しない」 (a question that allows it) or 「何もしない」 (menu).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kairand.conversation.survey import Question
from kairand.mail.dialogue import (
    FOOTER,
    HOW_MULTI,
    SKIP_NUMBER,
    Reply,
    parse_answer,
    question_body,
)
from kairand.programs.dialogue import (
    Join,
    Leave,
    MarkRegistered,
    Operation,
    SetAnswer,
    SetDistricts,
    SetState,
)
from kairand.programs.model import District, ProgramDefinition, junior_highs

_NUMBERS = re.compile(r"\d+")
ACTIVE_STEPS = frozenset({"consent", "jh", "el", "q", "menu"})


@dataclass(frozen=True)
class MailMemberView:
    """What the dialogue knows of one subscriber's membership of one program."""

    consent_version: int
    registered: bool
    conversation: Mapping[str, Any]
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    event: str
    replies: tuple[Reply, ...] = ()
    ops: tuple[Operation, ...] = ()


def claims(line: str, subject: str, programs: Mapping[str, ProgramDefinition]) -> str | None:
    """The program whose name is the mail's first line (or subject), or None."""
    for code, definition in programs.items():
        names = (definition.name, f"{definition.name}の登録", f"{definition.name}の変更")
        if line.strip() in names or (not line.strip() and subject.strip() in names):
            return code
    return None


def active(member: MailMemberView | None) -> bool:
    return member is not None and member.conversation.get("step") in ACTIVE_STEPS


def _numbers(line: str) -> list[int]:
    return [int(n) for n in _NUMBERS.findall(line)]


class _Dialogue:
    def __init__(
        self,
        code: str,
        definition: ProgramDefinition,
        districts: Sequence[District],
        member: MailMemberView | None,
    ) -> None:
        self.code = code
        self.d = definition
        self.districts = [d for d in districts]
        self.by_code = {x.code: x for x in self.districts}
        self.jhs = junior_highs(self.districts)
        self.member = member
        self.state: dict[str, Any] = dict(member.conversation) if member else {}

    def subject(self, what: str) -> str:
        return f"【{self.d.name}】{what}"

    def current(self) -> bool:
        """Agreed to the current purpose notice."""
        return self.member is not None and self.member.consent_version >= self.d.consent_version

    # -- prompts -----------------------------------------------------------------------------

    def suspended(self) -> bool:
        """Registered under an older purpose notice: waiting to agree to the new one."""
        return self.member is not None and self.member.registered and not self.current()

    def offer(self, lead: str = "") -> Outcome:
        state = {"step": "consent"}
        if self.suspended():
            again = reconsent_reply(self.d)
            return Outcome(
                "program_offer",
                (Reply(again.subject, lead + again.body),),
                (SetState(self.code, state),),
            )
        body = (
            f"{lead}{self.d.description}\n\n■利用目的\n{self.d.purpose_notice}\n\n"
            "内容に同意して登録する場合は「1」、登録しない場合は「2」と返信してください。\n\n"
            + FOOTER
        )
        return Outcome(
            "program_offer",
            (Reply(self.subject("ご案内と利用目的"), body),),
            (SetState(self.code, state),),
        )

    def _chosen(self, sel: Sequence[str]) -> str:
        names = [self.by_code[c].name for c in sel if c in self.by_code]
        return "、".join(names) if names else "（まだありません）"

    def jh_reply(self, sel: Sequence[str], lead: str = "") -> Reply:
        lines = [lead + "中学校区の番号を1つ返信してください（そのあと小学校区を選びます）。", ""]
        lines += [f"{n}. {name}" for n, (_, name) in enumerate(self.jhs, start=1)]
        lines += ["", f"選択中の{self.d.district_title}：{self._chosen(sel)}"]
        if sel:
            lines.append(f"選択を終える場合は「{SKIP_NUMBER}」と返信してください。")
        lines += ["", FOOTER]
        return Reply(self.subject(f"{self.d.district_title}の選択（中学校区）"), "\n".join(lines))

    def el_reply(self, jh: str, sel: Sequence[str], lead: str = "") -> Reply:
        name = next((n for c, n in self.jhs if c == jh), jh)
        lines = [
            lead + f"{name}の小学校区から、受け取りたい学校区の番号を返信してください。",
            HOW_MULTI,
            "",
        ]
        lines += [f"{n}. {d.name}" for n, d in enumerate(self._in(jh), start=1)]
        lines += ["", f"中学校区の選択に戻る場合は「{SKIP_NUMBER}」と返信してください。"]
        lines += ["", FOOTER]
        return Reply(self.subject(f"{self.d.district_title}の選択（小学校区）"), "\n".join(lines))

    def _in(self, jh: str) -> list[District]:
        return [d for d in self.districts if d.junior_high == jh]

    def q_reply(self, index: int, error: str = "") -> Reply:
        total = len(self.d.questions)
        body = question_body(self.d.questions[index], index, total, error)
        return Reply(self.subject(f"質問 {index + 1}/{total}"), body)

    def menu(self) -> Outcome:
        assert self.member is not None
        sel = self.member.answers.get(self.d.district_question or "", ())
        body = (
            f"現在の{self.d.district_title}：{self._chosen(sel)}\n\n"
            f"1. {self.d.district_title}・回答を変更する\n"
            f"2. {self.d.name}の登録をやめる（メール配信の登録はそのまま残ります）\n"
            f"{SKIP_NUMBER}. 変更しない\n\n番号を1つ返信してください。"
        )
        return Outcome(
            "program_menu",
            (Reply(self.subject("登録内容の変更・解除"), body),),
            (SetState(self.code, {"step": "menu"}),),
        )

    # -- transitions -------------------------------------------------------------------------

    def start(self) -> Outcome:
        if self.member is None or not self.current():
            return self.offer()
        if self.member.registered:
            return self.menu()
        return self.resume()

    def resume(self, lead: str = "") -> Outcome:
        """Repeat the prompt of the step under way (an unreadable reply)."""
        step = self.state.get("step")
        sel = list(self.state.get("sel", []))
        if step == "consent" or self.member is None:
            return self.offer(lead)
        if step == "menu":
            return self.menu()
        if step == "el":
            return Outcome("program_invalid", (self.el_reply(self.state["jh"], sel, lead),))
        if step == "q":
            return Outcome("program_invalid", (self.q_reply(int(self.state.get("q", 0)), lead),))
        return Outcome("program_invalid", (self.jh_reply(sel, lead),))

    def begin_districts(self, mode: str, ops: tuple[Operation, ...] = ()) -> Outcome:
        if self.d.district_question is None or not self.districts:
            return self.begin_questions(mode, ops)
        state = {"step": "jh", "sel": [], "mode": mode}
        return Outcome(
            "program_districts", (self.jh_reply([]),), (*ops, SetState(self.code, state))
        )

    def begin_questions(self, mode: str, ops: tuple[Operation, ...] = ()) -> Outcome:
        if not self.d.questions:
            return self.complete(ops)
        state: dict[str, Any] = {"step": "q", "q": 0, "mode": mode}
        return Outcome("program_question", (self.q_reply(0),), (*ops, SetState(self.code, state)))

    def complete(self, ops: tuple[Operation, ...] = ()) -> Outcome:
        agreed = max(
            [op.consent_version for op in ops if isinstance(op, Join)]
            + [self.member.consent_version if self.member else 0]
        )
        if agreed < self.d.consent_version:
            # The notice was raised while this person was registering (LINE's buttons carry
            # the version and show the new notice; a mail reply does not): the registration
            # is kept, suspended like every member's under the older notice, and this reply is
            # the re-consent mail, so the next 「1」 resumes it and 「2」 deletes it.
            again = reconsent_reply(self.d)
            lead = "ご回答ありがとうございます。登録内容を受け付けました。\n"
            return Outcome(
                "program_completed_reconsent",
                (Reply(again.subject, lead + again.body),),
                (*ops, MarkRegistered(self.code), SetState(self.code, {"step": "consent"})),
            )
        body = (
            f"{self.d.completion}\n\n"
            f"学校区の変更や登録の解除は「{self.d.name}」と本文に書いて返信してください。\n"
            "メール配信そのものを停止する場合は「停止」と返信してください。"
        )
        return Outcome(
            "program_completed",
            (Reply(self.subject("登録が完了しました"), body),),
            (*ops, MarkRegistered(self.code), SetState(self.code, {"step": "done"})),
        )

    def leave(self, event: str, subject: str, body: str) -> Outcome:
        return Outcome(event, (Reply(self.subject(subject), body),), (Leave(self.code),))

    def step(self, line: str) -> Outcome:
        step = self.state.get("step")
        numbers = _numbers(line)
        if step == "consent":
            if numbers == [1]:
                ops: tuple[Operation, ...] = (Join(self.code, self.d.consent_version),)
                if self.member is not None and self.member.registered:  # re-consent
                    return Outcome(
                        "program_reconsented",
                        (Reply(self.subject("配信を再開しました"), self.d.completion),),
                        (*ops, SetState(self.code, {"step": "done"})),
                    )
                return self.begin_districts("onboard", ops)
            if numbers == [2] and self.suspended():
                return self.leave("program_left", "登録を解除しました", left_body(self.d))
            if numbers == [2]:
                return self.leave(
                    "program_declined",
                    "登録しませんでした",
                    f"{self.d.name}には登録しませんでした。メール配信の登録はそのままです。",
                )
            return self.resume("「1」か「2」で返信してください。\n")
        if step == "menu":
            if numbers == [1]:
                return self.begin_districts("edit")
            if numbers == [2]:
                return self.leave("program_left", "登録を解除しました", left_body(self.d))
            if numbers == [SKIP_NUMBER]:
                return Outcome(
                    "program_unchanged",
                    (Reply(self.subject("変更しませんでした"), "登録内容はそのままです。"),),
                    (SetState(self.code, {"step": "done"}),),
                )
            return self.resume()
        sel = list(self.state.get("sel", []))
        mode = str(self.state.get("mode", "onboard"))
        if step == "jh":
            if numbers == [SKIP_NUMBER] and sel:
                district_q = self.d.district_question
                assert district_q is not None
                return self.begin_questions(
                    mode, (SetDistricts(self.code, district_q, tuple(sel)),)
                )
            if len(numbers) == 1 and 1 <= numbers[0] <= len(self.jhs):
                jh = self.jhs[numbers[0] - 1][0]
                state: dict[str, Any] = {"step": "el", "jh": jh, "sel": sel, "mode": mode}
                return Outcome(
                    "program_districts", (self.el_reply(jh, sel),), (SetState(self.code, state),)
                )
            return self.resume(f"1〜{len(self.jhs)} の番号を1つ返信してください。\n")
        if step == "el":
            jh = str(self.state.get("jh", ""))
            options = self._in(jh)
            if numbers == [SKIP_NUMBER]:
                state = {"step": "jh", "sel": sel, "mode": mode}
                return Outcome(
                    "program_districts", (self.jh_reply(sel),), (SetState(self.code, state),)
                )
            if not numbers or any(not 1 <= n <= len(options) for n in numbers):
                return self.resume(f"1〜{len(options)} の番号で返信してください。\n")
            for n in sorted(set(numbers)):
                if options[n - 1].code not in sel:
                    sel.append(options[n - 1].code)
            state = {"step": "jh", "sel": sel, "mode": mode}
            lead = "選択を受け付けました。他の中学校区からも選べます。\n"
            return Outcome(
                "program_districts", (self.jh_reply(sel, lead),), (SetState(self.code, state),)
            )
        if step == "q":
            index = min(int(self.state.get("q", 0)), len(self.d.questions) - 1)
            question: Question = self.d.questions[index]
            parsed = parse_answer(question, line)
            if isinstance(parsed, str):
                return Outcome("program_invalid", (self.q_reply(index, parsed),))
            values = tuple((v, int(v[:4]) if v[:4].isdigit() else None) for v in parsed)
            answer = SetAnswer(self.code, question.code, values)
            if index + 1 >= len(self.d.questions):
                return self.complete((answer,))
            state = {"step": "q", "q": index + 1, "mode": mode}
            return Outcome(
                "program_question",
                (self.q_reply(index + 1),),
                (answer, SetState(self.code, state)),
            )
        return self.start()


def left_body(definition: ProgramDefinition) -> str:
    """The receipt of leaving a program by mail (the deletion is recorded with its receipt)."""
    return (
        f"{definition.name}の登録を解除し、選んだ学校区と回答を削除しました。\n"
        "メール配信の登録はそのまま残っています。"
    )


def reconsent_reply(definition: ProgramDefinition) -> Reply:
    """The re-consent mail (kairand.mail.notices sends it once per member and consent
    version; the member's dialogue then waits in step "consent"), also the answer to a
    suspended member who writes the program's name."""
    name = definition.name
    body = (
        f"{name}の利用目的の内容を改めました。改めて同意いただくまで、{name}の配信を"
        "停止しています。\n\n"
        f"■新しい利用目的\n{definition.purpose_notice}\n\n"
        "内容に同意して受け取りを再開する場合は「1」と、このメールに返信してください。"
        "登録内容（学校区など）はそのまま引き継ぎます。\n"
        f"{name}の登録をやめる場合は「2」と返信してください。選んだ学校区と回答を削除します"
        "（メール配信の登録はそのまま残ります）。\n\n"
        "メール配信そのものを停止する場合は「停止」と返信してください。"
    )
    return Reply(f"【{name}】利用目的の改定と再同意のお願い", body)


def start(
    code: str,
    definition: ProgramDefinition,
    districts: Sequence[District],
    member: MailMemberView | None,
) -> Outcome:
    """The program's name was sent: offer it (purpose notice, consent), or the member's menu."""
    return _Dialogue(code, definition, districts, member).start()


def step(
    code: str,
    definition: ProgramDefinition,
    districts: Sequence[District],
    member: MailMemberView,
    line: str,
) -> Outcome:
    """A reply (LINE: the person's first line) while the program's conversation is under way."""
    return _Dialogue(code, definition, districts, member).step(line)
