"""The fake staff API's routes for programs, districts, institutions and alerts:
fixed figures for the TUI's snapshots and screen tests, every answer validated through
kairand.api.schema (so the fake cannot drift from the wire shapes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from kairand.api import schema
from kairand.programs import catalogue
from kairand.programs import templates as tpl
from kairand.programs.model import (
    DistrictCsvError,
    ProgramDefinition,
    check_codes,
    parse_districts_csv,
)

JST = dt.timezone(dt.timedelta(hours=9))
NOW = dt.datetime(2026, 4, 1, 10, 0, tzinfo=JST)

DISTRICTS = [d.__dict__ for d in parse_districts_csv(catalogue.DEMO_DISTRICTS_CSV)]
INSTITUTIONS = [
    {"code": "tanpopo", "name": "たんぽぽこども園", "kind": "kodomoen", "all_districts": False,
     "districts": ["asahi", "hikari"]},
    {"code": "minato_es", "name": "港小学校", "kind": "school", "all_districts": False,
     "districts": ["minato"]},
    {"code": "board", "name": "教育委員会", "kind": "board", "all_districts": True,
     "districts": []},
]  # fmt: skip
MEMBERSHIP = {"sato": ["tanpopo"], "ito": ["board"]}


def _template(tid: int, status: str, name: str = "不審者情報") -> dict[str, Any]:
    d = tpl.suspicious_person()
    return {
        "id": tid, "program": "kodomo", "name": name, "title": d.title, "status": status,
        "created_by": "suzuki", "approved_by": "ito" if status == "approved" else None,
        "fields": [f.model_dump() for f in d.fields], "footer": d.footer, "replaces": None,
    }  # fmt: skip


def default_templates(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The templates of STATE (first an approved 不審者情報, No.1, and a draft 熊の出没, No.2);
    tests add to it before the app starts."""
    return state.setdefault(
        "templates", [_template(1, "approved"), _template(2, "draft", "熊の出没")]
    )


def revision_of_first(state: dict[str, Any]) -> dict[str, Any]:
    """Add No.3, a draft revision of No.1 by another person; return it."""
    templates = default_templates(state)
    revision = {**templates[0], "id": len(templates) + 1, "status": "draft", "replaces": 1,
                "created_by": "kato", "approved_by": None}  # fmt: skip
    templates.append(revision)
    return revision


