"""Revising and withdrawing pre-approved alert templates, route by route with roles: a revision
is a new draft that `replaces` its original (same program), the approved original stays usable
until another approver approves the revision, which retires it in the same transaction; a
template can be withdrawn (取り下げ) by an approver or an administrator and can then no longer
be sent; every step is in the audit log (S8)."""

from __future__ import annotations

from typing import Any

import pytest

from kairand.api.client import ApiClient
from kairand.programs import service
from kairand.programs.model import ProgramDefinition
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store.database import Store
from tests.support.programs_support import FILLED, KODOMO, setup_program

SEND = {"institution": "tanpopo", "districts": ["asahi"], "values": FILLED}
REVISED = {k: FILLED[k] for k in ("when", "place", "what", "advice")}
"""The fields of `revision()` (it has no 特徴 field)."""


def revision(replaces: int | None, title: str = "不審者情報", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "program": KODOMO,
        "name": "不審者情報",
        "definition": {
            "title": title,
            "fields": [
                {"code": "when", "label": "日時", "kind": "datetime", "max_length": 40},
                {"code": "place", "label": "場所", "kind": "place", "max_length": 60},
                {"code": "what", "label": "内容", "max_length": 400},
                {"code": "advice", "label": "注意事項", "max_length": 400},
            ],
            "footer": "お子さまの安全確保にご協力ください。",
        },
        **extra,
    }
    if replaces is not None:
        body["replaces"] = replaces
    return body


def audit_of(store: Store, action: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (e.entry.actor, e.entry.target, e.entry.outcome, dict(e.entry.detail))
        for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        if e.entry.action == action
    ]


async def statuses(api: ApiClient) -> dict[int, tuple[str, int | None]]:
    r = await api.as_user("kato").get("/v1/alert-templates")
    assert r.status == 200
    return {t["id"]: (t["status"], t["replaces"]) for t in r.body["items"]}


@pytest.mark.req("K8")
@pytest.mark.req("S8")
async def test_revision_replaces_the_original_only_when_approved(
    api: ApiClient, store: Store
) -> None:
    tid = await setup_program(store)  # written by kato, approved by suzuki
    yamada, kato, suzuki = api.as_user("yamada"), api.as_user("kato"), api.as_user("suzuki")
    # An author may write a revision (as a new template); it is a draft naming the original.
    r = await yamada.post("/v1/alert-templates", revision(tid, "不審者情報（改）"))
    assert r.status == 201, r.body
    rev = r.body["id"]
    assert (await statuses(api))[rev] == ("draft", tid)
    assert (await statuses(api))[tid] == ("approved", None)
    # The approved original stays usable while the revision waits.
    r = await yamada.post("/v1/alerts", {**SEND, "template_id": tid})
    assert r.status == 201, r.body
    assert r.body["text"].startswith("【不審者情報】")
    # ... and the revision cannot be sent before its approval.
    r = await yamada.post("/v1/alerts", {**SEND, "template_id": rev})
    assert r.status == 422 and r.body["code"] == "template_not_approved"
    # Four eyes as before: its writer cannot approve it, nor can an author.
    store.write_sync(
        staff_store.upsert, staff_store.StaffRecord("yamada", "yamada", ("author", "approver")), 1
    )
    r = await yamada.post(f"/v1/alert-templates/{rev}/approve", {})
    assert r.status == 403 and r.body["code"] == "self_approval"
    r = await api.as_user("sato").post(f"/v1/alert-templates/{rev}/approve", {})
    assert r.status == 403 and r.body["code"] == "role"
    assert (await statuses(api))[tid] == ("approved", None)
    # Another approver approves it: the original is retired in the same step.
    r = await suzuki.post(f"/v1/alert-templates/{rev}/approve", {})
    assert r.status == 200, r.body
    now = await statuses(api)
    assert now[rev] == ("approved", tid) and now[tid] == ("retired", None)
    # The original can no longer be sent; the answer names the revision to use.
    r = await yamada.post("/v1/alerts", {**SEND, "template_id": tid})
    assert r.status == 409 and r.body["code"] == "template_retired"
    assert f"No.{rev}" in r.body["detail"]
    r = await yamada.post("/v1/alerts", {**SEND, "template_id": rev, "values": REVISED})
    assert r.status == 201 and r.body["text"].startswith("【不審者情報（改）】")
    # A follow-up (訂正・解除) of an alert sent from the retired original still works.
    first = next(
        a["delivery_id"]
        for a in (await kato.get("/v1/alerts")).body["items"]
        if a["template_id"] == tid
    )
    r = await kato.post(f"/v1/alerts/{first}/follow-up", {"kind": "all_clear", "body": "解決。"})
    assert r.status == 201, r.body
    # Audit: the create names what it replaces; the retirement gives the reason.
    creates = audit_of(store, "alert_template.create")
    assert ("yamada", f"alert_template {rev}", "ok") in [c[:3] for c in creates]
    assert next(c[3] for c in creates if c[1] == f"alert_template {rev}")["replaces"] == tid
    retires = audit_of(store, "alert_template.retire")
    assert retires == [
        ("suzuki", f"alert_template {tid}", "ok", {"reason": "replaced", "replaced_by": rev})
    ]
    sends = audit_of(store, "alert.send")
    assert ("yamada", f"alert_template {tid}", "denied") in [s[:3] for s in sends]
    assert any(s[3].get("reason") == "template_retired" for s in sends)


