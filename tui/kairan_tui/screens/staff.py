"""職員: the staff roster (取扱者名簿) with roles. Admins add, change and remove staff here
(`a` / `e` / `x`) with the same rules and audit as `kairanctl staff` (the daemon enforces them:
one active administrator always remains)."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import roles_label
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.staff_edit import StaffEditModal
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema


class StaffScreen(KairanScreen):
    SCREEN_NAME = "staff"
    SCREEN_TITLE = "職員"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add", "職員を追加"),
        Binding("e", "edit", "変更"),
        Binding("x", "remove", "削除"),
        Binding("r", "reload", "一覧を更新"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.roster: dict[str, schema.StaffOut] = {}

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("add", "edit", "remove"):
            me = self.kairan.me
            return me is not None and "staff.put" in me.allowed
        return True

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="box", id="staff-box"):
            yield Static("職員一覧（取扱者名簿）", classes="box-title")
            yield DataTable(id="staff-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "a で職員を追加、e で選んだ職員の氏名・役割を変更、x で削除します。"
                "変更はすべて操作ログに記録されます。",
                classes="hint",
            )

    def on_mount(self) -> None:
        self.query_one("#staff-table", DataTable).add_columns(
            "ユーザー名", "氏名", "役割", "個人情報の取扱", "状態"
        )

    def action_reload(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="staff")
    async def load(self) -> None:
        try:
            roster = await self.api.staff()
        except ApiError as exc:
            self.report(exc, "職員一覧を表示")
            return
        table = self.query_one("#staff-table", DataTable)
        table.clear()
        self.roster = {person.username: person for person in roster.items}
        for person in roster.items:
            table.add_row(
                person.username,
                person.display_name,
                roles_label(person.roles),
                "あり" if person.handles_personal_data else "なし",
                "有効" if person.active else "無効",
                key=person.username,
            )

    def _selected(self) -> schema.StaffOut | None:
        table = self.query_one("#staff-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.roster.get(str(key))

    def action_add(self) -> None:
        self.edit(None)

    def action_edit(self) -> None:
        person = self._selected()
        if person is None:
            self.notify("変更する職員を一覧から選んでください。", severity="warning")
            return
        self.edit(person)

    @work(exit_on_error=False, exclusive=True, group="staff-edit")
    async def edit(self, person: schema.StaffOut | None) -> None:
        result = await self.app.push_screen_wait(StaffEditModal(person))
        if result is None:
            return
        username, update = result
        if person is None and username in self.roster:
            self.notify(
                f"ユーザー名 {username} はすでに登録されています。"
                "変更する場合は一覧で選んで e を押してください。",
                severity="warning",
            )
            return
        try:
            saved = await self.api.put_staff(username, update)
        except ApiError as exc:
            self.report(exc, "職員の登録")
            return
        verb = "追加" if person is None else "変更"
        self.notify(f"{saved.display_name} さんの登録を{verb}しました。", title=f"職員の{verb}")
        self.load()

    def action_remove(self) -> None:
        person = self._selected()
        if person is None:
            self.notify("削除する職員を一覧から選んでください。", severity="warning")
            return
        self.remove_person(person)

    @work(exit_on_error=False, exclusive=True, group="staff-edit")
    async def remove_person(self, person: schema.StaffOut) -> None:
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"{person.display_name} さん（{person.username}）を職員から削除します",
                "削除すると、この方は職員用画面を使えなくなります。これまでの操作ログは残ります。",
                confirm_label="削除する",
            )
        )
        if not confirmed:
            return
        try:
            await self.api.delete_staff(person.username)
        except ApiError as exc:
            self.report(exc, "職員の削除")
            return
        self.notify(f"{person.display_name} さんを職員から削除しました。", title="職員の削除")
        self.load()
