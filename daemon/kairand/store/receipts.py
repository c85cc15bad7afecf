"""Deletion receipts storage."""

from __future__ import annotations

import json
from collections.abc import Iterator

from kairand.evidence.receipts import Receipt
from kairand.store.database import Connection


def insert(conn: Connection, receipt: Receipt) -> int:
    cursor = conn.execute(
        "INSERT INTO deletion_receipts (at, reason, subject_hmac, deleted, digest, signature)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            receipt.at,
            receipt.reason,
            receipt.subject_hmac,
            json.dumps(receipt.deleted, ensure_ascii=False, sort_keys=True),
            receipt.digest,
            receipt.signature,
        ),
    )
    return int(cursor.lastrowid or 0)


def _rows(conn: Connection, where: str, params: tuple[object, ...]) -> Iterator[Receipt]:
    cursor = conn.execute(
        "SELECT at, reason, subject_hmac, deleted, digest, signature FROM deletion_receipts "
        + where
        + " ORDER BY at, id",
        params,
    )
    for at, reason, subject, deleted, digest, signature in cursor:
        yield Receipt(at, reason, subject, json.loads(deleted), digest, signature)


def between(conn: Connection, start: int, end: int) -> list[Receipt]:
    return list(_rows(conn, "WHERE at >= ? AND at < ?", (start, end)))


def for_subject(conn: Connection, subject_hmac: str) -> list[Receipt]:
    return list(_rows(conn, "WHERE subject_hmac = ?", (subject_hmac,)))
