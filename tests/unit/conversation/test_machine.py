"""The survey state machine, driven without a network or a database."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kairand.conversation import machine, texts
from kairand.conversation.events import Event, parse_event
from kairand.conversation.postback import decode, encode
from kairand.conversation.survey import default_survey

SURVEY = default_survey()
VERSION = 1
USER = "U" + "a" * 32


@dataclass
class FakeResident:
    """Applies the machine's operations to an in-memory record (what the store does)."""

    exists: bool = False
    consent_version: int | None = None
    registered: bool = False
    stopped: bool = False
    conversation: dict[str, Any] = field(default_factory=dict)
    answers: dict[str, tuple[tuple[str, int | None], ...]] = field(default_factory=dict)
    purged: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    def state(self) -> machine.ResidentState | None:
        if not self.exists:
            return None
        return machine.ResidentState(
            self.consent_version,
            self.registered,
            self.stopped,
            dict(self.conversation),
            {q: tuple(v for v, _ in vals) for q, vals in self.answers.items() if vals},
        )

    def apply(self, outcome: machine.Outcome) -> None:
        for op in outcome.ops:
            if isinstance(op, machine.StartResident):
                self.__init__(exists=True, metrics=self.metrics, purged=self.purged)  # type: ignore[misc]
            elif isinstance(op, machine.SetConsent):
                self.consent_version = op.version
            elif isinstance(op, machine.SetConversation):
                assert self.exists
                self.conversation = dict(op.state)
            elif isinstance(op, machine.SetAnswer):
                self.answers[op.question] = op.values
            elif isinstance(op, machine.MarkRegistered):
                self.registered = True
            elif isinstance(op, machine.SetDeliveriesStopped):
                self.stopped = op.stopped
            elif isinstance(op, machine.Purge):
                self.purged.append(op.reason)
                metrics, purged = self.metrics, self.purged
                self.__init__(metrics=metrics, purged=purged)  # type: ignore[misc]
            elif isinstance(op, machine.CountMetric):
                self.metrics.append(op.metric)
            elif isinstance(op, machine.ClaimTestCode):
                self.claims.append(op.code)


def send(resident: FakeResident, event: Event) -> machine.Outcome:
    outcome = machine.handle(event, resident.state(), SURVEY, VERSION)
    resident.apply(outcome)
    check_messages(outcome.replies)
    return outcome


def check_messages(replies: tuple[dict[str, Any], ...]) -> None:
    """LINE's limits: ≤ 5 messages, quick reply ≤ 13 items on the last one, labels ≤ 20,
    postback data ≤ 300."""
    assert len(replies) <= 5
    for i, message in enumerate(replies):
        assert message["type"] == "text" and 0 < len(message["text"]) <= 5000
        quick = message.get("quickReply")
        if quick:
            assert i == len(replies) - 1
            assert 1 <= len(quick["items"]) <= 13
            for item in quick["items"]:
                action = item["action"]
                assert len(action["label"]) <= 20
                assert len(action["data"]) <= 300


def follow() -> Event:
    return Event("follow", USER, 1, "tok")


def postback(data: str, **params: str) -> Event:
    return Event("postback", USER, 2, "tok", data=data, params=params)


def text(value: str) -> Event:
    return Event("text", USER, 2, "tok", text=value)


def items(outcome: machine.Outcome) -> list[dict[str, Any]]:
    return [i["action"] for i in outcome.replies[-1].get("quickReply", {}).get("items", [])]


def find(outcome: machine.Outcome, label: str) -> dict[str, Any]:
    for action in items(outcome):
        if action["label"] == label:
            return action
    raise AssertionError(f"no button {label!r} in {[a['label'] for a in items(outcome)]}")


def onboard(resident: FakeResident) -> machine.Outcome:
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, postback(find(out, texts.PICK_YEAR)["data"], date="1985-06-15"))
    out = send(resident, postback(find(out, "女性")["data"]))
    out = send(resident, postback(find(out, texts.NEXT_PAGE)["data"]))
    out = send(resident, postback(find(out, "港")["data"]))
    out = send(resident, postback(find(out, "子育て")["data"]))
    out = send(resident, postback(find(out, "防災・防犯")["data"]))
    return send(resident, postback(find(out, texts.FINISH)["data"]))


