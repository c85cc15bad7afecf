"""`kairan kiosk`: the ticket terminal (発券機) at the window, full screen, touch or keypad.

Runs as a dedicated OS user whose only role is `kiosk`: it can issue tickets and read the
public board, nothing else. Choose the service (touch its button or press its number), get a
numbered ticket. With a printer configured the ticket is printed (kiosk_print); without one —
or when printing fails — the QR code is shown on screen for the resident's phone.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

from escpos.escpos import Escpos
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Digits, Static

from kairan_tui.bigtext import big_label
from kairan_tui.client import ApiError, KairanApi
from kairan_tui.kiosk_print import print_ticket, screen_qr
from kairand.api import schema

RETURN_SECONDS = 20.0
"""The ticket screen goes back to the menu by itself after this long."""

CSS = """
Screen {
    background: $surface;
}
#title {
    height: 3;
    content-align: center middle;
    text-style: bold;
    background: $primary;
    color: $text;
}
#services {
    height: 1fr;
    padding: 1 2;
}
#services Button {
    width: 100%;
    height: 3;
    margin: 0 0 1 0;
}
#hint {
    height: 2;
    content-align: center middle;
}
#message {
    height: auto;
    min-height: 1;
    color: $error;
    content-align: center middle;
}
#ticket {
    height: 1fr;
}
#left {
    width: 1fr;
    align: center middle;
    padding: 1 1;
}
#left Static {
    width: 100%;
    content-align: center middle;
}
#left Digits {
    width: auto;
}
#left .figlet {
    width: auto;
    text-style: bold;
}
.number-text {
    text-style: bold;
}
#qr {
    width: auto;
    height: auto;
    color: black;
    background: white;
}
#right {
    width: auto;
    align: center middle;
    padding: 0 1;
}
"""


def _leave_for_scan(path: Path, url: str) -> None:
    """Training mode: the latest ticket's QR link, replaced atomically, owner-readable only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(url + "\n", encoding="utf-8")
    partial.chmod(0o600)
    partial.replace(path)


def _number_widget(label: str) -> Digits | Static:
    return big_label(label, id="number", classes="number-text")


class TicketScreen(Screen[None]):
    """The issued ticket: the number, service, wait; the QR code unless it was printed."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,escape,space", "back", "戻る")]

    def __init__(self, issued: schema.QueueIssued, printed: bool, note: str = "") -> None:
        super().__init__()
        self.issued = issued
        self.printed = printed
        self.note = note

    def compose(self) -> ComposeResult:
        issued = self.issued
        wait = (
            "次にお呼びします"
            if issued.ahead == 0
            else f"お待ちの方 {issued.ahead}人・約{issued.minutes}分"
        )
        yield Static("番号札を発行しました", id="title")
        with Horizontal(id="ticket"):
            with Vertical(id="left"):
                yield Static("あなたの番号")
                yield _number_widget(issued.label)
                yield Static(issued.service_name)
                yield Static(wait)
                if self.printed:
                    yield Static("印刷した番号札をお取りください。")
                if self.note:
                    yield Static(self.note, id="message")
                if issued.qr_url and not self.printed:
                    yield Static(
                        "QRコードをLINEで読み取ると、順番の確認とお呼び出しのお知らせができます。"
                    )
                yield Static("（画面に触れるか Enter で最初の画面へ）")
            if issued.qr_url and not self.printed:
                with Vertical(id="right"):
                    yield Static(screen_qr(issued.qr_url), id="qr")

    def on_mount(self) -> None:
        self.set_timer(RETURN_SECONDS, self.action_back)

    def on_click(self) -> None:
        self.action_back()

    def action_back(self) -> None:
        if self.is_current:
            self.dismiss()


class KioskApp(App[None]):
    CSS = CSS
    TITLE = "番号札発行"
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(str(n), f"choose({n})", show=False) for n in range(1, 10)),
        Binding("ctrl+q", "quit", "終了", show=False),
    ]

    def __init__(
        self, api: KairanApi, printer: Escpos | None = None, scan_file: Path | None = None
    ) -> None:
        super().__init__()
        self.api = api
        self.printer = printer
        # Training only: each QR link is also left here for the simulated phone to "scan".
        self.scan_file = scan_file
        self.board: schema.QueueBoard | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Static("番号札をお取りください", id="title")
        yield Static(
            "ご用件を選んでください（画面に触れるか、番号のキーを押してください）", id="hint"
        )
        yield Vertical(id="services")
        yield Static("", id="message")

    def on_mount(self) -> None:
        self.refresh_board()
        self.set_interval(10.0, self.refresh_board)

    @work(exclusive=True, group="board")
    async def refresh_board(self) -> None:
        try:
            board = await self.api.queue_board()
        except ApiError as exc:
            self.query_one("#message", Static).update(exc.message)
            return
        self.show_board(board)

    def show_board(self, board: schema.QueueBoard) -> None:
        first = self.board is None or [s.code for s in self.board.services] != [
            s.code for s in board.services
        ]
        self.board = board
        box = self.query_one("#services", Vertical)
        message = self.query_one("#message", Static)
        if not board.open:
            message.update(
                "本日の番号札の受付は終了しました"
                f"（受付時間 {board.opens_at}〜{board.closes_at}）。"
            )
        elif not board.services:
            message.update("現在、番号札の受付はありません。")
        else:
            message.update("")
        if first:
            box.remove_children()
            for n, service in enumerate(board.services[:9], start=1):
                box.mount(Button(self._label(n, service), id=f"svc-{service.code}"))
        else:
            for n, service in enumerate(board.services[:9], start=1):
                self.query_one(f"#svc-{service.code}", Button).label = self._label(n, service)

    @staticmethod
    def _label(n: int, service: schema.QueueBoardService) -> str:
        return f"{n}  {service.name}（お待ち {service.waiting}人）"

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("svc-"):
            self.issue(event.button.id[4:])

    def action_choose(self, n: int) -> None:
        if self.board is not None and 1 <= n <= len(self.board.services):
            self.issue(self.board.services[n - 1].code)

    @work(exclusive=True, group="issue")
    async def issue(self, code: str) -> None:
        if (
            self._busy
            or not isinstance(self.screen, Screen)
            or self.screen is not self.screen_stack[0]
        ):
            return
        self._busy = True
        try:
            try:
                issued = await self.api.queue_issue(code)
            except ApiError as exc:
                self.query_one("#message", Static).update(exc.message)
                return
            printed, note = False, ""
            if self.scan_file is not None and issued.qr_url:
                await asyncio.to_thread(_leave_for_scan, self.scan_file, issued.qr_url)
            if self.printer is not None:
                try:
                    await asyncio.to_thread(
                        print_ticket,
                        self.printer,
                        issued.label,
                        issued.service_name,
                        issued.issued_at_unix or time.time(),
                        issued.ahead,
                        issued.qr_url,
                    )
                    printed = True
                except Exception:  # any printer failure: the screen shows the ticket instead
                    note = (
                        "番号札を印刷できませんでした。この画面の番号をお控えのうえ、"
                        "職員にお知らせください。"
                    )
            await self.push_screen(TicketScreen(issued, printed, note))
            self.refresh_board()
        finally:
            self._busy = False
