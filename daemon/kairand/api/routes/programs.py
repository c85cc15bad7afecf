"""Programs, school districts, sending institutions, alert templates and alerts.

The handlers read and answer; every rule (scope K8, consent K7, class 1 G3, four eyes on
templates) is enforced in kairand.programs.service, whose refusals become problems here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError

from kairand.api import schema
from kairand.api.http import (
    Empty,
    config_of,
    from_unix,
    json_body,
    line_of,
    note,
    ok,
    staff_of,
    store_of,
    wake_sender,
)
from kairand.api.problems import ApiProblem
from kairand.delivery.alert_notify import notify_test_recipients
from kairand.logs import get_logger
from kairand.mail import notices as mail_notices
from kairand.programs import consent, service
from kairand.programs import templates as tpl
from kairand.programs.model import DistrictCsvError, ProgramDefinition
from kairand.programs.scope import ScopeError
from kairand.segments.model import SegmentError
from kairand.store import mail as mail_store
from kairand.store import mail_programs
from kairand.store import programs as q

T = TypeVar("T")
log = get_logger(__name__)
_background: set[asyncio.Task[Any]] = set()


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except service.ProgramError as exc:
        kind = "not-found" if exc.code in ("not_found",) else "validation"
        if exc.code in ("not_member", "self_approval"):
            kind = "forbidden"
        if exc.code in ("invalid_transition", "template_retired") or exc.code in tpl.CONFLICTS:
            kind = "conflict"
        raise ApiProblem(kind, exc.message_ja, field=exc.field, code=exc.code) from None
    except ScopeError as exc:
        raise ApiProblem("forbidden", exc.message_ja, field=exc.field, code=exc.code) from None
    except tpl.TemplateError as exc:
        kind = "conflict" if exc.code in tpl.CONFLICTS else "validation"
        raise ApiProblem(kind, exc.message_ja, field=exc.field, code=exc.code) from None
    except SegmentError as exc:
        raise ApiProblem("validation", exc.message_ja, field="districts", code="segment") from None
    except DistrictCsvError as exc:
        raise ApiProblem(
            "validation", f"{exc.line}行目：{exc.message_ja}", field="csv", code="csv"
        ) from None


def _small(count: int, k: int) -> str:
    return f"<{k}" if count < k else str(count)


async def programs_list(request: web.Request) -> web.Response:
    store, k = store_of(request), config_of(request).privacy.small_cell_threshold
    items = []
    for row in await store.read(q.list_programs):
        if row.is_default:
            count = await store.read(q.default_counts)
            by_mail = (await store.read(mail_store.stage_counts)).get("registered", 0)
            items.append(schema.ProgramOut(code=row.code, name=row.name, is_default=True,
                                           annual=False, registered=_small(count, k),
                                           registered_mail=_small(by_mail, k)))  # fmt: skip
            continue
        definition = ProgramDefinition.model_validate(row.definition)
        registered, _ = await store.read(q.member_counts, row.code)
        by_mail = await store.read(mail_programs.member_counts, row.code)
        per: dict[str, str] = {}
        per_mail: dict[str, str] = {}
        if definition.district_question:
            question = definition.district_question
            counts = await store.read(q.answer_counts, row.code, question)
            mail = (
                await store.read(mail_programs.answer_counts, row.code, question) if by_mail else {}
            )
            names = {d.code: d.name for d in await store.read(service.districts_of)}
            listed = sorted(counts | mail)  # a district with members by mail only is listed too
            per = {names.get(c, c): _small(counts.get(c, 0), k) for c in listed}
            if mail:
                per_mail = {names.get(c, c): _small(mail.get(c, 0), k) for c in listed}
        items.append(
            schema.ProgramOut(
                code=row.code,
                name=row.name,
                is_default=False,
                annual=definition.annual is not None,
                registered=_small(registered, k),
                registered_mail=_small(by_mail, k),
                districts=per,
                districts_mail=per_mail,
                definition=definition.model_dump(mode="json"),
            )
        )
    return ok(schema.ProgramList(items=items))


async def programs_put(request: web.Request) -> web.Response:
    body = await json_body(request, schema.ProgramPut)
    code = request.match_info["id"]
    try:
        definition = ProgramDefinition.model_validate(body.definition)
    except ValidationError as exc:
        where = ".".join(str(x) for x in exc.errors()[0]["loc"])
        raise ApiProblem(
            "validation", "配信サービスの定義に誤りがあります。", field=f"definition.{where}"
        ) from None
    if not code.isascii() or not code.isalnum() or not code[:1].isalpha() or len(code) > 16:
        raise ApiProblem("validation", "配信サービスのコードが正しくありません。", field="id")
    created = await _call(service.put_program(store_of(request), staff_of(request).username,
                                              code, definition))  # fmt: skip
    note(request, program=code)
    _prompt_later(request)
    return ok(schema.Created(id=0), status=201 if created else 200)


async def districts_list(request: web.Request) -> web.Response:
    districts = await store_of(request).read(service.districts_of)
    return ok(schema.DistrictList(items=[schema.DistrictOut(**d.__dict__) for d in districts]))


async def districts_import(request: web.Request) -> web.Response:
    body = await json_body(request, schema.DistrictImport)
    counts = await _call(
        service.import_districts(store_of(request), staff_of(request).username, body.csv)
    )
    note(request, **counts)
    return ok(schema.DistrictImportResult(**counts))


def _institution(t: q.InstitutionTuple) -> schema.InstitutionOut:
    code, name, kind, all_d, ds = t
    return schema.InstitutionOut(
        code=code, name=name, kind=kind, all_districts=all_d, districts=sorted(ds)
    )


async def institutions_list(request: web.Request) -> web.Response:
    rows = await store_of(request).read(q.institutions)
    return ok(schema.InstitutionList(items=[_institution(r) for r in rows]))


async def institutions_mine(request: web.Request) -> web.Response:
    rows = await store_of(request).read(q.institutions_of, staff_of(request).username)
    return ok(schema.MyInstitutions(items=[_institution(r) for r in rows]))


async def institutions_put(request: web.Request) -> web.Response:
    body = await json_body(request, schema.InstitutionPut)
    code = request.match_info["id"]
    if not code.isascii() or not code.replace("_", "").isalnum() or len(code) > 32:
        raise ApiProblem("validation", "発信元のコードが正しくありません。", field="id")
    await _call(
        service.put_institution(store_of(request), staff_of(request).username, code, body.name,
                                body.kind, body.all_districts, body.districts)
    )  # fmt: skip
    note(request, institution=code)
    return ok(schema.Created(id=0))


async def institutions_staff(request: web.Request) -> web.Response:
    body = await json_body(request, schema.InstitutionStaff)
    code = request.match_info["id"]
    await _call(service.assign_staff(store_of(request), staff_of(request).username,
                                     body.username, code, body.head))  # fmt: skip
    note(request, institution=code, head=body.head)
    return ok(schema.Created(id=0))


def _template(row: q.TemplateRow) -> schema.AlertTemplateOut:
    d = tpl.TemplateDefinition.model_validate(row.definition)
    return schema.AlertTemplateOut(
        id=row.id, program=row.program, name=row.name, title=d.title,
        status=row.status,  # type: ignore[arg-type]
        created_by=row.created_by, approved_by=row.approved_by, footer=d.footer,
        fields=[schema.TemplateFieldOut(**f.model_dump()) for f in d.fields],
        replaces=row.replaces,
    )  # fmt: skip


async def templates_list(request: web.Request) -> web.Response:
    rows = await store_of(request).read(q.templates, None)
    return ok(schema.AlertTemplateList(items=[_template(r) for r in rows]))


async def templates_create(request: web.Request) -> web.Response:
    body = await json_body(request, schema.AlertTemplateCreate)
    try:
        definition = tpl.TemplateDefinition.model_validate(body.definition)
    except ValidationError as exc:
        where = ".".join(str(x) for x in exc.errors()[0]["loc"])
        raise ApiProblem(
            "validation", "テンプレートの定義に誤りがあります。", field=f"definition.{where}"
        ) from None
    tid = await _call(service.create_template(store_of(request), staff_of(request).username,
                                              body.program, body.name, definition,
                                              body.replaces))  # fmt: skip
    note(request, template=tid, replaces=body.replaces)
    return ok(schema.Created(id=tid), status=201)


def _path_int(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定されたものはありません。", field="id")
    return int(raw)


async def templates_approve(request: web.Request) -> web.Response:
    tid = _path_int(request)
    await json_body(request, Empty)
    retired = await _call(
        service.approve_template(store_of(request), staff_of(request).username, tid)
    )
    note(request, template=tid, retired=retired)
    return ok(schema.Created(id=tid))


async def templates_retire(request: web.Request) -> web.Response:
    tid = _path_int(request)
    await json_body(request, Empty)
    retired = await _call(
        service.retire_template(store_of(request), staff_of(request).username, tid)
    )
    note(request, template=tid, retired=retired)
    return ok(schema.Created(id=tid))


def _prompt_later(request: web.Request) -> None:
    """Push re-consent prompts now (a raised consent version suspended members) and wake the
    mail notices (their re-consent mails); the program expiry worker and the mail component
    retry what is left every minute."""
    mail_wake = request.app.get(mail_notices.WAKE)
    if mail_wake is not None:
        mail_wake.set()
    line = line_of(request)
    if line is None:
        return

    async def prompt() -> None:
        try:
            await consent.send_prompts(store_of(request), line)
        except Exception as exc:  # the worker's next run retries
            log.warning("programs.reconsent_failed", error=type(exc).__name__)

    task = asyncio.get_running_loop().create_task(prompt())
    _background.add(task)
    task.add_done_callback(_background.discard)


def _notify_later(request: web.Request, sent: service.SentAlert) -> None:
    line = line_of(request)
    if line is None:
        return
    task = asyncio.get_running_loop().create_task(
        notify_test_recipients(store_of(request), line, sent)
    )
    _background.add(task)
    task.add_done_callback(_background.discard)


async def alerts_send(request: web.Request) -> web.Response:
    body = await json_body(request, schema.AlertSend)
    consent = (
        tpl.GuardianConsent(body.guardian_consent.by, body.guardian_consent.at)
        if body.guardian_consent is not None
        else None
    )
    if consent is not None and consent.at.tzinfo is None:
        raise ApiProblem("validation", "同意日時にはタイムゾーンを付けてください。",
                         field="guardian_consent.at")  # fmt: skip
    sent = await _call(
        service.send_alert(store_of(request), staff_of(request).username, body.template_id,
                           body.institution, body.districts, body.values, consent)
    )  # fmt: skip
    note(request, delivery=sent.delivery_id, template=body.template_id)
    wake_sender(request)  # urgent and already approved: the sender starts it now
    _notify_later(request, sent)
    out = schema.AlertSent(delivery_id=sent.delivery_id, text=sent.text, notified=len(sent.notify))
    return ok(out, status=201)


async def alerts_follow_up(request: web.Request) -> web.Response:
    delivery_id = _path_int(request)
    body = await json_body(request, schema.AlertFollowUp)
    sent = await _call(service.send_follow_up(store_of(request), staff_of(request).username,
                                              delivery_id, body.kind, body.body))  # fmt: skip
    note(request, delivery=sent.delivery_id, follows=delivery_id, kind=body.kind)
    wake_sender(request)
    _notify_later(request, sent)
    out = schema.AlertSent(delivery_id=sent.delivery_id, text=sent.text, notified=len(sent.notify))
    return ok(out, status=201)


async def alerts_list(request: web.Request) -> web.Response:
    rows = await store_of(request).read(q.recent_alerts, 50)
    items = []
    for a in rows:
        created = from_unix(a.created_at)
        assert created is not None
        items.append(
            schema.AlertOut(
                delivery_id=a.delivery_id,
                template_id=a.template_id,
                institution=a.institution,
                districts=a.districts,
                kind=a.kind,  # type: ignore[arg-type]
                follows=a.follows,
                guardian_consent=a.consent_by is not None,
                created_at=created,
            )
        )
    return ok(schema.AlertList(items=items))
