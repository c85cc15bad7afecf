"""The auditor fetches the handling report through the staff API (S15): signed Markdown and
PDF, named after the auditor, audited; other roles are refused (the roles matrix covers that
for every role) and a reversed period is a validation problem."""

from __future__ import annotations

import asyncio
import base64

import pytest

from kairand.api.client import ApiClient
from kairand.keys import secrets
from kairand.reports.signing import verify_document
from kairand.store import audit as audit_store
from kairand.store.database import Store


@pytest.mark.req("S15")
async def test_auditor_gets_the_signed_report(api: ApiClient, store: Store) -> None:
    r = await api.as_user("aud").get("/v1/reports/handling?from=2026-04-01&to=2026-11-30")
    assert r.status == 200, r.body
    body = r.body
    assert body["author"].endswith("（aud）")
    assert "# 個人情報取扱状況報告書" in body["markdown"]
    assert f"作成者：{body['author']}" in body["markdown"]
    public = (await asyncio.to_thread(secrets.signing_key)).public_key()
    assert verify_document(body["markdown"].encode(), public).ok
    document = base64.b64decode(body["pdf_base64"])
    assert document.startswith(b"%PDF-") and verify_document(document, public).ok
    rows = await store.read(lambda c: list(audit_store.iter_entries(c)))
    mine = [e.entry for e in rows if e.entry.action == "api.reports.handling"]
    assert mine[-1].actor == "aud" and mine[-1].outcome == "allowed"
    assert mine[-1].detail["from"] == "2026-04-01"
    assert (
        await api.as_user("aut").get("/v1/reports/handling?from=2026-04-01&to=2026-11-30")
    ).status == 403
    bad = await api.as_user("aud").get("/v1/reports/handling?from=2026-12-01&to=2026-11-30")
    assert bad.status == 422
    missing = await api.as_user("aud").get("/v1/reports/handling")
    assert missing.status in (400, 422)
