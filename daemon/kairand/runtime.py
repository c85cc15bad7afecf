"""What every daemon component shares: the root application's typed keys and one helper for
background work (start, stop, a periodic loop, crash → log + restart policy).

A leaf module: it imports nothing of kairand but config and logs (the types of STORE and LINE
are named for the type checker only), so any component can import it and `kairand.daemon`
only composes the components. Before this module the keys lived in `kairand.daemon`, which
imports every component, and each component imported them back inside a function.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from kairand.config import Config
from kairand.logs import get_logger

if TYPE_CHECKING:  # types only: the store and the LINE client import far more than a leaf may
    from kairand.line.client import LineApi
    from kairand.store.database import Store

log = get_logger(__name__)

RESTART_AFTER_SECONDS: Final = 5.0
"""A worker that crashed starts again after this pause (its own loop catches what it expects;
this is the net under it)."""


class TaskGroup:
    """Keeps references to background tasks, names them, logs failures, and cancels and
    awaits them on shutdown (a task nobody awaits hides its exception)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def worker(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        restart_after: float | None = RESTART_AFTER_SECONDS,
    ) -> asyncio.Task[Any]:
        """Run RUN() as the background worker NAME; see `supervise` for the crash policy."""
        return self.spawn(supervise(name, run, restart_after=restart_after), name)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("task.failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def __len__(self) -> int:
        return len(self._tasks)


CONFIG: Final = web.AppKey("config", Config)
STORE: Final[web.AppKey[Store]] = web.AppKey("store")
LINE: Final[web.AppKey[LineApi]] = web.AppKey("line")
TASKS: Final = web.AppKey("tasks", TaskGroup)
STOPPING: Final = web.AppKey("stopping", asyncio.Event)
"""Set when the daemon is asked to stop (SIGTERM/SIGINT, or a test)."""
DELIVERY_WAKE: Final = web.AppKey("delivery_wake", asyncio.Event)
"""Set when a delivery became due now (approved, resumed, an urgent alert sent): the sender
looks at once instead of at its next poll (shared by the API app and the delivery worker)."""


class SendingGate:
    """Lets work that can wait (the audience index build, the retention pass) keep out of a
    delivery's way: on 2 cores, a pass over every resident in a store thread takes the CPU
    the sender's event loop needs to hold LINE's rate (measured at 1M: the whole daemon 0.77
    of the bound with that work running, the sender alone 1.004).

    The gate starts closed when a sender is present (it has not looked for due deliveries
    yet) and open otherwise; the sender closes it while it sends and opens it when nothing
    is due. `quiet` waits for an open gate, but never longer than LIMIT seconds: deferred
    work is delayed, never starved by a long or stuck delivery."""

    def __init__(self, sender_present: bool) -> None:
        self._open = asyncio.Event()
        self.waiting = 0
        """How many passes are waiting for the gate now."""
        if not sender_present:
            self._open.set()

    def sending(self) -> None:
        self._open.clear()

    def idle(self) -> None:
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def quiet(self, limit: float) -> bool:
        """Wait until nothing is being sent (True) or LIMIT seconds passed (False)."""
        if self._open.is_set():
            return True
        self.waiting += 1
        try:
            await asyncio.wait_for(self._open.wait(), limit)
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1


SENDING_GATE: Final = web.AppKey("sending_gate", SendingGate)
DEFER_LIMIT_SECONDS: Final = 900.0
"""The longest a deferred pass (index build, retention) waits for a delivery to finish."""


async def wait_until_quiet(app: web.Application, what: str) -> None:
    """Wait for the sending gate of APP (no gate: return at once); log when the wait ends
    at the limit rather than because sending finished."""
    gate = app.get(SENDING_GATE)
    if gate is not None and not await gate.quiet(DEFER_LIMIT_SECONDS):
        log.info("deferred_work.limit_reached", work=what, waited_s=DEFER_LIMIT_SECONDS)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    restart_after: float | None = RESTART_AFTER_SECONDS,
) -> None:
    """Run RUN() until it returns or the task is cancelled. If it raises, log the crash and
    start it again after RESTART_AFTER seconds (None: log and stay stopped)."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "worker.crashed",
                worker=name,
                error=f"{type(exc).__name__}: {exc}",
                restart_after=restart_after,
            )
            if restart_after is None:
                return
        await asyncio.sleep(restart_after)


async def periodic(
    name: str,
    interval: float,
    step: Callable[[], Awaitable[None]],
    *,
    stopping: asyncio.Event | None = None,
) -> None:
    """Wait INTERVAL seconds, call STEP, and again, until cancelled or STOPPING is set. A step
    that raises is logged (`<name>_failed`) and the loop goes on."""
    stop = stopping or asyncio.Event()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(f"{name}_failed", error=type(exc).__name__)
