"""The real staff API with a queue configured, on a loop in a background thread, for the
kiosk, board and desk Pilot tests (the apps under test run in their own loop)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

from aiohttp import web

from kairand.api.app import serve
from kairand.api.identity import Peer
from kairand.config import Config, QueueSection, QueueServiceSection
from kairand.queue.signals import QueueSignals
from kairand.store import staff
from kairand.store.database import Connection, Store
from kairand.timeutil import JST

NOW = dt.datetime(2026, 10, 1, 10, 0, tzinfo=JST).timestamp()
QUEUE = QueueSection(
    services=(
        QueueServiceSection(
            code="hoiku",
            prefix="A",
            name="保育所等利用申込",
            counters=(1, 2, 3),
            default_service_minutes=10,
        ),
        QueueServiceSection(
            code="juminhyo", prefix="B", name="住民票・印鑑登録証明書", counters=(4,)
        ),
    ),
    line_basic_id="@kairan",
)
USERS = {"hakken": ("kiosk",), "hyouji": ("board",), "madoguchi": ("counter",)}


def with_queue(config: Config) -> Config:
    return config.model_copy(update={"queue": QUEUE})


def add_queue_staff(conn: Connection) -> None:
    for name, roles in USERS.items():
        staff.upsert(conn, staff.StaffRecord(name, f"{name}", roles), 0)


class ThreadedQueueApi:
    """serve() in a background thread; `user` names the caller (kiosk, board or counter)."""

    def __init__(self, config: Config, store: Store, user: str, now: float = NOW) -> None:
        self.user = user
        self.clock = now
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready = threading.Event()
        self.signals: QueueSignals | None = None
        store.write_sync(add_queue_staff)

        async def resolve(request: web.Request) -> Peer:
            return Peer(1000, self.user)

        async def run() -> None:
            self.stop = asyncio.Event()
            self.signals = QueueSignals(clock=lambda: self.clock)
            async with serve(config, store, None, resolve, self.signals):
                self.ready.set()
                await self.stop.wait()

        self.future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        assert self.ready.wait(15)

    def changed(self) -> None:
        """Tell open board streams that the store changed behind the API's back."""
        assert self.signals is not None
        self.loop.call_soon_threadsafe(self.signals.changed)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.future.result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
