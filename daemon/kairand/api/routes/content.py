"""Routes for rich content: image upload, the link allowlist, templates (定型文)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import urllib.parse

from aiohttp import web
from pydantic import BaseModel

from kairand.api import schema
from kairand.api.http import Empty, Handler, config_of, json_body, note, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.api.wire import service_call
from kairand.audit.chain import AuditEntry
from kairand.delivery import media, templates
from kairand.delivery.images import ImageRefused
from kairand.delivery.messages import MEDIA_ID, normalise_domain
from kairand.delivery.service import LINK_DOMAINS_KEY
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store import settings
from kairand.store.database import Connection
from kairand.store.templates import TemplateRow
from kairand.timeutil import JST

IMAGE_TYPES = frozenset({"image/jpeg", "image/png"})


def _media_out(info: media_store.MediaInfo) -> schema.MediaOut:
    return schema.MediaOut(
        id=info.id,
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        bytes=info.original_bytes,
        preview_bytes=info.preview_bytes,
        file_name=info.file_name,
    )


def _ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)


# -- images -------------------------------------------------------------------------------


async def media_upload(request: web.Request) -> web.Response:
    """The body is the picture itself (Content-Type image/jpeg or image/png), read in chunks
    up to media.max_upload_bytes (the JSON body limit of the API does not apply)."""
    limit = config_of(request).media.max_upload_bytes
    if request.content_type not in IMAGE_TYPES:
        raise ApiProblem(
            "unsupported-media-type", "JPEG か PNG の画像を送信してください。", field="body"
        )
    if (request.content_length or 0) > limit:
        raise ApiProblem(
            "payload-too-large", f"画像は {limit // (1024 * 1024)} MB までです。", field="body"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(max(60.0, config_of(request).api.body_timeout_seconds)):
            async for chunk in request.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise ApiProblem(
                        "payload-too-large",
                        f"画像は {limit // (1024 * 1024)} MB までです。",
                        field="body",
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblem(
            "request-timeout", "画像が時間内に届きませんでした。もう一度お試しください。"
        ) from None
    name = urllib.parse.unquote(request.headers.get("X-File-Name", ""))[:200]
    try:
        info = await media.upload(
            store_of(request), staff_of(request).username, b"".join(chunks), name, limit
        )
    except ImageRefused as exc:
        raise ApiProblem("validation", exc.message_ja, field="body", code="image") from None
    note(request, media=info.id[:16], bytes=info.original_bytes)
    return _ok(_media_out(info), 201)


async def media_get(request: web.Request) -> web.Response:
    media_id = request.match_info["id"]
    if not MEDIA_ID.match(media_id):
        raise ApiProblem("not-found", "指定された画像はありません。", field="id")
    info = await store_of(request).read(media_store.info, media_id)
    if info is None:
        raise ApiProblem("not-found", "指定された画像はありません。", field="id")
    return _ok(_media_out(info))


# -- link allowlist -----------------------------------------------------------------------


async def _domains(request: web.Request) -> schema.LinkDomains:
    added = await store_of(request).read(settings.get, LINK_DOMAINS_KEY, [])
    return schema.LinkDomains(
        configured=sorted(normalise_domain(d) for d in config_of(request).links.allowed_domains),
        added=list(added or []),
    )


async def link_domains_get(request: web.Request) -> web.Response:
    return _ok(await _domains(request))


async def link_domains_put(request: web.Request) -> web.Response:
    body = await json_body(request, schema.LinkDomainsUpdate)
    cleaned = sorted({normalise_domain(d) for d in body.domains if normalise_domain(d)})
    for domain in cleaned:
        if "." not in domain or domain.startswith(".") or ".." in domain:
            raise ApiProblem(
                "validation", f"{domain} はドメイン名として正しくありません。", field="domains"
            )
    actor = staff_of(request).username

    def tx(conn: Connection) -> list[str]:
        before = list(settings.get(conn, LINK_DOMAINS_KEY, []) or [])
        settings.put(conn, LINK_DOMAINS_KEY, cleaned)
        audit_store.append(
            conn,
            AuditEntry(
                int(time.time() * 1000),
                actor,
                "links.allowed_domains",
                "ok",
                "links",
                {
                    "added": sorted(set(cleaned) - set(before)),
                    "removed": sorted(set(before) - set(cleaned)),
                },
            ),
        )
        return before

    await store_of(request).write(tx)
    note(request, domains=len(cleaned))
    return _ok(await _domains(request))


# -- templates ----------------------------------------------------------------------------


def _template_out(row: TemplateRow) -> schema.TemplateOut:
    return schema.TemplateOut(
        id=row.id,
        name=row.name,
        content=schema.TemplateContent.model_validate(row.content),
        version=row.version,
        updated_by=row.updated_by,
        updated_at=dt.datetime.fromtimestamp(row.updated_at, JST),
    )


def _template_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiProblem("not-found", "指定された定型文はありません。", field="id")
    return int(raw)


async def templates_list(request: web.Request) -> web.Response:
    rows = await templates.list_all(store_of(request))
    return _ok(schema.TemplateList(items=[_template_out(r) for r in rows]))


async def templates_create(request: web.Request) -> web.Response:
    body = await json_body(request, schema.TemplateIn)
    note(request, name=body.name)
    new_id = await service_call(
        templates.create(
            store_of(request),
            staff_of(request).username,
            body.name,
            body.content.model_dump(mode="json"),
            config_of(request).links.allowed_domains,
        )
    )
    note(request, id=new_id)
    row = await service_call(templates.get(store_of(request), new_id))
    return _ok(_template_out(row), 201)


async def templates_update(request: web.Request) -> web.Response:
    template_id = _template_id(request)
    body = await json_body(request, schema.TemplateIn)
    note(request, name=body.name)
    await service_call(
        templates.update(
            store_of(request),
            staff_of(request).username,
            template_id,
            body.name,
            body.content.model_dump(mode="json"),
            body.based_on_version,
            config_of(request).links.allowed_domains,
        )
    )
    row = await service_call(templates.get(store_of(request), template_id))
    return _ok(_template_out(row))


async def templates_delete(request: web.Request) -> web.Response:
    template_id = _template_id(request)
    await json_body(request, Empty)
    await service_call(templates.delete(store_of(request), staff_of(request).username, template_id))
    return web.json_response({})


HANDLERS: dict[str, Handler] = {
    "media.upload": media_upload,
    "media.get": media_get,
    "link_domains.get": link_domains_get,
    "link_domains.put": link_domains_put,
    "templates.list": templates_list,
    "templates.create": templates_create,
    "templates.update": templates_update,
    "templates.delete": templates_delete,
}
