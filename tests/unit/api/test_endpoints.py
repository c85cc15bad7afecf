"""The TUI's other endpoints: dashboard (with LINE's quota from a stand-in LINE server), event
stream, survey versions, staff roster, test-recipient codes, audit query (N5, S8, S14)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import aiohttp
import pytest

from kairand.api.app import serve
from kairand.api.client import ApiClient, connect
from kairand.config import Config
from kairand.conversation.survey import default_survey
from kairand.line.client import line_api
from kairand.simulator import Simulator, SimulatorConfig
from kairand.store import metrics, settings
from kairand.store.database import Store
from tests.support.api_helpers import add_residents, add_staff, count, header_resolver, with_api

JST = dt.timezone(dt.timedelta(hours=9))


async def test_dashboard_figures_and_health(
    config: Config, store: Store, line_sim: Simulator
) -> None:
    """S9: friends/registered from the store, follows per day from the counters (7 days),
    LINE's quota (cached: asked once for two dashboards), and health from settings."""
    add_staff(store)
    add_residents(store, 3)
    add_residents(store, 2, start=10, registered=False)
    now = time.time()
    store.write_sync(metrics.increment, "follow", now, 4)
    store.write_sync(metrics.increment, "unfollow", now - 86400, 2)
    store.write_sync(metrics.increment, "follow", now - 86400 * 8, 9)  # outside the 7 days
    store.write_sync(settings.put, "webhook.last_seen_at", int(now) - 60)
    store.write_sync(settings.put, "tls.not_after", int(now) + 86400 * 40)
    store.write_sync(settings.put, "backup.last_ok_at", int(now) - 3600)
    async with (
        line_api(line_sim.api_url, line_sim.config.access_token) as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        r = await api.as_user("apr").get("/v1/dashboard")
        again = await api.as_user("apr").get("/v1/dashboard")
    assert r.status == 200, r.body
    body = r.body
    assert body["friends"] == 5 and body["registered"] == 3
    assert len(body["days"]) == 7
    today = dt.datetime.now(JST).date()
    assert body["days"][-1] == {"day": today.isoformat(), "follows": 4, "unfollows": 0}
    assert body["days"][-2]["unfollows"] == 2
    assert sum(d["follows"] for d in body["days"]) == 4
    assert body["quota"]["limit"] == 1000 and body["quota"]["used"] == 120
    assert body["quota"]["type"] == "limited"  # LINE's value, never "QuotaType.LIMITED"
    # Two requests (limit and consumption) for the first dashboard, the second from the cache.
    assert line_sim.platform.counters.get("quota") == 2 and again.body["quota"] == body["quota"]
    health = body["health"]
    assert health["line_reachable"] is True and health["line_last_error"] is None
    seen = dt.datetime.fromisoformat(health["last_webhook_at"])
    assert abs(seen.timestamp() - (now - 60)) < 2
    tls = dt.datetime.fromisoformat(health["tls_not_after"])
    assert abs(tls.timestamp() - (now + 86400 * 40)) < 2
    backup = dt.datetime.fromisoformat(health["backup_last_ok_at"])
    assert abs(backup.timestamp() - (now - 3600)) < 2
    assert body["training_mode"] is True


@pytest.mark.req("S9")
async def test_dashboard_quota_type_is_lines_value(config: Config, store: Store) -> None:
    """S9: an unlimited plan shows quota type "none" (LINE's value), not the SDK enum's
    str() "QuotaType.NONE"; no limit."""
    add_staff(store)
    sim = Simulator(SimulatorConfig(population=0, access_token="token", auto_react=False))
    async with (
        sim,
        line_api(sim.api_url, "token") as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        r = await api.as_user("apr").get("/v1/dashboard")
    assert r.status == 200, r.body
    assert r.body["quota"]["type"] == "none" and r.body["quota"]["limit"] is None


async def test_dashboard_when_line_is_unreachable(config: Config, store: Store) -> None:
    """S9: LINE not answering → quota null and line_reachable false, never an error page."""
    add_staff(store)
    async with (
        line_api("http://127.0.0.1:9", "token", 2.0) as line,
        serve(config, store, line, header_resolver),
        connect(config.api.socket) as api,
    ):
        r = await api.as_user("aut").get("/v1/dashboard")
    assert r.status == 200 and r.body["quota"] is None
    assert r.body["health"]["line_reachable"] is False
    assert r.body["health"]["line_last_error"]


async def read_event(resp: aiohttp.ClientResponse, name: str) -> dict[str, Any]:
    """Read SSE frames until one named NAME arrives; return its JSON data."""
    event = None
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])
    raise AssertionError("stream ended")


