"""Pure cores of programs: alert templates (K7, G3), institution scope (K8), the district CSV,
and the program dialogue in LINE (join, 中学校区 → 小学校区, leave)."""

from __future__ import annotations

import datetime as dt

import pytest

from kairand.conversation.events import Event
from kairand.programs import catalogue, dialogue
from kairand.programs import templates as tpl
from kairand.programs.model import (
    DistrictCsvError,
    check_codes,
    junior_highs,
    parse_districts_csv,
)
from kairand.programs.scope import Institution, ScopeError, check, scope_of
from kairand.segments.model import SegmentFilter

NOW = dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC)
T = tpl.suspicious_person()
FILLED = {
    "when": "12月1日 午後3時ごろ",
    "place": "朝日町の公園付近",
    "what": "児童が声をかけられました。",
    "advice": "複数で下校しましょう。",
}


# -- templates: K7 and G3 --------------------------------------------------------------------


@pytest.mark.req("K7")
def test_child_field_refused_without_guardian_consent() -> None:
    values = {**FILLED, "child": "朝日小学校の児童"}
    with pytest.raises(tpl.TemplateError) as refused:
        tpl.check_fill(T, values, None, NOW)
    assert refused.value.code == "guardian_consent_required"
    assert refused.value.field == "values.child"
    assert "保護者の同意" in refused.value.message_ja
    consent = tpl.GuardianConsent("被害児童の保護者（母）", NOW - dt.timedelta(hours=1))
    filled = tpl.check_fill(T, values, consent, NOW)
    assert filled["child"] == "朝日小学校の児童"
    # Consent recorded "in the future" is refused too.
    with pytest.raises(tpl.TemplateError) as future:
        tpl.check_fill(T, values, tpl.GuardianConsent("保護者", NOW + dt.timedelta(days=1)), NOW)
    assert future.value.code == "guardian_consent_future"
    # A blank "who" is no consent.
    with pytest.raises(tpl.TemplateError):
        tpl.check_fill(T, values, tpl.GuardianConsent("  ", NOW), NOW)


@pytest.mark.req("K7")
def test_without_child_field_no_consent_needed() -> None:
    assert "child" not in tpl.check_fill(T, FILLED, None, NOW)


@pytest.mark.req("G3")
@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("place", "朝日町3丁目5番地", "address"),
        ("place", "朝日町二丁目", "address"),
        ("place", "朝日町1-2-3", "address"),
        ("what", "連絡は090-1234-5678まで", "not_class1"),
        ("features", "詳細は https://example.jp に", "not_class1"),
        ("advice", "taro@example.jp へ", "not_class1"),
        ("what", "", "required"),
        ("what", "あ" * 401, "too_long"),
    ],
)
def test_fill_keeps_content_class_one(field: str, value: str, code: str) -> None:
    with pytest.raises(tpl.TemplateError) as refused:
        tpl.check_fill(T, {**FILLED, field: value}, None, NOW)
    assert refused.value.code == code and refused.value.field == f"values.{field}"


@pytest.mark.req("G3")
def test_unknown_field_refused_and_render_is_template_text() -> None:
    with pytest.raises(tpl.TemplateError):
        tpl.check_fill(T, {**FILLED, "name": "山田太郎"}, None, NOW)
    text = tpl.render(T, tpl.check_fill(T, FILLED, None, NOW), "たんぽぽこども園")
    assert text.startswith("【不審者情報】\n■日時\n")
    assert text.endswith("（発信元：たんぽぽこども園）")
    assert text.index("■場所") < text.index("■内容") < text.index("■注意事項")
    follow = tpl.follow_up_text("all_clear", "不審者情報", NOW, "解決しました。", "教育委員会")
    assert follow.startswith("【解除】【不審者情報】\n12月1日16時00分にお送りした不審者情報")


# -- scope: K8 -------------------------------------------------------------------------------

KINDER = Institution(
    "tanpopo", "たんぽぽこども園", "kodomoen", False, frozenset({"asahi", "hikari"})
)
BOARD = Institution("board", "教育委員会", "board", True, frozenset())


def seg(**kw: object) -> SegmentFilter:
    return SegmentFilter.model_validate({"program": "kodomo", **kw})


