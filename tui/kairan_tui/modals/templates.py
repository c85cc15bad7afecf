"""定型文: start a delivery from a saved message, or save the current one as a template
. The daemon audits every template change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from kairan_tui.widgets.card_preview import describe_item
from kairand.api import schema


@dataclass(frozen=True)
class TemplateChoice:
    """What the dialog ended with: a template to open, or a name to save the form under."""

    use: schema.TemplateOut | None = None
    save_as: str | None = None


class TemplatesModal(ModalScreen[TemplateChoice | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "やめる")]
    DEFAULT_CSS = """
    TemplatesModal #templates-dialog { width: 76; max-width: 95%; height: auto;
        max-height: 90%; }
    TemplatesModal OptionList { height: 10; }
    TemplatesModal Horizontal { height: auto; }
    TemplatesModal Input { width: 1fr; }
    """

    def __init__(self, templates: list[schema.TemplateOut], can_save: bool) -> None:
        super().__init__()
        self.templates = templates
        self.can_save = can_save

    def compose(self) -> ComposeResult:
        with Vertical(id="templates-dialog", classes="dialog"):
            yield Static("定型文", classes="dialog-title")
            yield Static("選ぶと、その内容から作成を始めます。", classes="dialog-body")
            options = [
                Option(
                    f"{t.name}｜{describe_item(t.content.messages[0])[:30]}（{t.updated_by}）",
                    id=str(t.id),
                )
                for t in self.templates
            ]
            if not options:
                options = [Option("定型文はまだありません。", id="none", disabled=True)]
            yield OptionList(*options, id="template-list")
            if self.can_save:
                with Horizontal():
                    yield Input(
                        placeholder="名前（例：ごみの日）", max_length=60, id="template-name"
                    )
                    yield Button("今の内容を定型文に保存", id="save-template")
            with Horizontal(classes="dialog-buttons"):
                yield Button("閉じる", id="cancel")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        found = [t for t in self.templates if str(t.id) == event.option.id]
        if found:
            self.dismiss(TemplateChoice(use=found[0]))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save-template":
            name = self.query_one("#template-name", Input).value.strip()
            if not name:
                self.notify("定型文の名前を入力してください。", severity="warning")
                return
            self.dismiss(TemplateChoice(save_as=name))
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
