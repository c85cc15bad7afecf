"""アンケート設定 (admin): questions, options, order and purpose texts; saved as a new version.

Option codes are what answers and segments refer to, so the editor keeps them: each option line
reads 「ラベル [code]」; rewording keeps the [code], a new line without one gets a new code.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import ValidationError
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    ListItem,
    ListView,
    Select,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from kairan_tui.client import ApiError
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.marks import Check
from kairand.api import schema

KIND_LABELS = {
    "choice": "1つ選ぶ",
    "multi": "複数選ぶ",
    "year": "生まれた年（年のみ）",
    "year_month": "生まれた年月（年月のみ）",
}
FIELD_LABELS = {
    "title": "見出し",
    "text": "質問文",
    "purpose": "利用目的",
    "options": "選択肢",
    "label": "選択肢の文言（20文字以内）",
    "code": "識別子",
    "welcome": "友だち追加時のあいさつ",
    "purpose_notice": "利用目的の説明",
    "completion": "登録完了のメッセージ",
    "questions": "質問",
}
_OPTION_LINE = re.compile(r"^(?P<label>.*?)\s*\[(?P<code>[a-z0-9_]{1,32})\]\s*$")


def options_to_text(options: list[dict[str, str]]) -> str:
    return "\n".join(f"{o['label']} [{o['code']}]" for o in options)


def text_to_options(text: str, existing_codes: set[str]) -> list[dict[str, str]]:
    options: list[dict[str, str]] = []
    used = set(existing_codes)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _OPTION_LINE.match(line)
        if match:
            options.append({"code": match["code"], "label": match["label"].strip()})
            continue
        number = 1
        while f"opt_{number}" in used:
            number += 1
        used.add(f"opt_{number}")
        options.append({"code": f"opt_{number}", "label": line})
    return options


def explain_validation(exc: ValidationError, questions: list[dict[str, Any]]) -> str:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    where: list[str] = []
    if len(loc) >= 2 and loc[0] == "questions" and loc[1].isdigit():
        index = int(loc[1])
        title = questions[index]["title"] if index < len(questions) else loc[1]
        where.append(f"質問「{title}」")
        loc = loc[2:]
    for part in loc:
        if part in FIELD_LABELS:
            where.append(FIELD_LABELS[part])
        elif part.isdigit():
            where.append(f"{int(part) + 1}番目")
    kind = first["type"]
    if kind in ("string_too_long",):
        problem = "が長すぎます"
    elif kind in ("string_too_short", "missing", "too_short"):
        problem = "が入力されていません"
    elif kind == "string_pattern_mismatch":
        problem = "の識別子には半角英小文字・数字・_ だけが使えます"
    else:
        problem = "に誤りがあります"
    return "".join(where[:1]) + ("の" + "の".join(where[1:]) if where[1:] else "") + problem + "。"


def conversation_preview(definition: dict[str, Any]) -> Text:
    """The conversation a resident will have, as text: bot lines and quick-reply buttons."""
    text = Text()

    def bot(message: str) -> None:
        text.append("公式アカウント\n", style="dim")
        text.append(message.strip() + "\n", style="on grey23")
        text.append("\n")

    def buttons(labels: list[str]) -> None:
        text.append("  ".join(f"［{label}］" for label in labels) + "\n\n", style="bold cyan")

    bot(definition["welcome"])
    bot(definition["purpose_notice"])
    buttons(["同意する", "同意しない"])
    for question in definition["questions"]:
        bot(f"{question['text']}\n（利用目的：{question['purpose']}）")
        if question["kind"] in ("choice", "multi"):
            labels = [o["label"] for o in question.get("options", [])]
            if question["kind"] == "multi":
                labels.append("完了")
            if question.get("allow_skip", True):
                labels.append("回答しない")
            buttons(labels)
        else:
            labels = ["年を選ぶ（日付選択）"]
            if question.get("allow_skip", True):
                labels.append("回答しない")
            buttons(labels)
    bot(definition["completion"])
    return text


TEXT_LABELS = {
    "welcome": "友だち追加時のあいさつ",
    "purpose_notice": "利用目的の説明",
    "completion": "登録完了のメッセージ",
}
QUESTION_FIELDS = {
    "title": "見出し",
    "text": "質問文",
    "purpose": "利用目的",
    "kind": "種類",
    "allow_skip": "「回答しない」の有無",
}


def _clip(text: str, limit: int = 30) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def survey_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What publishing NEW instead of OLD changes for residents, one Japanese line per change
    (empty: nothing changed, no new version is made)."""
    lines: list[str] = []
    for key, label in TEXT_LABELS.items():
        if old.get(key) != new.get(key):
            lines.append(f"・{label}を変更：「{_clip(new.get(key, ''))}」")
    if new.get("consent_version") != old.get("consent_version"):
        lines.append("・登録者にあらためて利用目的への同意をお願いします")
    before = {q["code"]: q for q in old.get("questions", [])}
    after = {q["code"]: q for q in new.get("questions", [])}
    for code, question in after.items():
        if code not in before:
            lines.append(f"・質問を追加：「{question['title']}」")
    for code, question in before.items():
        if code not in after:
            lines.append(f"・質問を削除：「{question['title']}」（これまでの回答は残ります）")
    for code, question in after.items():
        previous = before.get(code)
        if previous is None:
            continue
        name = f"質問「{question['title']}」"
        for field, label in QUESTION_FIELDS.items():
            if previous.get(field) != question.get(field):
                if field == "kind":
                    value = KIND_LABELS.get(question[field], question[field])
                elif field == "allow_skip":
                    value = "あり" if question.get(field, True) else "なし"
                else:
                    value = _clip(question.get(field, ""))
                lines.append(f"・{name}の{label}を変更：「{value}」")
        old_options = {o["code"]: o["label"] for o in previous.get("options", [])}
        new_options = {o["code"]: o["label"] for o in question.get("options", [])}
        for option_code, label in new_options.items():
            if option_code not in old_options:
                lines.append(f"・{name}に選択肢を追加：「{label}」")
            elif old_options[option_code] != label:
                lines.append(f"・{name}の選択肢「{old_options[option_code]}」を「{label}」に変更")
        for option_code, label in old_options.items():
            if option_code not in new_options:
                lines.append(f"・{name}の選択肢「{label}」を削除")
    if [c for c in before if c in after] != [c for c in after if c in before]:
        lines.append("・質問の順番を変更")
    return lines


