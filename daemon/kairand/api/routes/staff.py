"""The staff roster (admin): list, add or change, deactivate. The rule that one active
administrator always remains is kairand.staff.service's."""

from __future__ import annotations

from aiohttp import web

from kairand.api import schema
from kairand.api.http import json_body, now_ms, ok, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.staff import service as staff_service
from kairand.store import staff as staff_store


def _staff_out(r: staff_store.StaffRecord) -> schema.StaffOut:
    return schema.StaffOut(
        username=r.username,
        display_name=r.display_name,
        roles=list(r.roles),  # type: ignore[arg-type]
        handles_personal_data=r.handles_personal_data,
        active=r.active,
    )


async def staff_list(request: web.Request) -> web.Response:
    records = await store_of(request).read(staff_store.all_staff)
    return ok(schema.StaffList(items=[_staff_out(r) for r in records]))


USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _username(request: web.Request) -> str:
    name = request.match_info["username"]
    if not (1 <= len(name) <= 32) or not set(name) <= USERNAME_CHARS or name[0] in "-.":
        raise ApiProblem(
            "validation",
            "OS のユーザー名（英小文字・数字・_ - .）で指定してください。",
            field="username",
        )
    return name


async def staff_put(request: web.Request) -> web.Response:
    username = _username(request)
    body = await json_body(request, schema.StaffUpdate)
    record = staff_store.StaffRecord(
        username,
        body.display_name,
        tuple(dict.fromkeys(body.roles)),
        body.handles_personal_data,
        body.active,
    )
    try:
        await staff_service.put(store_of(request), record, staff_of(request).username, now_ms())
    except staff_service.LastAdminError:
        raise ApiProblem(
            "conflict", staff_service.LAST_ADMIN_JA, field="roles", code="last_admin"
        ) from None
    return ok(_staff_out(record))


async def staff_delete(request: web.Request) -> web.Response:
    username = _username(request)
    try:
        await staff_service.remove(
            store_of(request), username, staff_of(request).username, now_ms()
        )
    except staff_service.NotOnRoster:
        raise ApiProblem(
            "not-found", "その職員は名簿に登録されていません。", field="username"
        ) from None
    except staff_service.LastAdminError:
        raise ApiProblem(
            "conflict", staff_service.LAST_ADMIN_JA, field="username", code="last_admin"
        ) from None
    return web.Response(status=204)
