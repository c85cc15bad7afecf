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
from kairand.api import schema


def summary(stats: schema.StatisticsOut) -> str:
    """The line above the charts: whose answers, how many, and the small-cell rule."""
    version = f"（アンケート第{stats.survey_version}版）。"
    small = f"{stats.threshold}人未満の項目は「<{stats.threshold}」と表示します。"
    mail = stats.registered_mail_display
    if mail is None:
        return f"登録者 {stats.registered_display} 人の回答{version}{small}"
    if stats.channel == "mail":
        return (
            f"メール配信の登録者 {mail} 人の回答{version}"
            f"LINEの登録者 {stats.registered_display} 人の回答は m キーで表示します。{small}"
        )
    return (
        f"LINEの登録者 {stats.registered_display} 人の回答{version}"
        f"メール配信の登録者 {mail} 人の回答は m キーで表示します。{small}"
    )


class StatisticsScreen(KairanScreen):
    SCREEN_NAME = "statistics"
    SCREEN_TITLE = "登録者の傾向"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "最新の情報に更新"),
        Binding("m", "switch_channel", "LINE／メール切替"),
    ]

    channel = "line"
    """Whose answers are shown: "line" or "mail" (mail subscribers answer the same
    survey by mail; shown apart, never merged)."""
    mail_display: str | None = None
    """Registered mail subscribers as the daemon shows them; None: the mail channel is off."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The channel switch only when the city uses the mail channel."""
        if action == "switch_channel":
            return self.mail_display is not None
        return True

    def action_switch_channel(self) -> None:
        self.channel = "mail" if self.channel == "line" else "line"
        self.load()

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
            stats = await self.api.statistics(self.channel)
        except ApiError as exc:
            self.report(exc, "登録者の傾向を表示")
            return
        self.mail_display = stats.registered_mail_display
        self.refresh_bindings()
        self.query_one("#statistics-summary", Static).update(summary(stats))
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
