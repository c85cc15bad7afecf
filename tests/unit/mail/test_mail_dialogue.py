"""The 空メール registration dialogue as a table of (state, mail) -> outcome (K9)."""

from __future__ import annotations

import pytest

from kairand.conversation.survey import Option, Question, default_survey
from kairand.mail import dialogue
from kairand.mail.dialogue import Inbound, Subscriber, step

SURVEY = default_survey()
QUESTIONS = SURVEY.questions


def mail(body: str = "", subject: str = "", authenticated: bool = True) -> Inbound:
    return Inbound(authenticated, subject, body)


def run(state: Subscriber | None, m: Inbound) -> dialogue.Outcome:
    return step(state, m, SURVEY, lambda: "482913", lambda: "tok_" + "x" * 20)


CONFIRMING = Subscriber("confirming", "tok_" + "x" * 20, confirm_code="482913")
ASKING_0 = Subscriber("asking", "tok_" + "x" * 20, question=0)
REGISTERED = Subscriber("registered", "tok_" + "x" * 20, answers={"gender": ("female",)})


@pytest.mark.req("K9")
@pytest.mark.parametrize(
    ("state", "inbound", "event", "stage", "deleted"),
    [
        # 空メール from a stranger: a confirmation code is sent, nothing registered yet.
        (None, mail(), "started", "confirming", False),
        (None, mail("こんにちは"), "started", "confirming", False),
        # A mail the relay did not authenticate is refused, whatever it says, without reply.
        (None, mail(authenticated=False), "refused", None, False),
        (REGISTERED, mail("停止", authenticated=False), "refused", None, False),
        # A stranger's stop gets no reply (no backscatter) and stores nothing.
        (None, mail("停止"), "ignored", None, False),
        # The confirmation round trip: only the code that went to the address confirms.
        (CONFIRMING, mail("", "Re: 【登録確認】確認コード 482913"), "confirmed", "asking", False),
        (CONFIRMING, mail("482913"), "confirmed", "asking", False),
        (CONFIRMING, mail("123456"), "code_wrong", "confirming", False),
        (CONFIRMING, mail(""), "code_wrong", "confirming", False),
        # Answers: year with 4 digits (full-width too), 0 skips.
        (ASKING_0, mail("1985"), "answered", "asking", False),
        (ASKING_0, mail("１９８５"), "answered", "asking", False),
        (ASKING_0, mail("0"), "answered", "asking", False),
        (ASKING_0, mail("1800"), "invalid", "asking", False),
        (ASKING_0, mail("わかりません"), "invalid", "asking", False),
        (ASKING_0, mail("> 1985\n> quoted"), "invalid", "asking", False),
        # Registered: change, help, stop.
        (REGISTERED, mail("変更"), "change", "asking", False),
        (REGISTERED, mail("よろしく"), "help", "registered", False),
        (REGISTERED, mail("停止"), "stopped", None, True),
        (REGISTERED, mail("", "stop-tok_" + "x" * 20), "stopped", None, True),
        (CONFIRMING, mail("停止"), "stopped", None, True),
        # A wrong stop token does not stop (and is not mistaken for an answer).
        (REGISTERED, mail("", "stop-tok_" + "y" * 20), "help", "registered", False),
        # A bounced address that writes is alive again.
        (
            Subscriber("bounced", "tok_" + "x" * 20),
            mail("こんにちは"),
            "help",
            "registered",
            False,
        ),
    ],
)
def test_dialogue_table(
    state: Subscriber | None, inbound: Inbound, event: str, stage: str | None, deleted: bool
) -> None:
    outcome = run(state, inbound)
    assert outcome.event == event
    assert (outcome.state.stage if outcome.state else None) == stage
    assert outcome.delete is deleted
    if event in ("refused", "ignored"):
        assert outcome.replies == ()
    else:
        assert outcome.replies or event == "abandoned"


@pytest.mark.req("K9")
def test_confirmation_mail_carries_code_and_purpose_but_registers_nothing() -> None:
    outcome = run(None, mail())
    assert outcome.state is not None and outcome.state.confirm_code == "482913"
    (reply,) = outcome.replies
    assert "482913" in reply.subject
    assert SURVEY.purpose_notice in reply.body
    assert outcome.state.answers == {}