async def test_event_stream_pushes_counters_and_delivery_progress(
    config: Config, store: Store
) -> None:
    """/v1/events sends the dashboard counters, again when they change, and a delivery's
    status when it moves; the stream is audited once when it opens."""
    add_staff(store)
    cfg = with_api(config, event_interval_seconds=0.05)
    async with serve(cfg, store, None, header_resolver), connect(cfg.api.socket) as api:
        client = api.as_user("aut2")
        async with client.session.get("http://kairan/v1/events", headers=client.headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            first = await asyncio.wait_for(read_event(resp, "dashboard"), 5)
            assert first["friends"] == 0
            await asyncio.to_thread(add_residents, store, 2)
            second = await asyncio.wait_for(read_event(resp, "dashboard"), 5)
            assert second["friends"] == 2
            draft = {
                "title": "t",
                "messages": ["m"],
                "segment": {"all_registered": True},
            }
            r = await client.post("/v1/deliveries", draft)
            await client.post(f"/v1/deliveries/{r.body['id']}/submit")
            await api.as_user("apr").post(f"/v1/deliveries/{r.body['id']}/approve")
            event = await asyncio.wait_for(read_event(resp, "delivery"), 5)
            assert event["id"] == r.body["id"] and event["status"] == "approved"
    opened = await store.read(
        lambda c: c.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'api.events'"
        ).fetchone()[0]
    )
    assert opened == 1


async def test_survey_edit_makes_a_new_version(api: ApiClient, store: Store) -> None:
    """N2: an admin edits the survey → a new version; a stale base version is 409; changing a
    question's kind is refused naming the field; an invalid definition names its field."""
    r = await api.as_user("aut").get("/v1/survey")
    assert r.status == 200 and r.body["version"] == 1
    definition = r.body["definition"]
    definition["welcome"] = "ようこそ。"
    r = await api.as_user("adm").put(
        "/v1/survey", {"definition": definition, "based_on_version": 1}
    )
    assert r.status == 200 and r.body["version"] == 2
    r = await api.as_user("adm").put(
        "/v1/survey", {"definition": definition, "based_on_version": 1}
    )
    assert r.status == 409 and r.body["code"] == "stale_version"
    changed = json.loads(json.dumps(definition))
    changed["questions"][1]["kind"] = "multi"
    r = await api.as_user("adm").put("/v1/survey", {"definition": changed})
    assert r.status == 422 and r.body["field"] == "definition.questions.1.kind"
    broken = json.loads(json.dumps(definition))
    broken["questions"][2]["options"][0]["label"] = "あ" * 21
    r = await api.as_user("adm").put("/v1/survey", {"definition": broken})
    assert r.status == 422 and r.body["field"] == "definition.questions.2.options.0.label"
    r = await api.as_user("aut").get("/v1/survey")
    assert r.body["version"] == 2 and r.body["definition"]["welcome"] == "ようこそ。"
    assert default_survey().welcome != "ようこそ。"


