"""Recurring deliveries: a series is approved once; each occurrence becomes its own
delivery at its time.

Series status: draft ──submit──> pending_approval ──approve──> active <──pause/resume──> paused
(reject: back to draft; end: any of them ──> ended). The worker looks at active and paused
series: every occurrence whose time has come is handled exactly once (a row keyed by series and
time, written in the same transaction as its effect):

- active and on time (at most `recurring.grace_seconds` late, e.g. after the appliance was
  off): a delivery is created, approved with the series and scheduled at the occurrence's time.
  The sender then freezes it like any delivery: its own audience snapshot, its own batches and
  retry keys, so each occurrence is sent exactly once;
- active but later than the grace: skipped, audited and shown in the series' history;
- paused: skipped (skipped_paused).

When the rule has no occurrence left the series ends by itself. Every change is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kairand.audit.chain import AuditEntry
from kairand.config import RecurringSection
from kairand.delivery import policy, service
from kairand.delivery.errors import DeliveryError, InvalidContent, InvalidTransition
from kairand.delivery.messages import media_of, parse_item
from kairand.delivery.model import DeliveryContent
from kairand.delivery.recurrence import RecurrenceRule, occurrences
from kairand.delivery.schedule_clock import ScheduleClock, load_offset, save_offset
from kairand.delivery.templates import fingerprint
from kairand.delivery.worker import SENDER
from kairand.logs import get_logger
from kairand.runtime import CONFIG, STORE, TASKS
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store import series as q
from kairand.store.database import Connection, Store
from kairand.timeutil import JST

log = get_logger(__name__)

OPEN = ("draft", "pending_approval", "active", "paused")


class SeriesNotFound(DeliveryError):
    def __init__(self, series_id: int) -> None:
        super().__init__("not_found", f"定期配信 {series_id} は見つかりません。")


@dataclass(frozen=True)
class SeriesView:
    row: q.SeriesRow
    content: DeliveryContent
    rule: RecurrenceRule
    next_occurrences: list[dt.datetime]
    history: list[tuple[Any, ...]]


def _audit(
    conn: Connection, actor: str, action: str, series_id: int, outcome: str = "ok", **detail: Any
) -> None:
    audit_store.append(
        conn,
        AuditEntry(int(time.time() * 1000), actor, action, outcome, f"series {series_id}", detail),
    )


def _load(conn: Connection, series_id: int) -> q.SeriesRow:
    row = q.get(conn, series_id)
    if row is None:
        raise SeriesNotFound(series_id)
    return row


def _stored(content: DeliveryContent) -> dict[str, Any]:
    # One-off fields do not apply to a series: each occurrence has its own time, none is urgent.
    return content.model_copy(update={"scheduled_at": None, "urgent": False}).model_dump(
        mode="json"
    )


def _cursor_time(row: q.SeriesRow) -> dt.datetime | None:
    at = row.cursor if row.cursor is not None else row.approved_at
    return dt.datetime.fromtimestamp(at, JST) if at is not None else None


def next_of(row: q.SeriesRow, now: float, limit: int = 5) -> list[dt.datetime]:
    rule = RecurrenceRule.model_validate(row.rule)
    if row.status in ("ended", "cancelled"):
        return []
    after = _cursor_time(row) if row.status in ("active", "paused") else None
    now_at = dt.datetime.fromtimestamp(now, JST)
    found = occurrences(rule, after=max(after, now_at) if after else now_at, limit=limit)
    return found


def _due(row: q.SeriesRow, now: float) -> list[dt.datetime]:
    rule = RecurrenceRule.model_validate(row.rule)
    return [
        o for o in occurrences(rule, after=_cursor_time(row), limit=200) if o.timestamp() <= now
    ]


def _check(conn: Connection, content: DeliveryContent, domains: Iterable[str]) -> None:
    service.check_content(conn, content, domains)


# -- staff operations ---------------------------------------------------------------------


async def create(
    store: Store,
    author: str,
    content: DeliveryContent,
    rule: RecurrenceRule,
    *,
    link_domains: Iterable[str] = (),
) -> int:
    def tx(conn: Connection) -> int:
        _check(conn, content, link_domains)
        series_id = q.insert(
            conn, content.title, _stored(content), rule.model_dump(mode="json"), author, _now()
        )
        _audit(conn, author, "series.create", series_id, rule=rule.model_dump(mode="json"))
        return series_id

    return await store.write(tx)


async def submit(
    store: Store, series_id: int, actor: str, *, link_domains: Iterable[str] = ()
) -> None:
    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        _check(conn, DeliveryContent.model_validate(row.content), link_domains)
        now = _now()
        if not q.set_status(
            conn,
            series_id,
            ("draft",),
            "pending_approval",
            now,
            submitted_at=now,
            reject_comment=None,
        ):
            raise InvalidTransition(series_id, row.status, "submit")
        _audit(conn, actor, "series.submit", series_id)

    await store.write(tx)


async def approve(
    store: Store,
    series_id: int,
    approver: str,
    *,
    link_domains: Iterable[str] = (),
    media_public: bool = True,
    now: float | None = None,
) -> None:
    """Approve the whole series: the rule, its content and every future occurrence. Four eyes:
    its author and anyone who edited it never approve it (SelfApprovalRefused)."""

    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        editors = audit_store.actors_for(conn, f"series {series_id}", policy.SERIES_WRITING_ACTIONS)
        if approver in policy.writers(row.author, editors):
            raise SelfApprovalRefused(APPROVE_OWN_SERIES)
        content = DeliveryContent.model_validate(row.content)
        _check(conn, content, link_domains)
        if media_of(content.messages) and not media_public:
            raise InvalidContent(
                "messages",
                "画像を送るための公開アドレス（media.public_base_url）が設定されていないため"
                "承認できません。",
            )
        # A training box's schedule clock may be ahead (fast-forward); the offset is 0 and
        # never written on an appliance.
        at = int(now if now is not None else time.time() + load_offset(conn))
        upcoming = next_of(row, at, 5)
        if not q.set_status(
            conn, series_id, ("pending_approval",), "active", at, approver=approver, approved_at=at
        ):
            raise InvalidTransition(series_id, row.status, "approve")
        _audit(
            conn,
            approver,
            "series.approve",
            series_id,
            next_occurrences=[o.isoformat() for o in upcoming],
        )

    await store.write(tx)


async def reject(store: Store, series_id: int, approver: str, comment: str) -> None:
    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        if not q.set_status(
            conn, series_id, ("pending_approval",), "draft", _now(), reject_comment=comment
        ):
            raise InvalidTransition(series_id, row.status, "reject")
        _audit(conn, approver, "series.reject", series_id)

    await store.write(tx)


async def change(store: Store, series_id: int, actor: str, action: str) -> None:
    """pause (active → paused), resume (paused → active) or end (any open → ended)."""
    moves = {
        "pause": (("active",), "paused"),
        "resume": (("paused",), "active"),
        "end": (OPEN, "ended"),
    }
    expected, target = moves[action]

    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        reason = f"{action} by staff" if action == "end" else None
        if not q.set_status(conn, series_id, expected, target, _now(), status_reason=reason):
            raise InvalidTransition(series_id, row.status, action)
        _audit(conn, actor, f"series.{action}", series_id, previous_status=row.status)

    await store.write(tx)


class SelfApprovalRefused(DeliveryError):
    """Four eyes: nobody approves a series or a change they wrote."""

    def __init__(
        self, message_ja: str = "変更した方とは別の承認者が承認してください（二人による確認）。"
    ) -> None:
        super().__init__("self_approval", message_ja)


APPROVE_OWN_SERIES = "定期配信を作成した方とは別の承認者が承認してください（二人による確認）。"


def _fingerprint(title: str, content: dict[str, Any], rule: dict[str, Any]) -> str:
    return fingerprint({"title": title, "content": content, "rule": rule})


async def update(
    store: Store,
    series_id: int,
    actor: str,
    content: DeliveryContent,
    rule: RecurrenceRule,
    *,
    link_domains: Iterable[str] = (),
) -> str:
    """Change a series. Not yet approved (draft, pending approval): in place, and its editor
    can no longer approve it. Approved (active, paused): a proposed change that waits for its
    own approval (approve_change, never by the editor) while the series keeps sending as
    approved. Returns "updated" or "change_pending"; audited with fingerprints."""
    stored, rule_json = _stored(content), rule.model_dump(mode="json")

    def tx(conn: Connection) -> str:
        row = _load(conn, series_id)
        _check(conn, content, link_domains)
        now = _now()
        before = _fingerprint(row.title, row.content, row.rule)
        after = _fingerprint(content.title, stored, rule_json)
        if row.status in ("draft", "pending_approval"):
            q.update_definition(conn, series_id, content.title, stored, rule_json, now)
            _audit(conn, actor, "series.update", series_id, before=before, after=after,
                   status=row.status, rule=rule_json)  # fmt: skip
            return "updated"
        if row.status in ("active", "paused"):
            q.set_pending_change(conn, series_id, content.title, stored, rule_json, actor, now)
            _audit(conn, actor, "series.change_request", series_id, before=before, after=after,
                   rule=rule_json)  # fmt: skip
            return "change_pending"
        raise InvalidTransition(series_id, row.status, "update")

    return await store.write(tx)


async def approve_change(
    store: Store,
    series_id: int,
    approver: str,
    *,
    link_domains: Iterable[str] = (),
    media_public: bool = True,
    now: float | None = None,
) -> None:
    """Apply a proposed change (four eyes: never by the person who proposed it). Occurrences
    continue after now under the new rule (none of the new rule's past dates is sent late)."""

    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        pending = row.pending
        if pending is None or row.status not in ("active", "paused"):
            raise InvalidTransition(series_id, row.status, "approve_change")
        if approver == pending.by:
            raise SelfApprovalRefused()
        content = DeliveryContent.model_validate(pending.content)
        _check(conn, content, link_domains)
        if media_of(content.messages) and not media_public:
            raise InvalidContent(
                "messages",
                "画像を送るための公開アドレス（media.public_base_url）が設定されていないため"
                "承認できません。",
            )
        at = int(now if now is not None else time.time() + load_offset(conn))
        q.apply_pending_change(conn, series_id, at, _now())
        updated = _load(conn, series_id)
        _audit(
            conn,
            approver,
            "series.change_approve",
            series_id,
            proposed_by=pending.by,
            after=_fingerprint(pending.title, pending.content, pending.rule),
            next_occurrences=[o.isoformat() for o in next_of(updated, at, 5)],
        )

    try:
        await store.write(tx)
    except SelfApprovalRefused:
        # The refusal is audited on its own (the change itself was rolled back).
        await store.write(
            lambda conn: _audit(
                conn,
                approver,
                "series.change_approve",
                series_id,
                "refused",
                reason="self_approval",
            )
        )
        raise


async def reject_change(store: Store, series_id: int, approver: str, comment: str) -> None:
    """Drop a proposed change; the series goes on as approved."""

    def tx(conn: Connection) -> None:
        row = _load(conn, series_id)
        if row.pending is None:
            raise InvalidTransition(series_id, row.status, "reject_change")
        q.clear_pending_change(conn, series_id, _now())
        _audit(conn, approver, "series.change_reject", series_id, proposed_by=row.pending.by,
               comment_chars=len(comment))  # fmt: skip

    await store.write(tx)


def pending_view(row: q.SeriesRow, now: float) -> tuple[DeliveryContent, RecurrenceRule,
                                                         list[dt.datetime]] | None:  # fmt: skip
    """The proposed change as the approver sees it: content, rule and its next dates."""
    if row.pending is None:
        return None
    rule = RecurrenceRule.model_validate(row.pending.rule)
    after = max(_cursor_time(row) or dt.datetime.fromtimestamp(now, JST),
                dt.datetime.fromtimestamp(now, JST))  # fmt: skip
    return (
        DeliveryContent.model_validate(row.pending.content),
        rule,
        occurrences(rule, after=after, limit=5),
    )


async def get(store: Store, series_id: int, now: float | None = None) -> SeriesView:
    at = now if now is not None else time.time()

    def tx(conn: Connection) -> SeriesView:
        row = _load(conn, series_id)
        return _view(conn, row, at)

    return await store.read(tx)


def _view(conn: Connection, row: q.SeriesRow, now: float) -> SeriesView:
    return SeriesView(
        row,
        DeliveryContent.model_validate(row.content),
        RecurrenceRule.model_validate(row.rule),
        next_of(row, now, 5),
        q.history(conn, row.id),
    )


async def list_series(store: Store, now: float | None = None) -> list[SeriesView]:
    at = now if now is not None else time.time()

    def tx(conn: Connection) -> list[SeriesView]:
        return [_view(conn, row, at) for row in q.list_rows(conn)]

    return await store.read(tx)


def _now() -> int:
    return int(time.time())


# -- the worker ---------------------------------------------------------------------------


class SeriesWorker:
    def __init__(
        self,
        store: Store,
        config: RecurringSection,
        *,
        clock: Callable[[], float] = time.time,
        on_created: Callable[[], None] | None = None,
        fast_forward: ScheduleClock | None = None,
    ) -> None:
        """FAST_FORWARD (training only, see kairand.delivery.schedule_clock): the clock to move
        to the next occurrence when idle; it is then also this worker's clock."""
        self.store = store
        self.config = config
        self.clock = fast_forward or clock
        self.on_created = on_created
        self.fast_forward = fast_forward
        self._last_occurrence = -float("inf")  # monotonic time of the last one handled

    async def step(self) -> int:
        """Handle every occurrence whose time has come; returns how many were handled."""
        now = self.clock()
        handled = 0
        rows = await self.store.read(q.list_rows, ("active", "paused"))
        for row in rows:
            # Off the loop: the holiday tables are read from files the first time per year.
            due = await asyncio.to_thread(_due, row, now)
            for at in due:
                if await self.store.write(self._handle, row.id, int(at.timestamp()), now):
                    handled += 1
            await self.store.write(self._maybe_end, row.id, now)
        if handled:
            self._last_occurrence = time.monotonic()
            if self.on_created is not None:
                self.on_created()
        elif self.fast_forward is not None:
            await self._fast_forward(rows, now)
        return handled

    async def _fast_forward(self, rows: list[q.SeriesRow], now: float) -> None:
        """Training: jump the schedule clock to the next occurrence of an active series once
        every occurrence delivery has finished and the pause has passed."""
        assert self.fast_forward is not None
        pause = self.config.training_fast_forward_seconds
        if time.monotonic() - self._last_occurrence < pause:
            return
        active = [row for row in rows if row.status == "active"]
        if not active:
            return
        unfinished: int = await self.store.read(q.unfinished_occurrence_deliveries)
        if unfinished:
            return
        upcoming = [
            o
            for row in active
            for o in await asyncio.to_thread(next_of, row, now, 1)
            if o.timestamp() > now
        ]
        if not upcoming:
            return
        target = min(upcoming).timestamp()
        clock = self.fast_forward
        if clock.advance_to(target):
            await self.store.write(save_offset, clock.offset)
            log.info("series.training_clock_advanced", to=min(upcoming).isoformat())

    def _handle(self, conn: Connection, series_id: int, at: int, now: float) -> bool:
        row = q.get(conn, series_id)
        if (
            row is None
            or row.status not in ("active", "paused")
            or q.occurrence_exists(conn, series_id, at)
        ):
            return False
        when = dt.datetime.fromtimestamp(at, JST)
        late = now - at
        if row.status == "paused":
            q.record_occurrence(conn, series_id, at, "skipped_paused", None, int(now))
            _audit(conn, "system", "series.occurrence_skipped", series_id, "ok",
                   at=when.isoformat(), reason="paused")  # fmt: skip
            return True
        if late > self.config.grace_seconds:
            q.record_occurrence(conn, series_id, at, "skipped_late", None, int(now))
            _audit(
                conn,
                "system",
                "series.occurrence_skipped",
                series_id,
                "failed",
                at=when.isoformat(),
                reason="missed while the appliance was not running",
                late_seconds=int(late),
            )
            log.warning("series.occurrence_skipped", series=series_id, late_seconds=int(late))
            return True
        content = dict(row.content)
        content["title"] = f"{row.title}（{when.month}/{when.day}）"[:100]
        delivery_id = q.insert_occurrence_delivery(conn, row, content, at, int(now))
        items = [parse_item(m) for m in content["messages"]]
        media_store.link_delivery(conn, delivery_id, media_of(items))
        q.record_occurrence(conn, series_id, at, "created", delivery_id, int(now))
        _audit(
            conn,
            "system",
            "series.occurrence",
            series_id,
            at=when.isoformat(),
            delivery=delivery_id,
            late_seconds=max(0, int(late)),
        )
        return True

    def _maybe_end(self, conn: Connection, series_id: int, now: float) -> None:
        row = q.get(conn, series_id)
        if row is None or row.status not in ("active", "paused"):
            return
        rule = RecurrenceRule.model_validate(row.rule)
        if not occurrences(rule, after=_cursor_time(row), limit=1) and q.set_status(
            conn, series_id, ("active", "paused"), "ended", int(now), status_reason="finished"
        ):
            _audit(conn, "system", "series.end", series_id, reason="no occurrence left")

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep going: the next poll retries
                log.error("series.worker_error", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.config.poll_seconds)


async def series_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: run the series worker until the daemon stops."""
    sender = app.get(SENDER)
    config = app[CONFIG]
    clock = None
    if config.daemon.training_mode and config.recurring.training_fast_forward_seconds:
        # Training only: one schedule clock for the worker and the sender (series approval
        # reads its offset from the store).
        clock = ScheduleClock(await app[STORE].read(load_offset))
        if sender is not None:
            sender.clock = clock
    worker = SeriesWorker(
        app[STORE],
        config.recurring,
        on_created=sender.wake.set if sender is not None else None,
        fast_forward=clock,
    )
    stop = asyncio.Event()
    task = app[TASKS].worker("series-worker", lambda: worker.run(stop))
    yield
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
