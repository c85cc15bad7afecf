"""定型文 (templates): saved messages staff start a delivery from. Every change is audited
with the template's version and a fingerprint of its content before and after (S8)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kairand.audit.chain import AuditEntry
from kairand.delivery.errors import DeliveryError, InvalidContent
from kairand.delivery.messages import media_of, parse_item, url_problems
from kairand.delivery.service import allowed_domains
from kairand.evidence import canonical_json, sha256_hex
from kairand.store import audit as audit_store
from kairand.store import media as media_store
from kairand.store import templates as q
from kairand.store.database import Connection, Store


class TemplateNotFound(DeliveryError):
    def __init__(self, template_id: int) -> None:
        super().__init__("not_found", f"定型文 {template_id} は見つかりません。")


class TemplateConflict(DeliveryError):
    def __init__(self, message_ja: str) -> None:
        super().__init__("template_conflict", message_ja)


def fingerprint(content: dict[str, Any]) -> str:
    """Short digest of the content's canonical JSON (audit entries name versions by it)."""
    return sha256_hex(canonical_json(content))[:16]


def _audit(conn: Connection, actor: str, action: str, template_id: int, **detail: Any) -> None:
    audit_store.append(
        conn,
        AuditEntry(int(time.time() * 1000), actor, action, "ok", f"template {template_id}", detail),
    )


def _check(conn: Connection, content: dict[str, Any], domains: Iterable[str]) -> None:
    items = [parse_item(m) for m in content.get("messages", [])]
    problems = url_problems(items, allowed_domains(conn, domains))
    if problems:
        raise InvalidContent(f"content.{problems[0][0]}", problems[0][1])
    if media_store.missing(conn, media_of(items)):
        raise InvalidContent("content.messages", "画像が見つかりません。選び直してください。")


async def create(
    store: Store, actor: str, name: str, content: dict[str, Any], domains: Iterable[str] = ()
) -> int:
    def tx(conn: Connection) -> int:
        if q.name_taken(conn, name):
            raise TemplateConflict(f"「{name}」という名前の定型文がすでにあります。")
        _check(conn, content, domains)
        template_id = q.insert(conn, name, content, actor, int(time.time()))
        _audit(conn, actor, "template.create", template_id, name=name, after=fingerprint(content))
        return template_id

    return await store.write(tx)


async def update(
    store: Store,
    actor: str,
    template_id: int,
    name: str,
    content: dict[str, Any],
    based_on_version: int | None,
    domains: Iterable[str] = (),
) -> None:
    def tx(conn: Connection) -> None:
        row = q.get(conn, template_id)
        if row is None:
            raise TemplateNotFound(template_id)
        if based_on_version is not None and based_on_version != row.version:
            raise TemplateConflict(
                "この定型文はほかの方が更新しました。最新の内容を開き直してから編集してください。"
            )
        if q.name_taken(conn, name, template_id):
            raise TemplateConflict(f"「{name}」という名前の定型文がすでにあります。")
        _check(conn, content, domains)
        if not q.update(conn, template_id, name, content, actor, int(time.time()), row.version):
            raise TemplateConflict("定型文を更新できませんでした。開き直してください。")
        _audit(
            conn,
            actor,
            "template.update",
            template_id,
            name=name,
            previous_name=row.name,
            version=row.version + 1,
            before=fingerprint(row.content),
            after=fingerprint(content),
        )

    await store.write(tx)


async def delete(store: Store, actor: str, template_id: int) -> None:
    def tx(conn: Connection) -> None:
        row = q.get(conn, template_id)
        if row is None or not q.delete(conn, template_id, actor, int(time.time())):
            raise TemplateNotFound(template_id)
        _audit(
            conn,
            actor,
            "template.delete",
            template_id,
            name=row.name,
            before=fingerprint(row.content),
        )

    await store.write(tx)


async def list_all(store: Store) -> list[q.TemplateRow]:
    return await store.read(q.list_all)


async def get(store: Store, template_id: int) -> q.TemplateRow:
    row = await store.read(q.get, template_id)
    if row is None:
        raise TemplateNotFound(template_id)
    return row
