"""Bulk insertion of synthetic residents for tests, benchmarks and training data.

Never used on real residents' data: the rows carry made-up LINE user ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kairand.store.database import Connection


@dataclass(frozen=True)
class SyntheticResident:
    line_user_id: str
    registered: bool = True
    deliveries_stopped: bool = False
    choices: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """question -> chosen option codes."""
    years: Mapping[str, int] = field(default_factory=dict)
    """question -> birth year (stored as value 'YYYY', number YYYY)."""


def insert_residents(conn: Connection, residents: Iterable[SyntheticResident], now: int) -> int:
    count = 0
    for r in residents:
        cur = conn.execute(
            "INSERT INTO residents (line_user_id, followed_at, registered_at, deliveries_stopped,"
            " last_interaction_at) VALUES (?, ?, ?, ?, ?)",
            (r.line_user_id, now, now if r.registered else None, int(r.deliveries_stopped), now),
        )
        rid = cur.lastrowid
        rows: list[tuple[object, ...]] = [
            (rid, q, code, None, now) for q, codes in r.choices.items() for code in codes
        ]
        rows.extend((rid, q, f"{year:04d}", year, now) for q, year in r.years.items())
        conn.executemany(
            "INSERT INTO answers (resident_id, question, value, number, answered_at)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )
        count += 1
    return count


def delete_all_residents(conn: Connection) -> None:
    conn.execute("DELETE FROM residents")


def resident_ids_by_line_id(conn: Connection) -> dict[str, int]:
    return {r[1]: int(r[0]) for r in conn.execute("SELECT id, line_user_id FROM residents")}


def delete_resident(conn: Connection, line_user_id: str) -> bool:
    """What a purge does to the resident row (answers and batch_recipients cascade); the real
    purge (kairand.retention.purge) also writes a receipt and an audit entry."""
    return (
        conn.execute("DELETE FROM residents WHERE line_user_id = ?", (line_user_id,)).rowcount == 1
    )


def set_choices(conn: Connection, line_user_id: str, question: str, codes: Sequence[str]) -> None:
    """Replace one answer the way the conversation does (delete the question's rows, insert)."""
    row = conn.execute(
        "SELECT id FROM residents WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    conn.execute("DELETE FROM answers WHERE resident_id = ? AND question = ?", (row[0], question))
    conn.executemany(
        "INSERT INTO answers (resident_id, question, value, number, answered_at)"
        " VALUES (?, ?, ?, NULL, 0)",
        [(row[0], question, code) for code in codes],
    )


def set_stopped(conn: Connection, line_user_id: str, stopped: bool) -> None:
    conn.execute(
        "UPDATE residents SET deliveries_stopped = ? WHERE line_user_id = ?",
        (int(stopped), line_user_id),
    )
