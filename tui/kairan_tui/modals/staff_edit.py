"""職員の追加・変更 (admins): OS user name, name, roles, handling of personal information.

The daemon applies the same rules and audit as `kairanctl staff` (one active administrator
always remains; every change is in the operation log)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from kairan_tui.widgets.marks import Check
from kairand.api import schema

ROLE_ORDER = ("admin", "author", "approver", "auditor")


class StaffEditModal(ModalScreen["tuple[str, schema.StaffUpdate] | None"]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "やめる")]

    def __init__(self, person: schema.StaffOut | None = None) -> None:
        super().__init__()
        self.person = person

    def compose(self) -> ComposeResult:
        person = self.person
        title = (
            "職員を追加します"
            if person is None
            else f"{person.display_name} さんの登録を変更します"
        )
        with Vertical(id="staff-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield Label("ユーザー名（この端末にログインするOSのユーザー名）", classes="field-label")
            yield Input(
                value=person.username if person else "",
                id="staff-username",
                max_length=32,
                disabled=person is not None,
                placeholder="例：yamada",
            )
            yield Label("氏名", classes="field-label")
            yield Input(
                value=person.display_name if person else "",
                id="staff-name",
                max_length=100,
                placeholder="例：山田 太郎",
            )
            yield Label("役割", classes="field-label")
            roles = set(person.roles) if person else set()
            with Horizontal(id="staff-roles"):
                for role in ROLE_ORDER:
                    yield Check(schema.ROLE_LABELS[role], role in roles, id=f"role-{role}")
            yield Check(
                "個人情報を取り扱う（取扱者名簿に載ります）",
                person.handles_personal_data if person else True,
                id="staff-handles",
            )
            yield Check(
                "有効（ログインできます）", person.active if person else True, id="staff-active"
            )
            yield Static("", id="staff-problem", classes="hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("キャンセル", id="cancel")
                yield Button("保存する", id="save", variant="primary")

    def on_mount(self) -> None:
        first = "#staff-name" if self.person is not None else "#staff-username"
        self.query_one(first, Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id != "save":
            self.dismiss(None)
            return
        username = self.query_one("#staff-username", Input).value.strip()
        name = self.query_one("#staff-name", Input).value.strip()
        roles = [r for r in ROLE_ORDER if self.query_one(f"#role-{r}", Check).value]
        problem = ""
        if not username:
            problem = "ユーザー名を入力してください。"
        elif not name:
            problem = "氏名を入力してください。"
        elif not roles:
            problem = "役割を1つ以上選んでください。"
        if problem:
            self.query_one("#staff-problem", Static).update(problem)
            return
        update = schema.StaffUpdate(
            display_name=name,
            roles=roles,  # type: ignore[arg-type]
            handles_personal_data=self.query_one("#staff-handles", Check).value,
            active=self.query_one("#staff-active", Check).value,
        )
        self.dismiss((username, update))
