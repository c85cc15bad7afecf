"""Purge one resident (S11): delete everything about them at once and write a signed receipt.

Used for unfollow (block), a resident's own deletion request, and by the retention worker for
annual expiry. Runs inside the caller's write transaction, so the deletion, the receipt and the
audit entry commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.audit.chain import AuditEntry
from kairand.retention.receipts import Receipt, make_receipt
from kairand.store import audit, inbox, receipts, residents, test_recipients
from kairand.store import deletion_journal as journal
from kairand.store.database import Connection


def purge_resident(
    conn: Connection,
    line_user_id: str,
    reason: str,
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
    *,
    actor: str = "system",
    keep_pending_after_ms: int | None = None,
    journal_batch: list[Receipt] | None = None,
) -> int | None:
    """Delete the resident (answers and batch entries cascade), their inbox events and test
    recipient entry; write the receipt and an audit entry. Returns the receipt id, or None
    when nothing about LINE_USER_ID was stored.

    KEEP_PENDING_AFTER_MS: the inbox worker passes the timestamp of the event it is processing,
    so events that arrived after it (a re-follow) survive the purge.
    JOURNAL_BATCH: see record_deletion.
    """
    deleted = residents.delete(conn, line_user_id) or {"resident": 0}
    deleted["inbox_events"] = inbox.delete_for_user(conn, line_user_id, keep_pending_after_ms)
    deleted["test_recipient"] = test_recipients.forget(conn, line_user_id)
    if not deleted["resident"] and not deleted["test_recipient"]:
        return None
    return record_deletion(
        conn,
        line_user_id=line_user_id,
        reason=reason,
        deleted=deleted,
        now=int(now),
        hmac_key=hmac_key,
        signing_key=signing_key,
        actor=actor,
        action="resident.purge",
        audit_detail={"reason": reason, **deleted},
        journal_batch=journal_batch,
    )


def record_deletion(
    conn: Connection,
    *,
    line_user_id: str,
    reason: str,
    deleted: dict[str, Any],
    now: int,
    hmac_key: bytes,
    signing_key: Ed25519PrivateKey,
    actor: str,
    action: str,
    audit_detail: dict[str, Any],
    journal_batch: list[Receipt] | None = None,
) -> int:
    """Write the signed deletion receipt and its audit entry (in the caller's transaction) for
    a deletion already made; returns the receipt id. Every kind of deletion goes through here.

    The receipt also goes to the deletion journal, at once; or, with JOURNAL_BATCH, onto that
    list, and the caller then appends the whole list with `flush_journal` (one fsync for many
    purges) before its transaction commits."""
    receipt = make_receipt(
        at=now,
        reason=reason,
        line_user_id=line_user_id,
        deleted=deleted,
        hmac_key=hmac_key,
        signing_key=signing_key,
    )
    receipt_id = receipts.insert(conn, receipt)
    # S18: the deletion also goes to the journal outside the store, so that restoring a backup
    # made before it re-applies it. Written before the commit: a deletion whose transaction
    # then fails is completed by the next re-apply (it was decided), never lost.
    if journal_batch is not None:
        journal_batch.append(receipt)
    else:
        flush_journal(conn, [receipt], signing_key)
    audit.append(
        conn,
        AuditEntry(
            at_ms=now * 1000,
            actor=actor,
            action=action,
            outcome="ok",
            target=f"receipt {receipt_id}",
            detail=audit_detail,
        ),
    )
    return receipt_id


def flush_journal(conn: Connection, batch: list[Receipt], signing_key: Ed25519PrivateKey) -> None:
    """Append BATCH's receipts to the deletion journal beside the store behind CONN (none for
    an in-memory store). Call it inside the transaction that made the deletions, before it
    commits: a deletion whose transaction then fails is completed by the next re-apply (it was
    decided), never lost."""
    journal_path = journal.journal_for(conn)
    if journal_path is not None:
        journal.append_many(journal_path, batch, signing_key)
