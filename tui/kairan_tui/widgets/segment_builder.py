"""配信対象 (segment) builder, generated from the survey definition: age range for year
questions, option lists for choice / multi questions, or explicitly 登録者全員."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, SelectionList, Static

from kairan_tui.widgets.marks import Check, CheckList
from kairand.api import schema


@dataclass
class SegmentChoice:
    """What the builder currently selects: a SegmentFilter, or None with the reason."""

    segment: schema.SegmentFilter | None
    summary: str
    problem: str = ""


class SegmentBuilder(Vertical):
    DEFAULT_CSS = """
    SegmentBuilder { height: auto; }
    SegmentBuilder .question-title { margin-top: 1; text-style: bold; }
    SegmentBuilder SelectionList { height: auto; max-height: 8; }
    SegmentBuilder .age-row { height: 3; }
    SegmentBuilder .age-row Input { width: 10; }
    SegmentBuilder .age-row Label { padding: 1 1 0 1; }
    SegmentBuilder .segment-problem { color: $warning; }
    """

    @dataclass
    class Changed(Message):
        builder: SegmentBuilder
        choice: SegmentChoice

    def __init__(self, survey: schema.SurveyDefinition, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.survey = survey

    def compose(self) -> ComposeResult:
        yield Check("登録者全員に配信する（条件で絞り込まない）", id="segment-all")
        for question in self.survey.questions:
            is_age = question.kind in ("year", "year_month")
            # A year question is asked as 「生まれた年」 but filtered by age: say 年齢.
            yield Label("年齢" if is_age else question.title, classes="question-title")
            if is_age:
                with Horizontal(classes="age-row"):
                    yield Input(
                        placeholder="下限",
                        type="integer",
                        id=f"age-from-{question.code}",
                        classes="age-from",
                    )
                    yield Label("歳 から")
                    yield Input(
                        placeholder="上限",
                        type="integer",
                        id=f"age-to-{question.code}",
                        classes="age-to",
                    )
                    yield Label("歳 まで")
                yield Static(
                    f"配信する年に迎える年齢で判定します（「{question.title}」の回答から計算）。",
                    classes="hint",
                )
            else:
                yield CheckList(
                    *[(option.label, option.code) for option in question.options],
                    id=f"choice-{question.code}",
                )
        yield Static("", classes="segment-problem", id="segment-problem")

    def on_mount(self) -> None:
        self._emit()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        for widget in self.query("SelectionList, Input"):
            widget.disabled = event.value
        self._emit()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        self._emit()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._emit()

    def set_segment(self, segment: schema.SegmentFilter) -> None:
        """Show an existing draft's segment."""
        self.query_one("#segment-all", Checkbox).value = segment.all_registered
        for condition in segment.conditions:
            data = condition.model_dump()
            code = data["question"]
            if "any_of" in data:
                selection = self.query_one(f"#choice-{code}", SelectionList)
                for value in data["any_of"]:
                    selection.select(value)
            else:
                if data.get("age_from") is not None:
                    self.query_one(f"#age-from-{code}", Input).value = str(data["age_from"])
                if data.get("age_to") is not None:
                    self.query_one(f"#age-to-{code}", Input).value = str(data["age_to"])
        self._emit()

    def clear(self) -> None:
        """Back to no condition (after a delivery was submitted)."""
        self.query_one("#segment-all", Checkbox).value = False
        for selection in self.query(SelectionList):
            selection.deselect_all()
        for field in self.query(Input):
            field.value = ""
        self._emit()

    def current(self) -> SegmentChoice:
        if self.query_one("#segment-all", Checkbox).value:
            return SegmentChoice(schema.SegmentFilter(all_registered=True), "登録者全員")
        conditions: list[dict[str, Any]] = []
        parts: list[str] = []
        for question in self.survey.questions:
            if question.kind in ("year", "year_month"):
                low = self._age(f"#age-from-{question.code}")
                high = self._age(f"#age-to-{question.code}")
                if isinstance(low, str) or isinstance(high, str):
                    return SegmentChoice(None, "", "年齢は0〜150の数字で入力してください。")
                if low is None and high is None:
                    continue
                if low is not None and high is not None and low > high:
                    return SegmentChoice(None, "", "年齢の下限が上限より大きくなっています。")
                conditions.append({"question": question.code, "age_from": low, "age_to": high})
                parts.append(f"年齢：{age_range(low, high)}")
            else:
                selection = self.query_one(f"#choice-{question.code}", SelectionList)
                chosen = list(selection.selected)
                if not chosen:
                    continue
                conditions.append({"question": question.code, "any_of": chosen})
                labels = [o.label for o in question.options if o.code in chosen]
                parts.append(f"{question.title}：{'・'.join(labels)}")
        if not conditions:
            return SegmentChoice(
                None,
                "",
                "配信対象の条件を選ぶか、「登録者全員に配信する」にチェックを入れてください。",
            )
        segment = schema.SegmentFilter.model_validate({"conditions": conditions})
        return SegmentChoice(segment, " ／ ".join(parts))

    def _age(self, selector: str) -> int | str | None:
        text = self.query_one(selector, Input).value.strip()
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            return "bad"
        return value if 0 <= value <= 150 else "bad"

    def _emit(self) -> None:
        choice = self.current()
        self.query_one("#segment-problem", Static).update(choice.problem)
        self.post_message(self.Changed(self, choice))


def age_range(low: object, high: object) -> str:
    """「30〜49歳」, 「30歳以上」, 「49歳以下」."""
    if low is not None and high is not None:
        return f"{low}〜{high}歳"
    if low is not None:
        return f"{low}歳以上"
    return f"{high}歳以下"


def describe_segment(segment: schema.SegmentFilter, survey: schema.SurveyDefinition | None) -> str:
    """A segment in the words of the survey: 「地域：本町・駅前 ／ 年齢：30〜49歳」."""
    if segment.all_registered:
        return "登録者全員"
    parts: list[str] = []
    for condition in segment.conditions:
        data = condition.model_dump()
        question = survey.question(data["question"]) if survey else None
        title = question.title if question else data["question"]
        if "any_of" in data:
            labels = []
            for code in data["any_of"]:
                option = question.option(code) if question else None
                labels.append(option.label if option else code)
            parts.append(f"{title}：{'・'.join(labels)}")
        else:
            parts.append(f"年齢：{age_range(data.get('age_from'), data.get('age_to'))}")
    return " ／ ".join(parts) or "（条件なし）"
