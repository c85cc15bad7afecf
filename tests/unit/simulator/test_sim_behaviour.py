"""The resident behaviour core: received message + traits -> next action, matched by label."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

from hypothesis import given
from hypothesis import strategies as st

from kairand.simulator import behaviour
from kairand.simulator.behaviour import Memory, react
from kairand.simulator.population import Population, Resident

BASE = Population(1, seed=11)[0]


def resident(**changes: object) -> Resident:
    steady = {"abandon_rate": 0.0, "block_rate": 0.0, "consents": True, "states_gender": True}
    return dataclasses.replace(BASE, **{**steady, **changes})  # type: ignore[arg-type]


def pb(label: str, data: str) -> dict:
    return {"type": "action", "action": {"type": "postback", "label": label, "data": data}}


def question(*items: dict, text: str = "質問です") -> list[dict]:
    return [{"type": "text", "text": text, "quickReply": {"items": list(items)}}]


def tap(r: Resident, messages: list[dict], memory: Memory | None = None, seed: int = 0):
    return react(r, messages, memory or Memory(), random.Random(seed))


def test_consent_picks_the_agreeing_option_and_refusers_decline() -> None:
    """N1, S16: the consent option is the one whose label has 同意 without しない."""
    msg = question(pb("同意しない", "no"), pb("同意する", "yes"))
    assert tap(resident(), msg).action.data == "yes"
    assert tap(resident(consents=False), msg).action.data == "no"


def test_gender_matches_trait_or_declines() -> None:
    """N2: 男性/女性 by trait; residents who keep it private pick 回答しない."""
    msg = question(pb("男性", "g=m"), pb("女性", "g=f"), pb("回答しない", "g=x"))
    assert tap(resident(gender="male"), msg).action.data == "g=m"
    assert tap(resident(gender="female"), msg).action.data == "g=f"
    assert tap(resident(states_gender=False), msg).action.data == "g=x"


def test_area_is_matched_by_name_even_when_shortened() -> None:
    """N2: area of residence by label, whatever the postback data format is."""
    r = resident(area="北地区")
    assert tap(r, question(pb("中央", "1"), pb("北", "2"), pb("南", "3"))).action.data == "2"
    assert tap(r, question(pb("南地区", "a"), pb("北地区", "b"))).action.data == "b"


def test_topics_are_chosen_one_by_one_then_done() -> None:
    """N2: multi-select topics: every interest once, then the 完了 option."""
    r = resident(interests=("子育て", "防災・防犯"))
    items = [pb(t, f"t{i}") for i, t in enumerate(("子育て", "高齢者・介護", "防災・防犯"))]
    msg = question(*items, pb("完了", "done"))
    memory = Memory()
    chosen = []
    for _ in range(3):
        reaction = tap(r, msg, memory)
        memory = reaction.memory
        chosen.append(reaction.action.data)
    assert chosen == ["t0", "t2", "done"]


def test_birth_date_picker_answers_inside_min_and_max() -> None:
    """S1: a date picker gets the resident's birth date, clamped to [min, max]."""
    picker = {
        "type": "action",
        "action": {
            "type": "datetimepicker",
            "label": "生年月日",
            "data": "birth",
            "mode": "date",
            "min": "1950-01-01",
            "max": "2000-12-31",
        },
    }
    young = resident(birth_date=dt.date(1990, 5, 6))
    old = resident(birth_date=dt.date(1930, 5, 6))
    assert tap(young, question(picker)).action.params == {"date": "1990-05-06"}
    assert tap(old, question(picker)).action.params == {"date": "1950-01-01"}
    assert tap(old, question(picker)).action.data == "birth"


@given(
    birth=st.dates(dt.date(1900, 1, 1), dt.date(2020, 12, 31)),
    lo=st.dates(dt.date(1900, 1, 1), dt.date(1990, 1, 1)),
    span=st.integers(0, 20000),
    mode=st.sampled_from(["date", "datetime", "time"]),
)
def test_datetime_picker_answers_are_always_within_bounds(birth, lo, span, mode) -> None:
    """S1: whatever the bounds, the picked value lies inside them (LINE enforces it)."""
    hi = lo + dt.timedelta(days=span)
    action = {
        "type": "datetimepicker",
        "data": "d",
        "mode": mode,
        "min": lo.isoformat(),
        "max": hi.isoformat(),
    }
    params = behaviour.pick_datetime(action, resident(birth_date=birth), random.Random(0))
    if mode == "time":
        assert len(params["time"]) == 5
    else:
        value = dt.date.fromisoformat(params[mode][:10])
        assert lo <= value <= hi


def test_age_band_labels_match_the_residents_age() -> None:
    """S1: birth-year as quick replies (年代 / 歳以上 / 代) still picks the right band."""
    r = resident(age=67, birth_date=dt.date(1958, 7, 1))
    by_decade = question(pb("1940年代", "a"), pb("1950年代", "b"), pb("1960年代", "c"))
    by_age = question(pb("30代", "a"), pb("40〜64歳", "b"), pb("65歳以上", "c"))
    assert tap(r, by_decade).action.data == "b"
    assert tap(r, by_age).action.data == "c"


