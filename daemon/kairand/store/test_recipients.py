"""Staff test recipients (テスト送信先): registered by sending a one-time code from the staff
member's own LINE. Codes are 6 digits with a 'KAIRAN-' prefix and expire after 10 minutes."""

from __future__ import annotations

import re
import secrets

from kairand.store.database import Connection

CODE_RE = re.compile(r"^KAIRAN-[0-9]{6}$")
CODE_LIFETIME_SECONDS = 600


def new_code(conn: Connection, staff_username: str, now: int) -> str:
    while True:
        code = f"KAIRAN-{secrets.randbelow(1_000_000):06d}"
        if not conn.execute(
            "SELECT 1 FROM test_recipient_codes WHERE code = ?", (code,)
        ).fetchone():
            break
    conn.execute(
        "INSERT INTO test_recipient_codes (code, staff_username, created_at, expires_at)"
        " VALUES (?, ?, ?, ?)",
        (code, staff_username, now, now + CODE_LIFETIME_SECONDS),
    )
    return code


def claim(conn: Connection, code: str, line_user_id: str, now: int) -> str | None:
    """Register LINE_USER_ID as a test recipient for the code's staff member; returns that
    staff member's user name, or None if the code is unknown, used or expired."""
    row = conn.execute(
        "SELECT staff_username FROM test_recipient_codes"
        " WHERE code = ? AND claimed_at IS NULL AND expires_at > ?",
        (code.strip().upper(), now),
    ).fetchone()
    if row is None:
        return None
    conn.execute("UPDATE test_recipient_codes SET claimed_at = ? WHERE code = ?", (now, code))
    conn.execute(
        "INSERT INTO test_recipients (staff_username, line_user_id, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (line_user_id) DO UPDATE SET staff_username = excluded.staff_username",
        (row[0], line_user_id, now),
    )
    return str(row[0])


def recipients_of(conn: Connection, staff_username: str) -> list[str]:
    rows = conn.execute(
        "SELECT line_user_id FROM test_recipients WHERE staff_username = ? ORDER BY id",
        (staff_username,),
    ).fetchall()
    return [r[0] for r in rows]


def count_of(conn: Connection, staff_username: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM test_recipients WHERE staff_username = ?", (staff_username,)
    ).fetchone()
    return int(row[0])


def forget(conn: Connection, line_user_id: str) -> int:
    """Purge: drop the LINE user id from the test recipients."""
    return conn.execute(
        "DELETE FROM test_recipients WHERE line_user_id = ?", (line_user_id,)
    ).rowcount
