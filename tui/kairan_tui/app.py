"""The Textual application: identity, navigation by role, connection watching, help."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, Provider
from textual.containers import Center, Middle
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from kairan_tui.client import CONNECTION_LOST_MESSAGE, ApiError, ConnectionLost, KairanApi
from kairan_tui.commands import ScreenCommands
from kairan_tui.modals.confirm import HeldKey
from kairan_tui.navigation import SCREENS, allowed_screens
from kairan_tui.widgets.message_line import MessageLine
from kairan_tui.widgets.top_bar import ConnectionBanner, TopBar
from kairand.api import schema


def _screen_classes() -> dict[str, Callable[[], Screen]]:
    from kairan_tui.screens.alert import AlertScreen
    from kairan_tui.screens.approvals import ApprovalsScreen
    from kairan_tui.screens.audit import AuditScreen
    from kairan_tui.screens.calendar import CalendarScreen
    from kairan_tui.screens.compose import ComposeScreen
    from kairan_tui.screens.dashboard import DashboardScreen
    from kairan_tui.screens.history import HistoryScreen
    from kairan_tui.screens.programs import ProgramsScreen
    from kairan_tui.screens.queue_desk import QueueDeskScreen
    from kairan_tui.screens.report import ReportScreen
    from kairan_tui.screens.reservations import ReservationDeskScreen
    from kairan_tui.screens.staff import StaffScreen
    from kairan_tui.screens.statistics import StatisticsScreen
    from kairan_tui.screens.survey import SurveyScreen

    return {
        "dashboard": DashboardScreen,
        "compose": ComposeScreen,
        "approvals": ApprovalsScreen,
        "history": HistoryScreen,
        "statistics": StatisticsScreen,
        "survey": SurveyScreen,
        "staff": StaffScreen,
        "audit": AuditScreen,
        "queue": QueueDeskScreen,
        "reservations": ReservationDeskScreen,
        "alert": AlertScreen,
        "programs": ProgramsScreen,
        "calendar": CalendarScreen,
        "report": ReportScreen,
    }


@dataclass
class DaemonEvent(Message):
    """An event from the API's stream (`dashboard` counters, `delivery` progress), posted to
    the current screen."""

    name: str
    data: Any


class ConnectingScreen(Screen):
    """Shown until the daemon tells who the caller is."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "app.quit", "終了")]

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static("サーバーに接続しています…", id="connecting-message")
        yield MessageLine()
        yield Footer()

    def show(self, text: str) -> None:
        self.query_one("#connecting-message", Static).update(text)


