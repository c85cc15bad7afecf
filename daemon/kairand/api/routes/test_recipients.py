"""The caller's test recipients: how many, and a code to register one."""

from __future__ import annotations

import time

from aiohttp import web

from kairand.api import schema
from kairand.api.http import Empty, from_unix, json_body, ok, staff_of, store_of
from kairand.store import test_recipients as test_recipients_store


async def test_recipients_get(request: web.Request) -> web.Response:
    n = await store_of(request).read(test_recipients_store.count_of, staff_of(request).username)
    return ok(schema.TestRecipients(count=n))


async def test_recipients_code(request: web.Request) -> web.Response:
    await json_body(request, Empty)
    now = int(time.time())
    code = await store_of(request).write(
        test_recipients_store.new_code, staff_of(request).username, now
    )
    expires = from_unix(now + test_recipients_store.CODE_LIFETIME_SECONDS)
    assert expires is not None
    return ok(schema.TestRecipientCode(code=code, expires_at=expires), status=201)
