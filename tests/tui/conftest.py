"""TUI fixtures: the fake API server in its own thread (so snapshot tests, which run the app
in their own event loop, can talk to it), and helpers to drive the app."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.tui_fake_api import FakeServer, FakeState, demo_state


class ThreadedFake:
    """FakeServer(s) on an event loop in a background thread."""

    def __init__(self, state: FakeState, folder: Path) -> None:
        self.state = state
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[FakeServer] = []

    def socket_for(self, username: str) -> Path:
        path = self.folder / f"{username}.sock"
        server = FakeServer(self.state, username, path)
        asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(10)
        self.servers.append(server)
        return path

    def call(self, fn: Callable[[], object]) -> object:
        """Run fn on the server's loop (to read or change the state safely)."""

        async def run() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(server.stop(), self.loop).result(10)

        async def cancel_the_rest() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def fake(short_tmp: Path) -> Iterator[ThreadedFake]:
    server = ThreadedFake(demo_state(), short_tmp)
    yield server
    server.close()


def fast_app(socket: Path):
    from kairan_tui.app import make_app

    # Long check interval: the watcher must not add requests while a snapshot is taken.
    return make_app(socket, connection_check_seconds=60.0, retry_seconds=0.2)


@pytest.fixture
def app_for(fake: ThreadedFake):
    def build(username: str):
        return fast_app(fake.socket_for(username))

    return build
