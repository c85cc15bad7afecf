"""The handler roster (取扱者名簿, S14): the staff table with its dates, for kairanctl roster."""

from __future__ import annotations

from dataclasses import dataclass

from kairand.store.database import Connection


@dataclass(frozen=True)
class RosterRow:
    username: str
    display_name: str
    roles: tuple[str, ...]
    handles_personal_data: bool
    active: bool
    created_at: int
    updated_at: int


def rows(conn: Connection) -> list[RosterRow]:
    out = conn.execute(
        "SELECT username, display_name, roles, handles_personal_data, active, created_at,"
        " updated_at FROM staff ORDER BY username"
    ).fetchall()
    return [
        RosterRow(u, n, tuple(r.split()), bool(h), bool(a), int(c), int(m))
        for u, n, r, h, a, c, m in out
    ]
