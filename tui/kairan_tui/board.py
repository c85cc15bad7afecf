"""`kairan board`: the waiting-room TV (呼出表示盤), full screen, large type, read only.

Runs as an OS user whose only role is `board`. Shows the numbers being called and their
windows (newest first), the next numbers and the waiting count per service, updated live
from the daemon's board event stream; a lost connection is shown and retried.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Digits, Static

from kairan_tui.bigtext import big_label
from kairan_tui.client import ApiError, KairanApi
from kairand.api import schema

RETRY_SECONDS = 3.0
SHOWN_CALLS = 3

CSS = """
Screen {
    background: black;
    color: white;
}
#title {
    height: 1;
    background: $primary;
    color: white;
    text-style: bold;
    content-align: center middle;
}
#calling {
    height: 1fr;
}
.call {
    height: auto;
    align: center middle;
    padding: 0 1;
}
.call Digits {
    width: auto;
}
.call .figlet {
    width: auto;
    height: 3;
    text-style: bold;
}
.call .arrow {
    width: auto;
    height: 3;
    content-align: center middle;
    padding: 0 1;
    text-style: bold;
}
.call .big {
    width: auto;
    height: 3;
    content-align: center middle;
    text-style: bold;
}
#none {
    height: 3;
    content-align: center middle;
}
#services {
    height: auto;
    border-top: solid white;
}
.service {
    height: 1;
    padding: 0 1;
}
#status {
    height: 1;
    color: yellow;
}
"""


def big(text: str, classes: str = "big") -> Digits | Static:
    return big_label(text, classes=classes)


class BoardApp(App[None]):
    CSS = CSS
    TITLE = "呼出表示盤"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "終了", show=False)]

    def __init__(self, api: KairanApi) -> None:
        super().__init__()
        self.api = api
        self.board: schema.QueueBoard | None = None

    def compose(self) -> ComposeResult:
        yield Static("ただいまお呼びしている番号", id="title")
        yield Vertical(id="calling")
        yield Vertical(id="services")
        yield Static("", id="status")

    def on_mount(self) -> None:
        self.follow()

    @work(exclusive=True, group="events")
    async def follow(self) -> None:
        status = self.query_one("#status", Static)
        while True:
            try:
                async for board in self.api.queue_board_events(lambda: status.update("")):
                    await self.show(board)
            except ApiError as exc:
                status.update(exc.message)
            await asyncio.sleep(RETRY_SECONDS)

    async def show(self, board: schema.QueueBoard) -> None:
        self.board = board
        calling = self.query_one("#calling", Vertical)
        await calling.remove_children()
        if board.calling:
            for call in board.calling[:SHOWN_CALLS]:
                row = Horizontal(
                    big(call.label),
                    Static("→", classes="arrow"),
                    big(str(call.counter)),
                    Static("番窓口", classes="arrow"),
                    classes="call",
                )
                await calling.mount(row)
        else:
            message = "ただいまお呼びしている番号はありません"
            if not board.open:
                message = (
                    f"本日の受付は終了しました（受付時間 {board.opens_at}〜{board.closes_at}）"
                )
            await calling.mount(Static(message, id="none"))
        services = self.query_one("#services", Vertical)
        await services.remove_children()
        for service in board.services:
            upcoming = "　".join(service.next[:5]) or "—"
            await services.mount(
                Static(
                    f"{service.name}　お待ち {service.waiting}人　次の番号：{upcoming}",
                    classes="service",
                )
            )
