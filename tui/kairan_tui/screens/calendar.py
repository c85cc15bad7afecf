"""配信予定: a calendar of upcoming sends (scheduled deliveries and the occurrences of
recurring ones), and the recurring deliveries (定期配信) with their rule, next sends and
history; approvers approve a series here, staff pause, resume or end it."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from rich.table import Table
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST
from kairan_tui.modals.confirm import ConfirmModal
from kairan_tui.modals.reject import RejectModal
from kairan_tui.screens.base import KairanScreen
from kairand.api import schema

WEEKDAYS = "月火水木金土日"
SERIES_STATUS = {
    "draft": "下書き",
    "pending_approval": "承認待ち",
    "active": "実施中",
    "paused": "一時停止中",
    "ended": "終了",
    "cancelled": "中止",
}
OUTCOMES = {
    "created": "配信",
    "skipped_late": "見送り（停止中に時刻を過ぎた）",
    "skipped_paused": "見送り（一時停止中）",
}


def day_label(at: dt.datetime) -> str:
    local = at.astimezone(JST)
    return f"{local:%m/%d}（{WEEKDAYS[local.weekday()]}）{local:%H:%M}"


def series_table(item: schema.SeriesOut) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")  # Japanese has no spaces to wrap at
    table.add_row("件名", item.title)
    table.add_row("状態", SERIES_STATUS.get(item.status, item.status))
    table.add_row("繰り返し", item.rule_text)
    upcoming = "、".join(day_label(o) for o in item.next_occurrences) or "なし"
    table.add_row("次の配信", upcoming)
    table.add_row("作成者", item.author)
    table.add_row("承認者", item.approver or "—")
    if item.links:
        table.add_row("リンク先", "\n".join(item.links))
    change = item.pending_change
    if change is not None:
        table.add_row("変更の申請", f"{change.proposed_by} さん（承認されるまでは今の内容で配信）")
        if change.title != item.title:
            table.add_row("変更後の件名", change.title)
        table.add_row("変更後の繰り返し", change.rule_text)
        after = "、".join(day_label(o) for o in change.next_occurrences) or "なし"
        table.add_row("変更後の次の配信", after)
        if change.links:
            table.add_row("変更後のリンク先", "\n".join(change.links))
    if change is not None:
        table.add_row("操作", "c 変更を承認　v 変更を差し戻し　e 内容を変更")
    elif item.status not in ("ended", "cancelled"):
        table.add_row("操作", "e 内容を変更（承認済みの場合は、変更の承認後に反映）")
    if item.history:
        lines = [
            f"{day_label(h.at)} {OUTCOMES.get(h.outcome, h.outcome)}" for h in item.history[:5]
        ]
        table.add_row("これまで", "\n".join(lines))
    return table


class CalendarScreen(KairanScreen):
    SCREEN_NAME = "calendar"
    SCREEN_TITLE = "配信予定"
    DEFAULT_CSS = """
    CalendarScreen #calendar-list { width: 1fr; min-width: 34; }
    CalendarScreen #series-side { width: 1fr; }
    CalendarScreen #series-table { height: 7; }
    CalendarScreen #series-detail { height: 1fr; }
    CalendarScreen #series-info { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "series('approve')", "定期配信を承認"),
        Binding("p", "series('pause')", "一時停止"),
        Binding("u", "series('resume')", "再開"),
        Binding("x", "series('end')", "終了"),
        # Not in the key bar (it is full at 80 columns): the series panel and F1 show them.
        Binding("e", "edit_series", "定期配信の内容を変更", show=False),
        Binding("c", "series('approve-change')", "定期配信の変更を承認", show=False),
        Binding("v", "reject_change", "定期配信の変更を差し戻し", show=False),
        Binding("r", "reload", "更新"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.series: dict[int, schema.SeriesOut] = {}
        self.selected: schema.SeriesOut | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="calendar-main"):
            with Vertical(id="calendar-list", classes="box"):
                yield Static("これからの配信（31日間）", classes="box-title")
                yield DataTable(id="calendar-table", cursor_type="row", zebra_stripes=True)
            with Vertical(id="series-side", classes="box"):
                yield Static("定期配信", classes="box-title")
                yield DataTable(id="series-table", cursor_type="row", zebra_stripes=True)
                with VerticalScroll(id="series-detail"):
                    yield Static("", id="series-info")

    def on_mount(self) -> None:
        cal = self.query_one("#calendar-table", DataTable)
        cal.add_columns("日時", "種類", "件名")
        table = self.query_one("#series-table", DataTable)
        table.add_columns("番号", "状態", "件名")
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="calendar")
    async def load(self) -> None:
        try:
            calendar = await self.api.calendar(31)
            series = await self.api.series_list()
        except ApiError as exc:
            self.report(exc, "配信予定を読み込み")
            return
        cal = self.query_one("#calendar-table", DataTable)
        cal.clear()
        for entry in calendar.items:
            kind = "定期" if entry.kind == "series" else "予約"
            cal.add_row(day_label(entry.at), kind, entry.title)
        if not calendar.items:
            cal.add_row("—", "", "予定されている配信はありません")
        table = self.query_one("#series-table", DataTable)
        table.clear()
        self.series = {s.id: s for s in series.items}
        for item in series.items:
            table.add_row(
                str(item.id),
                SERIES_STATUS.get(item.status, item.status),
                item.title,
                key=str(item.id),
            )
        if series.items:
            self.show(series.items[0])
        else:
            self.query_one("#series-info", Static).update("定期配信はまだありません。")

    def show(self, item: schema.SeriesOut) -> None:
        self.selected = item
        self.query_one("#series-info", Static).update(series_table(item))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "series-table" or event.row_key.value is None:
            return
        found = self.series.get(int(event.row_key.value))
        if found is not None:
            self.show(found)

    def action_series(self, action: str) -> None:
        self.change(action)

    @work(exit_on_error=False, exclusive=True, group="series-action")
    async def change(self, action: str) -> None:
        item = self.selected
        if item is None:
            return
        labels = {
            "approve": "承認",
            "pause": "一時停止",
            "resume": "再開",
            "end": "終了",
            "approve-change": "変更を承認",
        }
        change = item.pending_change
        if action == "approve-change" and change is None:
            self.notify("承認待ちの変更はありません。", severity="warning")
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmModal(
                f"定期配信「{item.title}」を{labels[action]}します",
                f"変更後：{change.rule_text}（{change.proposed_by} さんの申請）"
                if action == "approve-change" and change is not None
                else f"{item.rule_text}",
                confirm_label=f"{labels[action]}する",
                danger=action in ("end",),
            )
        )
        if not confirmed:
            return
        try:
            updated = await self.api.series_action(item.id, action)
        except ApiError as exc:
            self.report(exc, f"定期配信を{labels[action]}")
            return
        self.notify(f"定期配信「{updated.title}」を{labels[action]}しました。", title="定期配信")
        self.load()

    def action_edit_series(self) -> None:
        self.open_in_compose()

    @work(exit_on_error=False, exclusive=True, group="series-edit")
    async def open_in_compose(self) -> None:
        """配信作成 with the selected series loaded; 承認依頼 there asks for the change."""
        item = self.selected
        if item is None:
            return
        if item.status in ("ended", "cancelled"):
            self.notify("終了した定期配信は変更できません。", severity="warning")
            return
        app = self.app
        compose = getattr(app, "compose_screen", None)
        if compose is not None and compose.is_mounted and compose.has_unsaved_changes():
            app.action_open_screen("compose")  # type: ignore[attr-defined]
            if not await compose.confirm_leave("定期配信を開く"):
                return
        app.action_open_screen("compose")  # type: ignore[attr-defined]
        load = getattr(app.screen, "load_series", None)
        if callable(load):
            app.screen.call_after_refresh(load, item)

    def action_reject_change(self) -> None:
        self.reject_change()

    @work(exit_on_error=False, exclusive=True, group="series-action")
    async def reject_change(self) -> None:
        item = self.selected
        if item is None or item.pending_change is None:
            self.notify("承認待ちの変更はありません。", severity="warning")
            return
        comment = await self.app.push_screen_wait(RejectModal(f"{item.title}の変更"))
        if not comment:
            return
        try:
            updated = await self.api.series_action(item.id, "reject-change", comment)
        except ApiError as exc:
            self.report(exc, "定期配信の変更を差し戻し")
            return
        self.notify(f"定期配信「{updated.title}」の変更を差し戻しました。", title="定期配信")
        self.load()
