"""Read-only queries behind the certificates, the handling report and the exports. Aggregates
only, except `personal_rows` (the admin-enabled personal export, audited by its caller)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kairand.store.database import Connection


def resident_counts(conn: Connection) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*), count(registered_at),"
        " coalesce(sum(CASE WHEN registered_at IS NOT NULL AND deliveries_stopped = 0"
        " THEN 1 ELSE 0 END), 0),"
        " coalesce(sum(deliveries_stopped), 0) FROM residents"
    ).fetchone()
    return {
        "residents": int(row[0]),
        "registered": int(row[1]),
        "receiving": int(row[2]),
        "stopped": int(row[3]),
    }


def answer_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(question, value, residents) over registered residents' answers."""
    return [
        (str(q), str(v), int(n))
        for q, v, n in conn.execute(
            "SELECT a.question, a.value, count(DISTINCT a.resident_id) FROM answers a"
            " JOIN residents r ON r.id = a.resident_id WHERE r.registered_at IS NOT NULL"
            " GROUP BY a.question, a.value ORDER BY a.question, a.value"
        )
    ]


def year_counts(conn: Connection, question: str) -> list[tuple[int, int]]:
    """(year, residents) for a year question (callers band them; never shown raw)."""
    return [
        (int(y), int(n))
        for y, n in conn.execute(
            "SELECT a.number, count(DISTINCT a.resident_id) FROM answers a"
            " JOIN residents r ON r.id = a.resident_id"
            " WHERE r.registered_at IS NOT NULL AND a.question = ? AND a.number IS NOT NULL"
            " GROUP BY a.number",
            (question,),
        )
    ]


def respondents(conn: Connection) -> dict[str, int]:
    """Registered residents who answered each question."""
    return {
        str(q): int(n)
        for q, n in conn.execute(
            "SELECT a.question, count(DISTINCT a.resident_id) FROM answers a"
            " JOIN residents r ON r.id = a.resident_id WHERE r.registered_at IS NOT NULL"
            " GROUP BY a.question"
        )
    }


@dataclass(frozen=True)
class DeliveryLine:
    status: str
    deliveries: int
    recipients: int
    sent: int
    failed: int


def delivery_summary(conn: Connection, start: int, end: int) -> list[DeliveryLine]:
    """Deliveries created in [START, END) by status."""
    return [
        DeliveryLine(str(s), int(n), int(r), int(ok), int(bad))
        for s, n, r, ok, bad in conn.execute(
            "SELECT status, count(*), coalesce(sum(recipient_count), 0),"
            " coalesce(sum(sent_count), 0), coalesce(sum(failed_count), 0) FROM deliveries"
            " WHERE created_at >= ? AND created_at < ? GROUP BY status ORDER BY status",
            (start, end),
        )
    ]


@dataclass(frozen=True)
class AuditLine:
    actor: str
    action: str
    outcome: str
    count: int


def audit_summary(conn: Connection, start_ms: int, end_ms: int) -> list[AuditLine]:
    """Audit entries in [START_MS, END_MS) grouped by actor, action and outcome."""
    return [
        AuditLine(str(a), str(b), str(c), int(n))
        for a, b, c, n in conn.execute(
            "SELECT actor, action, outcome, count(*) FROM audit_log"
            " WHERE at_ms >= ? AND at_ms < ? GROUP BY actor, action, outcome"
            " ORDER BY actor, action, outcome",
            (start_ms, end_ms),
        )
    ]


def export_rows(conn: Connection, start_ms: int, end_ms: int) -> list[tuple[str, str, int, int]]:
    """(actor, action, exports, rows exported) for audited exports in the period."""
    return [
        (str(a), str(b), int(n), int(r))
        for a, b, n, r in conn.execute(
            "SELECT actor, action, count(*), coalesce(sum(json_extract(detail, '$.rows')), 0)"
            " FROM audit_log WHERE at_ms >= ? AND at_ms < ? AND action LIKE 'export.%'"
            " AND outcome = 'ok' GROUP BY actor, action ORDER BY actor, action",
            (start_ms, end_ms),
        )
    ]


def receipt_digests(conn: Connection) -> list[tuple[int, str, str]]:
    """(at, reason, digest) of every receipt, oldest first (the wipe's final record)."""
    return [
        (int(a), str(r), str(d))
        for a, r, d in conn.execute(
            "SELECT at, reason, digest FROM deletion_receipts ORDER BY at, id"
        )
    ]


def personal_counts(conn: Connection) -> dict[str, int]:
    """Rows of personal data per table, for the contract-end record (counts only)."""
    counts = {}
    for table in ("residents", "answers", "inbox", "batch_recipients", "test_recipients"):
        counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    return counts


def subject_ids(conn: Connection) -> list[str]:
    """Every LINE user id the store holds for a person (residents and test recipients)."""
    return [
        str(row[0])
        for row in conn.execute(
            "SELECT line_user_id FROM residents UNION SELECT line_user_id FROM test_recipients"
            " ORDER BY 1"
        )
    ]


def personal_rows(conn: Connection) -> Iterator[tuple[int, str, int, int | None, str]]:
    """(resident id, LINE user id, followed_at, registered_at, answers as 'q=v;...') — only
    for the personal export an administrator enabled in the configuration."""
    cursor = conn.execute(
        "SELECT r.id, r.line_user_id, r.followed_at, r.registered_at,"
        " coalesce(group_concat(a.question || '=' || a.value, ';'), '')"
        " FROM residents r LEFT JOIN answers a ON a.resident_id = r.id"
        " GROUP BY r.id ORDER BY r.id"
    )
    for rid, uid, followed, registered, answers in cursor:
        yield int(rid), str(uid), int(followed), registered, str(answers)
