"""登録者の傾向: how registered residents answered, per question (aggregates only, W4)."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from kairan_tui.client import ApiError
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.bar_chart import BarChart


class StatisticsScreen(KairanScreen):
    SCREEN_NAME = "statistics"
    SCREEN_TITLE = "登録者の傾向"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "最新の情報に更新")]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="statistics-summary", classes="box-title")
        yield VerticalScroll(id="statistics-body")

    def action_reload(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="statistics")
    async def load(self) -> None:
        try:
            stats = await self.api.statistics()
        except ApiError as exc:
            self.report(exc, "登録者の傾向を表示")
            return
        self.query_one("#statistics-summary", Static).update(
            f"登録者 {stats.registered_display} 人の回答（アンケート第{stats.survey_version}版）。"
            f"{stats.threshold}人未満の項目は「<{stats.threshold}」と表示します。"
        )
        body = self.query_one("#statistics-body", VerticalScroll)
        await body.remove_children()
        widgets = []
        for question in stats.questions:
            widgets.append(Static(question.title, classes="chart-title"))
            widgets.append(
                BarChart(
                    [(cell.label, cell.count, cell.display) for cell in question.cells],
                    classes="chart",
                )
            )
        if not widgets:
            widgets.append(Static("まだ集計できる回答がありません。"))
        await body.mount_all(widgets)
