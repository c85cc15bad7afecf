"""Changes to the staff roster, with the rule that guards them: no change takes away the last
active administrator (otherwise nobody could manage staff from the staff screens any more).
Each change is written together with its audit entry, in one transaction.

Both the staff API and `kairanctl staff` go through here. A roster with no administrator yet
(a fresh installation, before `kairanctl staff add NAME --role admin`) may still be changed:
the rule only refuses a change that would leave none where there was one.
"""

from __future__ import annotations

from collections.abc import Iterable

from kairand.audit.chain import AuditEntry
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store.database import Connection, Store
from kairand.store.staff import StaffRecord

LAST_ADMIN_JA = (
    "有効な管理者が一人もいなくなるため、この変更はできません。先に別の管理者を登録してください。"
)


class LastAdminError(Exception):
    """The change would leave no active administrator; nothing was written."""


class NotOnRoster(Exception):
    """No staff member of that name."""


def active_admins_after(roster: Iterable[StaffRecord], record: StaffRecord) -> int:
    """Active administrators once RECORD replaces its namesake in ROSTER. Pure."""
    others = [r for r in roster if r.username != record.username]
    return sum(1 for r in [*others, record] if r.active and "admin" in r.roles)


def takes_last_admin(roster: Iterable[StaffRecord], record: StaffRecord) -> bool:
    """Whether RECORD replacing its namesake leaves no active administrator where there was
    one. Pure."""
    roster = list(roster)
    before = sum(1 for r in roster if r.active and "admin" in r.roles)
    return before > 0 and active_admins_after(roster, record) == 0


def apply_put(
    conn: Connection, record: StaffRecord, actor: str, at_ms: int, action: str = "staff.put"
) -> None:
    """put() inside the caller's write transaction. Raises LastAdminError."""
    if takes_last_admin(staff_store.all_staff(conn), record):
        raise LastAdminError(record.username)
    staff_store.upsert(conn, record, at_ms // 1000)
    audit_store.append(
        conn,
        AuditEntry(
            at_ms,
            actor,
            action,
            "ok",
            record.username,
            {"roles": list(record.roles), "active": record.active},
        ),
    )


def apply_remove(conn: Connection, username: str, actor: str, at_ms: int) -> None:
    """remove() inside the caller's write transaction. Raises NotOnRoster or LastAdminError."""
    current = staff_store.get(conn, username)
    if current is None:
        raise NotOnRoster(username)
    record = StaffRecord(
        current.username,
        current.display_name,
        current.roles,
        current.handles_personal_data,
        active=False,
    )
    apply_put(conn, record, actor, at_ms, "staff.remove")


async def put(store: Store, record: StaffRecord, actor: str, at_ms: int) -> None:
    """Add or change a staff member (audit action staff.put). Raises LastAdminError."""
    await store.write(apply_put, record, actor, at_ms)


async def remove(store: Store, username: str, actor: str, at_ms: int) -> None:
    """Deactivate a staff member (audit action staff.remove); the row stays for the audit
    trail. Raises NotOnRoster or LastAdminError."""
    await store.write(apply_remove, username, actor, at_ms)
