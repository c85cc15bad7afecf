"""Reservation queries: the catalogue, bookings (capacity checked and taken in one transaction),
kept contacts, the dialogue position and reminder notices. Every function runs inside the
caller's transaction (Store.write / write_sync: BEGIN IMMEDIATE, one writer), so a count and the
insert that depends on it can never interleave with another booking."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kairand.store.database import Connection

TAKES_PLACE = ("active", "attended")
"""States that occupy a place in a slot."""
_COLUMNS = (
    "id, number, service, slot, slot_at, resident_id, channel, name_kana, phone, state,"
    " cancelled_by, changed_from, created_at, updated_at"
)


@dataclass(frozen=True)
class Booking:
    id: int
    number: str
    service: str
    slot: str
    slot_at: int
    resident_id: int | None
    channel: str
    name_kana: str | None
    phone: str | None
    state: str
    cancelled_by: str | None
    changed_from: int | None
    created_at: int
    updated_at: int


def _booking(row: Sequence[Any]) -> Booking:
    return Booking(*row)


# -- catalogue ---------------------------------------------------------------------------------


def current_catalogue(conn: Connection) -> tuple[int, str] | None:
    """(version, catalogue JSON) of the newest catalogue, or None before the first one."""
    row = conn.execute(
        "SELECT version, catalogue FROM reservation_catalogue_versions"
        " ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def save_catalogue(conn: Connection, catalogue_json: str, created_by: str, now: int) -> int:
    row = conn.execute(
        "INSERT INTO reservation_catalogue_versions (version, catalogue, created_at, created_by)"
        " SELECT coalesce(max(version), 0) + 1, ?, ?, ? FROM reservation_catalogue_versions"
        " RETURNING version",
        (catalogue_json, now, created_by),
    ).fetchone()
    return int(row[0])


# -- bookings ----------------------------------------------------------------------------------


def taken(conn: Connection, service: str, slots: Iterable[str]) -> dict[str, int]:
    """Places taken in each of SLOTS of SERVICE (slots with none are absent)."""
    wanted = list(slots)
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = conn.execute(
        f"SELECT slot, count(*) FROM reservation_bookings WHERE service = ? AND slot IN ({marks})"
        " AND state IN ('active', 'attended') GROUP BY slot",
        (service, *wanted),
    ).fetchall()
    return {str(slot): int(n) for slot, n in rows}


def taken_between(conn: Connection, service: str, first: str, last: str) -> dict[str, int]:
    """Places taken per slot for slots whose key lies in [FIRST, LAST] (ISO keys sort by time)."""
    rows = conn.execute(
        "SELECT slot, count(*) FROM reservation_bookings WHERE service = ? AND slot >= ?"
        " AND slot <= ? AND state IN ('active', 'attended') GROUP BY slot",
        (service, first, last),
    ).fetchall()
    return {str(slot): int(n) for slot, n in rows}


def get(conn: Connection, booking_id: int) -> Booking | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM reservation_bookings WHERE id = ?", (booking_id,)
    ).fetchone()
    return _booking(row) if row else None


def by_number(conn: Connection, number: str) -> Booking | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM reservation_bookings WHERE number = ?", (number,)
    ).fetchone()
    return _booking(row) if row else None


def active_of(conn: Connection, resident_id: int, service: str | None = None) -> list[Booking]:
    sql = f"SELECT {_COLUMNS} FROM reservation_bookings WHERE resident_id = ? AND state = 'active'"
    params: tuple[Any, ...] = (resident_id,)
    if service is not None:
        sql += " AND service = ?"
        params += (service,)
    return [_booking(r) for r in conn.execute(sql + " ORDER BY slot_at, id", params)]


def take(
    conn: Connection,
    *,
    service: str,
    slot: str,
    slot_at: int,
    capacity: int,
    resident_id: int | None,
    channel: str,
    name_kana: str | None,
    phone: str | None,
    now: int,
    replaces: int | None = None,
) -> Booking | None:
    """Take one place in SLOT if fewer than CAPACITY are taken; None when it is full.

    With REPLACES (a change), the old booking is cancelled in the same transaction — and only
    if the new place was taken, so a change to a full slot loses nothing. The old booking does
    not count against the new slot when both are the same slot.
    """
    used = conn.execute(
        "SELECT count(*) FROM reservation_bookings WHERE service = ? AND slot = ?"
        " AND state IN ('active', 'attended') AND id IS NOT ?",
        (service, slot, replaces),
    ).fetchone()[0]
    if int(used) >= capacity:
        return None
    next_id = int(
        conn.execute("SELECT coalesce(max(id), 0) + 1 FROM reservation_bookings").fetchone()[0]
    )
    if replaces is not None:
        conn.execute(
            "UPDATE reservation_bookings SET state = 'cancelled', cancelled_by = 'resident',"
            " updated_at = ? WHERE id = ? AND state = 'active'",
            (now, replaces),
        )
        conn.execute(
            "UPDATE reservation_notices SET state = 'skipped'"
            " WHERE booking_id = ? AND state = 'pending'",
            (replaces,),
        )
    row = conn.execute(
        f"INSERT INTO reservation_bookings (id, number, service, slot, slot_at, resident_id,"
        " channel, name_kana, phone, changed_from, created_at, updated_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (
            next_id,
            f"{next_id:06d}",
            service,
            slot,
            slot_at,
            resident_id,
            channel,
            name_kana,
            phone,
            replaces,
            now,
            now,
        ),
    ).fetchone()
    return _booking(row)


def cancel(conn: Connection, booking_id: int, by: str, now: int) -> Booking | None:
    """Cancel an active booking (BY: resident | staff); None when it was not active."""
    row = conn.execute(
        "UPDATE reservation_bookings SET state = 'cancelled', cancelled_by = ?, updated_at = ?"
        f" WHERE id = ? AND state = 'active' RETURNING {_COLUMNS}",
        (by, now, booking_id),
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE reservation_notices SET state = 'skipped'"
        " WHERE booking_id = ? AND state = 'pending'",
        (booking_id,),
    )
    return _booking(row)


def set_outcome(conn: Connection, booking_id: int, state: str, now: int) -> Booking | None:
    """来庁 (attended) / 不来庁 (no_show), or back to active; None when the booking is cancelled
    or unknown."""
    if state not in ("attended", "no_show", "active"):
        raise ValueError(f"not an outcome: {state}")
    row = conn.execute(
        "UPDATE reservation_bookings SET state = ?, updated_at = ?"
        f" WHERE id = ? AND state IN ('active', 'attended', 'no_show') RETURNING {_COLUMNS}",
        (state, now, booking_id),
    ).fetchone()
    return _booking(row) if row else None


def in_range(
    conn: Connection, first_at: int, last_at: int, service: str | None = None
) -> list[Booking]:
    """Bookings whose slot starts in [FIRST_AT, LAST_AT) (all states), by time."""
    sql = f"SELECT {_COLUMNS} FROM reservation_bookings WHERE slot_at >= ? AND slot_at < ?"
    params: tuple[Any, ...] = (first_at, last_at)
    if service is not None:
        sql += " AND service = ?"
        params += (service,)
    return [_booking(r) for r in conn.execute(sql + " ORDER BY slot_at, id", params)]


def all_states(conn: Connection) -> dict[str, int]:
    return {
        str(s): int(n)
        for s, n in conn.execute("SELECT state, count(*) FROM reservation_bookings GROUP BY state")
    }


def line_user_of(conn: Connection, resident_id: int) -> str | None:
    row = conn.execute("SELECT line_user_id FROM residents WHERE id = ?", (resident_id,)).fetchone()
    return str(row[0]) if row else None


# -- statistics (no names, no phones: W4) ----------------------------------------------------


StatRow = tuple[str, str, str, int, int]


def stat_rows(conn: Connection, first_at: int, last_at: int) -> list[StatRow]:
    """(service, slot, state, created_at, slot_at) of every booking in range: no person."""
    return [
        (str(a), str(b), str(c), int(d), int(e))
        for a, b, c, d, e in conn.execute(
            "SELECT service, slot, state, created_at, slot_at FROM reservation_bookings"
            " WHERE slot_at >= ? AND slot_at < ?",
            (first_at, last_at),
        )
    ]


# -- contacts and the dialogue ---------------------------------------------------------------


def contact_of(conn: Connection, resident_id: int) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT name_kana, phone FROM reservation_contacts WHERE resident_id = ?", (resident_id,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def keep_contact(conn: Connection, resident_id: int, name_kana: str, phone: str, now: int) -> None:
    conn.execute(
        "INSERT INTO reservation_contacts (resident_id, name_kana, phone, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (resident_id) DO UPDATE SET"
        " name_kana = excluded.name_kana, phone = excluded.phone, updated_at = excluded.updated_at",
        (resident_id, name_kana, phone, now),
    )


def forget_contact(conn: Connection, resident_id: int) -> None:
    conn.execute("DELETE FROM reservation_contacts WHERE resident_id = ?", (resident_id,))


def dialogue_of(conn: Connection, resident_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT state FROM reservation_dialogues WHERE resident_id = ?", (resident_id,)
    ).fetchone()
    return _dialogue(row[0] if row else None)


def resident_and_dialogue(conn: Connection, line_user_id: str) -> tuple[int | None, dict[str, Any]]:
    """(resident id or None, dialogue position) of LINE_USER_ID in one query: the booking
    dialogue asks both for every event."""
    row = conn.execute(
        "SELECT r.id, d.state FROM residents r"
        " LEFT JOIN reservation_dialogues d ON d.resident_id = r.id WHERE r.line_user_id = ?",
        (line_user_id,),
    ).fetchone()
    if row is None:
        return None, {}
    return int(row[0]), _dialogue(row[1])


def _dialogue(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def set_dialogue(conn: Connection, resident_id: int, state: Mapping[str, Any], now: int) -> None:
    if not state:
        conn.execute("DELETE FROM reservation_dialogues WHERE resident_id = ?", (resident_id,))
        return
    conn.execute(
        "INSERT INTO reservation_dialogues (resident_id, state, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (resident_id) DO UPDATE SET state = excluded.state,"
        " updated_at = excluded.updated_at",
        (resident_id, json.dumps(state, ensure_ascii=False, separators=(",", ":")), now),
    )


# -- notices (reminders, staff cancellations) ------------------------------------------------


def active_starting_between(conn: Connection, first_at: int, last_at: int) -> list[Booking]:
    """Active LINE bookings whose slot starts in [FIRST_AT, LAST_AT): reminder candidates."""
    return [
        _booking(r)
        for r in conn.execute(
            f"SELECT {_COLUMNS} FROM reservation_bookings WHERE state = 'active'"
            " AND channel = 'line' AND resident_id IS NOT NULL AND slot_at >= ? AND slot_at < ?"
            " ORDER BY slot_at, id",
            (first_at, last_at),
        )
    ]


def reserve_notice(conn: Connection, booking_id: int, kind: str, retry_key: str, now: int) -> bool:
    """Record that notice KIND of the booking is to be pushed with RETRY_KEY; False when it was
    recorded before (whatever its state): each notice exists at most once."""
    row = conn.execute(
        "INSERT INTO reservation_notices (booking_id, kind, retry_key, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (booking_id, kind) DO NOTHING RETURNING 1",
        (booking_id, kind, retry_key, now),
    ).fetchone()
    return row is not None


def pending_notices(conn: Connection, limit: int = 500) -> list[tuple[int, str, str, int]]:
    """(booking_id, kind, retry_key, attempts) of notices not yet sent."""
    return [
        (int(b), str(k), str(r), int(a))
        for b, k, r, a in conn.execute(
            "SELECT booking_id, kind, retry_key, attempts FROM reservation_notices"
            " WHERE state = 'pending' ORDER BY created_at LIMIT ?",
            (limit,),
        )
    ]


def mark_notice(conn: Connection, booking_id: int, kind: str, state: str, now: int) -> None:
    conn.execute(
        "UPDATE reservation_notices SET state = ?, attempts = attempts + 1,"
        " sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
        " WHERE booking_id = ? AND kind = ?",
        (state, state, now, booking_id, kind),
    )


def notice_states(conn: Connection) -> dict[tuple[str, str], int]:
    return {
        (str(k), str(s)): int(n)
        for k, s, n in conn.execute(
            "SELECT kind, state, count(*) FROM reservation_notices GROUP BY kind, state"
        )
    }
