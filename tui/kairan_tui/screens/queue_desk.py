"""呼出 (W3): the calling desk of the 窓口担当 role, keyboard first, usable at 80×24.

One counter (窓口) and one service at a time: the waiting list of the service, and the ticket
at this counter. Keys: n 呼出 (call the next), r 再呼出, a 不在, s 対応開始, d 完了, t 転送,
p 休止/再開, tab the next service, [ ] the counter, g today's statistics chart, e CSV.
Tickets carry no name: a number, a state and whether a LINE chat is tied to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, OptionList, Static
from textual.widgets.option_list import Option

from kairan_tui.client import ApiError
from kairan_tui.labels import JST
from kairan_tui.screens.base import KairanScreen
from kairan_tui.widgets.bar_chart import BarChart
from kairand.api import schema

EXPORT_DIR = Path.home()
POLL_SECONDS = 60.0
"""Safety net only: the desk reloads whenever the daemon's board event stream reports a change
(a call from another counter, a ticket from LINE or the kiosk)."""
RETRY_SECONDS = 3.0
"""After the event stream is lost (daemon restart), follow it again this long later."""


def _clock(unix: float | None) -> str:
    return dt.datetime.fromtimestamp(unix, JST).strftime("%H:%M") if unix else "—"


class TransferModal(ModalScreen[str | None]):
    """Choose the service to transfer the ticket to (Enter), or Escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "やめる")]

    def __init__(self, label: str, services: list[tuple[str, str]]) -> None:
        super().__init__()
        self.label = label
        self.services = services

    def compose(self) -> ComposeResult:
        with Vertical(classes="box", id="transfer-box"):
            yield Static(
                f"{self.label} の転送先を選んでください（Esc でやめる）", classes="box-title"
            )
            yield OptionList(*(Option(name, id=code) for code, name in self.services))

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class QueueStatsModal(ModalScreen[None]):
    """Today's tickets by hour (W4) as a bar chart; no personal data exists to show."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,g", "close", "閉じる")]

    def __init__(self, stats: schema.QueueStatistics, names: dict[str, str]) -> None:
        super().__init__()
        self.stats = stats
        self.names = names

    def compose(self) -> ComposeResult:
        rows = []
        k = self.stats.small_cell_threshold
        for r in self.stats.rows:
            name = self.names.get(r.service, r.service)[:8]
            shown = str(r.tickets) if r.tickets is not None else f"<{k}"
            wait = f" 待{r.wait_minutes_mean:g}分" if r.wait_minutes_mean is not None else ""
            rows.append((f"{r.hour:02d}時 {name}", r.tickets, shown + wait))
        with Vertical(classes="box", id="queue-stats-box"):
            yield Static(
                f"発券数（時台・業務別）{self.stats.first}〜{self.stats.last}　Esc で閉じる",
                classes="box-title",
            )
            yield BarChart(rows[-14:])

    def action_close(self) -> None:
        self.dismiss(None)


class QueueDeskScreen(KairanScreen):
    SCREEN_NAME = "queue"
    SCREEN_TITLE = "呼出"
    DEFAULT_CSS = """
    #queue-status { height: 1; padding: 0 1; text-style: bold; }
    #queue-main { height: 1fr; }
    #queue-waiting-box { width: 1fr; }
    #queue-here-box { width: 34; }
    #queue-here { height: auto; padding: 0 1; text-style: bold; }
    #queue-calling { height: auto; padding: 0 1; }
    #queue-keys { height: 1; }
    #transfer-box, #queue-stats-box { width: 70; height: auto; max-height: 20; }
    TransferModal, QueueStatsModal { align: center middle; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "call", "呼出"),
        Binding("r", "act('recall')", "再呼出"),
        Binding("a", "act('absent')", "不在"),
        Binding("s", "act('serve')", "対応開始"),
        Binding("d", "act('done')", "完了"),
        Binding("t", "transfer", "転送"),
        Binding("p", "pause", "休止/再開"),
        Binding("tab", "next_service", "業務切替", priority=True),
        Binding("right_square_bracket", "counter(1)", "窓口+", show=False),
        Binding("left_square_bracket", "counter(-1)", "窓口-", show=False),
        Binding("g", "stats", "統計"),
        Binding("e", "export", "CSV", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.desk: schema.QueueDesk | None = None
        self.service_index = 0
        self.counter: int | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="queue-status")
        with Horizontal(id="queue-main"):
            with Vertical(classes="box", id="queue-waiting-box"):
                yield Static("お待ちの番号", classes="box-title", id="queue-waiting-title")
                yield DataTable(id="queue-waiting", cursor_type="row", zebra_stripes=True)
            with Vertical(classes="box", id="queue-here-box"):
                yield Static("この窓口", classes="box-title")
                yield Static("", id="queue-here")
                yield Static("", id="queue-calling")
        yield Static(
            "n 呼出　r 再呼出　a 不在　s 対応開始　d 完了　t 転送　p 休止　Tab 業務　[ ] 窓口",
            classes="hint",
            id="queue-keys",
        )

    def on_mount(self) -> None:
        # Fixed widths (cells): the table keeps its shape while it is refilled, whatever the
        # rows (番号 up to "A-9999", 発券 "10:00", 経路 "発券機", LINE "連携", 優先 "予約").
        table = self.query_one("#queue-waiting", DataTable)
        for label, width in (("番号", 6), ("発券", 5), ("経路", 6), ("LINE", 4), ("優先", 4)):
            table.add_column(label, width=width)
        self.set_interval(POLL_SECONDS, self.refresh_data)
        self.follow()

    # -- data ---------------------------------------------------------------------------

    @property
    def service(self) -> schema.QueueDeskService | None:
        if self.desk is None or not self.desk.services:
            return None
        return self.desk.services[self.service_index % len(self.desk.services)]

    def here(self) -> schema.QueueTicket | None:
        """The ticket at this counter: the latest called or being served."""
        service = self.service
        if service is None or self.counter is None:
            return None
        mine = [t for t in service.calling + service.serving if t.counter == self.counter]
        return max(mine, key=lambda t: t.called_at_unix or 0, default=None)

    def refresh_data(self) -> None:
        self.load()

    @work(exit_on_error=False, exclusive=True, group="queue-events")
    async def follow(self) -> None:
        """Reload on every change the daemon announces on the board stream; when the stream
        breaks, reload once it is back (changes may have been missed meanwhile)."""
        while True:
            try:
                async for _board in self.api.queue_board_events(self.refresh_data):
                    self.load()
            except ApiError:
                pass
            await asyncio.sleep(RETRY_SECONDS)

    @work(exit_on_error=False, exclusive=True, group="queue-desk")
    async def load(self) -> None:
        try:
            desk = await self.api.queue_desk()
        except ApiError as exc:
            self.report(exc, "呼出状況を表示")
            return
        self.show(desk)

    def show(self, desk: schema.QueueDesk) -> None:
        self.desk = desk
        service = self.service
        status = self.query_one("#queue-status", Static)
        if service is None:
            status.update("番号札の窓口業務が設定されていません（kairan.toml の [queue]）。")
            return
        if self.counter not in service.counters:
            self.counter = service.counters[0]
        paused = self.counter in desk.paused_counters
        status.update(
            f"{self.counter}番窓口｜{service.name}（{service.prefix}）｜"
            f"{'休止中' if paused else '受付中'}｜発券 {service.issued}・完了 {service.done}・"
            f"不在 {service.absent}・約{service.minutes_per_ticket:g}分/人"
            + ("" if desk.open else "｜本日の受付は終了")
        )
        self.query_one("#queue-waiting-title", Static).update(
            f"お待ちの番号（{len(service.waiting)}人）"
        )
        table = self.query_one("#queue-waiting", DataTable)
        table.clear()
        channels = {"line": "LINE", "kiosk": "発券機", "desk": "窓口"}
        for t in service.waiting:
            table.add_row(
                t.label,
                _clock(t.issued_at_unix),
                channels.get(t.channel, t.channel),
                "連携" if t.line_linked else "",
                "予約" if t.priority else "",
                key=str(t.id),
            )
        here = self.here()
        if here is None:
            text = "呼出中の番号はありません。\nn で次の番号を呼び出します。"
        else:
            state = schema.QUEUE_STATE_LABELS.get(here.state, here.state)
            text = (
                f"{here.label}　{state}\n呼出 {_clock(here.called_at_unix)}"
                f"　再呼出 {here.recalls}/{desk.recall_limit}回"
            )
        self.query_one("#queue-here", Static).update(text)
        others = [f"{t.label}→{t.counter}番" for t in service.calling if t.counter != self.counter]
        self.query_one("#queue-calling", Static).update(
            "ほかの窓口：" + ("　".join(others[:6]) if others else "なし")
        )

    # -- actions ------------------------------------------------------------------------

    @work(exit_on_error=False, exclusive=True, group="queue-act")
    async def action_call(self) -> None:
        service = self.service
        if service is None or self.counter is None:
            return
        try:
            ticket = await self.api.queue_call(service.code, self.counter)
        except ApiError as exc:
            self.report(exc, "呼出")
            return
        self.notify(f"{ticket.label} を {self.counter}番窓口へ呼び出しました。", timeout=4)
        self.load()

    @work(exit_on_error=False, exclusive=True, group="queue-act")
    async def action_act(self, action: str) -> None:
        here = self.here()
        if here is None:
            self.notify("この窓口で呼出中の番号がありません。", severity="warning", timeout=4)
            return
        try:
            await self.api.queue_action(here.id, action)
        except ApiError as exc:
            self.report(exc, schema.QUEUE_ACTION_LABELS.get(action, action))
            return
        label = schema.QUEUE_ACTION_LABELS.get(action, action)
        self.notify(f"{here.label}：{label}", timeout=3)
        self.load()

    def action_transfer(self) -> None:
        here, desk = self.here(), self.desk
        if here is None or desk is None:
            self.notify("この窓口で呼出中の番号がありません。", severity="warning", timeout=4)
            return
        targets = [(s.code, s.name) for s in desk.services if s.code != here.service]
        if not targets:
            self.notify("転送先の窓口業務がありません。", severity="warning", timeout=4)
            return

        def done(code: str | None) -> None:
            if code:
                self.transfer(here.id, here.label, code)

        self.app.push_screen(TransferModal(here.label, targets), done)

    @work(exit_on_error=False, group="queue-act")
    async def transfer(self, ticket_id: int, label: str, code: str) -> None:
        try:
            new = await self.api.queue_action(ticket_id, "transfer", code)
        except ApiError as exc:
            self.report(exc, "転送")
            return
        self.notify(f"{label} を {new.label} として転送しました（優先でご案内）。", timeout=5)
        self.load()

    @work(exit_on_error=False, exclusive=True, group="queue-act")
    async def action_pause(self) -> None:
        if self.desk is None or self.counter is None:
            return
        paused = self.counter not in self.desk.paused_counters
        try:
            desk = await self.api.queue_pause(self.counter, paused)
        except ApiError as exc:
            self.report(exc, "休止の切替")
            return
        self.notify(f"{self.counter}番窓口を{'休止' if paused else '再開'}しました。", timeout=3)
        self.show(desk)

    def action_next_service(self) -> None:
        if self.desk and self.desk.services:
            self.service_index = (self.service_index + 1) % len(self.desk.services)
            self.counter = None
            self.show(self.desk)

    def action_counter(self, step: int) -> None:
        service = self.service
        if service is None or self.desk is None:
            return
        counters = service.counters
        at = counters.index(self.counter) if self.counter in counters else 0
        self.counter = counters[(at + step) % len(counters)]
        self.show(self.desk)

    def _period(self) -> tuple[str, str]:
        today = dt.datetime.now(JST).date()
        day = self.desk.day if self.desk else today.isoformat()
        return day, day

    @work(exit_on_error=False, group="queue-stats")
    async def action_stats(self) -> None:
        first, last = self._period()
        try:
            stats = await self.api.queue_statistics(first, last)
        except ApiError as exc:
            self.report(exc, "統計の表示")
            return
        names = {s.code: s.name for s in self.desk.services} if self.desk else {}
        self.app.push_screen(QueueStatsModal(stats, names))

    @work(exit_on_error=False, group="queue-stats")
    async def action_export(self) -> None:
        first, last = self._period()
        try:
            data = await self.api.queue_statistics_csv(first, last)
        except ApiError as exc:
            self.report(exc, "CSVの書き出し")
            return
        path = EXPORT_DIR / f"queue-statistics-{first}.csv"
        try:
            await asyncio.to_thread(path.write_bytes, data)
        except OSError as exc:
            self.notify(f"書き出せませんでした：{exc.strerror}", severity="error", timeout=8)
            return
        self.notify(f"{path} に書き出しました（Excel で開けます）。", timeout=6)