def test_follow_shows_welcome_purpose_and_consent_first() -> None:
    """N1, S16: the welcome and the purpose of use come before any question, with consent."""
    resident = FakeResident()
    out = send(resident, follow())
    assert out.replies[0]["text"] == SURVEY.welcome
    assert out.replies[1]["text"] == SURVEY.purpose_notice
    assert [a["label"] for a in items(out)] == [texts.CONSENT_YES, texts.CONSENT_NO]
    assert resident.metrics == ["follow"] and resident.answers == {}


def test_full_onboarding_keeps_only_year_and_codes() -> None:
    """N1, N2, S1: one question at a time; the birth date keeps only the year; codes stored."""
    resident = FakeResident()
    out = onboard(resident)
    assert out.replies[-1]["text"] == SURVEY.completion
    assert resident.registered and resident.metrics == ["follow", "registered"]
    assert resident.answers == {
        "birth_year": (("1985", 1985),),
        "gender": (("female", None),),
        "area": (("minato", None),),
        "topics": (("kosodate", None), ("bousai", None)),
    }
    assert "06" not in str(resident.answers["birth_year"]) and "15" not in str(resident.answers)


def test_year_month_question_keeps_month_not_day() -> None:
    """S1: year_month keeps 'YYYY-MM' with number = the year, never the day."""
    q = SURVEY.questions[0].model_copy(update={"kind": "year_month"})
    survey = SURVEY.model_copy(update={"questions": (q, *SURVEY.questions[1:])})
    state = machine.ResidentState(1, False, False, {"step": "ask", "q": q.code, "mode": "onboard"})
    data = encode("year", VERSION, q.code)
    out = machine.handle(postback(data, date="1990-11-30"), state, survey, VERSION)
    answer = next(op for op in out.ops if isinstance(op, machine.SetAnswer))
    assert answer.values == (("1990-11", 1990),)


def test_area_question_pages_stay_within_13_items() -> None:
    """N2: 15 areas + 回答しない page with 次へ / 前へ, ≤ 13 items each, every area reachable."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, postback(find(out, texts.SKIP)["data"]))  # birth year skipped
    out = send(resident, postback(find(out, texts.SKIP)["data"]))  # gender skipped
    seen: list[str] = []
    page1 = [a["label"] for a in items(out)]
    seen += page1
    out2 = send(resident, postback(find(out, texts.NEXT_PAGE)["data"]))
    seen += [a["label"] for a in items(out2)]
    back = send(resident, postback(find(out2, texts.PREV_PAGE)["data"]))
    assert [a["label"] for a in items(back)] == page1
    labels = {
        label for _, label in __import__("kairand.conversation.survey").conversation.survey.AREAS
    }
    assert labels <= set(seen) and texts.SKIP in seen
    assert resident.answers["birth_year"] == () and resident.answers["gender"] == ()


def test_multi_select_toggles_show_check_marks_and_need_one() -> None:
    """N2: topics toggle (✓ in the label); 完了 with nothing chosen asks for one."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, postback(find(out, texts.SKIP)["data"]))
    out = send(resident, postback(find(out, "男性")["data"]))
    out = send(resident, postback(find(out, "本町")["data"]))
    out = send(resident, postback(find(out, "イベント")["data"]))
    assert find(out, "✓ イベント")
    out = send(resident, postback(find(out, "✓ イベント")["data"]))  # untoggle
    assert find(out, "イベント")
    out = send(resident, postback(find(out, texts.FINISH)["data"]))
    assert out.replies[0]["text"] == texts.NEED_ONE and not resident.registered


