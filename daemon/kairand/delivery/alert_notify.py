"""Immediate notification of a sent alert: the approvers and the institution's
heads get it on their LINE test recipients (the TUI event stream shows it as well). Lives in
delivery/ because it pushes through LINE, which programs/ does not import."""

from __future__ import annotations

import time
import uuid

import aiohttp
from linebot.v3.messaging import ApiException, PushMessageRequest, TextMessage

from kairand.audit.chain import AuditEntry
from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.programs.service import SentAlert
from kairand.store import audit as audit_store
from kairand.store import test_recipients
from kairand.store.database import Connection, Store

log = get_logger(__name__)


async def notify_test_recipients(store: Store, line: LineApi, alert: SentAlert) -> int:
    """Push the alert, marked as a notification, to the LINE test recipients of the staff to
    notify (approvers and the institution's heads). Returns how many pushes LINE accepted."""
    recipients: list[str] = []
    for username in alert.notify:
        recipients.extend(await store.read(test_recipients.recipients_of, username))
    text = f"【職員向け通知：緊急配信が送信されました】\n{alert.text}"[:5000]
    ok = 0
    for to in sorted(set(recipients)):
        try:
            await line.messaging.push_message(
                PushMessageRequest(to=to, messages=[TextMessage(text=text)]),
                x_line_retry_key=str(uuid.uuid4()),
                _request_timeout=line.timeout,
            )
            ok += 1
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("alert.notify_failed", error=type(exc).__name__)

    def tx(conn: Connection) -> None:
        audit_store.append(
            conn,
            AuditEntry(
                int(time.time() * 1000),
                "system:alerts",
                "alert.notify",
                "ok" if ok == len(set(recipients)) else "failed",
                f"delivery {alert.delivery_id}",
                {"staff": len(alert.notify), "pushed": ok},
            ),
        )

    await store.write(tx)
    return ok
