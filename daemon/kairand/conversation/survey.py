"""The survey definition: data staff can edit without code changes (N2, S1, S16).

A definition is stored as JSON in `survey_versions`; every edit is a new version. Option codes
are stable identifiers: answers and segment filters refer to codes, never to labels, so a label
can be reworded without touching anyone's answers.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Code = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
QuestionKind = Literal["choice", "multi", "year", "year_month"]


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    label: Annotated[str, Field(min_length=1, max_length=20)]
    """Shown on a quick-reply button: LINE allows at most 20 characters."""


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    kind: QuestionKind
    """choice: one option; multi: several options, toggled, then 完了; year / year_month:
    a date picker of which only the year (or year and month) is kept, never the day."""
    title: Annotated[str, Field(min_length=1, max_length=40)]
    """Short name for staff screens and segment builders, e.g. 地域."""
    text: Annotated[str, Field(min_length=1, max_length=1000)]
    """What the resident is asked."""
    purpose: Annotated[str, Field(min_length=1, max_length=500)]
    """Why this is asked (S16), shown with the question."""
    options: tuple[Option, ...] = ()
    min_year: int = 1900
    max_year: int = 2100
    allow_skip: bool = True
    """Offer 回答しない (choice/year) so nobody must disclose anything to receive information."""

    @model_validator(mode="after")
    def _options_fit_kind(self) -> Question:
        if self.kind in ("choice", "multi"):
            if not self.options:
                raise ValueError(f"question {self.code!r} needs options")
            codes = [o.code for o in self.options]
            if len(set(codes)) != len(codes):
                raise ValueError(f"question {self.code!r} has duplicate option codes")
        elif self.options:
            raise ValueError(f"question {self.code!r} ({self.kind}) takes no options")
        if self.min_year > self.max_year:
            raise ValueError(f"question {self.code!r}: min_year is after max_year")
        return self

    def option(self, code: str) -> Option | None:
        return next((o for o in self.options if o.code == code), None)


class SurveyDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    welcome: Annotated[str, Field(min_length=1, max_length=2000)]
    purpose_notice: Annotated[str, Field(min_length=1, max_length=3000)]
    """Purpose of use and what is collected, shown before anything is asked (S16)."""
    consent_version: Annotated[int, Field(ge=1)] = 1
    """Raise when purpose_notice changes in substance: residents are asked to consent again."""
    completion: Annotated[str, Field(min_length=1, max_length=2000)]
    questions: tuple[Question, ...]

    @model_validator(mode="after")
    def _unique_codes(self) -> SurveyDefinition:
        codes = [q.code for q in self.questions]
        if len(set(codes)) != len(codes):
            raise ValueError("question codes must be unique")
        if not codes:
            raise ValueError("a survey needs at least one question")
        return self

    def question(self, code: str) -> Question | None:
        return next((q for q in self.questions if q.code == code), None)


AREAS = (
    ("honmachi", "本町"),
    ("ekimae", "駅前"),
    ("kitamachi", "北町"),
    ("minamimachi", "南町"),
    ("higashimachi", "東町"),
    ("nishimachi", "西町"),
    ("kawabe", "川辺"),
    ("yamate", "山手"),
    ("shinmachi", "新町"),
    ("asahi", "旭"),
    ("midorigaoka", "緑ヶ丘"),
    ("sakuradai", "桜台"),
    ("wakaba", "若葉"),
    ("minato", "港"),
    ("aobadai", "青葉台"),
)

TOPICS = (
    ("kosodate", "子育て"),
    ("koureisha", "高齢者・介護"),
    ("kenkou", "健康・医療"),
    ("bousai", "防災・防犯"),
    ("event", "イベント"),
    ("gomi", "ごみ・環境"),
)


def default_survey() -> SurveyDefinition:
    """The questions of the Nara-style segment delivery service (N2, S1): birth year, gender,
    area, wanted information. A municipality edits these in the アンケート設定 screen."""
    return SurveyDefinition(
        welcome=(
            "友だち追加ありがとうございます。\n"
            "このアカウントでは、あなたが選んだ分野・地域のお知らせだけをお届けします。"
        ),
        purpose_notice=(
            "【利用目的と収集する情報】\n"
            "お知らせを必要な方にだけお届けするため、生まれた年、性別、お住まいの地域、"
            "受け取りたい情報の分野をお伺いします。\n"
            "・回答は市役所内のサーバーに暗号化して保存し、LINE社には保存されません。\n"
            "・配信先の絞り込み以外には使用しません。\n"
            "・どの質問も「回答しない」を選べます。\n"
            "・ブロックすると、登録情報はすべて削除されます。\n"
            "・2年間ご利用（ボタンの操作やメッセージ）がない場合も、登録情報を削除します。\n"
            "同意いただける場合は「同意する」を選んでください。"
        ),
        completion=(
            "ご回答ありがとうございました。登録が完了しました。\n"
            "設定はメニューの「設定を変更」からいつでも変更できます。"
        ),
        questions=(
            Question(
                code="birth_year",
                kind="year",
                title="生まれた年",
                text="生まれた年を選んでください。（日付は保存せず、年だけを記録します）",
                purpose="年代に合ったお知らせ（子育て、健診、介護など）をお届けするため",
                min_year=1920,
                max_year=2025,
            ),
            Question(
                code="gender",
                kind="choice",
                title="性別",
                text="性別を選んでください。",
                purpose="性別に応じた健診などのお知らせをお届けするため",
                options=(
                    Option(code="female", label="女性"),
                    Option(code="male", label="男性"),
                    Option(code="other", label="その他"),
                ),
            ),
            Question(
                code="area",
                kind="choice",
                title="地域",
                text="お住まいの地域（または関心のある地域）を選んでください。",
                purpose="地域の行事や防災情報をその地域の方にお届けするため",
                options=tuple(Option(code=c, label=label) for c, label in AREAS),
            ),
            Question(
                code="topics",
                kind="multi",
                title="受け取りたい情報",
                text="受け取りたい情報を選んでください（複数選べます）。選び終えたら「完了」を押してください。",
                purpose="選んだ分野のお知らせだけをお届けするため",
                options=tuple(Option(code=c, label=label) for c, label in TOPICS),
                allow_skip=False,
            ),
        ),
    )
