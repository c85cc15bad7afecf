"""空メール registration and the survey by mail, as a pure state machine (K9).

`step(subscriber, mail, survey, new_code, new_token)` takes what the store knows about the
sender (None for a stranger), one parsed inbound mail and the SAME survey definition as LINE
(kairand.conversation.survey), and returns what to store and what to reply. No I/O: the intake
shell (kairand.mail.intake) loads, calls, stores, sends.

Rules:
- A mail whose sender did not pass the relay's SPF/DKIM/DMARC check is refused without any
  reply (no backscatter to forged senders).
- A stranger's mail (usually empty: 空メール) starts a registration: the reply carries a
  confirmation code in its subject. Nothing is registered until a mail comes back FROM that
  address containing the code, so a forged sender cannot register someone else: the code only
  reaches the real owner of the address.
- Then one question at a time: a choice is answered with its number, several choices with
  numbers separated by spaces or commas, a year with four digits; 0 skips when allowed.
- 変更 asks the questions again; 停止 (or the one-step stop token of List-Unsubscribe) deletes
  the subscriber and its answers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from kairand.conversation.survey import Question, SurveyDefinition

Stage = Literal["confirming", "asking", "registered", "bounced"]
Event = Literal[
    "refused",
    "started",
    "confirmed",
    "code_wrong",
    "abandoned",
    "answered",
    "invalid",
    "completed",
    "change",
    "help",
    "stopped",
    "ignored",
]

MAX_CODE_ATTEMPTS = 5
STOP_WORDS = ("停止", "配信停止", "登録解除", "解除", "stop", "unsubscribe")
CHANGE_WORDS = ("変更", "設定変更", "change")
SKIP_NUMBER = 0

_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv)\s*[:：]\s*)+", re.IGNORECASE)
_NUMBERS = re.compile(r"\d+")
_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_TOKEN = re.compile(r"\bstop[- ]([A-Za-z0-9_-]{16,64})\b", re.IGNORECASE)
_QUOTE_MARKERS = re.compile(
    r"^(-{2,}\s*original message|.*wrote:$|.*のメッセージ[:：]?$|.*書きました[:：]?$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Subscriber:
    """What the dialogue needs to know about one address (the store holds the address)."""

    stage: Stage
    stop_token: str
    confirm_code: str | None = None
    attempts: int = 0
    question: int = 0
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Inbound:
    """One parsed inbound mail (kairand.mail.message.parse_inbound)."""

    authenticated: bool
    subject: str
    body: str


@dataclass(frozen=True)
class Reply:
    subject: str
    body: str


@dataclass(frozen=True)
class Outcome:
    event: Event
    state: Subscriber | None
    """The subscriber to store; None together with delete=False means: store nothing."""
    delete: bool = False
    replies: tuple[Reply, ...] = ()
    answered: tuple[str, tuple[str, ...]] | None = None
    """(question code, values) when this mail answered a question (values () = skipped)."""


def first_line(body: str) -> str:
    """The person's own first line: quoted text and the quoted original are ignored."""
    for raw in body.splitlines():
        line = unicodedata.normalize("NFKC", raw).strip()
        if not line:
            continue
        if line.startswith(">") or _QUOTE_MARKERS.match(line):
            return ""
        return line
    return ""


def clean_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", unicodedata.normalize("NFKC", subject)).strip()


def _is_word(text: str, words: tuple[str, ...]) -> bool:
    return text.strip().lower() in words


def stop_token_in(mail: Inbound) -> str | None:
    match = _TOKEN.search(unicodedata.normalize("NFKC", mail.subject))
    return match.group(1) if match else None


