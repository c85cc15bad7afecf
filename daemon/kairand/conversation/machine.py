"""The conversation state machine: (event, resident state, survey) → replies + store operations.

Pure: no I/O, no clock (the caller passes `now`), no LINE SDK (replies are LINE message dicts).
The resident's position in the conversation is a small JSON object kept in
`residents.conversation`:

    {"step": "consent" | "declined" | "ask" | "confirm_delete" | "done",
     "q": question code (ask), "page": quick-reply page, "sel": [codes] (multi-select so far),
     "mode": "onboard" | "restart" | "edit", "back": the state to return to (confirm_delete)}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kairand.conversation import texts
from kairand.conversation.events import Event
from kairand.conversation.postback import Postback, decode, encode
from kairand.conversation.survey import Question, SurveyDefinition

MAX_QUICK_REPLY = 13
MAX_LABEL = 20
# Same shape as kairand.store.test_recipients.CODE_RE (the pure core may not import the store).
TEST_CODE_RE = re.compile(r"^KAIRAN-[0-9]{6}$")
_DATE_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")

Message = dict[str, Any]


# --- inputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentState:
    consent_version: int | None
    registered: bool
    deliveries_stopped: bool
    conversation: Mapping[str, Any]
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    survey_version: int | None = None
    """The survey version of the last buttons shown to the resident (None: not recorded)."""


# --- outputs: store operations --------------------------------------------------------------


@dataclass(frozen=True)
class StartResident:
    """Create the resident, or reset an existing one to a fresh state (re-follow)."""


@dataclass(frozen=True)
class SetConsent:
    version: int


@dataclass(frozen=True)
class SetConversation:
    state: Mapping[str, Any]


@dataclass(frozen=True)
class SetAnswer:
    """Replace the answers to QUESTION (empty values: the resident chose 回答しない)."""

    question: str
    values: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True)
class MarkRegistered:
    pass


@dataclass(frozen=True)
class SetDeliveriesStopped:
    stopped: bool


@dataclass(frozen=True)
class Purge:
    reason: str  # "unfollow" | "request"


@dataclass(frozen=True)
class ClaimTestCode:
    """Register the sender as a staff test recipient; reply with `test_code_reply(result)`."""

    code: str


@dataclass(frozen=True)
class CountMetric:
    metric: str


Operation = (
    StartResident
    | SetConsent
    | SetConversation
    | SetAnswer
    | MarkRegistered
    | SetDeliveriesStopped
    | Purge
    | ClaimTestCode
    | CountMetric
)


UNANSWERED_METRIC = "unanswered_message"
"""Daily counter of free-text messages the account could not answer (G6)."""


@dataclass(frozen=True)
class Outcome:
    replies: tuple[Message, ...] = ()
    ops: tuple[Operation, ...] = ()
    handled: bool = True
    """False for events Kairan ignores (unknown types, groups): the inbox marks them ignored."""


# --- message builders -----------------------------------------------------------------------


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def postback_item(label: str, data: str, display: str | None = None) -> Message:
    """A quick-reply postback button. Without DISPLAY, LINE posts nothing into the chat when it
    is tapped: every button that carries an answer or a reception setting is made so (S10);
    DISPLAY only for steps that reveal nothing (consent, menus, 完了). The program dialogue
    builds its buttons with this too."""
    action: Message = {"type": "postback", "label": _label(label), "data": data}
    if display is not None:
        action["displayText"] = display
    return {"type": "action", "action": action}


def _text(text: str, items: Sequence[Message] = ()) -> Message:
    message: Message = {"type": "text", "text": text}
    if items:
        assert len(items) <= MAX_QUICK_REPLY
        message["quickReply"] = {"items": list(items)}
    return message


def test_code_reply(staff_username: str | None) -> tuple[Message, ...]:
    """Replies for a test-recipient code claim, once the store said whether it worked."""
    return (_text(texts.TEST_CODE_OK if staff_username else texts.TEST_CODE_NG),)


def _pages(entries: list[Message], fixed: list[Message]) -> list[list[Message]]:
    """Split ENTRIES into quick-reply pages of ≤ 13 items each, FIXED items on every page and
    room kept for 「前へ」/「次へ」 when more than one page is needed."""
    if len(entries) + len(fixed) <= MAX_QUICK_REPLY:
        return [entries]
    size = MAX_QUICK_REPLY - len(fixed) - 2
    return [entries[i : i + size] for i in range(0, len(entries), size)]


def _question_prompt(
    survey: SurveyDefinition, version: int, question: Question, page: int, selected: Sequence[str]
) -> list[Message]:
    index = survey.questions.index(question) + 1
    lines = [
        texts.QUESTION_HEADER.format(i=index, n=len(survey.questions)) + question.text,
        texts.PURPOSE_LINE.format(purpose=question.purpose),
    ]
    items: list[Message] = []
    if question.kind in ("year", "year_month"):
        label = texts.PICK_YEAR if question.kind == "year" else texts.PICK_YEAR_MONTH
        lines.append(texts.YEAR_HINT.format(label=label))
        initial_year = min(max(1980, question.min_year), question.max_year)
        picker = {
            "type": "datetimepicker",
            "label": label,
            "data": encode("year", version, question.code),
            "mode": "date",
            "initial": f"{initial_year}-01-01",
            "min": f"{question.min_year}-01-01",
            "max": f"{question.max_year}-12-31",
        }
        items.append({"type": "action", "action": picker})
        if question.allow_skip:
            items.append(postback_item(texts.SKIP, encode("year", version, question.code, "skip")))
        return [_text("\n".join(lines), items)]

    fixed: list[Message] = []
    entries: list[Message] = []
    if question.kind == "choice":
        for option in question.options:
            data = encode("ans", version, question.code, option.code)
            # S10: no displayText on anything that carries an answer, so LINE does not post
            # the choice into the chat as the resident's message.
            entries.append(postback_item(option.label, data))
        if question.allow_skip:
            entries.append(postback_item(texts.SKIP, encode("ans", version, question.code, "skip")))
    else:  # multi
        chosen = set(selected)
        for option in question.options:
            mark = texts.CHECK if option.code in chosen else ""
            data = encode("tog", version, question.code, option.code)
            entries.append(postback_item(mark + option.label, data))
        fixed.append(
            postback_item(texts.FINISH, encode("done", version, question.code), texts.FINISH)
        )
        # S10: the chat history keeps the bot's text: it says how many, never which.
        count = sum(1 for o in question.options if o.code in chosen)
        lines.append(texts.SELECTED.format(n=count) if count else texts.SELECTED_NONE)
    pages = _pages(entries, fixed)
    page = min(max(page, 0), len(pages) - 1)
    items = list(pages[page])
    if len(pages) > 1:
        lines.append(texts.PAGE_LINE.format(page=page + 1, pages=len(pages)))
        if page > 0:
            items.append(
                postback_item(
                    texts.PREV_PAGE, encode("page", version, question.code, page=page - 1)
                )
            )
        if page < len(pages) - 1:
            items.append(
                postback_item(
                    texts.NEXT_PAGE, encode("page", version, question.code, page=page + 1)
                )
            )
    items.extend(fixed)
    return [_text("\n".join(lines), items)]


def _consent_prompt(survey: SurveyDefinition, version: int) -> Message:
    return _text(
        survey.purpose_notice,
        [
            postback_item(
                texts.CONSENT_YES, encode("consent", version, option="yes"), texts.CONSENT_YES
            ),
            postback_item(
                texts.CONSENT_NO, encode("consent", version, option="no"), texts.CONSENT_NO
            ),
        ],
    )


def _settings_menu(survey: SurveyDefinition, version: int, resident: ResidentState) -> Message:
    status = texts.STATUS_OFF if resident.deliveries_stopped else texts.STATUS_ON
    items = [postback_item(texts.RESTART, encode("restart"), texts.RESTART)]
    if resident.registered:
        editable = survey.questions[: MAX_QUICK_REPLY - 3]
        for question in editable:
            label = f"{question.title}を変更"
            items.append(
                postback_item(label, encode("edit", version, question.code), _label(label))
            )
    if resident.deliveries_stopped:
        items.append(postback_item(texts.RESUME, encode("resume"), texts.RESUME))
    else:
        items.append(postback_item(texts.STOP, encode("stop"), texts.STOP))
    items.append(postback_item(texts.DELETE, encode("del"), texts.DELETE))
    return _text(texts.SETTINGS_MENU.format(status=status), items)


def _confirm_delete() -> Message:
    return _text(
        texts.CONFIRM_DELETE,
        [
            postback_item(texts.DELETE_OK, encode("delok"), texts.DELETE_OK),
            postback_item(texts.DELETE_NO, encode("delno"), texts.DELETE_NO),
        ],
    )


def _start_offer() -> Message:
    return _text(texts.NOT_REGISTERED, [postback_item(texts.START, encode("start"), texts.START)])


# --- the machine ----------------------------------------------------------------------------


class _Machine:
    def __init__(
        self, survey: SurveyDefinition, version: int, resident: ResidentState | None
    ) -> None:
        self.survey = survey
        self.version = version
        self.resident = resident
        self.conv: dict[str, Any] = dict(resident.conversation) if resident else {}

    # state helpers

    def _answers(self, code: str) -> tuple[str, ...]:
        return self.resident.answers.get(code, ()) if self.resident else ()

    def _current_question(self) -> Question | None:
        code = self.conv.get("q")
        return self.survey.question(code) if isinstance(code, str) else None

    def _ask(
        self, question: Question, mode: str, page: int = 0, sel: Sequence[str] = ()
    ) -> dict[str, Any]:
        return {"step": "ask", "q": question.code, "page": page, "sel": list(sel), "mode": mode}

    def _ask_state_for(self, question: Question, mode: str) -> dict[str, Any]:
        sel = self._answers(question.code) if question.kind == "multi" else ()
        return self._ask(question, mode, 0, sel)

    def reprompt(self) -> list[Message]:
        """The messages that show the resident where they are (after guidance or a stale tap)."""
        step = self.conv.get("step")
        if step == "consent":
            return [_consent_prompt(self.survey, self.version)]
        if step == "confirm_delete":
            return [_confirm_delete()]
        if step == "ask":
            question = self._current_question()
            if question is not None:
                return _question_prompt(
                    self.survey,
                    self.version,
                    question,
                    int(self.conv.get("page", 0)),
                    self.conv.get("sel", []),
                )
        return []

    def _prompt_state(self, state: Mapping[str, Any]) -> list[Message]:
        self.conv = dict(state)
        return self.reprompt()

    # flows

    def fresh_start(self, follow: bool) -> Outcome:
        state = {"step": "consent"}
        ops: list[Operation] = [StartResident(), SetConversation(state)]
        if follow and self.resident is None:
            # The dashboard's 友だち追加 counts new friends: a follow from someone who is a
            # friend already (LINE sends none without an unfollow between; a restarted
            # simulator does) is not a new friend, so follows never exceed 友だち.
            ops.append(CountMetric("follow"))
        replies = [_text(self.survey.welcome), _consent_prompt(self.survey, self.version)]
        return Outcome(tuple(replies), tuple(ops))

    def _first_question_state(self, mode: str) -> dict[str, Any]:
        return self._ask_state_for(self.survey.questions[0], mode)

    def _after_answer(self, question: Question, answer_ops: list[Operation]) -> Outcome:
        assert self.resident is not None
        mode = self.conv.get("mode", "onboard")
        ops = list(answer_ops)
        replies: list[Message] = []
        if mode == "edit" and self.resident.registered:
            state = {"step": "done"}
            ops.append(SetConversation(state))
            replies.append(_text(texts.EDITED.format(title=question.title)))
            return Outcome(tuple(replies), tuple(ops))
        index = self.survey.questions.index(question)
        if index + 1 < len(self.survey.questions):
            state = self._ask_state_for(self.survey.questions[index + 1], mode)
            ops.append(SetConversation(state))
            return Outcome(tuple(self._prompt_state(state)), tuple(ops))
        ops.append(SetConversation({"step": "done"}))
        if self.resident.registered:
            replies.append(_text(texts.COMPLETED_AGAIN))
        else:
            ops += [MarkRegistered(), CountMetric("registered")]
            replies.append(_text(self.survey.completion))
        return Outcome(tuple(replies), tuple(ops))

    def stale(self, message: str = texts.STALE) -> Outcome:
        # The survey may have changed under a resident who is mid-way: restart its questions.
        if self.conv.get("step") == "ask" and self._current_question() is None:
            state = self._first_question_state(str(self.conv.get("mode", "onboard")))
            replies = [_text(texts.QUESTIONS_CHANGED), *self._prompt_state(state)]
            return Outcome(tuple(replies[:5]), (SetConversation(state),))
        return Outcome(tuple([_text(message), *self.reprompt()][:5]))

    def guidance(self, message: str) -> Outcome:
        extra = self.reprompt()
        if extra:
            return Outcome(tuple([_text(message + "\n" + texts.USE_BUTTONS), *extra][:5]))
        return Outcome((_text(message),))

    def on_answer(self, pb: Postback, event: Event) -> Outcome:
        if pb.version != self.version or self.conv.get("step") != "ask":
            return self.stale()
        question = self._current_question()
        if question is None or question.code != pb.question:
            return self.stale()
        mode = str(self.conv.get("mode", "onboard"))
        if pb.action == "page":
            state = {**self.conv, "page": pb.page}
            return Outcome(tuple(self._prompt_state(state)), (SetConversation(state),))
        if question.kind == "choice" and pb.action == "ans":
            if pb.option == "skip" and question.allow_skip:
                return self._after_answer(question, [SetAnswer(question.code, ())])
            if question.option(pb.option) is None:
                return self.stale()
            return self._after_answer(question, [SetAnswer(question.code, ((pb.option, None),))])
        if question.kind == "multi" and pb.action == "tog":
            if question.option(pb.option) is None:
                return self.stale()
            sel = list(self.conv.get("sel", []))
            sel = [c for c in sel if c != pb.option] if pb.option in sel else [*sel, pb.option]
            # Keep the definition's order so labels and stored rows are stable.
            order = [o.code for o in question.options]
            sel = sorted(set(sel) & set(order), key=order.index)
            state = {**self.conv, "sel": sel, "mode": mode}
            return Outcome(tuple(self._prompt_state(state)), (SetConversation(state),))
        if question.kind == "multi" and pb.action == "done":
            sel = [c for c in self.conv.get("sel", []) if question.option(c) is not None]
            if not sel and not question.allow_skip:
                return Outcome(tuple([_text(texts.NEED_ONE), *self.reprompt()]))
            values = tuple((c, None) for c in sel)
            return self._after_answer(question, [SetAnswer(question.code, values)])
        if question.kind in ("year", "year_month") and pb.action == "year":
            if pb.option == "skip" and question.allow_skip:
                return self._after_answer(question, [SetAnswer(question.code, ())])
            match = _DATE_RE.match(event.params.get("date", ""))
            if pb.option or match is None:
                return self.stale()
            year, month = int(match.group(1)), int(match.group(2))
            if not (question.min_year <= year <= question.max_year) or not 1 <= month <= 12:
                message = texts.INVALID_YEAR.format(min=question.min_year, max=question.max_year)
                return Outcome(tuple([_text(message), *self.reprompt()]))
            # Only the year (or year and month) is kept; the day is dropped here (S1).
            value = f"{year:04d}" if question.kind == "year" else f"{year:04d}-{month:02d}"
            return self._after_answer(question, [SetAnswer(question.code, ((value, year),))])
        return self.stale()

    def on_command(self, action: str, pb: Postback | None) -> Outcome:
        resident = self.resident
        if resident is None:
            # S16: only a follow or the person's own consent creates a record. 登録を始める
            # shows the purpose of use and asks for consent, storing nothing; anything else
            # (設定を変更 typed or tapped, an old button) offers 登録を始める.
            if action == "start":
                welcome = _text(self.survey.welcome)
                return Outcome((welcome, _consent_prompt(self.survey, self.version)))
            return Outcome((_start_offer(),))
        consented = resident.consent_version is not None
        if action in ("start", "settings", "restart") and not consented:
            state = {"step": "consent"}
            replies = [_text(texts.NEED_CONSENT_FIRST), _consent_prompt(self.survey, self.version)]
            return Outcome(tuple(replies), (SetConversation(state),))
        if action in ("start", "settings"):
            return Outcome((_settings_menu(self.survey, self.version, resident),))
        if action == "restart":
            state = self._first_question_state("restart")
            return Outcome(tuple(self._prompt_state(state)), (SetConversation(state),))
        if action == "edit":
            assert pb is not None
            question = self.survey.question(pb.question)
            if pb.version != self.version or question is None or not resident.registered:
                return Outcome(
                    (_text(texts.STALE), _settings_menu(self.survey, self.version, resident))
                )
            state = self._ask_state_for(question, "edit")
            return Outcome(tuple(self._prompt_state(state)), (SetConversation(state),))
        if action == "stop":
            if resident.deliveries_stopped:
                return Outcome((_text(texts.ALREADY_STOPPED),))
            return Outcome((_text(texts.STOPPED),), (SetDeliveriesStopped(True),))
        if action == "resume":
            if not resident.deliveries_stopped:
                return Outcome((_text(texts.ALREADY_RESUMED),))
            return Outcome((_text(texts.RESUMED),), (SetDeliveriesStopped(False),))
        if action == "del":
            back = (
                self.conv
                if self.conv.get("step") != "confirm_delete"
                else self.conv.get("back", {})
            )
            confirm: dict[str, Any] = {"step": "confirm_delete", "back": dict(back)}
            return Outcome((_confirm_delete(),), (SetConversation(confirm),))
        if action == "delok":
            if self.conv.get("step") != "confirm_delete":
                return Outcome((_text(texts.DELETE_EXPIRED),))
            return Outcome((_text(texts.DELETED),), (Purge("request"),))
        if action == "delno":
            if self.conv.get("step") != "confirm_delete":
                return Outcome((_text(texts.DELETE_CANCELLED),))
            back = dict(self.conv.get("back") or {"step": "done"})
            replies = [_text(texts.DELETE_CANCELLED), *self._prompt_state(back)]
            return Outcome(tuple(replies[:5]), (SetConversation(back),))
        return self.stale()

    def consent_without_record(self, pb: Postback) -> Outcome:
        """The answer to the consent prompt shown by 登録を始める to someone without a record:
        同意する creates the resident with the consent (S16: collected directly from the person,
        after the purpose was stated); 同意しない stores nothing."""
        if pb.version != self.version or pb.option not in ("yes", "no"):
            return Outcome((_text(texts.STALE), _start_offer()))
        if pb.option == "no":
            return Outcome((_text(texts.DECLINED),))
        state = self._first_question_state("onboard")
        ops: list[Operation] = [
            StartResident(),
            SetConsent(self.survey.consent_version),
            SetConversation(state),
        ]
        thanks = _text(texts.CONSENT_THANKS.format(n=len(self.survey.questions)))
        return Outcome(tuple([thanks, *self._prompt_state(state)]), tuple(ops))

    def on_consent(self, pb: Postback) -> Outcome:
        if self.resident is None:
            return self.consent_without_record(pb)
        if pb.version != self.version or self.conv.get("step") not in ("consent", "declined"):
            return self.stale()
        if pb.option == "no":
            declined = SetConversation({"step": "declined"})
            if self.resident.registered:
                # Declining a changed purpose: nothing more is sent until they agree (or delete).
                return Outcome(
                    (_text(texts.RECONSENT_DECLINED),), (declined, SetDeliveriesStopped(True))
                )
            return Outcome((_text(texts.DECLINED),), (declined,))
        if pb.option != "yes":
            return self.stale()
        ops: list[Operation] = [SetConsent(self.survey.consent_version)]
        if self.resident.registered:
            ops.append(SetConversation({"step": "done"}))
            return Outcome((_text(texts.COMPLETED_AGAIN),), tuple(ops))
        state = self._first_question_state("onboard")
        ops.append(SetConversation(state))
        thanks = _text(texts.CONSENT_THANKS.format(n=len(self.survey.questions)))
        return Outcome(tuple([thanks, *self._prompt_state(state)]), tuple(ops))


# What a resident may still do before agreeing to a changed purpose notice.
_WITHOUT_RECONSENT = frozenset({"consent", "stop", "del", "delok", "delno"})


def _needs_reconsent(
    event: Event, resident: ResidentState | None, survey: SurveyDefinition
) -> bool:
    """S16: when the purpose notice changed in substance (consent_version raised), a resident
    who agreed to an older one is asked again before anything else is collected."""
    if resident is None or resident.consent_version is None:
        return False
    if resident.consent_version >= survey.consent_version:
        return False
    if event.kind == "postback":
        pb = decode(event.data)
        return pb is None or pb.action not in _WITHOUT_RECONSENT
    if event.kind == "text":
        action = texts.TEXT_COMMANDS.get(event.text.strip())
        return action not in _WITHOUT_RECONSENT
    return event.kind == "media"


def _refused_postback(
    event: Event,
    pb: Postback | None,
    resident: ResidentState | None,
    version: int,
    now_ms: int | None,
    max_age_ms: int | None,
) -> bool:
    """A postback Kairan will not act on although its data is well-formed: older than the
    configured age (a button tapped long ago, or a replay), or carrying a survey version the
    resident was never shown (only the current version, and only once they were shown it)."""
    if now_ms is not None and max_age_ms is not None and event.timestamp < now_ms - max_age_ms:
        return True
    if pb is None or pb.version is None:
        return False
    if pb.version != version:
        return pb.action not in _ANSWERS  # old answers have their own path (survey changed)
    shown = resident.survey_version if resident is not None else None
    return shown is not None and shown != pb.version


_ANSWERS = frozenset({"ans", "page", "tog", "done", "year"})


def handle(
    event: Event,
    resident: ResidentState | None,
    survey: SurveyDefinition,
    version: int,
    consult_reply: str = texts.GUIDANCE,
    *,
    now_ms: int | None = None,
    max_postback_age_ms: int | None = None,
) -> Outcome:
    """Decide what one event does. RESIDENT is None when the sender has no record. With
    NOW_MS and MAX_POSTBACK_AGE_MS, postbacks older than that age are refused politely.
    CONSULT_REPLY answers free text the account cannot handle (G6, from the configuration)."""
    machine = _Machine(survey, version, resident)
    if event.kind == "postback":
        pb = decode(event.data)
        if _refused_postback(event, pb, resident, version, now_ms, max_postback_age_ms):
            if resident is None:
                return Outcome((_text(texts.STALE), _start_offer()))
            return machine.stale()
    is_test_code = event.kind == "text" and TEST_CODE_RE.match(event.text.strip().upper())
    if not is_test_code and _needs_reconsent(event, resident, survey):
        replies = (_text(texts.RECONSENT), _consent_prompt(survey, version))
        return Outcome(replies, (SetConversation({"step": "consent"}),))
    if event.kind == "unfollow":
        # S11: blocking deletes everything (the purge writes the receipt).
        return Outcome((), (Purge("unfollow"), CountMetric("unfollow")))
    if event.kind == "follow":
        return machine.fresh_start(follow=True)
    if event.kind == "text":
        text = event.text.strip()
        if TEST_CODE_RE.match(text.upper()):
            return Outcome((), (ClaimTestCode(text.upper()),))
        action = texts.TEXT_COMMANDS.get(text)
        if action is not None:
            return machine.on_command(action, None)
        # G6: a consultation gets the configured contacts at once; the text itself is never
        # stored (the inbox empties the event body) and only the fact is counted.
        counted = (CountMetric(UNANSWERED_METRIC),)
        if resident is None:
            return Outcome((_text(consult_reply), _start_offer()), counted)
        guided = machine.guidance(consult_reply)
        return Outcome(guided.replies, guided.ops + counted)
    if event.kind == "media":
        if resident is None:
            return Outcome((_text(texts.MEDIA),))
        return machine.guidance(texts.MEDIA)
    if event.kind == "postback":
        pb = decode(event.data)
        if pb is None:
            if resident is None:
                return Outcome((_start_offer(),))
            return machine.stale()
        if pb.action in _ANSWERS:
            if resident is None:
                return Outcome((_start_offer(),))
            return machine.on_answer(pb, event)
        if pb.action == "consent":
            return machine.on_consent(pb)
        return machine.on_command(pb.action, pb)
    return Outcome(handled=False)
