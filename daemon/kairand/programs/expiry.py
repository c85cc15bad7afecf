"""Annual registration of a program (K2): at the boundary (31 March 23:59 Japan time unless
the program says otherwise) every registration in the program made before it is destroyed —
the membership and the answers to the program's questions — each with a signed deletion
receipt as for an unfollow; a polite re-registration notice goes out once in March before it.
Registrations of the default program (city information) are not touched: they follow the
city's own retention rules (kairand.retention).

Exactly once across downtime, like kairand.retention: the last completed run is stored per
program, and every boundary after it (and not after now) is applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.keys import secrets
from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.programs import consent
from kairand.programs.model import ANNUAL_NOTICE_TEXT, ProgramDefinition
from kairand.retention import rules as rules_mod
from kairand.retention.notices import send_notices
from kairand.retention.purge import record_deletion
from kairand.runtime import LINE, STOPPING, STORE, TASKS
from kairand.store import mail_programs, settings
from kairand.store import programs as q
from kairand.store.database import Connection, Store

log = get_logger(__name__)
ACTOR = "system:programs"
PAGE = 500
CHECK_SECONDS = 60.0


def _last_run_key(program: str) -> str:
    return f"programs.{program}.expiry_last_run"


@dataclass
class ExpiryResult:
    expired: Counter[str] = field(default_factory=Counter)
    notices: Counter[str] = field(default_factory=Counter)


def _expire_page(
    conn: Connection,
    program: str,
    definition: ProgramDefinition,
    boundary: int,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> int:
    """Destroy one page of registrations made before BOUNDARY; how many were destroyed."""
    done = 0
    for resident_id, line_user_id in q.members_consented_before(conn, program, boundary, PAGE):
        deleted = q.remove_member(conn, program, resident_id, definition.question_codes())
        record_deletion(
            conn,
            line_user_id=line_user_id,
            reason="annual_expiry",
            deleted={"program": program, **deleted, "boundary": rules_mod.cycle_name(boundary)},
            now=now,
            hmac_key=hmac_key,
            signing_key=signing_key,
            actor=ACTOR,
            action="program.annual_expiry",
            audit_detail={"program": program, **deleted},
        )
        done += 1
    # Mail subscribers who joined the program: the same rule, the receipt holding an
    # HMAC of the address; the mail registration itself stays (its own annual rule).
    for subscriber_id, address in mail_programs.consented_before(conn, program, boundary, PAGE):
        deleted = mail_programs.leave(conn, subscriber_id, program)
        record_deletion(
            conn,
            line_user_id=address,  # the subject: only its HMAC is stored
            reason="annual_expiry",
            deleted={"program": program, **deleted, "boundary": rules_mod.cycle_name(boundary)},
            now=now,
            hmac_key=hmac_key,
            signing_key=signing_key,
            actor=ACTOR,
            action="program.annual_expiry",
            audit_detail={"program": program, "channel": "mail", **deleted},
        )
        done += 1
    return done


def _notice_text(definition: ProgramDefinition, policy: rules_mod.Annual, boundary: int) -> str:
    restart = rules_mod.jst(boundary + 60)
    return (
        ANNUAL_NOTICE_TEXT.replace("{program}", definition.name)
        .replace("{deadline}", rules_mod.format_deadline_ja(boundary))
        .replace("{restart}", f"{restart.month}月{restart.day}日")
    )


async def run_once(
    store: Store,
    now: int,
    *,
    line: LineApi | None = None,
    hmac_key: bytes | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> ExpiryResult:
    """Apply every missed boundary of every annual program, then send March notices."""
    result = ExpiryResult()
    for row in await store.read(q.list_programs):
        if row.is_default:
            continue
        definition = ProgramDefinition.model_validate(row.definition)
        policy = definition.annual
        if policy is None:
            continue
        key = _last_run_key(row.code)
        last = await store.read(settings.get, key)
        since = int(last) if last is not None else now
        for boundary in rules_mod.boundaries_between(policy, since, now):
            if hmac_key is None or signing_key is None:
                loop = asyncio.get_running_loop()
                hmac_key = await loop.run_in_executor(None, secrets.receipt_hmac_key)
                signing_key = await loop.run_in_executor(None, secrets.signing_key)
            while True:
                done = await store.write(
                    _expire_page, row.code, definition, boundary, now, hmac_key, signing_key
                )
                result.expired[row.code] += done
                if done < PAGE:
                    break
        await store.write(settings.put, key, now)
        if line is not None and policy.notify:
            boundary = rules_mod.next_boundary(policy, now)
            if rules_mod.notice_time_for(policy, boundary) <= now:
                cycle = f"{row.code}@{rules_mod.cycle_name(boundary)}"
                text = _notice_text(definition, policy, boundary)
                targets = await store.read(
                    q.registered_members_for_notice,
                    row.code,
                    rules_mod.notice_time_for(policy, boundary),
                    cycle,
                )
                notices = [rules_mod.Notice(rid, cycle, boundary, text) for rid, _ in targets]
                result.notices.update(
                    await send_notices(store, line, notices, {cycle: text}, now, program=True)
                )
    if result.expired:
        log.info("programs.annual_expiry", **dict(result.expired))
    return result


async def _loop(app: web.Application) -> None:
    stopping = app[STOPPING]
    while not stopping.is_set():
        try:
            await run_once(app[STORE], int(time.time()), line=app.get(LINE))
        except Exception as exc:  # keep the worker alive; the next check retries
            log.error("programs.expiry_failed", error=type(exc).__name__)
        line = app.get(LINE)
        if line is not None:
            try:  # re-consent prompts left over (LINE unreachable when the version was raised)
                await consent.send_prompts(app[STORE], line, int(time.time()))
            except Exception as exc:
                log.error("programs.reconsent_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), CHECK_SECONDS)


async def program_expiry_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: checks every minute whether a program's boundary or notice is due."""
    task = app[TASKS].worker("program-expiry", lambda: _loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
