"""Programs and school districts as data (pure: no I/O).

A program is a subscription a resident opts into, with its own purpose notice and consent
version, its own questions, its own retention rule and its own senders. The default program
(the city information service, code `city`) is the survey that existed before programs: its
definition is the survey itself and its registration is the resident row. Any other program,
e.g. 子ども安全情報, is described by a ProgramDefinition and its members are stored apart.

A program's question codes live in the same answers table as the survey's, so they must be
prefixed with the program code (`kodomo_district`): they can never collide with a survey
question, and the annual expiry knows which answers belong to the program.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kairand.conversation.survey import Option, Question, SurveyDefinition
from kairand.retention.rules import Annual

DEFAULT_PROGRAM = "city"
Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
ProgramCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]{1,15}$")]

ANNUAL_NOTICE_TEXT = (
    "【{program}の登録更新のお知らせ】\n"
    "{program}は年度ごとの登録制です。現在の登録内容（学校区など）は{deadline}に削除されます。\n"
    "{restart}以降も受け取りを希望される場合は、お手数ですが、メニューの「{program}」から"
    "改めてご登録ください。\n※このお知らせは今年度1回のみお送りしています。"
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgramDefinition(_Model):
    """What a non-default program asks and promises (stored as JSON in programs.definition)."""

    name: Annotated[str, Field(min_length=1, max_length=20)]
    """Shown to residents and staff, e.g. 子ども安全情報 (also the chat keyword)."""
    description: Annotated[str, Field(min_length=1, max_length=500)]
    purpose_notice: Annotated[str, Field(min_length=1, max_length=3000)]
    """Purpose of use and what is collected, shown before anything is asked (S16)."""
    consent_version: Annotated[int, Field(ge=1)] = 1
    completion: Annotated[str, Field(min_length=1, max_length=1000)]
    district_question: Code | None = None
    """A multi question whose options are the school districts (kept by staff, not here)."""
    district_title: Annotated[str, Field(min_length=1, max_length=40)] = "学校区"
    district_purpose: Annotated[str, Field(min_length=1, max_length=500)] = (
        "お選びいただいた学校区の安全情報だけをお届けするために使います。"
    )
    questions: tuple[Question, ...] = ()
    """Further questions of the program (choice / multi / year), asked after the districts."""
    annual: Annual | None = None
    """Annual registration (K2): registrations are destroyed at the boundary."""

    def question_codes(self) -> tuple[str, ...]:
        codes = tuple(q.code for q in self.questions)
        return (self.district_question, *codes) if self.district_question else codes


def check_codes(code: str, definition: ProgramDefinition) -> None:
    """Raise ValueError when a question code of the program lacks its prefix or repeats."""
    codes = definition.question_codes()
    if len(set(codes)) != len(codes):
        raise ValueError("question codes must be unique within the program")
    for q in codes:
        if not q.startswith(code + "_"):
            raise ValueError(f"question {q!r} must start with the program code ({code}_)")


@dataclass(frozen=True)
class District:
    code: str
    name: str
    kana: str
    junior_high: str
    junior_high_name: str


def program_survey(definition: ProgramDefinition, districts: list[District]) -> SurveyDefinition:
    """The program's questions as a SurveyDefinition (segments are validated against it);
    the district question gets the current district list as its options."""
    questions = list(definition.questions)
    if definition.district_question is not None and districts:
        questions.insert(
            0,
            Question(
                code=definition.district_question,
                kind="multi",
                title=definition.district_title,
                text="受け取りたい学校区を選んでください。",
                purpose=definition.district_purpose,
                options=tuple(Option(code=d.code, label=d.name[:20]) for d in districts),
            ),
        )
    if not questions:
        questions.append(
            Question(
                code="none_placeholder",
                kind="choice",
                title="なし",
                text="なし",
                purpose="なし",
                options=(Option(code="none", label="なし"),),
            )
        )
    return SurveyDefinition(
        welcome=definition.description,
        purpose_notice=definition.purpose_notice,
        consent_version=definition.consent_version,
        completion=definition.completion,
        questions=tuple(questions),
    )


# -- school districts: CSV import ---------------------------------------------------------

CSV_COLUMNS = ("code", "name", "kana", "junior_high", "junior_high_name")
_KANA_RE = re.compile(r"^[\u3041-\u3096\u30fc\u30a1-\u30f6 　]+$")


class DistrictCsvError(ValueError):
    """A CSV line that cannot be imported; `line` is 1-based, `message_ja` is for staff."""

    def __init__(self, line: int, message_ja: str) -> None:
        super().__init__(f"line {line}: {message_ja}")
        self.line = line
        self.message_ja = message_ja


class _DistrictRow(_Model):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=20)]
    kana: Annotated[str, Field(min_length=1, max_length=40)]
    junior_high: Code
    junior_high_name: Annotated[str, Field(min_length=1, max_length=20)]

    @model_validator(mode="after")
    def _kana(self) -> _DistrictRow:
        if not _KANA_RE.match(self.kana):
            raise ValueError("kana must be written in hiragana or katakana")
        return self


def parse_districts_csv(text: str) -> list[District]:
    """Parse the staff's district list (UTF-8, header `code,name,kana,junior_high,
    junior_high_name`). All or nothing: the first bad line raises DistrictCsvError."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        rows = list(reader)
    except csv.Error:
        raise DistrictCsvError(reader.line_num or 1, "CSVとして読み取れません。") from None
    if not rows:
        raise DistrictCsvError(1, "ファイルが空です。")
    header = tuple(c.strip() for c in rows[0])
    if header != CSV_COLUMNS:
        raise DistrictCsvError(1, "1行目は「" + ",".join(CSV_COLUMNS) + "」としてください。")
    out: list[District] = []
    seen: set[str] = set()
    jh_names: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(CSV_COLUMNS):
            raise DistrictCsvError(number, f"列の数が{len(CSV_COLUMNS)}ではありません。")
        values = {
            k: unicodedata.normalize("NFKC", v).strip()
            for k, v in zip(CSV_COLUMNS, row, strict=False)
        }
        values["kana"] = values["kana"]
        try:
            parsed = _DistrictRow.model_validate(values)
        except ValidationError as exc:
            where = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "row"
            raise DistrictCsvError(number, f"「{where}」の値が正しくありません。") from None
        if parsed.code in seen:
            raise DistrictCsvError(number, f"学校区コード「{parsed.code}」が重複しています。")
        known = jh_names.setdefault(parsed.junior_high, parsed.junior_high_name)
        if known != parsed.junior_high_name:
            raise DistrictCsvError(
                number, f"中学校区「{parsed.junior_high}」の名称が行によって異なります。"
            )
        seen.add(parsed.code)
        out.append(
            District(
                parsed.code, parsed.name, parsed.kana, parsed.junior_high, parsed.junior_high_name
            )
        )
    if not out:
        raise DistrictCsvError(2, "学校区が1件もありません。")
    return out


def junior_highs(districts: list[District]) -> list[tuple[str, str]]:
    """(code, name) of the junior-high districts, in the list's order."""
    seen: dict[str, str] = {}
    for d in districts:
        seen.setdefault(d.junior_high, d.junior_high_name)
    return list(seen.items())
