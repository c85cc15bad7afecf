"""The roster always keeps one active administrator: kairand.staff.service."""

from __future__ import annotations

import pytest

from kairand.staff import service
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store.database import Store
from kairand.store.staff import StaffRecord

pytestmark = pytest.mark.req("N5")


def admin(name: str, *, active: bool = True) -> StaffRecord:
    return StaffRecord(name, name, ("admin",), False, active)


def author(name: str) -> StaffRecord:
    return StaffRecord(name, name, ("author",), False, True)


def test_active_admins_after_replaces_the_namesake() -> None:
    roster = [admin("a"), admin("b"), author("c")]
    assert service.active_admins_after(roster, author("c")) == 2
    assert service.active_admins_after(roster, author("a")) == 1
    assert service.active_admins_after(roster, admin("b", active=False)) == 1
    assert service.active_admins_after([admin("a")], admin("a", active=False)) == 0
    assert service.active_admins_after([], admin("new")) == 1


def test_a_change_may_not_take_away_the_last_admin_but_a_roster_without_one_stays_usable() -> None:
    assert service.takes_last_admin([admin("a")], author("a"))
    assert service.takes_last_admin([admin("a"), author("c")], admin("a", active=False))
    assert not service.takes_last_admin([admin("a"), admin("b")], author("a"))
    # A fresh installation has no administrator yet: its first staff need not be one, and a
    # departed author can still be removed from a roster without an administrator.
    assert not service.takes_last_admin([], author("first"))
    assert not service.takes_last_admin(
        [author("c")], StaffRecord("c", "c", ("author",), False, False)
    )


def _admins(store: Store) -> list[str]:
    return sorted(
        r.username
        for r in store.read_sync(staff_store.all_staff)
        if r.active and "admin" in r.roles
    )


def _actions(store: Store) -> list[str]:
    rows = store.read_sync(audit_store.query, audit_store.AuditFilter(action="staff."), 100)
    return [r.entry.action for r in rows]


async def test_the_last_admin_can_be_neither_demoted_nor_removed(store: Store) -> None:
    await service.put(store, admin("kanri"), "test", 1_000)
    await service.remove(store, "root", "test", 1_500)  # another admin remains: allowed
    assert _admins(store) == ["kanri"]
    before = _actions(store)
    with pytest.raises(service.LastAdminError):
        await service.put(store, author("kanri"), "test", 2_000)
    with pytest.raises(service.LastAdminError):
        await service.put(store, admin("kanri", active=False), "test", 2_000)
    with pytest.raises(service.LastAdminError):
        await service.remove(store, "kanri", "test", 2_000)
    assert _admins(store) == ["kanri"]
    assert _actions(store) == before  # refused: nothing written, not even an audit entry


async def test_changes_are_written_with_their_audit_entry(store: Store) -> None:
    await service.put(store, admin("kanri2"), "boss", 5_000)
    await service.put(store, author("sakusei"), "boss", 6_000)
    await service.remove(store, "sakusei", "boss", 7_000)
    record = store.read_sync(staff_store.get, "sakusei")
    assert record is not None and not record.active  # kept for the audit trail
    rows = store.read_sync(audit_store.query, audit_store.AuditFilter(actor="boss"), 10)
    assert [(r.entry.action, r.entry.target) for r in reversed(rows)] == [
        ("staff.put", "kanri2"),
        ("staff.put", "sakusei"),
        ("staff.remove", "sakusei"),
    ]
    with pytest.raises(service.NotOnRoster):
        await service.remove(store, "nobody", "boss", 8_000)