@pytest.mark.parametrize(
    "data",
    [
        "a=ans&v=99&q=gender&o=female",  # stale survey version
        "a=ans&v=1&q=area&o=minato",  # not the current question
        "a=ans&v=1&q=gender&o=nonexistent",  # not an option
        "a=year&v=1&q=gender",  # wrong kind
        "drop table residents",  # forged
        "a=ans&v=1&q=gender&o=female&o=male",  # duplicate key
        "a=" + "x" * 400,  # too long
    ],
)
def test_stale_or_forged_postbacks_are_refused_politely(data: str) -> None:
    """N1: answers are validated against the current question; nothing is stored."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, postback(find(out, texts.SKIP)["data"]))  # now at gender
    before = dict(resident.answers)
    out = send(resident, postback(data))
    assert out.replies[0]["text"] == texts.STALE
    assert find(out, "女性")  # the current question is asked again
    assert resident.answers == before


def test_year_outside_range_is_refused() -> None:
    """S1: a date outside the question's range is not stored."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, postback(find(out, texts.PICK_YEAR)["data"], date="1800-01-01"))
    assert "1920" in out.replies[0]["text"] and "birth_year" not in resident.answers


def test_text_gets_guidance_and_is_not_an_answer() -> None:
    """G5: free text is never needed and not stored; the current question is shown again."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    out = send(resident, text("1985年生まれです"))
    assert texts.GUIDANCE in out.replies[0]["text"]
    # G6: only the fact is counted; nothing of the text is in any operation.
    assert out.ops == (machine.CountMetric(machine.UNANSWERED_METRIC),)
    assert find(out, texts.PICK_YEAR)


def test_media_is_never_fetched_and_gets_guidance() -> None:
    """G4: images/files are not collected: no operation, only a polite reply."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, Event("media", USER, 3, "tok"))
    assert out.ops == () and out.replies[0]["text"] == texts.MEDIA


def test_test_code_is_a_claim() -> None:
    """A staff test-recipient code is passed to the store; its reply depends on the result."""
    out = machine.handle(text(" kairan-123456 "), None, SURVEY, VERSION)
    assert out.ops == (machine.ClaimTestCode("KAIRAN-123456"),)
    assert machine.test_code_reply("tanaka")[0]["text"] == texts.TEST_CODE_OK
    assert machine.test_code_reply(None)[0]["text"] == texts.TEST_CODE_NG


def test_decline_then_register_later_from_settings() -> None:
    """S16: 同意しない stores nothing; 設定を変更 offers the purpose notice again."""
    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_NO)["data"]))
    assert out.replies[0]["text"] == texts.DECLINED and resident.consent_version is None
    out = send(resident, postback("a=settings"))
    assert find(out, texts.CONSENT_YES)
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    assert resident.consent_version == SURVEY.consent_version and find(out, texts.PICK_YEAR)


def test_edit_one_answer_from_settings() -> None:
    """N1: 設定を変更 → change one answer; the others stay; registration stays."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, postback("a=settings"))
    out = send(resident, postback(find(out, "性別を変更")["data"]))
    out = send(resident, postback(find(out, "その他")["data"]))
    assert out.replies[0]["text"] == texts.EDITED.format(title="性別")
    assert resident.answers["gender"] == (("other", None),)
    assert resident.answers["area"] == (("minato", None),) and resident.registered


def test_edit_multi_starts_from_current_choices() -> None:
    """N2: editing topics shows the current choices ticked."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, postback("a=settings"))
    out = send(resident, postback(find(out, "受け取りたい情報を変更")["data"]))
    assert find(out, "✓ 子育て") and find(out, "✓ 防災・防犯") and find(out, "イベント")


def test_restart_walks_every_question_again() -> None:
    """N1: 最初から回答し直す replaces answers question by question."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, text(texts.SETTINGS))
    out = send(resident, postback(find(out, texts.RESTART)["data"]))
    out = send(resident, postback(find(out, texts.PICK_YEAR)["data"], date="2001-01-02"))
    assert resident.answers["birth_year"] == (("2001", 2001),)
    assert find(out, "女性")


def test_stop_and_resume_deliveries() -> None:
    """N1: 配信停止 / 配信再開 (by button or text)."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, text(texts.STOP))
    assert resident.stopped and out.replies[0]["text"] == texts.STOPPED
    out = send(resident, postback("a=settings"))
    assert find(out, texts.RESUME)
    send(resident, postback("a=resume"))
    assert not resident.stopped