@pytest.mark.req("K8")
def test_scope_rules() -> None:
    q = "kodomo_district"
    ok = seg(conditions=[{"question": q, "any_of": ["asahi"]}])
    check(scope_of([KINDER]), ok, q)
    cases = [
        (scope_of([]), ok, "no_institution"),
        (scope_of([KINDER]), seg(all_registered=True), "all_districts_only_board"),
        (
            scope_of([KINDER]),
            seg(conditions=[{"question": q, "any_of": ["asahi", "minato"]}]),
            "district_out_of_scope",
        ),
        (
            scope_of([KINDER]),
            seg(conditions=[{"question": "kodomo_grade", "any_of": ["g1"]}]),
            "district_required",
        ),
    ]
    for scope, segment, code in cases:
        with pytest.raises(ScopeError) as refused:
            check(scope, segment, q)
        assert refused.value.code == code
    check(scope_of([BOARD]), seg(all_registered=True), q)
    check(scope_of([]), SegmentFilter.everyone(), q)  # city information: not restricted here


# -- districts CSV ---------------------------------------------------------------------------


def test_district_csv_parses_and_groups() -> None:
    districts = parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)
    assert len(districts) == 11
    assert junior_highs(districts)[0] == ("higashi", "東中学校区")
    # Half-width katakana kana and a BOM are accepted (normalised).
    text = "\ufeffcode,name,kana,junior_high,junior_high_name\na1,朝日小学校区,ｱｻﾋ,j1,東中\n"
    assert parse_districts_csv(text)[0].kana == "アサヒ"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", 1),
        ("code,name\n", 1),
        ("code,name,kana,junior_high,junior_high_name\n", 2),
        ("code,name,kana,junior_high,junior_high_name\nA-1,朝日,あさひ,j1,東\n", 2),
        ("code,name,kana,junior_high,junior_high_name\na1,朝日,asahi,j1,東\n", 2),
        (
            "code,name,kana,junior_high,junior_high_name\na1,朝日,あさひ,j1,東\na1,光,ひかり,j1,東\n",
            3,
        ),
        (
            "code,name,kana,junior_high,junior_high_name\na1,朝日,あさひ,j1,東\na2,光,ひかり,j1,西\n",
            3,
        ),
        ("code,name,kana,junior_high,junior_high_name\na1,朝日,あさひ\n", 2),
    ],
)
def test_district_csv_refuses_with_line(text: str, line: int) -> None:
    with pytest.raises(DistrictCsvError) as refused:
        parse_districts_csv(text)
    assert refused.value.line == line and refused.value.message_ja


def test_program_question_codes_need_prefix() -> None:
    check_codes("kodomo", catalogue.child_safety())
    with pytest.raises(ValueError, match="must start"):
        check_codes("other", catalogue.child_safety())


# -- the LINE dialogue -----------------------------------------------------------------------

DEF = catalogue.child_safety()
DISTRICTS = parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)


def text(t: str) -> Event:
    return Event("text", "U1", 0, "r", text=t)


def post(
    action: str,
    arg: str = "",
    page: int = 0,
    version: int = 1,
    question: str = "",
    params: dict[str, str] | None = None,
) -> Event:
    data = dialogue.encode(action, "kodomo", version, arg, page, question)
    return Event("postback", "U1", 0, "r", data=data, params=params or {})


def labels(message: dict) -> list[str]:
    return [i["action"]["label"] for i in message.get("quickReply", {}).get("items", [])]


def run(event: Event, member: dialogue.MemberView | None) -> dialogue.Outcome:
    return dialogue.handle(event, "kodomo", DEF, DISTRICTS, member)