def test_message_actions_become_text_and_unknown_questions_get_an_answer() -> None:
    """N1: message actions send their text; an unrelated question still gets one of its options."""
    msg = question(
        {"type": "action", "action": {"type": "message", "label": "はい", "text": "はい"}}
    )
    action = tap(resident(), msg).action
    assert (action.kind, action.text) == ("text", "はい")
    odd = question(pb("りんご", "x"), pb("みかん", "y"))
    assert tap(resident(), odd).action.data in ("x", "y")


def test_abandoning_residents_stop_for_good() -> None:
    """N1: an abandoning resident answers nothing further in that survey run."""
    r = resident(abandon_rate=1.0)
    first = tap(r, question(pb("同意する", "y")))
    assert first.action is None and first.memory.abandoned
    again = react(
        dataclasses.replace(r, abandon_rate=0.0),
        question(pb("同意する", "y")),
        first.memory,
        random.Random(1),
    )
    assert again.action is None


def test_finishing_may_lead_to_the_rich_menu_settings_tap() -> None:
    """N1: after the closing message some residents tap 「設定を変更」 on the rich menu."""
    menu = [
        {"type": "uri", "label": "市のサイト", "uri": "https://example.jp"},
        {"type": "postback", "label": "設定を変更", "data": "menu=settings"},
    ]
    memory = Memory(tapped=("同意する",))
    done = [{"type": "text", "text": "登録ありがとうございました。"}]
    eager = react(
        resident(settings_change_rate=1.0), done, memory, random.Random(0), rich_menu_actions=menu
    )
    assert eager.action is not None and eager.action.data == "menu=settings"
    calm = react(
        resident(settings_change_rate=0.0), done, memory, random.Random(0), rich_menu_actions=menu
    )
    assert calm.action is None and calm.memory.finished


def test_push_can_make_a_resident_block() -> None:
    """N1: some residents block the account on receiving a delivery; never on a reply."""
    r = resident(block_rate=1.0)
    push = react(r, [{"type": "text", "text": "お知らせ"}], Memory(), random.Random(0), kind="push")
    assert push.action is not None and push.action.kind == "unfollow" and push.memory.blocked
    reply = react(r, [{"type": "text", "text": "返信"}], Memory(), random.Random(0), kind="reply")
    assert reply.action is None


def test_template_buttons_are_tapped_like_quick_replies() -> None:
    """N1: a survey may use a confirm template instead of quick replies."""
    msg = [
        {
            "type": "template",
            "altText": "同意",
            "template": {
                "type": "confirm",
                "text": "同意しますか",
                "actions": [
                    {"type": "postback", "label": "同意する", "data": "ok"},
                    {"type": "postback", "label": "同意しない", "data": "ng"},
                ],
            },
        }
    ]
    assert tap(resident(), msg).action.data == "ok"


def test_free_text_is_japanese_text() -> None:
    """N1: the free-text behaviour yields a text action."""
    action = behaviour.free_text(resident(), random.Random(3))
    assert action.kind == "text" and action.text


def test_toggled_options_marked_selected_are_not_tapped_again() -> None:
    """N2: a multi-select that marks chosen options (「✓ 子育て」) and toggles on tap: the
    resident never unselects an interest, and finishes with 完了."""
    r = resident(interests=("子育て", "防災・防犯"))
    labels = ("子育て", "高齢者・介護", "防災・防犯")
    chosen: set[str] = set()
    memory = Memory()
    for _ in range(6):
        items = [pb(("✓ " if t in chosen else "") + t, f"tog:{t}") for t in labels]
        reaction = tap(r, question(*items, pb("完了", "done")), memory)
        memory = reaction.memory
        if reaction.action.data == "done":
            break
        chosen ^= {reaction.action.data.removeprefix("tog:")}
    assert reaction.action.data == "done"
    assert chosen == {"子育て", "防災・防犯"}


def test_residents_turn_pages_to_find_their_area_but_not_forever() -> None:
    """N2: with more areas than 13 quick replies, the resident taps 「次へ」 to find theirs;
    a question with no fitting option anywhere does not page endlessly."""
    r = resident(area="桜台")
    page1 = question(pb("本町", "a1"), pb("駅前", "a2"), pb("次へ", "p2"))
    page2 = question(pb("桜台", "a9"), pb("前へ", "p1"))
    first = tap(r, page1)
    assert first.action.data == "p2" and first.memory.pages_turned == 1
    second = tap(r, page2, first.memory)
    assert second.action.data == "a9" and second.memory.pages_turned == 0
    memory = Memory()
    taps: list[str] = []
    while not taps or taps[-1] == "p2":
        reaction = tap(resident(area="どこにもない町"), page1, memory)
        memory = reaction.memory
        assert reaction.action is not None
        taps.append(reaction.action.data)
    assert taps[:-1] == ["p2"] * 4  # four page turns at most, then an answer
    assert taps[-1] in ("a1", "a2")


def test_settings_menu_leads_to_a_change_not_a_deletion() -> None:
    """N1: after 「設定を変更」 the resident picks something to change; residents do not pick
    deletion or stopping at random."""
    menu = question(
        pb("最初から回答し直す", "restart"),
        pb("地域を変更", "edit"),
        pb("配信停止", "stop"),
        pb("登録情報を削除", "del"),
    )
    for seed in range(30):
        reaction = react(resident(), menu, Memory(settings_changes=1), random.Random(seed))
        assert reaction.action is not None and reaction.action.data in ("restart", "edit")
        plain = react(resident(), menu, Memory(), random.Random(seed))
        assert plain.action is not None and plain.action.data in ("restart", "edit")
