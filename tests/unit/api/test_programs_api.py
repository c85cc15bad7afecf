"""Programs through the staff API, route by route: scope (K8) holds on every route that can
address a program's districts, guardian consent (K7) and class 1 (G3) on alerts, four eyes on
templates, aggregate-only program statistics, and every call audited (S8)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiohttp import web

from kairand.api import app as api_app
from kairand.api.client import ApiClient
from kairand.config import Config
from kairand.daemon import components
from kairand.mail import notices as mail_notices
from kairand.mail.component import mail_component
from kairand.programs import catalogue
from kairand.runtime import CONFIG, STORE
from kairand.store import audit as audit_store
from kairand.store import mail as mail_store
from kairand.store import mail_programs
from kairand.store import staff as staff_store
from kairand.store.database import Connection, Store
from tests.support.programs_support import FILLED, KODOMO, Q, populate, setup_program

SEGMENT_IN = {"program": KODOMO, "conditions": [{"question": Q, "any_of": ["asahi"]}]}
SEGMENT_OUT = {"program": KODOMO, "conditions": [{"question": Q, "any_of": ["minato"]}]}


def draft(segment: dict) -> dict:
    return {"title": "安全情報", "messages": ["お知らせ"], "segment": segment, "confidentiality": 1}


@pytest.mark.req("K8")
async def test_scope_on_every_route_that_addresses_districts(api: ApiClient, store: Store) -> None:
    tid = await setup_program(store)
    populate(store, 90)
    yamada = api.as_user("yamada")
    # deliveries.create: inside / outside the kindergarten's districts.
    r = await yamada.post("/v1/deliveries", draft(SEGMENT_IN))
    assert r.status == 201, r.body
    inside = r.body["id"]
    r = await yamada.post("/v1/deliveries", draft(SEGMENT_OUT))
    assert r.status == 403 and r.body["code"] == "district_out_of_scope"
    assert r.body["field"] == "segment.conditions.0.any_of"
    # deliveries.update: cannot widen a draft beyond the scope.
    r = await yamada.put(f"/v1/deliveries/{inside}", draft(SEGMENT_OUT))
    assert r.status == 403 and r.body["code"] == "district_out_of_scope"
    # All districts is the board's only.
    r = await yamada.post("/v1/deliveries", draft({"program": KODOMO, "all_registered": True}))
    assert r.status == 403 and r.body["code"] == "all_districts_only_board"
    r = await api.as_user("kyoiku").post(
        "/v1/deliveries", draft({"program": KODOMO, "all_registered": True})
    )
    assert r.status == 201
    # deliveries.submit and approve re-check the author's scope (institution changed since).
    await store.write(
        lambda c: c.execute("DELETE FROM staff_institutions WHERE username = 'yamada'")
    )
    r = await yamada.post(f"/v1/deliveries/{inside}/submit", {})
    assert r.status == 403 and r.body["code"] == "no_institution"
    # alerts.send: another institution cannot address the kindergarten's districts.
    body = {
        "template_id": tid,
        "institution": "minato_es",
        "districts": ["asahi"],
        "values": FILLED,
    }
    r = await api.as_user("sato").post("/v1/alerts", body)
    assert r.status == 403 and r.body["code"] == "district_out_of_scope"
    r = await api.as_user("sato").post("/v1/alerts", {**body, "institution": "tanpopo"})
    assert r.status == 403 and r.body["code"] == "not_member"
    # audience.count is checked against the program's questions.
    r = await api.as_user("sato").post("/v1/audience-count", {"segment": SEGMENT_OUT})
    assert r.status == 200 and r.body["count"] >= 0
    r = await api.as_user("sato").post(
        "/v1/audience-count", {"segment": {"program": "nothing", "all_registered": True}}
    )
    assert r.status == 422
    # My institutions, for the TUI.
    r = await api.as_user("sato").get("/v1/me/institutions")
    assert [i["code"] for i in r.body["items"]] == ["minato_es"]
    assert r.body["items"][0]["districts"] == ["minato"]


@pytest.mark.req("K7")
@pytest.mark.req("G3")
@pytest.mark.req("S8")
async def test_alert_send_consent_class_and_follow_up(api: ApiClient, store: Store) -> None:
    tid = await setup_program(store)
    yamada = api.as_user("sato")
    body = {"template_id": tid, "institution": "minato_es", "districts": ["minato"]}
    r = await yamada.post("/v1/alerts", {**body, "values": {**FILLED, "child": "港小の児童"}})
    assert r.status == 422 and r.body["code"] == "guardian_consent_required"
    assert r.body["field"] == "values.child"
    r = await yamada.post("/v1/alerts", {**body, "values": {**FILLED, "place": "港町1-2"}})
    assert r.status == 422 and r.body["code"] == "address"
    consent = {"by": "被害児童の保護者（父）", "at": "2026-01-05T10:00:00+09:00"}
    r = await yamada.post(
        "/v1/alerts",
        {**body, "values": {**FILLED, "child": "港小の児童"}, "guardian_consent": consent},
    )
    assert r.status == 201, r.body
    sent = r.body["delivery_id"]
    approvers = [s for s in store.read_sync(staff_store.all_staff) if "approver" in s.roles]
    assert r.body["notified"] == len(approvers)  # 港小学校 has no head registered
    d = await api.as_user("kato").get(f"/v1/deliveries/{sent}")
    assert d.body["status"] == "approved" and d.body["urgent"] is True
    r = await api.as_user("kato").get("/v1/alerts")
    assert r.body["items"][0]["guardian_consent"] is True
    # Follow-up: approvers only.
    r = await api.as_user("sato").post(
        f"/v1/alerts/{sent}/follow-up", {"kind": "all_clear", "body": "解決しました。"}
    )
    assert r.status == 403
    r = await api.as_user("kato").post(
        f"/v1/alerts/{sent}/follow-up", {"kind": "correction", "body": "場所は港町の公園でした。"}
    )
    assert r.status == 201 and r.body["text"].startswith("【訂正】【不審者情報】")
    entries = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
    actions = {(e.entry.actor, e.entry.action, e.entry.outcome) for e in entries}
    assert ("sato", "alert.send", "denied") in actions
    assert ("sato", "alert.send", "ok") in actions
    assert ("kato", "alert.follow_up", "ok") in actions
    # No field value reaches the audit log (only codes and ids).
    assert not any("港小の児童" in str(e.entry.detail) for e in entries)


async def test_templates_four_eyes_and_management(api: ApiClient, store: Store) -> None:
    await setup_program(store)
    kato = api.as_user("kato")
    r = await kato.post(
        "/v1/alert-templates",
        {"program": KODOMO, "name": "熊の出没", "definition": {
            "title": "熊の出没情報",
            "fields": [{"code": "place", "label": "場所", "kind": "place"}],
        }},
    )  # fmt: skip
    assert r.status == 201
    tid = r.body["id"]
    r = await kato.post(f"/v1/alert-templates/{tid}/approve", {})
    assert r.status == 403 and r.body["code"] == "self_approval"
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{tid}/approve", {})
    assert r.status == 200
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{tid}/approve", {})
    assert r.status == 409
    r = await kato.get("/v1/alert-templates")
    assert {t["status"] for t in r.body["items"]} == {"approved"}
    # Districts by CSV through the API: a bad line changes nothing and names the line.
    adm = api.as_user("adm")
    r = await adm.post(
        "/v1/districts/import", {"csv": "code,name,kana,junior_high,junior_high_name\nX,a,b,c,d\n"}
    )
    assert r.status == 422 and r.body["detail"].startswith("2行目")
    r = await adm.get("/v1/districts")
    assert len(r.body["items"]) == 11
    r = await adm.post("/v1/districts/import", {"csv": catalogue.DEMO_DISTRICTS_CSV})
    assert r.status == 200 and r.body == {"added": 0, "updated": 11, "retired": 0}
    r = await adm.put(
        "/v1/institutions/hikari_es",
        {"name": "光小学校", "kind": "school", "districts": ["hikari", "nowhere"]},
    )
    assert r.status == 422 and r.body["code"] == "unknown_district"
    r = await adm.put(
        "/v1/institutions/hikari_es",
        {"name": "光小学校", "kind": "school", "districts": ["hikari"]},
    )
    assert r.status == 200
    r = await adm.post("/v1/institutions/hikari_es/staff", {"username": "sato", "head": True})
    assert r.status == 200


async def test_program_statistics_are_aggregate_with_small_cells(
    api: ApiClient, store: Store
) -> None:
    await setup_program(store)
    populate(store, 60)
    r = await api.as_user("aud").get("/v1/programs")
    assert r.status == 200
    by_code = {p["code"]: p for p in r.body["items"]}
    assert by_code["city"]["is_default"] and not by_code["city"]["annual"]
    kodomo = by_code[KODOMO]
    assert kodomo["annual"] is True
    values = list(kodomo["districts"].values())
    assert values and all(v.startswith("<") or int(v) >= 10 for v in values)
    assert "<10" in values  # some district has fewer than 10 guardians: suppressed


@pytest.mark.req("K1")
async def test_program_definition_is_listed_and_its_consent_version_only_goes_up(
    api: ApiClient, store: Store
) -> None:
    await setup_program(store)
    populate(store, 60)
    adm = api.as_user("adm")
    r = await adm.get("/v1/programs")
    listed = {p["code"]: p for p in r.body["items"]}
    assert listed["city"]["definition"] == {}
    assert listed[KODOMO]["registered"] != "<10"
    definition = listed[KODOMO]["definition"]
    assert definition["consent_version"] == 1 and definition["questions"][0]["code"] == (
        catalogue.RELATION_QUESTION
    )
    raised = {**definition, "consent_version": 2}
    r = await adm.put(f"/v1/programs/{KODOMO}", {"definition": raised})
    assert r.status == 200, r.body
    r = await adm.get("/v1/programs")
    kodomo = {p["code"]: p for p in r.body["items"]}[KODOMO]
    assert kodomo["registered"] == "<10"  # every member suspended until they agree again
    r = await adm.put(f"/v1/programs/{KODOMO}", {"definition": definition})
    assert r.status == 422 and r.body["code"] == "consent_version_lowered"
    assert r.body["field"] == "definition.consent_version"


@pytest.mark.req("K9")
async def test_program_list_counts_mail_members_apart_without_addresses(
    api: ApiClient, store: Store
) -> None:
    await setup_program(store)
    addresses = [f"guardian{i}@example.net" for i in range(12)]

    def subscribe(conn: Connection) -> None:
        for n, address in enumerate(addresses):
            sid = mail_store.save(
                conn, address, stage="registered", stop_token=f"token-{n:02d}-0123456789",
                confirm_code=None, attempts=0, question=0, answers={}, now=1,
            )  # fmt: skip
            if n < 11:  # one has not joined the program
                mail_programs.join(conn, sid, KODOMO, 1, 1)
                mail_programs.set_answer(conn, sid, KODOMO, Q, ("asahi",))
                mail_programs.mark_registered(conn, sid, KODOMO, 1)

    store.write_sync(subscribe)
    r = await api.as_user("aud").get("/v1/programs")
    by_code = {p["code"]: p for p in r.body["items"]}
    assert by_code["city"]["registered_mail"] == "12"
    assert by_code[KODOMO]["registered_mail"] == "11"
    # Per district too: the 11 are all in 朝日; another district's mail cell is suppressed.
    per_mail = by_code[KODOMO]["districts_mail"]
    assert per_mail["朝日小学校区"] == "11"
    assert set(per_mail) == set(by_code[KODOMO]["districts"])
    assert all(v == "<10" for name, v in per_mail.items() if name != "朝日小学校区")
    assert not any(a in str(r.body) for a in addresses)


@pytest.mark.req("K9")
async def test_the_daemon_hands_the_mail_notices_wake_to_the_api(
    config: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mail component starts before the API, and the API component passes its wake to
    every API site (so raising a consent version sends the re-consent mails at once: tested
    in tests/integration/test_mail_programs.py)."""
    order = components()
    assert order.index(mail_component) < order.index(api_app.api_component)
    handed: list[asyncio.Event | None] = []
    real_serve = api_app.serve

    def serve_spy(*args: Any, **kwargs: Any) -> Any:
        handed.append(kwargs.get("mail_wake"))
        return real_serve(*args, **kwargs)

    monkeypatch.setattr(api_app, "serve", serve_spy)
    main = web.Application()
    wake = asyncio.Event()
    main[CONFIG], main[STORE], main[mail_notices.WAKE] = config, store, wake
    served = api_app.api_component(main)
    await served.__anext__()
    with contextlib.suppress(StopAsyncIteration):
        await served.__anext__()
    assert handed and all(event is wake for event in handed)