@pytest.mark.req("K9")
def test_forged_sender_cannot_confirm_without_the_code() -> None:
    """Five guesses without the code end the pending registration (deleted, no reply)."""
    state: Subscriber | None = CONFIRMING
    events = []
    for guess in ("000000", "111111", "222222", "333333", "444444"):
        assert state is not None
        outcome = run(state, mail(guess))
        events.append(outcome.event)
        state = outcome.state
    assert events == ["code_wrong"] * 4 + ["abandoned"]
    assert state is None


@pytest.mark.req("K9")
def test_whole_survey_one_question_at_a_time_uses_the_line_survey() -> None:
    state: Subscriber | None = run(CONFIRMING, mail("482913")).state
    replies_seen: list[str] = []
    answers_by_kind = {"year": "1985", "choice": "2", "multi": "1, 3"}
    for index, question in enumerate(QUESTIONS):
        assert state is not None and state.stage == "asking" and state.question == index
        outcome = run(state, mail(answers_by_kind[question.kind]))
        replies_seen.append(outcome.replies[0].subject)
        state = outcome.state
    assert state is not None and state.stage == "registered"
    assert outcome.event == "completed"
    area = next(q for q in QUESTIONS if q.code == "area")
    topics = next(q for q in QUESTIONS if q.code == "topics")
    assert state.answers["area"] == (area.options[1].code,)
    assert state.answers["topics"] == (topics.options[0].code, topics.options[2].code)
    assert state.answers["birth_year"] == ("1985",)
    assert SURVEY.completion in outcome.replies[0].body


@pytest.mark.req("K9")
def test_question_mail_lists_numbered_options_and_skip() -> None:
    gender_index = next(i for i, q in enumerate(QUESTIONS) if q.code == "gender")
    question = QUESTIONS[gender_index]
    state = Subscriber("asking", "t" * 20, question=gender_index)
    reply = run(state, mail("9")).replies[0]
    assert "1〜" in reply.body  # the error says which numbers are allowed
    for n, option in enumerate(question.options, start=1):
        assert f"{n}. {option.label}" in reply.body
    assert "0. 回答しない" in reply.body
    assert question.purpose in reply.body


@pytest.mark.req("K9")
@pytest.mark.parametrize(
    ("line", "expected"),
    [("2", ("b",)), ("1 3", ("a", "c")), ("3,1,3", ("a", "c")), ("0", ()), ("4", None)],
)
def test_multi_answers(line: str, expected: tuple[str, ...] | None) -> None:
    question = Question(
        code="q",
        kind="multi",
        title="t",
        text="t",
        purpose="p",
        options=(
            Option(code="a", label="A"),
            Option(code="b", label="B"),
            Option(code="c", label="C"),
        ),
    )
    parsed = dialogue.parse_answer(question, line)
    if expected is None:
        assert isinstance(parsed, str)
    else:
        assert parsed == expected


@pytest.mark.req("K9")
def test_choice_takes_exactly_one_number() -> None:
    gender = next(q for q in QUESTIONS if q.code == "gender")
    assert dialogue.parse_answer(gender, "1 2") == dialogue.ONLY_ONE


@pytest.mark.req("K9")
def test_the_child_safety_program_survey_can_be_answered_by_mail() -> None:
    """The mail dialogue takes any SurveyDefinition: the child-safety program's questions
    (school districts as a multi-choice) are answered by number like the main survey."""
    from kairand.programs.catalogue import child_safety
    from kairand.programs.model import District, program_survey

    districts = [
        District("d01", "本町小学校区", "ほんまち", "j01", "第一中学校"),
        District("d02", "北町小学校区", "きたまち", "j01", "第一中学校"),
        District("d03", "南町小学校区", "みなみまち", "j02", "第二中学校"),
    ]
    survey = program_survey(child_safety(), districts)
    state: Subscriber | None = Subscriber("asking", "t" * 20)
    first = survey.questions[0]
    assert first.kind == "multi" and [o.label for o in first.options][:1] == ["本町小学校区"]
    outcome = step(state, mail("1 3"), survey, lambda: "1", lambda: "t")
    assert outcome.answered == (first.code, ("d01", "d03"))
    state = outcome.state
    for question in survey.questions[1:]:
        assert state is not None
        answer = "0" if question.allow_skip else ("1" if question.options else "2015")
        outcome = step(state, mail(answer), survey, lambda: "1", lambda: "t")
        assert outcome.event in ("answered", "completed"), outcome.replies
        state = outcome.state
    assert state is not None and state.stage == "registered"