class KairanApp(App[None]):
    """The staff terminal. Build it with make_app(); tests pass the same arguments."""

    # Absolute: resolving a relative path would touch the filesystem on the event loop.
    CSS_PATH = Path(__file__).parent / "kairan.tcss"
    TITLE = "Kairan 職員用画面"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ScreenCommands}
    COMMAND_PALETTE_DISPLAY = "Ctrl+P"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "ヘルプ", key_display="F1"),
        Binding("question_mark", "help", "ヘルプ", show=False),
        Binding("ctrl+p", "command_palette", "メニュー", show=False, priority=True),
        Binding("ctrl+q", "quit", "終了", priority=True),
        Binding("ctrl+b", "switch_identity", "研修：立場の切替", show=False),
        *[
            Binding(entry.key, f"open_screen('{entry.name}')", entry.title, show=False)
            for entry in SCREENS
        ],
    ]

    connected: reactive[bool] = reactive(True, init=False)

    def __init__(
        self,
        api: KairanApi,
        *,
        connection_check_seconds: float = 5.0,
        retry_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.api = api
        self.me: schema.Me | None = None
        self.export_dir: Path = Path.home()
        """Where reports are saved (取扱状況報告書); `kairan --export-dir`."""
        self.connection_check_seconds = connection_check_seconds
        self.retry_seconds = retry_seconds
        self._installed: list[str] = []
        self.held_key = HeldKey()
        """Repeats of a key held down on a confirmation that has closed (modals.confirm)."""
        self.identities: list[tuple[str, Path]] = []
        """Training: the positions (label, socket) Ctrl+B switches between (demo: 研修 作成者,
        研修 承認者 and the trainee's own account), the first being the current one."""
        self.identity_index = 0
        self.compose_screen: Any = None
        """The 配信作成 screen once opened (its unsaved work is asked about before quitting)."""
        self.message: tuple[str, str, str] | None = None
        """The message on the message line (text, title, severity), until it times out."""
        self._message_serial = 0

    def get_default_screen(self) -> Screen:
        return ConnectingScreen()

    def on_mount(self) -> None:
        self.sign_in()

    async def on_unmount(self) -> None:
        await self.api.close()

    async def on_event(self, event: events.Event) -> None:
        if (
            isinstance(event, events.Key)
            and not event.is_forwarded
            and self.held_key.swallows(event.key)
        ):
            return  # the rest of a key held on a confirmation that has already closed
        await super().on_event(event)

    # -- messages --------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Messages go to the full-width message line of the screen (widgets.message_line),
        never to a floating toast (textual#6357 drops Japanese characters under overlays).
        The notification is still recorded (the toast rack itself is hidden by the CSS).
        Messages are plain text: a staff member's input is never read as markup."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)
        if threading.get_ident() != self._thread_id:
            self.call_from_thread(self._show_message, message, title, severity, timeout)
        else:
            self._show_message(message, title, severity, timeout)

    def _show_message(self, message: str, title: str, severity: str, timeout: float | None) -> None:
        self.message = (message, title, severity)
        self._message_serial += 1
        serial = self._message_serial
        self.update_message_lines()
        seconds = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        self.set_timer(seconds, lambda: self._expire_message(serial))

    def _expire_message(self, serial: int) -> None:
        if serial == self._message_serial:
            self.message = None
            self.update_message_lines()

    def update_message_lines(self) -> None:
        for screen in self.screen_stack:
            for line in screen.query(MessageLine):
                if self.message is None:
                    line.clear_message()
                else:
                    line.show_message(*self.message)

    # -- identity --------------------------------------------------------------------------

    @work(exit_on_error=False, exclusive=True, group="sign-in")
    async def sign_in(self) -> None:
        """Ask who we are; retry quietly while the daemon is not up yet."""
        while True:
            try:
                me = await self.api.me()
            except ConnectionLost:
                self._connecting_text(
                    f"{CONNECTION_LOST_MESSAGE}\n\n接続先: {self.api.socket_path}\n"
                    "（Ctrl+Q で終了します）"
                )
                await asyncio.sleep(self.retry_seconds)
                continue
            except ApiError as exc:
                self._connecting_text(f"{exc.message}\n\n（Ctrl+Q で終了します）")
                return
            break
        self.me = me
        self._install_screens(me)
        await self.switch_mode("dashboard")
        self.watch_daemon()

    def _connecting_text(self, text: str) -> None:
        screen = self.screen
        if isinstance(screen, ConnectingScreen):
            screen.show(text)

    def _install_screens(self, me: schema.Me) -> None:
        classes = _screen_classes()
        for entry in allowed_screens(me.allowed):
            if entry.name not in self._installed:
                self.add_mode(entry.name, classes[entry.name])
                self._installed.append(entry.name)
        if "dashboard" not in self._installed:  # pragma: no cover - dashboard allows every role
            self.add_mode("dashboard", classes["dashboard"])
            self._installed.append("dashboard")

    @property
    def visible_screens(self) -> list[str]:
        return list(self._installed)

    # -- connection ------------------------------------------------------------------------

    @work(exit_on_error=False, exclusive=True, group="watch-daemon")
    async def watch_daemon(self) -> None:
        """Keep one event stream open: it tells that the daemon is there (a polled request
        would add an audit entry every few seconds; the stream is audited once, when it
        opens), and its events go to the current screen as DaemonEvent messages. When it
        breaks, reconnect; if the daemon refuses the stream, fall back to polling /v1/me."""
        while True:
            try:
                async for name, data in self.api.events("/v1/events", on_open=self._stream_open):
                    if name == "alert":  # an urgent alert was sent: tell at once
                        self.notify_alert(data)
                    self.screen.post_message(DaemonEvent(name, data))
            except ConnectionLost:
                self.connection_lost()
            except ApiError:
                await self._poll_once()
                await asyncio.sleep(self.connection_check_seconds)
                continue
            await asyncio.sleep(self.retry_seconds)

    def notify_alert(self, data: object) -> None:
        try:
            alert = schema.AlertEvent.model_validate(data)
        except ValueError:
            return
        label = {"alert": "緊急配信", "correction": "訂正", "all_clear": "解除"}[alert.kind]
        self.notify(
            f"{alert.institution_name}が「{alert.title}」を{alert.districts}学校区に送信しました"
            f"（配信 {alert.delivery_id}）。",
            title=f"{label}が送信されました",
            severity="warning",
            timeout=30,
        )

    async def _poll_once(self) -> None:
        try:
            await self.api.me()
        except ConnectionLost:
            self.connection_lost()
        except ApiError:
            pass
        else:
            self._stream_open()

    def _stream_open(self) -> None:
        if not self.connected:
            self.connected = True

    def connection_lost(self) -> None:
        if self.connected:
            self.connected = False

    def watch_connected(self, connected: bool) -> None:
        self.update_connection_banners()
        if connected:
            self.notify("サーバーに再接続しました。", title="接続が回復しました", timeout=5)
            refresh = getattr(self.screen, "refresh_data", None)
            if callable(refresh):
                refresh()
        else:
            self.notify(
                CONNECTION_LOST_MESSAGE, title="接続が切れました", severity="error", timeout=10
            )

    def update_connection_banners(self) -> None:
        for banner in self.screen.query(ConnectionBanner):
            banner.update(
                "サーバー（kairand）に接続できません。自動的に再接続しています…"
                "（戻らない場合はシステム管理者に連絡してください）"
            )
            banner.set_class(not self.connected, "-lost")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_failure(event)

    def report_worker_failure(self, event: Worker.StateChanged) -> None:
        """A bug in a worker must not close the terminal in front of staff: say so instead.
        (Workers run with exit_on_error=False; expected failures are ApiError, handled where
        they happen. The event does not bubble: screens forward theirs here.)"""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.log.error(f"worker {event.worker.name} failed: {error!r}")
            self.notify(
                "予期しないエラーが発生しました。画面を切り替えてもう一度お試しください。"
                "続く場合はシステム管理者に連絡してください"
                f"（{type(error).__name__}）。",
                title="エラー",
                severity="error",
                timeout=15,
            )

    # -- navigation ------------------------------------------------------------------------

    def action_open_screen(self, name: str) -> None:
        if name not in self._installed:
            if self.me is not None:
                self.notify(
                    "この画面を使う権限がありません。必要な場合はシステム管理者に相談してください。",
                    severity="warning",
                )
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.switch_mode(name)

    def action_help_quit(self) -> None:
        """Ctrl+C: Textual's own hint is English; say it in Japanese."""
        self.notify("終了するには Ctrl+Q を押してください。", title="終了のしかた", timeout=5)

    async def action_quit(self) -> None:
        """Ctrl+Q: ask first when 配信作成 holds unsaved work (保存して終了 / 破棄 / 戻る)."""
        self.quit_safely()

    @work(exit_on_error=False, exclusive=True, group="quit")
    async def quit_safely(self) -> None:
        compose = self.compose_screen
        if compose is not None and compose.is_mounted and compose.has_unsaved_changes():
            if self.current_mode != "compose":
                self.action_open_screen("compose")
            if not await compose.confirm_leave("終了"):
                return
        self.exit()

    def action_switch_identity(self) -> None:
        if len(self.identities) < 2 or self.me is None or not self.me.training_mode:
            self.notify("立場の切り替えは訓練モード（研修用の環境）でだけ使えます。")
            return
        self.switch_identity()

    @work(exit_on_error=False, exclusive=True, group="switch-identity")
    async def switch_identity(self) -> None:
        """Sign in again as the next training position: another person, as four eyes need
        (the daemon identifies each position by its socket)."""
        compose = self.compose_screen
        if compose is not None and compose.is_mounted and compose.has_unsaved_changes():
            if self.current_mode != "compose":
                self.action_open_screen("compose")
            if not await compose.confirm_leave("立場を切り替え"):
                return
        self.identity_index = (self.identity_index + 1) % len(self.identities)
        label, path = self.identities[self.identity_index]
        self.workers.cancel_group(self, "watch-daemon")
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if "connecting" not in self._modes:
            self.add_mode("connecting", ConnectingScreen)
        await self.switch_mode("connecting")
        for name in self._installed:
            await self.remove_mode(name)
        self._installed = []
        self.me = None
        self.compose_screen = None
        old, self.api = self.api, KairanApi(path)
        await old.close()
        self._connecting_text(f"「{label}」に切り替えています…")
        self.sign_in()
        self.notify(f"立場を「{label}」に切り替えました（研修用）。", title="立場の切り替え")

    def open_draft(self, detail: schema.DeliveryDetail) -> None:
        """Switch to 配信作成 with an existing draft loaded (from 配信履歴), after asking about
        unsaved work in the form it replaces."""
        self._open_draft(detail)

    @work(exit_on_error=False, exclusive=True, group="open-draft")
    async def _open_draft(self, detail: schema.DeliveryDetail) -> None:
        compose = self.compose_screen
        if compose is not None and compose.is_mounted and compose.has_unsaved_changes():
            self.action_open_screen("compose")
            if not await compose.confirm_leave("下書きを開く"):
                return
        self.action_open_screen("compose")
        screen = self.screen
        load = getattr(screen, "load_draft", None)
        if callable(load):
            screen.call_after_refresh(load, detail)

    def action_help(self) -> None:
        from kairan_tui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.screen))

    def action_command_palette(self) -> None:
        if self.use_command_palette and not CommandPalette.is_open(self):  # type: ignore[arg-type]
            self.push_screen(CommandPalette(placeholder="画面名や操作を入力してください…"))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("ヘルプ", "キー操作の一覧を表示します", self.action_help)
        yield SystemCommand("終了", "Kairan 職員用画面を終了します", self.exit)

    def refresh_top_bars(self) -> None:
        for bar in self.screen.query(TopBar):
            bar.refresh_lines()


def make_app(
    socket_path: Path | str,
    *,
    connection_check_seconds: float = 5.0,
    retry_seconds: float = 2.0,
    identities: list[tuple[str, Path]] | None = None,
    export_dir: Path | None = None,
) -> KairanApp:
    """Build the app for a daemon socket: the one factory used by `kairan` and by the tests.
    IDENTITIES (training only): the positions Ctrl+B switches between, as (label, socket)."""
    app = KairanApp(
        KairanApi(socket_path),
        connection_check_seconds=connection_check_seconds,
        retry_seconds=retry_seconds,
    )
    app.identities = list(identities or [])
    if export_dir is not None:
        app.export_dir = export_dir
    return app
