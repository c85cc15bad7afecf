"""How the queue's parts tell each other something changed: the desk's call wakes the push
worker at once (call-to-push latency), and open board streams send the new board."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web


class QueueSignals:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """The queue's clock (Unix seconds): tests and the demo may run the day at any hour."""
        self.push = asyncio.Event()
        """Set: the push worker runs now."""
        self.version = 0
        self._changed = asyncio.Event()

    def changed(self) -> None:
        """A ticket was issued, called or closed: wake the push worker and the board streams."""
        self.version += 1
        self.push.set()
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self, since: int, seconds: float) -> int:
        """Wait until the version passes SINCE or SECONDS pass; the current version."""
        if self.version == since:
            waiter = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), seconds)
        return self.version


SIGNALS: Final = web.AppKey("queue_signals", QueueSignals)
