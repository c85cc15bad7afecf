"""The deletion journal (S18, S11, K2): every deletion, kept *outside* the database, so that a
restored backup never brings back a resident deleted after that backup was made.

One JSON line per deletion, appended (O_APPEND, under an exclusive lock, fsynced) to
`deletion-journal.jsonl` beside the store file. It lives in the store package because the store
itself re-applies it whenever it is opened (kairand.store.bootstrap). A line holds no personal
data: the HMAC of the LINE user id (the receipt's `subject_hmac`), the kind of deletion and the
full signed deletion receipt. Each line carries the SHA-256 of the line before it (`prev`) and
an Ed25519 signature (the appliance's signing key) over the line without its signature, so an
edited, reordered or inserted line fails `read_journal`.

Re-applying (`reapply`) runs on every restore before the restored store is moved into place
(kairand.backup.service) and again whenever the store is opened, so the daemon never serves a
store that still holds someone the journal says was deleted:
- kind `registration`: the resident (and test-recipient entry) whose HMAC matches and who was
  first stored at or before the deletion is purged (a resident who re-followed later is kept);
- kind `answers`: that resident's answers to the question given at or before the deletion go;
- the receipt is inserted when the restored store lacks it, so certificates still count it.
A journal that exists but cannot be read or verified stops the restore and the daemon.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import evidence
from kairand.errors import DataError
from kairand.evidence.receipts import Receipt
from kairand.store import inbox, receipts, residents, test_recipients
from kairand.store.database import Connection

JOURNAL_NAME = "deletion-journal.jsonl"


def store_file(conn: Connection) -> Path | None:
    """The file behind CONN's main database (None for an in-memory store)."""
    for _seq, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return Path(file) if file else None
    return None  # pragma: no cover - SQLite always lists "main"


def journal_beside(database: Path) -> Path:
    return database.parent / JOURNAL_NAME


def people(conn: Connection) -> list[tuple[str, int]]:
    """Every stored LINE user id with the time it was first stored (residents, test recipients).
    Used only to recompute HMACs in memory; the ids never leave this process."""
    rows = conn.execute(
        "SELECT line_user_id, followed_at FROM residents"
        " UNION ALL SELECT line_user_id, created_at FROM test_recipients"
    ).fetchall()
    return [(str(uid), int(at)) for uid, at in rows]


def resident_since(conn: Connection, line_user_id: str) -> int | None:
    row = conn.execute(
        "SELECT followed_at FROM residents WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def test_recipient_since(conn: Connection, line_user_id: str) -> int | None:
    row = conn.execute(
        "SELECT created_at FROM test_recipients WHERE line_user_id = ?", (line_user_id,)
    ).fetchone()
    return None if row is None else int(row[0])


def delete_answers_until(conn: Connection, line_user_id: str, question: str, at: int) -> int:
    """Delete LINE_USER_ID's answers to QUESTION given at or before AT."""
    return conn.execute(
        "DELETE FROM answers WHERE question = ? AND answered_at <= ? AND resident_id ="
        " (SELECT id FROM residents WHERE line_user_id = ?)",
        (question, at, line_user_id),
    ).rowcount


def has_receipt(conn: Connection, digest: str) -> bool:
    row = conn.execute("SELECT 1 FROM deletion_receipts WHERE digest = ?", (digest,)).fetchone()
    return row is not None


def subject_hmac(hmac_key: bytes, line_user_id: str) -> str:
    """HMAC-SHA256 of a LINE user id (the deletion receipts' `subject_hmac`)."""
    return hmac.new(hmac_key, line_user_id.encode(), hashlib.sha256).hexdigest()


def verify_receipt(receipt: Receipt, public_key: Ed25519PublicKey) -> bool:
    if evidence.sha256_hex(receipt.body()) != receipt.digest:
        return False
    try:
        digest = bytes.fromhex(receipt.digest)
    except ValueError:
        return False
    return evidence.verify_b64(public_key, receipt.signature, digest)


VERSION = 1
GENESIS = "0" * 64
_TAIL = 8192


class JournalError(DataError):
    """The deletion journal cannot be read or fails verification."""


def _canonical(value: Any) -> bytes:
    return evidence.canonical_json(value)


@dataclass(frozen=True)
class JournalEntry:
    seq: int
    at: int
    kind: str  # "registration" | "answers"
    subject_hmac: str
    question: str | None
    receipt: Receipt


def kind_of(deleted: dict[str, Any]) -> tuple[str, str | None]:
    if "question" in deleted:
        return "answers", str(deleted["question"])
    return "registration", None


def _last_line(fd: int) -> bytes | None:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL)
    data = os.pread(fd, size - start, start)
    lines = data.rstrip(b"\n").split(b"\n")
    if start > 0 and len(lines) < 2:
        raise JournalError("the deletion journal's last line is implausibly long")
    return lines[-1]


def _line(receipt: Receipt, seq: int, prev: str, signing_key: Ed25519PrivateKey) -> bytes:
    """RECEIPT's journal line (without its newline), number SEQ, chained to PREV."""
    kind, question = kind_of(receipt.deleted)
    body: dict[str, Any] = {
        "v": VERSION,
        "seq": seq,
        "prev": prev,
        "at": receipt.at,
        "kind": kind,
        "subject_hmac": receipt.subject_hmac,
        "receipt": {
            "at": receipt.at,
            "reason": receipt.reason,
            "subject_hmac": receipt.subject_hmac,
            "deleted": receipt.deleted,
            "digest": receipt.digest,
            "signature": receipt.signature,
        },
    }
    if question is not None:
        body["question"] = question
    body["sig"] = evidence.sign_b64(signing_key, _canonical(body))
    return _canonical(body)


