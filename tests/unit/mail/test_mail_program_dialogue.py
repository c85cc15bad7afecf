"""The pure dialogue by which a mail subscriber joins a program (kairand.mail.programs):
every step's transition and operations, table-driven (K9/K1)."""

from __future__ import annotations

from typing import Any

import pytest

from kairand.mail import programs as p
from kairand.programs import catalogue
from kairand.programs.dialogue import (
    Join,
    Leave,
    MarkRegistered,
    SetAnswer,
    SetDistricts,
    SetState,
)
from kairand.programs.model import parse_districts_csv

CODE = catalogue.CHILD_SAFETY_CODE
DEF = catalogue.child_safety()
DISTRICTS = parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)
Q = DEF.district_question or ""
REL = DEF.questions[0].code


def member(state: dict[str, Any], version: int = 1, registered: bool = False) -> p.MailMemberView:
    return p.MailMemberView(version, registered, state, {Q: ("asahi",)} if registered else {})


def states(outcome: p.Outcome) -> list[dict[str, Any]]:
    return [dict(op.state) for op in outcome.ops if isinstance(op, SetState)]


def test_the_programs_name_claims_the_mail() -> None:
    programs = {CODE: DEF}
    assert p.claims("子ども安全情報", "", programs) == CODE
    assert p.claims("", "子ども安全情報の登録", programs) == CODE
    assert p.claims("1", "子ども安全情報", programs) is None  # a reply's subject is not a claim
    assert p.claims("防災", "", programs) is None


def test_a_stranger_to_the_program_sees_the_purpose_notice_first() -> None:
    out = p.start(CODE, DEF, DISTRICTS, None)
    assert out.event == "program_offer"
    assert DEF.purpose_notice in out.replies[0].body and "「1」" in out.replies[0].body
    assert states(out) == [{"step": "consent"}]
    assert not any(isinstance(op, Join) for op in out.ops)  # nothing agreed yet


@pytest.mark.parametrize(
    ("state", "line", "event", "kinds", "next_state"),
    [
        ({"step": "consent"}, "1", "program_districts", [Join, SetState], {"step": "jh"}),
        ({"step": "consent"}, "2", "program_declined", [Leave], None),
        ({"step": "consent"}, "はい", "program_offer", [SetState], {"step": "consent"}),
        ({"step": "jh", "sel": []}, "2", "program_districts", [SetState], {"jh": "nishi"}),
        ({"step": "jh", "sel": []}, "0", "program_invalid", [], None),  # nothing chosen yet
        ({"step": "jh", "sel": []}, "5", "program_invalid", [], None),  # 4 junior highs
        (
            {"step": "el", "jh": "nishi", "sel": []},
            "1 3",
            "program_districts",
            [SetState],
            {"step": "jh", "sel": ["minato", "wakaba"]},
        ),
        (
            {"step": "el", "jh": "nishi", "sel": ["asahi"]},
            "0",
            "program_districts",
            [SetState],
            {"step": "jh", "sel": ["asahi"]},
        ),
        ({"step": "el", "jh": "nishi", "sel": []}, "4", "program_invalid", [], None),
        (
            {"step": "jh", "sel": ["minato"], "mode": "onboard"},
            "0",
            "program_question",
            [SetDistricts, SetState],
            {"step": "q", "q": 0},
        ),
        (
            {"step": "q", "q": 0},
            "1",
            "program_completed",
            [SetAnswer, MarkRegistered, SetState],
            {"step": "done"},
        ),
        ({"step": "q", "q": 0}, "1 2", "program_invalid", [], None),  # a choice: one number
        ({"step": "q", "q": 0}, "7", "program_invalid", [], None),
    ],
)
def test_each_step(
    state: dict[str, Any],
    line: str,
    event: str,
    kinds: list[type],
    next_state: dict[str, Any] | None,
) -> None:
    version = 0 if state["step"] == "consent" else 1
    out = p.step(CODE, DEF, DISTRICTS, member(state, version), line)
    assert out.event == event
    assert [type(op) for op in out.ops] == kinds
    if next_state is not None:
        (stored,) = states(out)
        assert {k: stored.get(k) for k in next_state} == next_state
    assert out.replies  # every mail gets an answer