def add_program_routes(
    routes: web.RouteTableDef,
    username: str,
    guard: Callable[[str], web.Response | None],
    state: dict[str, Any],
) -> None:
    """Register the routes on ROUTES for USERNAME; STATE is shared between identities."""
    default_templates(state)
    state.setdefault("alerts", [])
    state.setdefault("follow_ups", [])
    state.setdefault("puts", {})  # program code -> definition saved through the TUI
    state.setdefault("imports", [])
    state.setdefault("institution_puts", {})
    state.setdefault("staff", [])

    def invalid(detail: str, field: str | None = None) -> web.Response:
        problem = {"type": "urn:kairan:problem:validation", "title": "入力内容に誤りがあります",
                   "status": 422, "detail": detail, "field": field}  # fmt: skip
        return web.json_response(problem, status=422, content_type="application/problem+json")

    def conflict(detail: str, code: str) -> web.Response:
        problem = {"type": "urn:kairan:problem:conflict", "title": "処理できない状態です",
                   "status": 409, "detail": detail, "code": code}  # fmt: skip
        return web.json_response(problem, status=409, content_type="application/problem+json")

    def answer(model: type[BaseModel], body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(model.model_validate(body).model_dump(mode="json"), status=status)

    @routes.get("/v1/programs")
    async def programs(_: web.Request) -> web.Response:
        if (denied := guard("programs.list")) is not None:
            return denied
        per = {
            "朝日小学校区": "412",
            "光小学校区": "388",
            "緑が丘小学校区": "<10",
            "港小学校区": "97",
        }
        items = [
            {"code": "city", "name": "市政情報", "is_default": True, "annual": False,
             "registered": "5,204", "districts": {}},
            {"code": "kodomo", "name": "子ども安全情報", "is_default": False, "annual": True,
             "registered": "903", "districts": per,
             "registered_mail": state.get("registered_mail", "0"),
             "districts_mail": state.get("districts_mail", {}),
             "definition": state["puts"].get("kodomo")
             or catalogue.child_safety().model_dump(mode="json")},
        ]  # fmt: skip
        for code, d in state["puts"].items():
            if code != "kodomo":
                items.append({"code": code, "name": d["name"], "is_default": False,
                              "annual": bool(d.get("annual")), "registered": "<10",
                              "districts": {}, "definition": d})  # fmt: skip
        return answer(schema.ProgramList, {"items": items})

    @routes.put("/v1/programs/{id}")
    async def put_program(request: web.Request) -> web.Response:
        if (denied := guard("programs.put")) is not None:
            return denied
        body = schema.ProgramPut.model_validate(await request.json())
        code = request.match_info["id"]
        try:
            definition = ProgramDefinition.model_validate(body.definition)
            check_codes(code, definition)
        except (ValidationError, ValueError):
            return invalid("配信サービスの定義に誤りがあります。", "definition")
        created = code not in state["puts"] and code != "kodomo"
        state["puts"][code] = definition.model_dump(mode="json")
        return answer(schema.Created, {"id": 0}, 201 if created else 200)

    @routes.post("/v1/districts/import")
    async def import_districts(request: web.Request) -> web.Response:
        if (denied := guard("districts.upload")) is not None:
            return denied
        body = schema.DistrictImport.model_validate(await request.json())
        try:
            rows = parse_districts_csv(body.csv)
        except DistrictCsvError as exc:
            return invalid(f"{exc.line}行目：{exc.message_ja}", "csv")
        state["imports"].append([d.code for d in rows])
        known = {d["code"] for d in DISTRICTS}
        added = sum(1 for d in rows if d.code not in known)
        return answer(schema.DistrictImportResult, {"added": added, "updated": len(rows) - added,
                                                    "retired": 0})  # fmt: skip

    @routes.put("/v1/institutions/{id}")
    async def put_institution(request: web.Request) -> web.Response:
        if (denied := guard("institutions.put")) is not None:
            return denied
        body = schema.InstitutionPut.model_validate(await request.json())
        state["institution_puts"][request.match_info["id"]] = body.model_dump(mode="json")
        return answer(schema.Created, {"id": 0})

    @routes.post("/v1/institutions/{id}/staff")
    async def institution_staff(request: web.Request) -> web.Response:
        if (denied := guard("institutions.staff")) is not None:
            return denied
        body = schema.InstitutionStaff.model_validate(await request.json())
        state["staff"].append((request.match_info["id"], body.username, body.head))
        return answer(schema.Created, {"id": 0})

    @routes.post("/v1/alert-templates")
    async def create_template(request: web.Request) -> web.Response:
        if (denied := guard("alert_templates.create")) is not None:
            return denied
        body = schema.AlertTemplateCreate.model_validate(await request.json())
        try:
            d = tpl.TemplateDefinition.model_validate(body.definition)
        except ValidationError:
            return invalid("テンプレートの定義に誤りがあります。", "definition")
        if body.replaces is not None:  # two of the daemon's rules (tested in tests/unit/api)
            original = next((t for t in state["templates"] if t["id"] == body.replaces), None)
            if original is None or original["status"] == "retired":
                return conflict("取り下げたテンプレートは修正できません。", "replaces_retired")
            if any(t["replaces"] == body.replaces and t["status"] == "draft"
                   for t in state["templates"]):  # fmt: skip
                return conflict("承認待ちの修正案があります。", "revision_open")
        tid = len(state["templates"]) + 1
        state["templates"].append({
            "id": tid, "program": body.program, "name": body.name, "title": d.title,
            "status": "draft", "created_by": username, "approved_by": None,
            "fields": [f.model_dump() for f in d.fields], "footer": d.footer,
            "replaces": body.replaces,
        })  # fmt: skip
        return answer(schema.Created, {"id": tid}, 201)

    @routes.get("/v1/districts")
    async def districts(_: web.Request) -> web.Response:
        if (denied := guard("districts.list")) is not None:
            return denied
        return answer(schema.DistrictList, {"items": DISTRICTS})

    @routes.get("/v1/institutions")
    async def institutions(_: web.Request) -> web.Response:
        if (denied := guard("institutions.list")) is not None:
            return denied
        return answer(schema.InstitutionList, {"items": INSTITUTIONS})

    @routes.get("/v1/me/institutions")
    async def mine(_: web.Request) -> web.Response:
        if (denied := guard("institutions.mine")) is not None:
            return denied
        codes = MEMBERSHIP.get(username, [])
        return answer(
            schema.MyInstitutions, {"items": [i for i in INSTITUTIONS if i["code"] in codes]}
        )

    @routes.get("/v1/alert-templates")
    async def templates(_: web.Request) -> web.Response:
        if (denied := guard("alert_templates.list")) is not None:
            return denied
        return answer(schema.AlertTemplateList, {"items": state["templates"]})

    @routes.post("/v1/alert-templates/{id}/approve")
    async def approve(request: web.Request) -> web.Response:
        if (denied := guard("alert_templates.approve")) is not None:
            return denied
        tid = int(request.match_info["id"])
        for t in state["templates"]:
            if t["id"] == tid:
                t.update(status="approved", approved_by=username)
                for old in state["templates"]:  # approving a revision retires its original
                    if old["id"] == t["replaces"]:
                        old["status"] = "retired"
        return answer(schema.Created, {"id": tid})

    @routes.post("/v1/alert-templates/{id}/retire")
    async def retire(request: web.Request) -> web.Response:
        if (denied := guard("alert_templates.retire")) is not None:
            return denied
        if await request.json() != {}:
            return invalid("本文は {} です。")
        tid = int(request.match_info["id"])
        template = next((t for t in state["templates"] if t["id"] == tid), None)
        if template is None or template["status"] == "retired":
            return conflict("このテンプレートはすでに取り下げられています。", "already_retired")
        template["status"] = "retired"
        state.setdefault("retired", []).append((tid, username))
        for t in state["templates"]:  # its open revision goes with it
            if t["replaces"] == tid and t["status"] == "draft":
                t["status"] = "retired"
        return answer(schema.Created, {"id": tid})

    @routes.post("/v1/alerts")
    async def send(request: web.Request) -> web.Response:
        if (denied := guard("alerts.send")) is not None:
            return denied
        body = schema.AlertSend.model_validate(await request.json())
        template = tpl.TemplateDefinition.model_validate(
            {k: state["templates"][0][k] for k in ("title", "fields", "footer")}
        )
        consent = (
            tpl.GuardianConsent(body.guardian_consent.by, body.guardian_consent.at)
            if body.guardian_consent
            else None
        )
        try:
            filled = tpl.check_fill(template, body.values, consent, NOW + dt.timedelta(days=400))
        except tpl.TemplateError as exc:
            problem = {"type": "urn:kairan:problem:validation", "title": "入力内容に誤りがあります",
                       "status": 422, "detail": exc.message_ja, "code": exc.code,
                       "field": exc.field}  # fmt: skip
            return web.json_response(problem, status=422, content_type="application/problem+json")
        state["alerts"].append({"by": username, "districts": body.districts, "values": filled})
        text = tpl.render(template, filled, "たんぽぽこども園")
        return answer(
            schema.AlertSent, {"delivery_id": 100 + len(state["alerts"]), "text": text,
                               "notified": 3}, 201,
        )  # fmt: skip

    @routes.get("/v1/alerts")
    async def alerts(_: web.Request) -> web.Response:
        if (denied := guard("alerts.list")) is not None:
            return denied
        items = [
            {"delivery_id": 7, "template_id": 1, "institution": "tanpopo",
             "districts": ["asahi", "hikari"], "kind": "alert", "follows": None,
             "guardian_consent": False, "created_at": NOW.isoformat()},
        ]  # fmt: skip
        for i, f in enumerate(state["follow_ups"]):
            items.insert(0, {**items[-1], "delivery_id": 50 + i, "kind": f["kind"],
                             "follows": f["follows"]})  # fmt: skip
        return answer(schema.AlertList, {"items": items})

    @routes.post("/v1/alerts/{id}/follow-up")
    async def follow_up(request: web.Request) -> web.Response:
        if (denied := guard("alerts.follow_up")) is not None:
            return denied
        body = schema.AlertFollowUp.model_validate(await request.json())
        original = int(request.match_info["id"])
        state["follow_ups"].append({"kind": body.kind, "body": body.body, "follows": original,
                                    "by": username})  # fmt: skip
        text = tpl.follow_up_text(body.kind, "不審者情報", NOW, body.body, "たんぽぽこども園")
        return answer(
            schema.AlertSent, {"delivery_id": 50 + len(state["follow_ups"]), "text": text,
                               "notified": 3}, 201,
        )  # fmt: skip
