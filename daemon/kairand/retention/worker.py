"""The retention worker: a daily run inside the daemon (and at each annual boundary / notice
time). Restart-safe: the time of the last completed run is kept in settings, and a run after
downtime applies every boundary missed since then, once. Deletions are monotone (whatever a
boundary destroys is gone), so a run interrupted half-way simply finishes on the next one
without deleting or receipting anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.audit.chain import AuditEntry
from kairand.keys import secrets
from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.retention import rules as rules_mod
from kairand.retention.expiry import apply_batch
from kairand.retention.notices import send_notices
from kairand.retention.rules import Annual, RetentionRules
from kairand.runtime import CONFIG, LINE, STOPPING, STORE, TASKS, wait_until_quiet
from kairand.store import audit, masking, settings
from kairand.store import retention as retention_store
from kairand.store.database import Connection, Store

log = get_logger(__name__)

BATCH = 200  # expiries per write transaction: short transactions, few fsyncs
PAGE = 2000  # residents evaluated at a time: bounds the run's memory, few read transactions
Clock = Callable[[], float]
CLOCK: web.AppKey[Clock] = web.AppKey("retention_clock")
"""Optional: a test sets a fixed clock here; the daemon uses time.time."""


@dataclass
class RunResult:
    at: int
    since: int
    rules_version: int | None
    expired: Counter[str] = field(default_factory=Counter)
    notices: Counter[str] = field(default_factory=Counter)


RUNS: web.AppKey[list[RunResult]] = web.AppKey("retention_runs")
"""Results of the runs this process made (for status and tests)."""


def _load(conn: Connection) -> tuple[tuple[int, int, RetentionRules] | None, int | None]:
    last = settings.get(conn, retention_store.LAST_RUN_KEY)
    return rules_mod.from_stored(retention_store.current_rules(conn)), (
        int(last) if last is not None else None
    )


def _finish_run(conn: Connection, result: RunResult) -> None:
    settings.put(conn, retention_store.LAST_RUN_KEY, result.at)
    settings.put(
        conn,
        retention_store.LAST_RESULT_KEY,
        {"at": result.at, "since": result.since, "expired": dict(result.expired)},
    )
    if not result.expired:
        return  # a run that changed nothing is recorded in settings only, not in the audit log
    audit.append(
        conn,
        AuditEntry(
            at_ms=result.at * 1000,
            actor="system:retention",
            action="retention.run",
            outcome="ok",
            detail={
                "since": result.since,
                "rules_version": result.rules_version,
                "expired": dict(result.expired),
            },
        ),
    )


def apply_masking(conn: Connection, rules: RetentionRules, now: int) -> dict[str, int]:
    """Apply every masking rule whose target is registered; counts of rows rewritten."""
    counts: dict[str, int] = {}
    for rule in rules.masking:
        if rule.target not in masking.TARGETS:
            log.warning("retention.mask_target_unknown", target=rule.target)
            continue
        older_than = rules_mod.add_months(now, -rule.after_months)
        changed = masking.mask_rows(conn, rule.target, rule.apply, older_than)
        if changed:
            counts[rule.target] = changed
    if counts:
        audit.append(
            conn,
            AuditEntry(
                at_ms=now * 1000,
                actor="system:retention",
                action="retention.mask",
                outcome="ok",
                detail=counts,
            ),
        )
    return counts


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def live_cycles(rules: RetentionRules, now: int) -> dict[str, str]:
    """Cycles whose notice window is open at NOW (cycle -> notice text)."""
    found: dict[str, str] = {}
    for rule in rules.annual_rules():
        policy = rule.policy
        assert isinstance(policy, Annual)
        boundary = rules_mod.next_boundary(policy, now)
        if policy.notify and rules_mod.notice_time_for(policy, boundary) <= now:
            found.setdefault(
                rules_mod.cycle_name(boundary), rules_mod.notice_text(policy, boundary)
            )
    return found


async def _fact_pages(
    store: Store, questions: Sequence[str], page_size: int
) -> AsyncIterator[list[rules_mod.ResidentFacts]]:
    """Every resident's facts, PAGE_SIZE residents at a time in id order (keyset pagination:
    each page starts after the last id of the previous one, so rows deleted meanwhile shift
    nothing). Only one page is held in memory at a time."""
    after: int | None = None
    while True:
        page = await store.read(retention_store.resident_facts, questions, after, page_size)
        if not page:
            return
        yield page
        after = page[-1].resident_id


async def run_once(
    store: Store,
    line: LineApi | None,
    now: int,
    *,
    hmac_key: bytes | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    page_size: int = PAGE,
    mask_after_months: int = rules_mod.DEFAULT_MASK_MONTHS,
) -> RunResult:
    """One retention run at NOW: expire, mask, record the run, checkpoint, then notify (if LINE).
    Reservation names and phones are masked MASK_AFTER_MONTHS after the booking date unless
    the rules mask them otherwise (rules_mod.with_reservation_masking, W7).

    Residents are evaluated PAGE_SIZE at a time (the pure rules run on each page; every rule
    looks at one resident only, so the union of the pages' plans is the plan for everyone),
    and each page's expiries are applied before the next page is read: memory stays bounded
    whatever the number of residents."""
    current, last_run = await store.read(_load)
    version, created_at, rules = current if current else (None, now, rules_mod.DEFAULT_RULES)
    rules = rules_mod.with_reservation_masking(rules, mask_after_months)
    since = last_run if last_run is not None else created_at
    result = RunResult(at=now, since=min(since, now), rules_version=version)
    questions = sorted({r.question for r in rules.rules if r.question is not None})
    if rules.rules:  # without rules nothing expires: no need to look at anyone
        async for page in _fact_pages(store, questions, page_size):
            plan = rules_mod.plan_expiries(rules, page, result.since, now)
            if not plan:
                continue
            if hmac_key is None or signing_key is None:
                # The keyring reads files: not on the event loop.
                loop = asyncio.get_running_loop()
                hmac_key = await loop.run_in_executor(None, secrets.receipt_hmac_key)
                signing_key = await loop.run_in_executor(None, secrets.signing_key)
            for start in range(0, len(plan), BATCH):
                done = await store.write(
                    apply_batch, plan[start : start + BATCH], now, hmac_key, signing_key
                )
                result.expired.update(done)
    if rules.masking:
        masked = await store.write(apply_masking, rules, now)
        result.expired.update({f"masked.{k}": v for k, v in masked.items()})
    await store.write(_finish_run, result)
    if result.expired:
        # Fold the WAL into the file and truncate it: the deleted rows' old page versions go.
        await store.acheckpoint()
        wal = store.path.with_name(store.path.name + "-wal")
        size = await asyncio.get_running_loop().run_in_executor(None, _size_of, wal)
        if size:
            # A reader held an old snapshot: the stale pages go at the next checkpoint.
            log.warning("retention.checkpoint_incomplete", wal_bytes=size)
        log.info("retention.expired", **dict(result.expired))
    if line is not None and rules.annual_rules():
        cycles = live_cycles(rules, now)
        if cycles:
            result.notices = await _notify(store, line, rules, questions, cycles, now, page_size)
    return result


async def _notify(
    store: Store,
    line: LineApi,
    rules: RetentionRules,
    questions: Sequence[str],
    cycles: dict[str, str],
    now: int,
    page_size: int,
) -> Counter[str]:
    """Plan and send the notices page by page; earlier pending ones are retried once (with
    the first page that sends anything, or on their own if no page does)."""
    outcome: Counter[str] = Counter()
    retried = False
    async for page in _fact_pages(store, questions, page_size):
        already = await store.read(
            retention_store.notices_recorded, page[0].resident_id, page[-1].resident_id
        )
        notices = rules_mod.plan_notices(rules, page, now, already)
        if notices:
            outcome.update(
                await send_notices(store, line, notices, cycles, now, retry_pending=not retried)
            )
            retried = True
    if not retried:
        outcome.update(await send_notices(store, line, [], cycles, now))
    return outcome


async def next_wake_at(store: Store, now: int) -> int:
    current, _ = await store.read(_load)
    rules = current[2] if current else rules_mod.DEFAULT_RULES
    return rules_mod.next_wake(rules, now)


async def _loop(app: web.Application) -> None:
    store = app[STORE]
    stopping = app[STOPPING]
    clock = app.get(CLOCK, time.time)
    runs = app[RUNS]
    config = app.get(CONFIG)
    months = (
        config.privacy.reservation_mask_after_months
        if config is not None
        else rules_mod.DEFAULT_MASK_MONTHS
    )
    while not stopping.is_set():
        # A pass reads every resident: it waits for a delivery being sent (up to a limit).
        await wait_until_quiet(app, "retention_pass")
        now = int(clock())
        try:
            runs.append(await run_once(store, app.get(LINE), now, mask_after_months=months))
        except Exception as exc:  # keep the worker alive; the next wake retries
            log.error("retention.run_failed", error=f"{type(exc).__name__}: {exc}")
        wake = await next_wake_at(store, int(clock()))
        # Wait in slices of at most a minute: a clock that jumps (suspend, NTP) is noticed.
        while (remaining := wake - clock()) > 0 and not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), min(60.0, max(0.05, remaining)))


async def retention_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: runs retention once at start (catching up after downtime), then at
    the daily run time, each annual boundary and each notice time."""
    app[RUNS] = []
    app[TASKS].worker("retention", lambda: _loop(app))
    yield