async def test_staff_roster_changes_and_last_admin(api: ApiClient, store: Store) -> None:
    """S14, S8: an admin adds, changes and deactivates staff (audited as effects); the last
    active admin cannot be removed or demoted."""
    r = await api.as_user("adm").put(
        "/v1/staff/sato", {"display_name": "佐藤 一郎", "roles": ["author", "approver"]}
    )
    assert r.status == 200 and r.body["roles"] == ["author", "approver"]
    r = await api.as_user("aud").get("/v1/staff")
    assert "sato" in [s["username"] for s in r.body["items"]]
    r = await api.as_user("adm").delete("/v1/staff/sato")
    assert r.status == 204
    r = await api.as_user("adm").get("/v1/staff")
    sato = next(s for s in r.body["items"] if s["username"] == "sato")
    assert sato["active"] is False
    r = await api.as_user("adm").put("/v1/staff/BAD NAME", {"display_name": "x", "roles": []})
    assert r.status == 422 and r.body["field"] == "username"
    # Demote every admin but one, then try the last one.
    for name in ("all", "root"):
        await api.as_user("adm").put(f"/v1/staff/{name}", {"display_name": name, "roles": []})
    r = await api.as_user("adm").put("/v1/staff/adm", {"display_name": "adm", "roles": []})
    assert r.status == 409 and r.body["code"] == "last_admin"
    r = await api.as_user("adm").delete("/v1/staff/adm")
    assert r.status == 409 and r.body["code"] == "last_admin"
    effects = await store.read(
        lambda c: c.execute(
            "SELECT action, target FROM audit_log WHERE action LIKE 'staff.%' ORDER BY seq"
        ).fetchall()
    )
    assert effects[:2] == [("staff.put", "sato"), ("staff.remove", "sato")]


async def test_test_recipient_code_and_count(api: ApiClient, store: Store) -> None:
    """A staff member gets a one-time code for their own LINE and sees their count."""
    from kairand.store import test_recipients

    r = await api.as_user("aut").post("/v1/test-recipients/code")
    assert r.status == 201 and r.body["code"].startswith("KAIRAN-")
    expires = dt.datetime.fromisoformat(r.body["expires_at"])
    assert 500 < expires.timestamp() - time.time() <= 600
    claimed = store.write_sync(
        test_recipients.claim, r.body["code"], "U" + "a" * 32, int(time.time())
    )
    assert claimed == "aut"
    assert (await api.as_user("aut").get("/v1/test-recipients")).body == {"count": 1}
    assert (await api.as_user("apr").get("/v1/test-recipients")).body == {"count": 0}


async def test_audit_query_filters_pages_and_holds_no_bodies(api: ApiClient, store: Store) -> None:
    """S8: every call is in the log (allowed and denied), with actor, route, target and outcome
    but never the message text; the auditor filters by actor, action prefix and time, and pages
    newest first with before_seq."""
    secret_text = "本文に書いた内容は操作ログに残りません"
    r = await api.as_user("aut").post(
        "/v1/deliveries",
        {"title": "件名", "messages": [secret_text], "segment": {"all_registered": True}},
    )
    delivery_id = r.body["id"]
    await api.as_user("aut").get(f"/v1/deliveries/{delivery_id}")
    await api.as_user("aud").post("/v1/deliveries", {})  # auditor may not create: denied
    rows = await store.read(
        lambda c: c.execute(
            "SELECT actor, action, target, outcome, detail FROM audit_log"
        ).fetchall()
    )
    assert not any(secret_text in json.dumps(row, ensure_ascii=False) for row in rows)
    assert ("aut", "api.deliveries.get", str(delivery_id), "allowed") in [r[:4] for r in rows]
    assert ("aud", "api.deliveries.create", "", "denied") in [r[:4] for r in rows]

    r = await api.as_user("aud").get(
        "/v1/audit", params={"actor": "aut", "action": "api.deliveries."}
    )
    assert [e["action"] for e in r.body["items"]] == ["api.deliveries.get", "api.deliveries.create"]
    assert r.body["items"][1]["detail"]["title"] == "件名"
    future = (dt.datetime.now(JST) + dt.timedelta(hours=1)).isoformat()
    r = await api.as_user("aud").get("/v1/audit", params={"since": future})
    assert r.body["items"] == []
    total = count(store, "audit_log")
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"before_seq": str(cursor)} if cursor else {})}
        page = await api.as_user("aud").get("/v1/audit", params=params)
        seen += [e["seq"] for e in page.body["items"]]
        cursor = page.body["next_before_seq"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) >= total
    r = await api.as_user("aud").get("/v1/audit/verify")
    assert r.status == 200 and r.body["ok"] is True and r.body["entries"] >= total
