"""定型文 (message templates): saved content staff start from. Times are Unix seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection


@dataclass(frozen=True)
class TemplateRow:
    id: int
    name: str
    content: dict[str, Any]
    version: int
    updated_by: str
    updated_at: int


_COLS = "id, name, content, version, updated_by, updated_at"


def _row(r: tuple[Any, ...]) -> TemplateRow:
    return TemplateRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5])


def list_all(conn: Connection) -> list[TemplateRow]:
    rows = conn.execute(f"SELECT {_COLS} FROM templates WHERE deleted = 0 ORDER BY name")
    return [_row(r) for r in rows]


def get(conn: Connection, template_id: int) -> TemplateRow | None:
    r = conn.execute(
        f"SELECT {_COLS} FROM templates WHERE id = ? AND deleted = 0", (template_id,)
    ).fetchone()
    return _row(r) if r else None


def name_taken(conn: Connection, name: str, other_than: int = 0) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM templates WHERE name = ? AND id != ?", (name, other_than)
        ).fetchone()
        is not None
    )


def insert(conn: Connection, name: str, content: dict[str, Any], actor: str, now: int) -> int:
    cur = conn.execute(
        "INSERT INTO templates (name, content, created_by, created_at, updated_by, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, json.dumps(content, ensure_ascii=False), actor, now, actor, now),
    )
    return int(cur.lastrowid or 0)


def update(
    conn: Connection,
    template_id: int,
    name: str,
    content: dict[str, Any],
    actor: str,
    now: int,
    expected_version: int,
) -> bool:
    cur = conn.execute(
        "UPDATE templates SET name = ?, content = ?, version = version + 1, updated_by = ?,"
        " updated_at = ? WHERE id = ? AND version = ? AND deleted = 0",
        (
            name,
            json.dumps(content, ensure_ascii=False),
            actor,
            now,
            template_id,
            expected_version,
        ),
    )
    return cur.rowcount == 1


def delete(conn: Connection, template_id: int, actor: str, now: int) -> bool:
    # Kept (marked deleted, renamed) so the audit trail's references stay meaningful.
    cur = conn.execute(
        "UPDATE templates SET deleted = 1, name = name || ' (削除 ' || id || ')',"
        " updated_by = ?, updated_at = ? WHERE id = ? AND deleted = 0",
        (actor, now, template_id),
    )
    return cur.rowcount == 1
