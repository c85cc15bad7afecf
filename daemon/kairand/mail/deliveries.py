"""Approved deliveries by mail: the shell that hands each frozen mail recipient of
a delivery to MailSender, which sends each (delivery, subscriber) at most once.

The LINE sender freezes a delivery's mail recipients in the transaction that freezes its LINE
batches (kairand.store.mail.freeze_recipients). This worker picks the most urgent delivery
with recipients not yet handed to the relay and sends them through MailSender (its own rate
limit, the stored Message-ID rule). A recipient of a cancelled delivery, or one frozen more
than MAX_AGE_SECONDS ago (mail was switched off meanwhile), is never sent: a late alert is
worse than none. A relay that is down leaves the rows in 'retry' and the worker backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from kairand.delivery.messages import parse_item
from kairand.logs import get_logger
from kairand.mail.render import alert_text
from kairand.mail.sender import Alert, MailSender
from kairand.store import deliveries as delivery_store
from kairand.store import mail as mail_store
from kairand.store.database import Store

log = get_logger(__name__)

MAX_AGE_SECONDS = 24 * 3600
"""Recipients frozen longer ago than this are not sent any more."""
BATCH = 100
"""Recipients handed to one SMTP session."""


class MailDeliveries:
    def __init__(
        self,
        store: Store,
        sender: MailSender,
        *,
        poll_seconds: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sender = sender
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.wake = asyncio.Event()
        self._failures = 0

    async def step(self) -> bool:
        """Send one batch of one delivery; False when there was nothing to do or nothing
        reached the relay (it is down: back off)."""
        frozen_after = int(self.clock()) - MAX_AGE_SECONDS
        work = await self.store.read(mail_store.next_work, frozen_after, BATCH)
        if work is None:
            return False
        delivery_id, subscriber_ids = work
        row = await self.store.read(delivery_store.get, delivery_id)
        if row is None:  # pragma: no cover - deliveries are never deleted while frozen
            return False
        subject, body = alert_text([parse_item(m) for m in row.messages], row.urgent)
        result = await self.sender.send_alert(Alert(delivery_id, subject, body), subscriber_ids)
        return any(state != "retry" for state in result)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                worked = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the worker alive; the rows stay resumable
                log.error("mail.deliveries_error", error=type(exc).__name__)
                worked = False
            if worked:
                self._failures = 0
                continue
            wait = self.poll_seconds
            work_left = await self.store.read(
                mail_store.next_work, int(self.clock()) - MAX_AGE_SECONDS, 1
            )
            if work_left is not None:  # the relay refused or was unreachable: back off
                self._failures += 1
                wait = min(300.0, self.poll_seconds * 2 ** min(self._failures, 8))
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), wait)
