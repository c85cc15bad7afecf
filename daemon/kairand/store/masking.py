"""In-place masking of registered columns (W7). Table and column names are never taken from
input: a target must be registered here (by the module that owns the table) and its names
are checked to be plain identifiers before they are put into SQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from kairand.store.database import Connection

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class MaskTarget:
    table: str
    key_column: str
    value_column: str
    time_column: str
    """Unix seconds: rows older than the rule's age are masked."""

    def __post_init__(self) -> None:
        for name in (self.table, self.key_column, self.value_column, self.time_column):
            if not _IDENT.match(name):
                raise ValueError(f"not a plain SQL identifier: {name!r}")


TARGETS: dict[str, MaskTarget] = {
    # LINE display names are kept only if privacy.store_display_name is on (W6).
    "residents.display_name": MaskTarget("residents", "id", "display_name", "last_interaction_at"),
    # Window reservations (W7): counted from the booking's date (slot_at), and for the kept
    # contact from its last use.
    "reservation_bookings.name_kana": MaskTarget(
        "reservation_bookings", "id", "name_kana", "slot_at"
    ),
    "reservation_bookings.phone": MaskTarget("reservation_bookings", "id", "phone", "slot_at"),
    "reservation_contacts.name_kana": MaskTarget(
        "reservation_contacts", "resident_id", "name_kana", "updated_at"
    ),
    "reservation_contacts.phone": MaskTarget(
        "reservation_contacts", "resident_id", "phone", "updated_at"
    ),
}


def register_target(name: str, target: MaskTarget) -> None:
    """Make TABLE.COLUMN maskable (the reservation module registers its name and phone)."""
    if name != f"{target.table}.{target.value_column}":
        raise ValueError("a target is named table.column")
    TARGETS[name] = target


def mask_rows(
    conn: Connection, name: str, masker: Callable[[str], str], older_than: int | None = None
) -> int:
    """Rewrite every non-null value of target NAME (whose time is before OLDER_THAN, if set)
    with masker(value); rows whose value is already masked are not touched. Returns the count
    rewritten. SQLite's secure_delete (on for every connection) zeroes the old cell bytes."""
    target = TARGETS.get(name)
    if target is None:
        raise KeyError(f"no masking target {name!r}")
    t = target
    where = f"{t.value_column} IS NOT NULL"
    params: tuple[object, ...] = ()
    if older_than is not None:
        where += f" AND {t.time_column} < ?"
        params = (older_than,)
    rows = conn.execute(
        f"SELECT {t.key_column}, {t.value_column} FROM {t.table} WHERE {where}", params
    ).fetchall()
    changed = 0
    for key, value in rows:
        masked = masker(str(value))
        if masked != value:
            conn.execute(
                f"UPDATE {t.table} SET {t.value_column} = ? WHERE {t.key_column} = ?",
                (masked, key),
            )
            changed += 1
    return changed