@pytest.mark.req("K1")
def test_dialogue_join_choose_two_steps_and_finish() -> None:
    assert dialogue.claims(text("子ども安全情報"), {"kodomo": DEF}) == "kodomo"
    assert dialogue.claims(text("設定"), {"kodomo": DEF}) is None
    assert dialogue.claims(post("yes"), {"other": DEF}) is None
    offer = run(text("子ども安全情報"), None)
    assert "利用目的" in offer.replies[0]["text"] and labels(offer.replies[0]) == [
        "同意して登録する",
        "登録しない",
    ]
    joined = run(post("yes"), None)
    assert dialogue.Join("kodomo", 1) in joined.ops
    assert labels(joined.replies[-1]) == ["東中学校区", "西中学校区", "北中学校区", "南中学校区"]
    member = dialogue.MemberView(1, False, {"step": "jh", "sel": []})
    step = run(post("jh", "higashi"), member)
    assert labels(step.replies[0]) == [
        "朝日小学校区",
        "光小学校区",
        "緑が丘小学校区",
        "他の中学校区も選ぶ",
    ]
    state = step.ops[-1].state  # type: ignore[union-attr]
    member = dialogue.MemberView(1, False, state)
    toggled = run(post("tog", "hikari"), member)
    assert "✓光小学校区" in labels(toggled.replies[0]) and "選択を完了" in labels(
        toggled.replies[0]
    )
    member = dialogue.MemberView(1, False, toggled.ops[-1].state)  # type: ignore[union-attr]
    more = run(post("more"), member)
    member = dialogue.MemberView(1, False, more.ops[-1].state)  # type: ignore[union-attr]
    nishi = run(post("jh", "nishi"), member)
    member = dialogue.MemberView(1, False, nishi.ops[-1].state)  # type: ignore[union-attr]
    both = run(post("tog", "minato"), member)
    member = dialogue.MemberView(1, False, both.ops[-1].state)  # type: ignore[union-attr]
    chosen = run(post("done"), member)
    assert dialogue.SetDistricts("kodomo", "kodomo_district", ("hikari", "minato")) in chosen.ops
    assert not any(isinstance(op, dialogue.MarkRegistered) for op in chosen.ops)
    # Then the program's own question, one at a time, in the survey's style.
    asked = chosen.replies[0]
    # S10: the districts are counted, not named (LINE keeps the bot's replies in the chat).
    assert "学校区（2件）を受け付けました。" in asked["text"] and "【質問 2/2】" in asked["text"]
    assert "光小学校区" not in asked["text"] and "港小学校区" not in asked["text"]
    assert labels(asked) == ["保護者", "地域の方", "学校・園などの関係者", "回答しない"]
    assert all("displayText" not in i["action"] for i in asked["quickReply"]["items"])  # S10
    state = chosen.ops[-1].state  # type: ignore[union-attr]
    member = dialogue.MemberView(1, False, state, ("hikari", "minato"))
    finished = run(post("ans", "guardian", question="kodomo_relation"), member)
    assert dialogue.SetAnswer("kodomo", "kodomo_relation", (("guardian", None),)) in finished.ops
    assert dialogue.MarkRegistered("kodomo") in finished.ops
    assert "登録した学校区は2件です。" in finished.replies[0]["text"]
    assert "光小学校区" not in finished.replies[0]["text"]
    assert DEF.completion in finished.replies[0]["text"]


def test_dialogue_done_without_choice_and_stale_buttons() -> None:
    member = dialogue.MemberView(1, False, {"step": "jh", "sel": []})
    empty = run(post("done"), member)
    assert not empty.ops and "1つ以上" in empty.replies[0]["text"]
    registered = dialogue.MemberView(1, True, {"step": "done"}, ("asahi",))
    stale = run(post("tog", "asahi"), registered)
    assert not stale.ops and "現在お使いいただけません" in stale.replies[0]["text"]
    forged = Event("postback", "U1", 0, "r", data="k=tog&g=kodomo&v=1&x=../etc")
    assert dialogue.decode(forged.data) is None
    assert not run(forged, registered).ops
    # A button sent under an older purpose notice shows the notice again.
    newer = DEF.model_copy(update={"consent_version": 2})
    again = dialogue.handle(post("tog", "asahi"), "kodomo", newer, DISTRICTS, registered)
    assert "利用目的" in again.replies[0]["text"]


