"""ダッシュボード: the first screen — counts, the last 7 days, quota and health."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from kairan_tui.client import ApiError
from kairan_tui.labels import JST, format_datetime, format_day
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.wrapped import WrappedText
from kairand.api import schema

if TYPE_CHECKING:
    from kairan_tui.app import DaemonEvent

REFRESH_SECONDS = 60.0
"""Full reload (quota, health, days); counters arrive through the event stream."""


# What each figure counts, under the cards (staff compared 本日 with 今月 and 友だち
# with the week's 友だち追加 and found them "disagreeing").
FIGURE_NOTES = (
    "友だち＝ブロックした方を除く人数、登録者＝そのうち配信を受け取る方。本日の配信＝今日0時"
    "からの配信の件数と通数（1人に1通）。今月の送信数＝LINEの集計（テスト送信・お知らせを含む）。"
)
MAIL_NOTE = "メール配信の登録者は {mail} 人です（LINEの登録者とは別に数えます）。"
"""Put before the notes when the city uses the mail channel."""


class StatCard(Vertical):
    DEFAULT_CSS = """
    StatCard { border: round $primary; height: 4; padding: 0 1; }
    StatCard > .stat-label { color: $text-muted; }
    StatCard > .stat-value { text-style: bold; }
    """

    def __init__(self, label: str, card_id: str) -> None:
        super().__init__(id=card_id)
        self.label = label

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="stat-label")
        yield Static("…", classes="stat-value")

    def set_value(self, value: str) -> None:
        self.query_one(".stat-value", Static).update(value)

    def set_label(self, label: str) -> None:
        self.query_one(".stat-label", Static).update(label)


def week_table(days: list[schema.DayCount], width: int = 8) -> Table:
    top = max([max(d.follows, d.unfollows) for d in days] + [1])
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    table.add_column("日付", no_wrap=True)
    table.add_column("友だち追加", no_wrap=True)
    table.add_column("ブロック", no_wrap=True)
    for day in days:
        follow = Text("▇" * max(1 if day.follows else 0, round(width * day.follows / top)))
        follow.stylize("green")
        follow.append(f" {day.follows:,}")
        unfollow = Text("▇" * max(1 if day.unfollows else 0, round(width * day.unfollows / top)))
        unfollow.stylize("red")
        unfollow.append(f" {day.unfollows:,}")
        table.add_row(format_day(day.day), follow, unfollow)
    return table


def ago(value: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if value is None:
        return "まだありません"
    now = now or dt.datetime.now(dt.UTC)
    minutes = int((now - value).total_seconds() // 60)
    if minutes < 1:
        return f"{format_datetime(value)}（1分以内）"
    if minutes < 60:
        return f"{format_datetime(value)}（{minutes}分前）"
    return format_datetime(value)


class DashboardScreen(KairanScreen):
    SCREEN_NAME = "dashboard"
    SCREEN_TITLE = "ダッシュボード"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "最新の情報に更新")]

    def compose_body(self) -> ComposeResult:
        yield Static(
            "訓練モード：シミュレーターに接続しています。実際の登録者には配信されません。",
            id="training-banner",
        )
        with VerticalScroll(id="dashboard-body"):
            with Grid(id="stat-grid"):
                yield StatCard("友だち", "stat-friends")
                yield StatCard("登録者", "stat-registered")
                yield StatCard("本日の配信", "stat-today")
                yield StatCard("承認待ち", "stat-pending")
            yield WrappedText(FIGURE_NOTES, id="stat-notes")
            with Horizontal(id="dashboard-lower"):
                with Vertical(id="week-box", classes="box"):
                    yield Static("直近7日間の新しい友だち・ブロック", classes="box-title")
                    yield Static(id="week-chart")
                with Vertical(id="health-box", classes="box"):
                    yield Static("送信可能数・稼働状況", classes="box-title")
                    yield Static(id="health")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_SECONDS, self.refresh_data)

    def action_reload(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        if self.is_current:
            self.load()

    def on_daemon_event(self, event: DaemonEvent) -> None:
        """Counters pushed by the API's event stream between two polls."""
        if event.name == "dashboard" and isinstance(event.data, dict):
            self.show_counters(schema.DashboardCounters.model_validate(event.data))

    @work(exit_on_error=False, exclusive=True, group="dashboard")
    async def load(self) -> None:
        try:
            data = await self.api.dashboard()
        except ApiError as exc:
            self.report(exc, "ダッシュボードを表示")
            return
        self.show(data)

    def show(self, data: schema.DashboardOut) -> None:
        self.query_one("#training-banner").display = data.training_mode
        self.show_counters(data)
        self.query_one("#week-chart", Static).update(week_table(data.days))
        self.query_one("#health", Static).update(self._health(data))

    def show_counters(self, data: schema.DashboardCounters) -> None:
        self.query_one("#stat-friends", StatCard).set_value(f"{data.friends:,} 人")
        registered = self.query_one("#stat-registered", StatCard)
        if data.registered_mail is None:
            registered.set_label("登録者")
            registered.set_value(f"{data.registered:,} 人")
        else:  # the mail channel: LINE and mail counted apart
            registered.set_label("登録者（LINE）")
            registered.set_value(f"{data.registered:,} 人")
        self.query_one("#stat-notes", WrappedText).update(
            FIGURE_NOTES
            if data.registered_mail is None
            else MAIL_NOTE.format(mail=data.registered_mail) + FIGURE_NOTES
        )
        self.query_one("#stat-today", StatCard).set_value(
            f"{data.deliveries_today:,} 件（{data.messages_sent_today:,} 通）"
        )
        self.query_one("#stat-pending", StatCard).set_value(f"{data.pending_approval:,} 件")

    def _health(self, data: schema.DashboardOut) -> Table:
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        quota = data.quota
        if quota is None:
            table.add_row("送信可能数", Text("LINEに確認できませんでした", style="yellow"))
        else:
            if quota.limit is None:
                table.add_row("送信可能数", "上限なし")
            else:
                left = max(0, quota.limit - quota.used)
                style = "red" if left == 0 else ""
                table.add_row(
                    "送信可能数", Text(f"残り {left:,} 通（上限 {quota.limit:,}）", style=style)
                )
            checked = quota.checked_at.astimezone(JST).strftime("%H:%M")
            table.add_row("今月の送信数", f"{quota.used:,} 通（{checked} 時点）")
        table.add_row("配信中・予約", f"{data.active_deliveries:,} 件")
        health = data.health
        table.add_row("LINEからの受信", ago(health.last_webhook_at))
        if health.line_reachable is None:
            line = Text("まだ接続していません", style="dim")
        elif health.line_reachable:
            line = Text("正常に接続中", style="green")
        else:
            line = Text(
                f"接続できません（{health.line_last_error or '原因不明'}）", style="bold red"
            )
        table.add_row("LINE API", line)
        if health.tls_not_after is not None:
            days_left = (health.tls_not_after - dt.datetime.now(dt.UTC)).days
            style = "red" if days_left < 14 else ""
            table.add_row(
                "証明書期限",
                Text(f"{format_datetime(health.tls_not_after, with_year=True)}", style=style),
            )
        return table
