"""Helpers shared by the API tests: the injected peer resolver and a staff of every role."""

from __future__ import annotations

import time

from aiohttp import web

from kairand.api.identity import Peer
from kairand.config import Config
from kairand.store import staff
from kairand.store.database import Connection, Store

HEADER = "X-Test-User"
# One staff member per single role, plus a second author/approver for four eyes.
STAFF = {
    "adm": ("admin",),
    "aut": ("author",),
    "apr": ("approver",),
    "aud": ("auditor",),
    "ctr": ("counter",),
    "ksk": ("kiosk",),
    "brd": ("board",),
    "aut2": ("author", "approver"),
    "all": ("admin", "author", "approver", "auditor", "counter", "kiosk", "board"),
}


async def header_resolver(request: web.Request) -> Peer:
    """Tests name the caller in a header; production reads SO_PEERCRED (see identity.py)."""
    name = request.headers.get(HEADER)
    return Peer(1000 if name else None, name or None)


def add_staff(store: Store, records: dict[str, tuple[str, ...]] = STAFF) -> None:
    now = int(time.time())
    for name, roles in records.items():
        store.write_sync(staff.upsert, staff.StaffRecord(name, f"職員 {name}", roles), now)


def with_api(config: Config, **api: object) -> Config:
    return config.model_copy(update={"api": config.api.model_copy(update=api)})


def with_threshold(config: Config, threshold: int) -> Config:
    delivery = config.delivery.model_copy(update={"self_approval_threshold": threshold})
    return config.model_copy(update={"delivery": delivery})


def count(store: Store, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"  # noqa: S608 (TABLE: a name the test itself passes)
    return int(store.read_sync(lambda c: c.execute(sql).fetchone()[0]))


def add_residents(store: Store, n: int, start: int = 0, registered: bool = True) -> list[int]:
    """N synthetic residents (fake LINE ids); returns their row ids."""

    def insert(conn: Connection) -> list[int]:
        ids = []
        for i in range(start, start + n):
            cur = conn.execute(
                "INSERT INTO residents (line_user_id, followed_at, registered_at,"
                " last_interaction_at) VALUES (?, 1, ?, 1)",
                (f"U{i:032x}", 1 if registered else None),
            )
            assert cur.lastrowid is not None
            ids.append(cur.lastrowid)
        return ids

    return store.write_sync(insert)


def add_answers(store: Store, rows: list[tuple[int, str, str, int | None]]) -> None:
    store.write_sync(
        lambda conn: conn.executemany(
            "INSERT INTO answers (resident_id, question, value, number, answered_at)"
            " VALUES (?, ?, ?, ?, 1)",
            rows,
        )
    )