def test_delete_needs_confirmation_and_purges_with_reason_request() -> None:
    """S11: 登録情報を削除 → confirm → purge (reason request); cancel keeps everything."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, postback("a=settings"))
    out = send(resident, postback(find(out, texts.DELETE)["data"]))
    out = send(resident, postback(find(out, texts.DELETE_NO)["data"]))
    assert resident.registered and resident.purged == []
    out = send(resident, postback("a=delok"))  # without a pending confirmation
    assert out.replies[0]["text"] == texts.DELETE_EXPIRED and resident.purged == []
    out = send(resident, postback("a=del"))
    out = send(resident, postback(find(out, texts.DELETE_OK)["data"]))
    assert resident.purged == ["request"] and not resident.exists
    # Still a friend: a later tap offers a fresh registration, which needs consent again.
    out = send(resident, postback("a=settings"))
    out = send(resident, postback(find(out, texts.START)["data"]))
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    assert resident.exists and resident.consent_version is not None and not resident.registered


def test_unfollow_purges_and_refollow_starts_fresh() -> None:
    """S11: unfollow = purge; re-follow starts from the welcome with nothing kept."""
    resident = FakeResident()
    onboard(resident)
    out = send(resident, Event("unfollow", USER, 5, None))
    assert out.replies == () and resident.purged == ["unfollow"] and not resident.exists
    out = send(resident, follow())
    assert resident.answers == {} and out.replies[0]["text"] == SURVEY.welcome
    assert resident.metrics.count("follow") == 2 and "unfollow" in resident.metrics


def test_unknown_sender_is_offered_registration() -> None:
    """N1: someone without a record (e.g. a friend from before Kairan) can start."""
    out = machine.handle(postback("a=ans&v=1&q=gender&o=female"), None, SURVEY, VERSION)
    assert out.ops == () and find(out, texts.START)
    out = machine.handle(postback("a=start"), None, SURVEY, VERSION)
    assert out.ops == () and find(out, texts.CONSENT_YES)  # nothing stored before consent


def test_unknown_event_types_are_ignored() -> None:
    """LINE adds event types without notice: they are ignored (not handled)."""
    event = parse_event({"type": "membership", "source": {"type": "user", "userId": USER}})
    assert machine.handle(event, None, SURVEY, VERSION).handled is False
    group = parse_event({"type": "message", "source": {"type": "group", "groupId": "C1"}})
    assert group.kind == "other"


def test_postback_round_trip() -> None:
    """Postback data decodes to what was encoded and stays ≤ 300 characters."""
    data = encode("ans", 12, "area", "midorigaoka", 1)
    pb = decode(data)
    assert pb is not None and (pb.action, pb.version, pb.question, pb.option, pb.page) == (
        "ans",
        12,
        "area",
        "midorigaoka",
        1,
    )


EVENTS = st.one_of(
    st.builds(lambda: follow()),
    st.builds(lambda: Event("unfollow", USER, 1, None)),
    st.builds(text, st.sampled_from([*texts.TEXT_COMMANDS, "こんにちは", "KAIRAN-000000"])),
    st.builds(lambda: Event("media", USER, 1, "t")),
    st.builds(
        postback,
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "a=settings",
                    "a=restart",
                    "a=stop",
                    "a=resume",
                    "a=del",
                    "a=delok",
                    "a=delno",
                    "a=consent&v=1&o=yes",
                    "a=consent&v=1&o=no",
                    "a=ans&v=1&q=gender&o=male",
                    "a=ans&v=1&q=area&o=skip",
                    "a=page&v=1&q=area&p=1",
                    "a=tog&v=1&q=topics&o=gomi",
                    "a=done&v=1&q=topics",
                    "a=year&v=1&q=birth_year&o=skip",
                    "a=start",
                    "a=edit&v=1&q=area",
                ]
            ),
        ),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENTS, max_size=25))
def test_any_event_sequence_keeps_limits_and_invariants(events: list[Event]) -> None:
    """N1: whatever residents tap, replies respect LINE's limits, answers are always valid
    option codes of their question, and a registered resident has consented."""
    resident = FakeResident()
    for event in events:
        send(resident, event)
        for code, values in resident.answers.items():
            question = SURVEY.question(code)
            assert question is not None
            for value, number in values:
                if question.kind in ("choice", "multi"):
                    assert question.option(value) is not None
                else:
                    assert number is not None and value == str(number)
        if resident.registered:
            assert resident.consent_version is not None


def test_changed_purpose_notice_asks_for_consent_again() -> None:
    """S16: after the purpose notice changes (consent_version raised) a registered resident is
    asked again before anything else; declining stops deliveries; deleting stays possible."""
    resident = FakeResident()
    onboard(resident)
    newer = SURVEY.model_copy(update={"consent_version": 2})

    def send_newer(event: Event) -> machine.Outcome:
        outcome = machine.handle(event, resident.state(), newer, VERSION)
        resident.apply(outcome)
        check_messages(outcome.replies)
        return outcome

    out = send_newer(postback("a=settings"))
    assert out.replies[0]["text"] == texts.RECONSENT and find(out, texts.CONSENT_YES)
    out = send_newer(postback(find(out, texts.CONSENT_NO)["data"]))
    assert out.replies[0]["text"] == texts.RECONSENT_DECLINED and resident.stopped
    assert resident.registered and resident.consent_version == 1
    out = send_newer(postback("a=del"))  # deletion needs no new consent
    assert find(out, texts.DELETE_OK)
    out = send_newer(postback("a=delno"))
    out = send_newer(text("こんにちは"))
    out = send_newer(postback(find(out, texts.CONSENT_YES)["data"]))
    assert resident.consent_version == 2 and out.replies[0]["text"] == texts.COMPLETED_AGAIN


@pytest.mark.req("S10")
def test_answers_are_never_echoed_into_the_chat() -> None:
    """S10: answering the whole survey, no button that carries an answer has a displayText (LINE
    would post it into the chat as the resident's message), and no text the bot sends back —
    which LINE keeps in the chat history — names an answer: multi-select shows a count."""

    def kind(action: dict[str, Any]) -> str:
        decoded = decode(action.get("data", ""))
        return decoded.action if decoded else ""

    resident = FakeResident()
    out = send(resident, follow())
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    chosen: set[str] = set()
    outcomes = [out]
    for _ in range(40):
        if resident.registered:
            break
        actions = items(out)
        labels = [a["label"] for a in actions]
        if texts.PICK_YEAR in labels:
            out = send(resident, postback(find(out, texts.PICK_YEAR)["data"], date="1985-06-15"))
        elif texts.FINISH in labels:
            picks = [a for a in actions if kind(a) == "tog"]
            ticked = [a for a in picks if a["label"].startswith(texts.CHECK)]
            if len(ticked) >= 2:
                out = send(resident, postback(find(out, texts.FINISH)["data"]))
            else:
                pick = next(a for a in picks if not a["label"].startswith(texts.CHECK))
                chosen.add(pick["label"])
                out = send(resident, postback(pick["data"]))
        else:
            pick = next(a for a in actions if kind(a) == "ans" and a["label"] != texts.SKIP)
            chosen.add(pick["label"])
            out = send(resident, postback(pick["data"]))
        outcomes.append(out)
    assert resident.registered and len(chosen) >= 4
    # Question wording and purposes are fixed text (e.g. 「子育て」 in a purpose line): only a
    # label outside them would be an echo of the answer.
    fixed = "".join(q.text + q.purpose for q in SURVEY.questions)
    for outcome in outcomes:
        for reply in outcome.replies:
            text = reply.get("text", "")
            assert not [c for c in chosen if c in text and c not in fixed], reply
            for item in reply.get("quickReply", {}).get("items", []):
                action = item["action"]
                if kind(action) in ("ans", "tog", "year"):
                    assert "displayText" not in action, action
    # The positive control: the answers were stored (locally) all the same.
    assert len(resident.answers) == len(SURVEY.questions)


@pytest.mark.req("S16")
@pytest.mark.parametrize(
    "event",
    [postback("a=settings"), text(texts.SETTINGS), postback("a=restart"), postback("a=stop")],
    ids=["settings-postback", "settings-text", "restart", "stop"],
)
def test_settings_from_someone_without_a_record_stores_nothing(event: Event) -> None:
    """S16: 「設定を変更」 (typed or tapped) from someone Kairan has no record of offers
    登録を始める and stores nothing: only a follow (or the person's own consent) creates a
    resident."""
    resident = FakeResident()
    out = send(resident, event)
    assert out.ops == () and not resident.exists
    assert find(out, texts.START)


@pytest.mark.req("S16")
def test_start_without_a_record_asks_consent_before_storing_anything() -> None:
    """S16: 登録を始める shows the purpose of use and asks for consent, storing nothing; 同意しない
    stores nothing either; 同意する creates the resident with the consent and asks the first
    question."""
    resident = FakeResident()
    out = send(resident, postback("a=start"))
    assert out.ops == () and not resident.exists
    assert out.replies[0]["text"] == SURVEY.welcome and find(out, texts.CONSENT_YES)
    out = send(resident, postback(find(out, texts.CONSENT_NO)["data"]))
    assert out.ops == () and not resident.exists and out.replies[0]["text"] == texts.DECLINED
    out = send(resident, postback("a=start"))
    out = send(resident, postback(find(out, texts.CONSENT_YES)["data"]))
    assert resident.exists and resident.consent_version == SURVEY.consent_version
    assert resident.conversation["step"] == "ask" and find(out, texts.PICK_YEAR)
    assert "follow" not in resident.metrics


def _asked_gender(survey_version: int | None) -> machine.ResidentState:
    return machine.ResidentState(
        1,
        False,
        False,
        {"step": "ask", "q": "gender", "page": 0, "sel": [], "mode": "onboard"},
        survey_version=survey_version,
    )


DAY_MS = 24 * 3600 * 1000


@pytest.mark.req("N1")
def test_postback_older_than_the_configured_age_is_refused_politely() -> None:
    """N1: a postback whose event timestamp is two days old (max age one day) is not applied:
    the polite refusal and the current question again, no store operation."""
    now = 1_800_000_000_000
    old = Event("postback", USER, now - 2 * DAY_MS, "tok", data="a=ans&v=1&q=gender&o=female")
    out = machine.handle(
        old, _asked_gender(1), SURVEY, VERSION, now_ms=now, max_postback_age_ms=DAY_MS
    )
    assert out.ops == () and out.replies[0]["text"] == texts.STALE
    assert find(out, "女性")  # the current question again
    fresh = Event("postback", USER, now - 1000, "tok", data="a=ans&v=1&q=gender&o=female")
    out = machine.handle(
        fresh, _asked_gender(1), SURVEY, VERSION, now_ms=now, max_postback_age_ms=DAY_MS
    )
    assert machine.SetAnswer("gender", (("female", None),)) in out.ops


@pytest.mark.req("N1")
@pytest.mark.parametrize(
    "data", ["a=ans&v=2&q=gender&o=female", "a=edit&v=2&q=area", "a=consent&v=2&o=yes"]
)
def test_postback_of_a_survey_version_never_shown_is_refused(data: str) -> None:
    """N1: the survey is now version 2 but this resident was last shown version 1; a postback
    carrying version 2 cannot come from a button they saw: refused politely, nothing stored."""
    asking = {"step": "ask", "q": "gender", "page": 0, "sel": [], "mode": "edit"}
    conversation = {"step": "consent"} if data.startswith("a=consent") else asking
    resident = machine.ResidentState(1, True, False, conversation, survey_version=1)
    out = machine.handle(postback(data), resident, SURVEY, 2)
    assert out.ops == () and out.replies[0]["text"] == texts.STALE
    shown = machine.ResidentState(1, True, False, dict(resident.conversation), survey_version=2)
    assert machine.handle(postback(data), shown, SURVEY, 2).ops != ()


def test_a_follow_from_a_friend_is_not_counted_as_a_new_friend() -> None:
    """The dashboard showed 469 friends added today against 314 friends and
    no blocks: a follow event from someone already a friend (a restarted simulator re-sends
    them) counted again. Only a follow that makes a new friend counts."""
    resident = FakeResident()
    onboard(resident)
    assert resident.metrics.count("follow") == 1
    send(resident, follow())
    assert resident.metrics.count("follow") == 1
