"""The audit log (auditor): pages of entries and a verification of the chain."""

from __future__ import annotations

import asyncio
import datetime as dt

from aiohttp import web

from kairand.api import schema
from kairand.api.http import note, ok, query, store_of
from kairand.audit import checkpoints
from kairand.store import audit as audit_store
from kairand.timeutil import JST


def _ms(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return int(value.timestamp() * 1000)


async def audit_list(request: web.Request) -> web.Response:
    q = query(request, schema.AuditQuery)
    rows = await store_of(request).read(
        audit_store.query,
        audit_store.AuditFilter(
            actor=q.actor,
            action=q.action,
            since_ms=_ms(q.since),
            until_ms=_ms(q.until),
            before_seq=q.before_seq,
        ),
        q.limit + 1,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [
        schema.AuditEntryOut(
            seq=r.seq,
            at=dt.datetime.fromtimestamp(r.entry.at_ms / 1000, JST),
            actor=r.entry.actor,
            action=r.entry.action,
            target=r.entry.target,
            outcome=r.entry.outcome,
            detail=r.entry.detail,
        )
        for r in rows
    ]
    return ok(schema.AuditPage(items=items, next_before_seq=rows[-1].seq if more else None))


async def audit_verify(request: web.Request) -> web.Response:
    public_key = await asyncio.get_running_loop().run_in_executor(None, checkpoints.public_key)
    result = await store_of(request).read(checkpoints.verify_store, public_key)
    note(request, ok=result.ok)
    return ok(
        schema.AuditVerifyResult(
            ok=result.ok,
            entries=result.entries,
            checkpoints=result.checkpoints,
            first_broken_seq=result.first_broken_seq,
            reason=result.reason,
            head_hash=result.head_hash,
        )
    )