@pytest.mark.req("K8")
async def test_revisions_refused_with_a_reason(api: ApiClient, store: Store) -> None:
    tid = await setup_program(store)
    kato = api.as_user("kato")
    other = ProgramDefinition.model_validate(
        {
            "name": "防災情報",
            "description": "防災情報",
            "purpose_notice": "防災情報をお届けします。",
            "completion": "登録しました。",
        }
    )
    await service.put_program(store, "admin", "bousai", other)
    # Another program's template.
    r = await kato.post("/v1/alert-templates", {**revision(tid), "program": "bousai"})
    assert r.status == 422 and r.body["code"] == "replaces_other_program"
    assert r.body["field"] == "program" and "同じ配信サービス" in r.body["detail"]
    # A template that does not exist.
    r = await kato.post("/v1/alert-templates", revision(999))
    assert r.status == 422 and r.body["code"] == "replaces_unknown"
    # A second open revision of the same template.
    r = await kato.post("/v1/alert-templates", revision(tid))
    assert r.status == 201
    first = r.body["id"]
    r = await api.as_user("yamada").post("/v1/alert-templates", revision(tid))
    assert r.status == 409 and r.body["code"] == "revision_open"
    assert f"No.{first}" in r.body["detail"] and r.body["field"] == "replaces"
    # A draft may be revised too (a fix of the fix); approving that retires both drafts' line.
    r = await api.as_user("yamada").post("/v1/alert-templates", revision(first, "不審者情報2"))
    assert r.status == 201
    second = r.body["id"]
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{second}/approve", {})
    assert r.status == 200
    now = await statuses(api)
    assert now[second][0] == "approved"
    assert now[first][0] == "retired" and now[tid][0] == "retired"
    # A retired template cannot be revised.
    r = await kato.post("/v1/alert-templates", revision(tid))
    assert r.status == 409 and r.body["code"] == "replaces_retired"
    assert "取り下げ" in r.body["detail"]
    # Nothing refused was written.
    assert len(await statuses(api)) == 3
    # The database keeps one open revision per template even without the service.
    r = await kato.post("/v1/alert-templates", revision(second))
    assert r.status == 201

    def second_open(c: Any) -> None:
        c.execute(
            "INSERT INTO alert_templates (program, name, definition, status, created_by,"
            " created_at, replaces) VALUES (?, 'x', '{}', 'draft', 'x', 1, ?)",
            (KODOMO, second),
        )

    with pytest.raises(Exception, match="UNIQUE"):
        store.write_sync(second_open)


