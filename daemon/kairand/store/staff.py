"""Staff roster: OS user name -> roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection

ROLES = ("admin", "author", "approver", "auditor", "counter", "kiosk", "board")


@dataclass(frozen=True)
class StaffRecord:
    username: str
    display_name: str
    roles: tuple[str, ...]
    handles_personal_data: bool = True
    active: bool = True


def upsert(conn: Connection, record: StaffRecord, now: int) -> None:
    unknown = set(record.roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    conn.execute(
        "INSERT INTO staff (username, display_name, roles, handles_personal_data, active,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (username) DO UPDATE SET display_name = excluded.display_name,"
        " roles = excluded.roles, handles_personal_data = excluded.handles_personal_data,"
        " active = excluded.active, updated_at = excluded.updated_at",
        (
            record.username,
            record.display_name,
            " ".join(r for r in ROLES if r in record.roles),
            int(record.handles_personal_data),
            int(record.active),
            now,
            now,
        ),
    )


def _record(row: tuple[Any, ...]) -> StaffRecord:
    username, display_name, roles, handles, active = row
    return StaffRecord(username, display_name, tuple(roles.split()), bool(handles), bool(active))


def get(conn: Connection, username: str) -> StaffRecord | None:
    row = conn.execute(
        "SELECT username, display_name, roles, handles_personal_data, active FROM staff"
        " WHERE username = ?",
        (username,),
    ).fetchone()
    return _record(row) if row else None


def all_staff(conn: Connection) -> list[StaffRecord]:
    rows = conn.execute(
        "SELECT username, display_name, roles, handles_personal_data, active FROM staff"
        " ORDER BY username"
    ).fetchall()
    return [_record(r) for r in rows]