@pytest.mark.req("K1")
def test_dialogue_leave_keeps_city() -> None:
    registered = dialogue.MemberView(1, True, {"step": "done"}, ("asahi",))
    menu = run(text("子ども安全情報"), registered)
    assert "現在、学校区を1件登録しています。" in menu.replies[0]["text"]
    assert "朝日小学校区" not in menu.replies[0]["text"]
    ask = run(post("leave"), registered)
    assert "市政情報の受け取りは変わりません" in ask.replies[0]["text"]
    asked = dialogue.MemberView(1, True, ask.ops[-1].state, ("asahi",))  # type: ignore[union-attr]
    left = run(post("lok"), asked)
    assert left.ops == (dialogue.Leave("kodomo"),)
    kept = run(post("lno"), asked)
    assert not any(isinstance(op, dialogue.Leave) for op in kept.ops)


def test_many_junior_highs_are_paged() -> None:
    rows = ["code,name,kana,junior_high,junior_high_name"]
    rows += [f"e{i},小{i}学校区,しょう,j{i},第{i}中学校区" for i in range(30)]
    many = parse_districts_csv("\n".join(rows) + "\n")
    member = dialogue.MemberView(1, False, {"step": "jh", "sel": []})
    first = dialogue.handle(post("jhp", page=0), "kodomo", DEF, many, member)
    items = labels(first.replies[0])
    assert len(items) <= 13 and items[-1] == "次へ"
    last = dialogue.handle(post("jhp", page=2), "kodomo", DEF, many, member)
    assert labels(last.replies[0])[-1] == "前へ"
    seen = set()
    for page in range(3):
        out = dialogue.handle(post("jhp", page=page), "kodomo", DEF, many, member)
        seen |= {x for x in labels(out.replies[0]) if x.startswith("第")}
    assert len(seen) == 30


# -- revising and withdrawing templates ------------------------------------------------------


@pytest.mark.req("K8")
def test_revision_rules_name_the_reason() -> None:
    approved = tpl.TemplateState(1, "kodomo", "approved")
    tpl.check_revision(approved, "kodomo", None)
    tpl.check_revision(tpl.TemplateState(2, "kodomo", "draft"), "kodomo", None)
    cases = [
        (None, "kodomo", None, "replaces_unknown", "replaces"),
        (tpl.TemplateState(1, "kodomo", "retired"), "kodomo", None, "replaces_retired", "replaces"),
        (approved, "bousai", None, "replaces_other_program", "program"),
        (approved, "kodomo", 7, "revision_open", "replaces"),
    ]
    for original, program, open_revision, code, field in cases:
        with pytest.raises(tpl.TemplateError) as refused:
            tpl.check_revision(original, program, open_revision)
        assert (refused.value.code, refused.value.field) == (code, field)
    with pytest.raises(tpl.TemplateError) as refused:
        tpl.check_revision(approved, "kodomo", 7)
    assert "No.7" in refused.value.message_ja  # the staff member knows which draft waits
    assert {"replaces_retired", "revision_open"} <= tpl.CONFLICTS


@pytest.mark.req("K8")
def test_approval_retires_the_line_it_replaces_and_withdrawal_takes_open_revisions() -> None:
    states = {
        1: tpl.TemplateState(1, "kodomo", "approved"),
        2: tpl.TemplateState(2, "kodomo", "draft", replaces=1),
        3: tpl.TemplateState(3, "kodomo", "draft", replaces=2),
        4: tpl.TemplateState(4, "kodomo", "retired"),
        5: tpl.TemplateState(5, "kodomo", "draft", replaces=4),
    }
    assert tpl.superseded(states[3], states.get) == [2, 1]
    assert tpl.superseded(states[2], states.get) == [1]
    assert tpl.superseded(states[1], states.get) == []
    assert tpl.superseded(states[5], states.get) == []  # 4 was retired already
    # A loop in stored data cannot hang the approval.
    looped = {1: tpl.TemplateState(1, "k", "draft", 2), 2: tpl.TemplateState(2, "k", "draft", 1)}
    assert tpl.superseded(looped[1], looped.get) == [2]
    open_revision = {1: 2, 2: 3}
    assert tpl.withdrawn_with(1, open_revision.get) == [2, 3]
    assert tpl.withdrawn_with(3, open_revision.get) == []
    assert tpl.withdrawn_with(1, {1: 2, 2: 1}.get) == [2]
