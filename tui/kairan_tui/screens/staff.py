"""職員: the staff roster (取扱者名簿) with roles; maintained with `kairanctl staff`."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import roles_label
from kairan_tui.screens.base import KairanScreen


class StaffScreen(KairanScreen):
    SCREEN_NAME = "staff"
    SCREEN_TITLE = "職員"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "一覧を更新")]

    def compose_body(self) -> ComposeResult:
        with Vertical(classes="box", id="staff-box"):
            yield Static("職員一覧（取扱者名簿）", classes="box-title")
            yield DataTable(id="staff-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                "職員の追加・役割の変更は、システム管理者が kairanctl staff で行います。",
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
        for person in roster.items:
            table.add_row(
                person.username,
                person.display_name,
                roles_label(person.roles),
                "あり" if person.handles_personal_data else "なし",
                "有効" if person.active else "無効",
                key=person.username,
            )