def step(
    subscriber: Subscriber | None,
    mail: Inbound,
    survey: SurveyDefinition,
    new_code: Callable[[], str],
    new_token: Callable[[], str],
) -> Outcome:
    if not mail.authenticated:
        return Outcome("refused", None)
    line = first_line(mail.body)
    subject = clean_subject(mail.subject)
    token = stop_token_in(mail)
    if subscriber is None:
        if token is not None or _is_word(line, STOP_WORDS) or _is_word(subject, STOP_WORDS):
            return Outcome("ignored", None)  # nothing to stop; no reply to a stranger
        code = new_code()
        return Outcome(
            "started",
            Subscriber("confirming", new_token(), confirm_code=code),
            replies=(texts_confirm(survey, code),),
        )
    if (token is not None and token == subscriber.stop_token) or _is_word(line, STOP_WORDS):
        return Outcome("stopped", None, delete=True, replies=(Reply(STOPPED_SUBJECT, STOPPED),))
    if _is_word(subject, STOP_WORDS) and not line:
        return Outcome("stopped", None, delete=True, replies=(Reply(STOPPED_SUBJECT, STOPPED),))
    if subscriber.stage == "confirming":
        return _confirm(subscriber, line, subject, survey)
    if subscriber.stage == "asking":
        return _answer(subscriber, line, survey)
    # registered (or bounced: a mail from the address shows it is alive again)
    if _is_word(line, CHANGE_WORDS) or _is_word(subject, CHANGE_WORDS):
        state = replace(subscriber, stage="asking", question=0)
        return Outcome("change", state, replies=(_question_reply(survey, 0),))
    state = replace(subscriber, stage="registered")
    return Outcome("help", state, replies=(Reply(HELP_SUBJECT, HELP),))


def _confirm(subscriber: Subscriber, line: str, subject: str, survey: SurveyDefinition) -> Outcome:
    codes = _CODE.findall(subject) + _CODE.findall(line)
    if subscriber.confirm_code is not None and subscriber.confirm_code in codes:
        state = replace(subscriber, stage="asking", confirm_code=None, attempts=0, question=0)
        return Outcome("confirmed", state, replies=(_question_reply(survey, 0),))
    attempts = subscriber.attempts + 1
    if attempts >= MAX_CODE_ATTEMPTS:
        return Outcome("abandoned", None, delete=True)
    state = replace(subscriber, attempts=attempts)
    code = subscriber.confirm_code or ""
    return Outcome("code_wrong", state, replies=(texts_confirm(survey, code, retry=True),))


def parse_answer(question: Question, line: str) -> tuple[str, ...] | str:
    """The values for QUESTION from the person's line, or an error text (Japanese)."""
    numbers = [int(n) for n in _NUMBERS.findall(line)]
    if not numbers:
        return NEED_NUMBER
    if question.allow_skip and numbers == [SKIP_NUMBER]:
        return ()
    if question.kind in ("year", "year_month"):
        year = numbers[0]
        if len(numbers) > 2 or not question.min_year <= year <= question.max_year:
            return INVALID_YEAR.format(min=question.min_year, max=question.max_year)
        if question.kind == "year_month":
            if len(numbers) != 2 or not 1 <= numbers[1] <= 12:
                return INVALID_YEAR_MONTH
            return (f"{year:04d}-{numbers[1]:02d}",)
        return (f"{year:04d}",)
    if any(not 1 <= n <= len(question.options) for n in numbers):
        return INVALID_NUMBER.format(max=len(question.options))
    if question.kind == "choice" and len(numbers) != 1:
        return ONLY_ONE
    picked = sorted(set(numbers))
    return tuple(question.options[n - 1].code for n in picked)


def _answer(subscriber: Subscriber, line: str, survey: SurveyDefinition) -> Outcome:
    index = min(subscriber.question, len(survey.questions) - 1)
    question = survey.questions[index]
    parsed = parse_answer(question, line)
    if isinstance(parsed, str):
        return Outcome(
            "invalid",
            subscriber,
            replies=(_question_reply(survey, index, error=parsed),),
        )
    answers = {**subscriber.answers, question.code: parsed}
    if index + 1 >= len(survey.questions):
        state = replace(subscriber, stage="registered", question=0, answers=answers)
        body = f"{survey.completion}\n\n{HELP}"
        return Outcome(
            "completed",
            state,
            replies=(Reply(COMPLETED_SUBJECT, body),),
            answered=(question.code, parsed),
        )
    state = replace(subscriber, question=index + 1, answers=answers)
    return Outcome(
        "answered",
        state,
        replies=(_question_reply(survey, index + 1),),
        answered=(question.code, parsed),
    )