class SurveyScreen(KairanScreen):
    SCREEN_NAME = "survey"
    SCREEN_TITLE = "アンケート設定"
    # Ctrl+R means 承認依頼 on 配信作成: here 元に戻す has its own key (one meaning per key).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "変更を確認して公開"),
        Binding("ctrl+l", "revert", "編集を取り消す"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.version: int | None = None
        self.definition: dict[str, Any] | None = None
        self.current_index: int | None = None
        self._original_consent = 1
        self.published: dict[str, Any] | None = None
        """The definition as published (the current version): what edits are compared to."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="survey-version", classes="box-title")
        with TabbedContent(id="survey-tabs"):
            with TabPane("質問", id="tab-questions"), Horizontal():
                with Vertical(id="question-list-box"):
                    yield ListView(id="question-list")
                    # Compact (one line each): the list keeps its room at 80×24.
                    yield Button("↑ 上へ", id="move-up", compact=True)
                    yield Button("↓ 下へ", id="move-down", compact=True)
                    yield Button("＋選択式の質問", id="add-question", compact=True)
                    yield Button("＋生まれた年の質問", id="add-year-question", compact=True)
                    yield Button(
                        "× 質問を削除", id="remove-question", variant="warning", compact=True
                    )
                with VerticalScroll(id="question-editor"):
                    yield Static("", id="question-kind", classes="hint")
                    yield Label("見出し（職員画面と絞り込みで使う短い名前）", classes="field-label")
                    yield Input(id="q-title", max_length=40)
                    yield Label("質問文（登録者に表示されます）", classes="field-label")
                    yield TextArea(id="q-text", classes="short-area")
                    yield Label("利用目的（質問と一緒に表示されます）", classes="field-label")
                    yield TextArea(id="q-purpose", classes="short-area")
                    yield Select(
                        [(KIND_LABELS["choice"], "choice"), (KIND_LABELS["multi"], "multi")],
                        id="q-kind",
                        allow_blank=False,
                    )
                    yield Label(
                        "選択肢（1行に1つ。[ ]内は識別子なので、文言を変えても残してください。"
                        "新しい選択肢は文言だけを書きます）",
                        classes="field-label",
                        id="q-options-label",
                    )
                    yield TextArea(id="q-options", classes="options-area")
                    yield Check("「回答しない」を選べるようにする", id="q-skip")
            with TabPane("案内文", id="tab-texts"), VerticalScroll():
                yield Label("友だち追加時のあいさつ", classes="field-label")
                yield TextArea(id="welcome", classes="short-area")
                yield Label(
                    "利用目的の説明（最初に表示し、同意をお願いします）", classes="field-label"
                )
                yield TextArea(id="purpose-notice", classes="long-area")
                yield Check(
                    "利用目的の内容を変更したので、登録者にあらためて同意をお願いする",
                    id="new-consent",
                )
                yield Label("登録完了のメッセージ", classes="field-label")
                yield TextArea(id="completion", classes="short-area")
            with TabPane("プレビュー", id="tab-preview"), VerticalScroll():
                yield Static("登録者がLINEで見る会話の流れです（［ ］はボタン）。", classes="hint")
                yield Static(id="conversation-preview")

    def refresh_data(self) -> None:
        if self.definition is None:
            self.load()

    def action_revert(self) -> None:
        self.revert()

    @work(exit_on_error=False, exclusive=True, group="survey-revert")
    async def revert(self) -> None:
        if self.definition is None or self.published is None:
            return
        self._commit_question()
        self._commit_texts()
        if survey_diff(self.published, self.definition):
            confirmed = await self.app.push_screen_wait(
                ConfirmModal(
                    "編集を取り消します",
                    "保存していない変更をすべて取り消し、公開中の内容に戻します。",
                    confirm_label="取り消す",
                )
            )
            if not confirmed:
                return
        self.load()

    @work(exit_on_error=False, exclusive=True, group="survey")
    async def load(self) -> None:
        try:
            survey = await self.api.survey()
        except ApiError as exc:
            self.report(exc, "アンケートの設定を読み込み")
            return
        self.version = survey.version
        self.definition = survey.definition.model_dump(mode="json")
        self.published = survey.definition.model_dump(mode="json")
        self._original_consent = survey.definition.consent_version
        self.current_index = None
        self.query_one("#survey-version", Static).update(
            f"公開中：第{survey.version}版（変更を公開すると第{survey.version + 1}版になります。"
            "これまでの回答はそのまま残ります）"
        )
        self.query_one("#welcome", TextArea).text = self.definition["welcome"]
        self.query_one("#purpose-notice", TextArea).text = self.definition["purpose_notice"]
        self.query_one("#completion", TextArea).text = self.definition["completion"]
        self.query_one("#new-consent", Checkbox).value = False
        await self._fill_list(0)
        self.query_one("#question-list", ListView).focus()

    async def _fill_list(self, select: int) -> None:
        assert self.definition is not None
        view = self.query_one("#question-list", ListView)
        await view.clear()
        await view.extend(
            ListItem(Label(f"{i + 1}. {q['title']}"))
            for i, q in enumerate(self.definition["questions"])
        )
        self.current_index = None
        view.index = select
        self._load_question(select)

    def on_list_view_highlighted(self, event: ListView.Highlighted) -> None:
        if event.list_view.id != "question-list" or event.list_view.index is None:
            return
        if event.list_view.index != self.current_index:
            self._commit_question()
            self._load_question(event.list_view.index)

    def _load_question(self, index: int) -> None:
        assert self.definition is not None
        questions = self.definition["questions"]
        if not questions:
            return
        index = max(0, min(index, len(questions) - 1))
        question = questions[index]
        self.current_index = index
        self.query_one("#question-kind", Static).update(
            f"種類：{KIND_LABELS.get(question['kind'], question['kind'])}"
        )
        self.query_one("#q-title", Input).value = question["title"]
        self.query_one("#q-text", TextArea).text = question["text"]
        self.query_one("#q-purpose", TextArea).text = question["purpose"]
        has_options = question["kind"] in ("choice", "multi")
        kind = self.query_one("#q-kind", Select)
        kind.display = has_options
        if has_options:
            kind.value = question["kind"]
        for widget_id in ("#q-options", "#q-options-label"):
            self.query_one(widget_id).display = has_options
        self.query_one("#q-options", TextArea).text = options_to_text(question.get("options", []))
        self.query_one("#q-skip", Checkbox).value = question.get("allow_skip", True)

    def _commit_question(self) -> None:
        """Copy the editor fields back into the working definition."""
        if self.definition is None or self.current_index is None:
            return
        questions = self.definition["questions"]
        if self.current_index >= len(questions):
            return
        question = questions[self.current_index]
        question["title"] = self.query_one("#q-title", Input).value.strip()
        question["text"] = self.query_one("#q-text", TextArea).text.strip()
        question["purpose"] = self.query_one("#q-purpose", TextArea).text.strip()
        question["allow_skip"] = self.query_one("#q-skip", Checkbox).value
        if question["kind"] in ("choice", "multi"):
            kind = self.query_one("#q-kind", Select).value
            if kind in ("choice", "multi"):
                question["kind"] = kind
            codes = {o["code"] for q in questions for o in q.get("options", [])}
            question["options"] = text_to_options(
                self.query_one("#q-options", TextArea).text, codes
            )

    def _commit_texts(self) -> None:
        assert self.definition is not None
        self.definition["welcome"] = self.query_one("#welcome", TextArea).text.strip()
        self.definition["purpose_notice"] = self.query_one("#purpose-notice", TextArea).text.strip()
        self.definition["completion"] = self.query_one("#completion", TextArea).text.strip()
        bump = self.query_one("#new-consent", Checkbox).value
        self.definition["consent_version"] = self._original_consent + (1 if bump else 0)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-preview" and self.definition is not None:
            self._commit_question()
            self._commit_texts()
            self.query_one("#conversation-preview", Static).update(
                conversation_preview(self.definition)
            )

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if self.definition is None or self.current_index is None:
            return
        event.stop()
        self._commit_question()
        questions = self.definition["questions"]
        index = self.current_index
        if event.button.id == "move-up" and index > 0:
            questions[index - 1], questions[index] = questions[index], questions[index - 1]
            await self._fill_list(index - 1)
        elif event.button.id == "move-down" and index < len(questions) - 1:
            questions[index + 1], questions[index] = questions[index], questions[index + 1]
            await self._fill_list(index + 1)
        elif event.button.id == "add-question":
            existing = {q["code"] for q in questions}
            number = 1
            while f"q{number}" in existing:
                number += 1
            questions.append(
                {
                    "code": f"q{number}",
                    "kind": "choice",
                    "title": "新しい質問",
                    "text": "質問文を入力してください。",
                    "purpose": "この質問をする理由を入力してください。",
                    "options": [{"code": "opt_1", "label": "選択肢1"}],
                    "allow_skip": True,
                }
            )
            await self._fill_list(len(questions) - 1)
        elif event.button.id == "add-year-question":
            existing = {q["code"] for q in questions}
            number = 1
            while f"q{number}" in existing:
                number += 1
            questions.append(
                {
                    "code": f"q{number}",
                    "kind": "year",
                    "title": "生まれた年",
                    "text": "生まれた年を選んでください。",
                    "purpose": "年齢に合ったお知らせをお届けするために使います。",
                    "allow_skip": True,
                }
            )
            await self._fill_list(len(questions) - 1)
        elif event.button.id == "remove-question":
            if len(questions) <= 1:
                self.notify("質問は1つ以上必要です。", severity="warning")
                return
            removed = questions.pop(index)
            self.notify(
                f"質問「{removed['title']}」を削除しました（保存するまで確定しません）。"
                "これまでの回答は削除されません。"
            )
            await self._fill_list(max(0, index - 1))

    def action_save(self) -> None:
        if self.definition is None:
            return
        self._commit_question()
        self._commit_texts()
        try:
            definition = schema.SurveyDefinition.model_validate(self.definition)
        except ValidationError as exc:
            self.notify(
                explain_validation(exc, self.definition["questions"]),
                title="保存できません",
                severity="error",
            )
            return
        self.save(definition)

    @work(exit_on_error=False, exclusive=True, group="survey-save")
    async def save(self, definition: schema.SurveyDefinition) -> None:
        """Publishing changes what residents are asked: show what changes and require Y; an
        unchanged survey makes no new version."""
        changes = survey_diff(self.published or {}, definition.model_dump(mode="json"))
        if not changes:
            self.notify(
                "公開中の内容から変更がないため、新しい版は作りません。", title="変更はありません"
            )
            return
        shown = changes[:8] + ([f"・ほか{len(changes) - 8}件"] if len(changes) > 8 else [])
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"アンケートの第{(self.version or 0) + 1}版を公開します",
                "次の変更を公開します。公開すると、これから登録・回答する方への質問が"
                "変わります。\n" + "\n".join(shown),
                confirm_label="公開する",
                danger=False,
            )
        )
        if not confirmed:
            self.notify("公開を取りやめました。編集中の内容はそのまま残っています。", timeout=5)
            return
        try:
            version = await self.api.save_survey(definition, self.version)
        except ApiError as exc:
            self.report(exc, "アンケートを保存")
            return
        self.notify(
            f"第{version}版として公開しました。これから登録する方にはこの内容で案内されます。",
            title="公開しました",
        )
        self.load()