def test_districts_then_question_write_the_answers() -> None:
    out = p.step(CODE, DEF, DISTRICTS, member({"step": "jh", "sel": ["minato", "kita"]}), "0")
    (districts,) = [op for op in out.ops if isinstance(op, SetDistricts)]
    assert districts.question == Q and districts.codes == ("minato", "kita")
    out = p.step(CODE, DEF, DISTRICTS, member({"step": "q", "q": 0}), "2")
    (answer,) = [op for op in out.ops if isinstance(op, SetAnswer)]
    assert answer.question == REL and answer.values == (("neighbour", None),)


def test_a_registered_member_gets_the_menu_and_can_change_or_leave() -> None:
    registered = member({"step": "done"}, registered=True)
    out = p.start(CODE, DEF, DISTRICTS, registered)
    assert out.event == "program_menu" and "朝日小学校区" in out.replies[0].body
    menu = member({"step": "menu"}, registered=True)
    change = p.step(CODE, DEF, DISTRICTS, menu, "1")
    assert states(change) == [{"step": "jh", "sel": [], "mode": "edit"}]
    leave = p.step(CODE, DEF, DISTRICTS, menu, "2")
    assert leave.event == "program_left" and [type(op) for op in leave.ops] == [Leave]
    assert "メール配信の登録はそのまま" in leave.replies[0].body
    keep = p.step(CODE, DEF, DISTRICTS, menu, "0")
    assert keep.event == "program_unchanged" and states(keep) == [{"step": "done"}]


def test_a_member_under_an_older_notice_agrees_again_and_keeps_the_districts() -> None:
    newer = DEF.model_copy(update={"consent_version": 2})
    old = member({"step": "done"}, version=1, registered=True)
    offer = p.start(CODE, newer, DISTRICTS, old)
    assert offer.event == "program_offer" and "改めて同意" in offer.replies[0].body
    again = p.step(CODE, newer, DISTRICTS, member({"step": "consent"}, 1, True), "1")
    assert again.event == "program_reconsented"
    assert [type(op) for op in again.ops] == [Join, SetState]
    assert not any(isinstance(op, SetDistricts) for op in again.ops)


@pytest.mark.req("K9")
def test_a_notice_raised_while_registering_asks_again_at_the_end() -> None:
    """A person who agreed to notice 1 by mail and was choosing districts when staff raised it
    to 2 finishes registering: the registration is kept but waits, and the last reply is the
    re-consent mail (not 登録完了), so they are neither silently left without alerts nor
    counted; their 「1」 then resumes it like any suspended member's."""
    newer = DEF.model_copy(update={"consent_version": 2})
    last = {"step": "q", "q": len(DEF.questions) - 1, "mode": "onboard"}
    out = p.step(CODE, newer, DISTRICTS, member(last, 1), "1")
    assert out.event == "program_completed_reconsent"
    assert states(out)[-1] == {"step": "consent"}
    assert any(isinstance(op, MarkRegistered) for op in out.ops)
    assert "改めて同意" in out.replies[0].body and "登録が完了" not in out.replies[0].subject
    again = p.step(CODE, newer, DISTRICTS, member({"step": "consent"}, 1, True), "1")
    assert again.event == "program_reconsented"
    # Under the notice they agreed to, the same step completes as before.
    assert p.step(CODE, DEF, DISTRICTS, member(last, 1), "1").event == "program_completed"


@pytest.mark.req("K9")
@pytest.mark.req("S16")
def test_a_suspended_member_who_answers_2_leaves_with_the_deletion_said() -> None:
    newer = DEF.model_copy(update={"consent_version": 2})
    suspended = member({"step": "consent"}, 1, True)
    out = p.step(CODE, newer, DISTRICTS, suspended, "2")
    assert out.event == "program_left" and [type(op) for op in out.ops] == [Leave]
    assert "学校区と回答を削除しました" in out.replies[0].body
    # The notice mail and the offer to a suspended member are the same text.
    notice = p.reconsent_reply(newer)
    assert p.start(CODE, newer, DISTRICTS, suspended).replies[0] == notice
    assert "「1」" in notice.body and "「2」" in notice.body and newer.purpose_notice in notice.body


def test_only_a_conversation_under_way_takes_plain_replies() -> None:
    assert p.active(member({"step": "jh"}))
    assert not p.active(member({"step": "done"}))
    assert not p.active(None)
