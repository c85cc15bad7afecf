"""A program's further questions in LINE (after the districts, one at a time, in the city
survey's style), changing them from the program's menu, and the re-consent of a member
registered under an older purpose notice (pure dialogue; the store side is in
tests/integration/test_program_dialogue.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kairand.conversation.events import Event
from kairand.conversation.survey import Option, Question
from kairand.programs import catalogue, dialogue
from kairand.programs.model import parse_districts_csv

DISTRICTS = parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)
TOPICS = tuple(Option(code=f"t{i:02d}", label=f"話題{i:02d}") for i in range(20))
DEF = catalogue.child_safety().model_copy(
    update={
        "questions": (
            Question(
                code="kodomo_topics",
                kind="multi",
                title="受け取る情報",
                text="受け取りたい情報を選んでください。",
                purpose="選んだ情報だけをお届けするために使います。",
                options=TOPICS,
                allow_skip=False,
            ),
            Question(
                code="kodomo_birth",
                kind="year",
                title="お子さまの生まれ年",
                text="お子さまの生まれ年を選んでください。",
                purpose="年齢に合った情報をお届けするために使います。",
                min_year=2005,
                max_year=2026,
            ),
        )
    }
)


def post(action: str, arg: str = "", *, q: str = "", page: int = 0, **params: str) -> Event:
    data = dialogue.encode(action, "kodomo", DEF.consent_version, arg, page, q)
    return Event("postback", "U1", 0, "r", data=data, params=params)


def text(t: str) -> Event:
    return Event("text", "U1", 0, "r", text=t)


def labels(message: dict[str, Any]) -> list[str]:
    return [i["action"]["label"] for i in message.get("quickReply", {}).get("items", [])]


def state_of(outcome: dialogue.Outcome) -> dict[str, Any]:
    ops = [op for op in outcome.ops if isinstance(op, dialogue.SetState)]
    assert ops, outcome
    return dict(ops[-1].state)


def run(
    event: Event, member: dialogue.MemberView | None, definition: Any = DEF
) -> dialogue.Outcome:
    return dialogue.handle(event, "kodomo", definition, DISTRICTS, member)


def onboarding(state: dict[str, Any]) -> dialogue.MemberView:
    return dialogue.MemberView(1, False, state, ("asahi",))


@pytest.mark.req("K1")
def test_multi_question_is_paged_toggled_and_finished_then_the_year_question() -> None:
    member = dialogue.MemberView(1, False, {"step": "el", "jh": "higashi", "sel": ["asahi"]})
    chosen = run(post("done"), member)
    first = chosen.replies[0]
    assert "【質問 2/3】" in first["text"] and "（1/2ページ）" in first["text"]
    items = labels(first)
    assert len(items) == 12 and items[-2:] == ["次へ", "完了"] and "話題10" not in items
    member = onboarding(state_of(chosen))
    # A page turn, then a toggle on the second page; the toggled option is marked.
    second = run(post("qpg", q="kodomo_topics", page=1), member)
    assert "話題11" in labels(second.replies[0]) and "（2/2ページ）" in second.replies[0]["text"]
    member = onboarding(state_of(second))
    toggled = run(post("qtg", "t11", q="kodomo_topics"), member)
    assert "✓ 話題11" in labels(toggled.replies[0]) and "現在1件" in toggled.replies[0]["text"]
    member = onboarding(state_of(toggled))
    # Toggling twice unselects; finishing with none is refused (this question has no skip).
    off = run(post("qtg", "t11", q="kodomo_topics"), member)
    none = run(post("qdn", q="kodomo_topics"), onboarding(state_of(off)))
    assert not none.ops and "1つ以上" in none.replies[0]["text"]
    both = run(post("qtg", "t02", q="kodomo_topics"), member)
    done = run(post("qdn", q="kodomo_topics"), onboarding(state_of(both)))
    assert dialogue.SetAnswer("kodomo", "kodomo_topics", (("t02", None), ("t11", None))) in done.ops
    assert not any(isinstance(op, dialogue.MarkRegistered) for op in done.ops)
    year = done.replies[0]
    assert "【質問 3/3】" in year["text"]
    picker = year["quickReply"]["items"][0]["action"]
    assert picker["type"] == "datetimepicker" and picker["min"] == "2005-01-01"
    member = onboarding(state_of(done))
    # Out of range: refused, asked again; in range: only the year is kept, then registered.
    bad = run(post("yr", q="kodomo_birth", date="1990-05-05"), member)
    assert not bad.ops and "2005年から2026年" in bad.replies[0]["text"]
    good = run(post("yr", q="kodomo_birth", date="2019-05-05"), member)
    assert dialogue.SetAnswer("kodomo", "kodomo_birth", (("2019", 2019),)) in good.ops
    assert dialogue.MarkRegistered("kodomo") in good.ops
    # S10: the completion counts the districts, it does not name them.
    assert "登録した学校区は1件です。" in good.replies[0]["text"]
    assert "朝日" not in good.replies[0]["text"]
    skipped = run(post("yr", "skip", q="kodomo_birth"), member)
    assert dialogue.SetAnswer("kodomo", "kodomo_birth", ()) in skipped.ops


def test_a_button_of_another_question_or_forged_option_is_stale() -> None:
    member = onboarding({"step": "q", "q": "kodomo_birth", "qsel": [], "page": 0})
    old = run(post("qtg", "t01", q="kodomo_topics"), member)
    assert not any(isinstance(op, dialogue.SetAnswer) for op in old.ops)
    assert "現在お使いいただけません" in old.replies[0]["text"]
    assert "【質問 3/3】" in old.replies[1]["text"]  # and the current question again
    topics = onboarding({"step": "q", "q": "kodomo_topics", "qsel": [], "page": 0})
    forged = run(post("qtg", "nosuch", q="kodomo_topics"), topics)
    assert not any(isinstance(op, dialogue.SetAnswer) for op in forged.ops)
    # The program's questions changed under a resident mid-way: asked again from the first.
    gone = onboarding({"step": "q", "q": "kodomo_removed", "qsel": [], "page": 0})
    again = run(text("子ども安全情報"), gone)
    assert "更新されました" in again.replies[0]["text"]
    assert state_of(again)["q"] == "kodomo_topics"


@pytest.mark.req("K1")
def test_a_registered_member_changes_one_answer_from_the_menu() -> None:
    member = dialogue.MemberView(
        1, True, {"step": "done"}, ("asahi",), {"kodomo_topics": ("t03",), "kodomo_birth": ()}
    )
    menu = run(text("子ども安全情報"), member)
    assert labels(menu.replies[0]) == [
        "学校区を変更",
        "受け取る情報を変更",
        "お子さまの生まれ年を変更",
        "登録をやめる",
    ]
    edit = run(post("qed", q="kodomo_topics"), member)
    assert "✓ 話題03" in labels(edit.replies[0])  # the current answer is shown selected
    state = state_of(edit)
    assert state["mode"] == "edit"
    editing = dialogue.MemberView(1, True, state, ("asahi",), member.answers)
    added = run(post("qtg", "t04", q="kodomo_topics"), editing)
    editing = dialogue.MemberView(1, True, state_of(added), ("asahi",), member.answers)
    saved = run(post("qdn", q="kodomo_topics"), editing)
    assert dialogue.SetAnswer("kodomo", "kodomo_topics", (("t03", None), ("t04", None))) in (
        saved.ops
    )
    assert not any(isinstance(op, dialogue.MarkRegistered) for op in saved.ops)
    assert "「受け取る情報」の回答を変更しました" in saved.replies[0]["text"]
    assert state_of(saved) == {"step": "done"}  # the next question is not asked
    # Changing the districts of a registered member asks nothing further either.
    districts = dialogue.MemberView(1, True, {"step": "el", "jh": "nishi", "sel": ["minato"]})
    changed = run(post("done"), districts)
    assert changed.replies[0]["text"] == "学校区を変更しました。\n登録した学校区は1件です。"
    assert state_of(changed) == {"step": "done"}


@pytest.mark.req("K1")
def test_a_member_suspended_by_a_new_notice_agrees_again_or_leaves() -> None:
    newer = DEF.model_copy(update={"consent_version": 2})
    suspended = dialogue.MemberView(1, False, {"step": "reconsent"}, ("asahi",))

    def run2(event: Event, member: dialogue.MemberView) -> dialogue.Outcome:
        return dialogue.handle(event, "kodomo", newer, DISTRICTS, member)

    def post2(action: str, **kw: Any) -> Event:
        return Event("postback", "U1", 0, "r", data=dialogue.encode(action, "kodomo", 2, **kw))

    offer = run2(text("子ども安全情報"), suspended)
    assert "利用目的の内容を改めました" in offer.replies[0]["text"]
    assert labels(offer.replies[0]) == ["同意して再開する", "登録をやめる"]
    # An old answer button shows the new notice rather than anything else.
    stale = run2(post("qed", q="kodomo_topics"), suspended)
    assert "利用目的の内容を改めました" in stale.replies[-1]["text"]
    agreed = run2(post2("yes"), suspended)
    assert agreed.ops[:2] == (dialogue.Join("kodomo", 2), dialogue.MarkRegistered("kodomo"))
    assert "配信を再開します" in agreed.replies[0]["text"]
    # 登録をやめる asks first; 続ける brings the new notice back.
    ask = run2(post2("leave"), suspended)
    asked = dialogue.MemberView(1, False, state_of(ask), ("asahi",))
    kept = run2(post2("lno"), asked)
    assert "利用目的の内容を改めました" in kept.replies[-1]["text"]
    assert state_of(kept) == {"step": "reconsent"}
    assert run2(post2("lok"), asked).ops == (dialogue.Leave("kodomo"),)


# -- S10: nothing of the districts or answers goes into LINE's chat ---------------------------

ECHO_DEF = catalogue.child_safety().model_copy(
    update={
        "questions": (
            *catalogue.child_safety().questions,  # 登録の区分 (choice)
            Question(
                code="kodomo_topics",
                kind="multi",
                title="受け取る情報",
                text="受け取りたい情報を選んでください。",
                purpose="選んだ情報だけをお届けするために使います。",
                options=(
                    Option(code="traffic", label="交通安全"),
                    Option(code="disaster", label="防災"),
                    Option(code="events", label="行事"),
                ),
            ),
            DEF.questions[1],  # お子さまの生まれ年 (year)
        )
    }
)
# Kinds of button that carry a district or an answer.
ANSWER_KINDS = frozenset({"jh", "tog", "ans", "qtg", "yr"})


class FakeMember:
    """Applies the dialogue's operations as the inbox does (pure, in memory), and keeps every
    reply the bot sent."""

    def __init__(self) -> None:
        self.view: dialogue.MemberView | None = None
        self.replies: list[dict[str, Any]] = []

    def send(self, event: Event) -> list[dict[str, Any]]:
        out = dialogue.handle(event, "kodomo", ECHO_DEF, DISTRICTS, self.view)
        for op in out.ops:
            if isinstance(op, dialogue.Join):
                self.view = (
                    replace(self.view, consent_version=op.consent_version)
                    if (self.view)
                    else dialogue.MemberView(op.consent_version, False, {})
                )
            assert self.view is not None
            if isinstance(op, dialogue.SetState):
                self.view = replace(self.view, conversation=dict(op.state))
            elif isinstance(op, dialogue.SetDistricts):
                self.view = replace(self.view, districts=op.codes)
            elif isinstance(op, dialogue.SetAnswer):
                answers = {**self.view.answers, op.question: tuple(v for v, _ in op.values)}
                self.view = replace(self.view, answers=answers)
            elif isinstance(op, dialogue.MarkRegistered):
                self.view = replace(self.view, registered=True)
        self.replies += out.replies
        return list(out.replies)

    def tap(self, replies: list[dict[str, Any]], label: str, **params: str) -> list[dict[str, Any]]:
        action = next(
            i["action"] for i in replies[-1]["quickReply"]["items"] if i["action"]["label"] == label
        )
        return self.send(Event("postback", "U1", 0, "r", data=action["data"], params=params))


@pytest.mark.req("S10")
def test_program_registration_and_changes_echo_nothing_into_the_chat() -> None:
    """S10, as the city survey (tests/unit/conversation/test_machine.py::
    test_answers_are_never_echoed_into_the_chat): joining 子ども安全情報 — 中学校区 and 小学校区
    in two steps, then a choice, a multi-select and a year question — and changing each from
    the menu, no button that carries a district or an answer has a displayText (LINE would
    post it into the chat as the resident's message), no displayText at all names one, and no
    text the bot sends (which LINE keeps in the chat history) names a district, a chosen
    option or the year: the replies count instead."""
    m = FakeMember()
    offer = m.send(text("子ども安全情報"))
    jh = m.tap(offer, "同意して登録する")
    el = m.tap(jh, "東中学校区")
    el = m.tap(el, "光小学校区")
    jh = m.tap(el, "他の中学校区も選ぶ")
    el = m.tap(jh, "西中学校区")
    el = m.tap(el, "港小学校区")
    choice = m.tap(el, "選択を完了")
    multi = m.tap(choice, "地域の方")
    multi = m.tap(multi, "交通安全")
    multi = m.tap(multi, "防災")
    year = m.tap(multi, "完了")
    m.tap(year, "年を選ぶ", date="2019-05-05")
    assert m.view is not None and m.view.registered
    # Every answer changed from the program's menu.
    jh = m.tap(m.send(text("子ども安全情報")), "学校区を変更")
    el = m.tap(jh, "北中学校区")
    el = m.tap(el, "山手小学校区")
    m.tap(el, "選択を完了")
    m.tap(m.tap(m.send(text("子ども安全情報")), "登録の区分を変更"), "学校・園などの関係者")
    multi = m.tap(m.tap(m.send(text("子ども安全情報")), "受け取る情報を変更"), "行事")
    m.tap(multi, "完了")
    year = m.tap(m.send(text("子ども安全情報")), "お子さまの生まれ年を変更")
    m.tap(year, "年を選ぶ", date="2020-04-01")
    menu = m.send(text("子ども安全情報"))
    # The positive control: everything was stored (locally) all the same.
    view = m.view
    assert view.districts == ("hikari", "minato", "yamate")
    assert dict(view.answers) == {
        "kodomo_relation": ("staff",),
        "kodomo_topics": ("traffic", "disaster", "events"),
        "kodomo_birth": ("2020",),
    }

    names = {d.name for d in DISTRICTS} | {d.junior_high_name for d in DISTRICTS}
    chosen = {"地域の方", "学校・園などの関係者", "交通安全", "防災", "行事"}
    # Question wording and purposes are fixed text (「保護者の方・地域で見守り…」): only a label
    # outside them would be an echo of an answer.
    fixed = "".join(q.text + q.purpose for q in ECHO_DEF.questions)
    answers = {c for c in chosen if c not in fixed} | {"2019", "2020"}
    assert len(answers) >= 6
    for reply in m.replies:
        body = reply.get("text", "")
        assert not [n for n in names if n in body], body
        assert not [a for a in answers if a in body], body
        for item in reply.get("quickReply", {}).get("items", []):
            action = item["action"]
            decoded = dialogue.decode(action.get("data", ""))
            assert decoded is not None
            if decoded.action in ANSWER_KINDS:
                assert "displayText" not in action, action
            shown = action.get("displayText", "")
            assert not [w for w in names | chosen if w in shown], action
    # The menu counts what is registered.
    assert (
        menu[0]["text"]
        == "【子ども安全情報】\n現在、学校区を3件登録しています。\nご用件を選んでください。"
    )