@pytest.mark.req("K8")
@pytest.mark.req("S8")
async def test_retire_route_by_role(api: ApiClient, store: Store) -> None:
    tid = await setup_program(store)
    r = await api.as_user("kato").post("/v1/alert-templates", revision(tid))
    rev = r.body["id"]
    # Authors and auditors may not withdraw a template; approvers and administrators may.
    for user in ("yamada", "aud"):
        r = await api.as_user(user).post(f"/v1/alert-templates/{tid}/retire", {})
        assert r.status == 403 and r.body["code"] == "role", user
    assert (await statuses(api))[tid][0] == "approved"
    # The administrator sees the templates (to choose one) and withdraws the original: its
    # open revision goes with it.
    r = await api.as_user("adm").get("/v1/alert-templates")
    assert r.status == 200 and {t["id"] for t in r.body["items"]} == {tid, rev}
    r = await api.as_user("adm").post(f"/v1/alert-templates/{tid}/retire", {})
    assert r.status == 200, r.body
    now = await statuses(api)
    assert now[tid][0] == "retired" and now[rev][0] == "retired"
    # It can no longer be filled in and sent, nor approved, nor withdrawn twice.
    r = await api.as_user("yamada").post("/v1/alerts", {**SEND, "template_id": tid})
    assert r.status == 409 and r.body["code"] == "template_retired"
    assert "取り下げ" in r.body["detail"] and "No." not in r.body["detail"]
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{rev}/approve", {})
    assert r.status == 409 and r.body["code"] == "invalid_transition"
    r = await api.as_user("kato").post(f"/v1/alert-templates/{tid}/retire", {})
    assert r.status == 409 and r.body["code"] == "already_retired"
    r = await api.as_user("kato").post("/v1/alert-templates/424242/retire", {})
    assert r.status == 404
    # An approver withdraws a draft (a new template nobody approved yet).
    r = await api.as_user("kato").post("/v1/alert-templates", revision(None, "熊の出没"))
    draft = r.body["id"]
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{draft}/retire", {})
    assert r.status == 200
    assert (await statuses(api))[draft][0] == "retired"
    # Audit: who, which, why (a code; free text never enters the audit log).
    retires = audit_of(store, "alert_template.retire")
    assert retires == [
        ("adm", f"alert_template {tid}", "ok", {"reason": "withdrawn"}),
        ("adm", f"alert_template {rev}", "ok", {"reason": "original_withdrawn", "original": tid}),
        ("suzuki", f"alert_template {draft}", "ok", {"reason": "withdrawn"}),
    ]
    calls = audit_of(store, "api.alert_templates.retire")
    assert [(c[0], c[2]) for c in calls] == [
        ("yamada", "denied"), ("aud", "denied"), ("adm", "allowed"), ("kato", "failed"),
        ("kato", "failed"), ("suzuki", "allowed"),
    ]  # fmt: skip


@pytest.mark.req("K8")
async def test_withdrawing_a_revision_keeps_the_original(api: ApiClient, store: Store) -> None:
    tid = await setup_program(store)
    r = await api.as_user("kato").post("/v1/alert-templates", revision(tid, "不審者情報（誤）"))
    rev = r.body["id"]
    r = await api.as_user("suzuki").post(f"/v1/alert-templates/{rev}/retire", {})
    assert r.status == 200
    now = await statuses(api)
    assert now[rev][0] == "retired" and now[tid][0] == "approved"
    r = await api.as_user("yamada").post("/v1/alerts", {**SEND, "template_id": tid})
    assert r.status == 201
    # With the withdrawn revision gone, a new one may be written.
    r = await api.as_user("kato").post("/v1/alert-templates", revision(tid))
    assert r.status == 201
