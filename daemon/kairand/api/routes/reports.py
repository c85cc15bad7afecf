"""The handling report for the auditor (S15): `GET /v1/reports/handling?from=&to=`, issued
and signed by the daemon, named after the staff member who fetched it."""

from __future__ import annotations

import asyncio
import base64
import time

from aiohttp import web

from kairand.api import schema
from kairand.api.http import config_of, note, ok, query, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.keys import secrets
from kairand.reports import handling, report
from kairand.reports.common import Period


async def handling_report(request: web.Request) -> web.Response:
    q = query(request, schema.HandlingReportQuery)
    if q.date_from > q.date_to:
        raise ApiProblem("validation", "開始日が終了日より後になっています。", field="from")
    period = Period(q.date_from, q.date_to)
    config = config_of(request)
    me = staff_of(request)
    data = await store_of(request).read(
        report.gather, period, config.privacy.reservation_mask_after_months
    )
    loop = asyncio.get_running_loop()
    host = await loop.run_in_executor(None, handling.host_facts, config)
    key = await loop.run_in_executor(None, secrets.signing_key)
    author = f"{me.display_name}（{me.username}）"
    markdown, document = await loop.run_in_executor(
        None, handling.issue, data, period, int(time.time()), author, config, host, key
    )
    note(request, **{"from": q.date_from.isoformat(), "to": q.date_to.isoformat()})
    return ok(
        schema.HandlingReportOut(
            period_from=q.date_from,
            period_to=q.date_to,
            author=author,
            markdown=markdown,
            pdf_base64=base64.b64encode(document).decode(),
        )
    )