def texts_confirm(survey: SurveyDefinition, code: str, retry: bool = False) -> Reply:
    # survey.welcome speaks of LINE (友だち追加): mail has its own greeting; the purpose notice
    # (what is collected and why, S16) is the same text as in LINE.
    lead = CODE_RETRY if retry else WELCOME
    body = f"{lead}\n\n{survey.purpose_notice}\n\n{CONFIRM.format(code=code)}"
    return Reply(CONFIRM_SUBJECT.format(code=code), body)


def _question_reply(survey: SurveyDefinition, index: int, error: str | None = None) -> Reply:
    total = len(survey.questions)
    body = question_body(survey.questions[index], index, total, error)
    return Reply(QUESTION_SUBJECT.format(n=index + 1, total=total), body)


def question_body(question: Question, index: int, total: int, error: str | None = None) -> str:
    """One question as a mail asks it (the city survey's and a program's alike): its text,
    why it is asked, numbered options or the year format, and how to reply."""
    lines = [error, ""] if error else []
    lines += [
        f"【質問 {index + 1}/{total}】{question.title}",
        question.text,
        f"（お伺いする理由：{question.purpose}）",
        "",
    ]
    if question.kind in ("choice", "multi"):
        lines += [f"{n}. {o.label}" for n, o in enumerate(question.options, start=1)]
        if question.allow_skip:
            lines.append(f"{SKIP_NUMBER}. 回答しない")
        lines += ["", HOW_CHOICE if question.kind == "choice" else HOW_MULTI]
    else:
        how = HOW_YEAR if question.kind == "year" else HOW_YEAR_MONTH
        lines.append(how.format(min=question.min_year, max=question.max_year))
        if question.allow_skip:
            lines.append(f"回答しない場合は「{SKIP_NUMBER}」と返信してください。")
    lines += ["", FOOTER]
    return "\n".join(lines)


# Resident-facing texts (Japanese, polite city-office style).
WELCOME = (
    "登録用アドレスへのメールをありがとうございます。\n"
    "このメール配信では、あなたが選んだ分野・地域のお知らせだけをお届けします。"
)
CONFIRM_SUBJECT = "【登録確認】確認コード {code}"
CONFIRM = (
    "上記の内容に同意のうえ登録される場合は、このメールにそのまま返信してください"
    "（件名の確認コード {code} を含めてください）。\n"
    "お心当たりのない場合は、このメールを破棄してください。返信がなければ登録されません。"
)
CODE_RETRY = (
    "確認コードを確認できませんでした。お手数ですが、このメールにそのまま返信してください。"
)
QUESTION_SUBJECT = "【登録】質問 {n}/{total}"
HOW_CHOICE = "番号を1つ、このメールに返信してください（例：1）。"
HOW_MULTI = "番号を返信してください。複数選ぶ場合は空白かカンマで区切ってください（例：1 3）。"
HOW_YEAR = "西暦4桁の数字で返信してください（{min}〜{max}、例：1985）。"
HOW_YEAR_MONTH = "西暦の年と月を返信してください（例：1985 4）。"
FOOTER = "登録をやめる場合は「停止」と返信してください。"
NEED_NUMBER = "番号を確認できませんでした。本文の1行目に番号だけを書いて返信してください。"
INVALID_NUMBER = "1〜{max} の番号で返信してください。"
ONLY_ONE = "この質問は番号を1つだけ選んでください。"
INVALID_YEAR = "{min}年から{max}年までの西暦4桁で返信してください。"
INVALID_YEAR_MONTH = "年と月を「1985 4」のように返信してください。"
COMPLETED_SUBJECT = "【登録完了】ご登録ありがとうございました"
HELP_SUBJECT = "【ご案内】登録内容の変更・停止"
HELP = (
    "登録内容を変更する場合は「変更」、配信を停止して登録情報を削除する場合は「停止」と"
    "本文に書いて返信してください。"
)
STOPPED_SUBJECT = "【配信停止】登録を削除しました"
STOPPED = (
    "配信を停止し、登録いただいたメールアドレスと回答をすべて削除しました。\n"
    "ご利用ありがとうございました。再度登録される場合は、登録用アドレスへ空メールを"
    "お送りください。"
)