def append(path: Path, receipt: Receipt, signing_key: Ed25519PrivateKey) -> None:
    """Append RECEIPT's deletion to the journal at PATH (created 0600 when absent)."""
    append_many(path, [receipt], signing_key)


def append_many(path: Path, batch: Sequence[Receipt], signing_key: Ed25519PrivateKey) -> None:
    """Append the deletions of BATCH, in order, to the journal at PATH (created 0600 when
    absent): one lock, one write and one fsync for the whole batch, so a batch of purges pays
    for one disk flush instead of one per receipt. Returns once every line is on disk."""
    if not batch:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        read_fd = os.open(path, os.O_RDONLY)
        try:
            last = _last_line(read_fd)
        finally:
            os.close(read_fd)
        if last is None:
            seq, prev = 1, GENESIS
        else:
            try:
                seq = int(json.loads(last)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                raise JournalError(
                    f"the deletion journal {path} ends in a damaged line",
                    "restore the journal from the copy beside the backups, then retry",
                ) from None
            prev = hashlib.sha256(last).hexdigest()
        lines = []
        for receipt in batch:
            line = _line(receipt, seq, prev, signing_key)
            lines.append(line + b"\n")
            seq, prev = seq + 1, hashlib.sha256(line).hexdigest()
        data = b"".join(lines)
        while data:  # a regular file takes it in one write; a short write continues the rest
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path, public_key: Ed25519PublicKey) -> list[JournalEntry]:
    """Read and verify every line of PATH (a missing file is an empty journal).

    Raises JournalError on an unreadable file, a damaged line, a broken chain, a bad signature
    or a receipt that does not verify."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise JournalError(
            f"the deletion journal {path} cannot be read: {exc.strerror}",
            "fix its permissions or give a readable copy with --journal",
        ) from None
    entries: list[JournalEntry] = []
    prev = GENESIS
    if data and not data.endswith(b"\n"):
        raise JournalError(
            f"the deletion journal {path} ends in an incomplete line",
            "use the copy beside the backups (or the appliance's own) with --journal",
        )
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            body = json.loads(line)
            sig = body.pop("sig")
            if body["v"] != VERSION or body["seq"] != number or body["prev"] != prev:
                raise ValueError("chain")
            if not evidence.verify_b64(public_key, sig, _canonical(body)):
                raise ValueError("signature")
            r = body["receipt"]
            receipt = Receipt(
                int(r["at"]),
                str(r["reason"]),
                str(r["subject_hmac"]),
                dict(r["deleted"]),
                str(r["digest"]),
                str(r["signature"]),
            )
            if (
                not verify_receipt(receipt, public_key)
                or receipt.subject_hmac != body["subject_hmac"]
                or (body["kind"], body.get("question")) != kind_of(receipt.deleted)
            ):
                raise ValueError("receipt")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise JournalError(
                f"the deletion journal {path} fails verification at line {number}",
                "the file was altered or damaged: use an intact copy with --journal",
            ) from None
        entries.append(
            JournalEntry(
                number,
                receipt.at,
                body["kind"],
                receipt.subject_hmac,
                body.get("question"),
                receipt,
            )
        )
        prev = hashlib.sha256(line).hexdigest()
    return entries


def merge(*journals: list[JournalEntry]) -> list[JournalEntry]:
    """The union of several verified journals (e.g. the appliance's and the copy beside the
    backups), one entry per receipt, in time order."""
    seen: dict[str, JournalEntry] = {}
    for journal in journals:
        for entry in journal:
            seen.setdefault(entry.receipt.digest, entry)
    return sorted(seen.values(), key=lambda e: (e.at, e.receipt.digest))


def reapply(conn: Connection, entries: list[JournalEntry], hmac_key: bytes) -> Counter[str]:
    """Re-apply ENTRIES to the store behind CONN (in the caller's transaction); returns what
    was done: `residents`, `test_recipients`, `answers` deleted, `receipts` restored."""
    done: Counter[str] = Counter()
    if not entries:
        return done
    by_subject: dict[str, list[JournalEntry]] = {}
    for entry in entries:
        by_subject.setdefault(entry.subject_hmac, []).append(entry)
    for line_user_id, _since in people(conn):
        found = by_subject.get(subject_hmac(hmac_key, line_user_id))
        if not found:
            continue
        for entry in found:
            if entry.kind == "answers":
                assert entry.question is not None
                done["answers"] += delete_answers_until(
                    conn, line_user_id, entry.question, entry.at
                )
                continue
            since = resident_since(conn, line_user_id)
            if since is not None and since <= entry.at:
                residents.delete(conn, line_user_id)
                inbox.delete_for_user(conn, line_user_id, None)
                done["residents"] += 1
            since = test_recipient_since(conn, line_user_id)
            if since is not None and since <= entry.at:
                done["test_recipients"] += test_recipients.forget(conn, line_user_id)
    for entry in entries:
        if not has_receipt(conn, entry.receipt.digest):
            receipts.insert(conn, entry.receipt)
            done["receipts"] += 1
    return done


def journal_for(conn: Connection) -> Path | None:
    """The journal beside the store file behind CONN (None for an in-memory store)."""
    database = store_file(conn)
    return None if database is None else journal_beside(database)


def copy_journal(source: Path, target: Path) -> bool:
    """Copy the journal to TARGET atomically (0600); False when there is none yet. Read under
    a shared lock, so a batch being appended (append_many) is copied whole or not at all."""
    try:
        fd = os.open(source, os.O_RDONLY)
    except FileNotFoundError:
        return False
    with os.fdopen(fd, "rb") as journal_file:
        fcntl.flock(fd, fcntl.LOCK_SH)
        data = journal_file.read()
    tmp = target.with_name(f".{target.name}.new")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return True
