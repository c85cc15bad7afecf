"""Applying planned expiries inside write transactions: whole registrations through the shared
purge (kairand.retention.purge.purge_resident), single questions' answers here — each with its
deletion receipt and audit entry in the same transaction as the deletion."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.retention.purge import flush_journal, purge_resident, record_deletion
from kairand.retention.receipts import Receipt
from kairand.retention.rules import Expiry, cycle_name
from kairand.store import retention as retention_store
from kairand.store.database import Connection

ACTOR = "system:retention"


def expire_answers(
    conn: Connection,
    expiry: Expiry,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
    journal_batch: list[Receipt] | None = None,
) -> int | None:
    """Delete the answers EXPIRY names and write its receipt; the receipt id, or None when
    nothing was left to delete (a repeated run deletes nothing and writes nothing).
    JOURNAL_BATCH: see kairand.retention.purge.record_deletion."""
    assert expiry.question is not None
    line_user_id = retention_store.line_user_id_of(conn, expiry.resident_id)
    if line_user_id is None:
        return None
    count = retention_store.delete_answers(conn, expiry.resident_id, expiry.question, expiry.before)
    if count == 0:
        return None
    deleted: dict[str, object] = {"answers": count, "question": expiry.question}
    if expiry.boundary is not None:
        deleted["boundary"] = cycle_name(expiry.boundary)
    return record_deletion(
        conn,
        line_user_id=line_user_id,
        reason=expiry.reason,
        deleted=deleted,
        now=now,
        hmac_key=hmac_key,
        signing_key=signing_key,
        actor=ACTOR,
        action="retention.expire_answers",
        audit_detail={"reason": expiry.reason, "question": expiry.question, "answers": count},
        journal_batch=journal_batch,
    )


def purge_registration(
    conn: Connection,
    expiry: Expiry,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
    journal_batch: list[Receipt] | None = None,
) -> int | None:
    """Destroy the whole registration through the shared purge (receipt + audit included)."""
    line_user_id = retention_store.line_user_id_of(conn, expiry.resident_id)
    if line_user_id is None:
        return None
    return purge_resident(
        conn,
        line_user_id,
        expiry.reason,
        now,
        hmac_key,
        signing_key,
        actor=ACTOR,
        journal_batch=journal_batch,
    )


def apply_batch(
    conn: Connection,
    expiries: Sequence[Expiry],
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
) -> Counter[str]:
    """Apply EXPIRIES in the caller's transaction; counts per reason and kind. Their receipts
    reach the deletion journal together at the end, before the caller commits (one fsync for
    the batch, not one per resident)."""
    done: Counter[str] = Counter()
    batch: list[Receipt] = []
    for expiry in expiries:
        if expiry.question is None:
            receipt_id = purge_registration(conn, expiry, now, hmac_key, signing_key, batch)
            kind = "registrations"
        else:
            receipt_id = expire_answers(conn, expiry, now, hmac_key, signing_key, batch)
            kind = "answer_sets"
        if receipt_id is not None:
            done[f"{expiry.reason}.{kind}"] += 1
    flush_journal(conn, batch, signing_key)
    return done
