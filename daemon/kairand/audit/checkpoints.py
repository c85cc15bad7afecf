"""Signed checkpoints of the audit chain (S8), and the full verification `kairanctl audit
verify` and GET /v1/audit/verify run.

A checkpoint signs (seq, head hash, time) with the appliance's Ed25519 key. The hash chain alone
catches an edit, a deletion or a reordering; a checkpoint also catches someone who rewrote the
chain from the edited entry onwards (recomputing every later hash), because they cannot sign.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kairand import evidence
from kairand.audit.chain import StoredEntry, verify
from kairand.keys import secrets
from kairand.store import audit as audit_store
from kairand.store.database import Connection, Store

DOMAIN = b"kairan-audit-checkpoint-v1"


def message(seq: int, head_hash: str, at_ms: int) -> bytes:
    return b"\n".join([DOMAIN, str(seq).encode(), head_hash.encode(), str(at_ms).encode()])


def sign(key: Ed25519PrivateKey, seq: int, head_hash: str, at_ms: int) -> audit_store.Checkpoint:
    signature = evidence.sign(key, message(seq, head_hash, at_ms)).hex()
    return audit_store.Checkpoint(seq, at_ms, head_hash, signature)


def signature_ok(public: Ed25519PublicKey, cp: audit_store.Checkpoint) -> bool:
    try:
        signature = bytes.fromhex(cp.signature)
    except ValueError:
        return False
    return evidence.verify(public, signature, message(cp.seq, cp.head_hash, cp.at_ms))


def public_key() -> Ed25519PublicKey:
    """From the keyring (reads a secret: call it off the event loop)."""
    return secrets.signing_key().public_key()


def checkpoint_now(conn: Connection, key: Ed25519PrivateKey, at_ms: int) -> int | None:
    """Sign the current head (inside the caller's write transaction); None when the chain is
    empty or the head is already checkpointed."""
    seq, head_hash = audit_store.head(conn)
    last = audit_store.last_checkpoint(conn)
    if seq == 0 or (last is not None and last.seq >= seq):
        return None
    audit_store.add_checkpoint(conn, sign(key, seq, head_hash, at_ms))
    return seq


def _due(conn: Connection, every: int, max_age_ms: int, now_ms: int) -> bool:
    """Due when EVERY entries wait for a checkpoint, or the oldest waiting one is older than
    MAX_AGE (so no entry stays unsigned for long on a quiet appliance)."""
    last = audit_store.last_checkpoint(conn)
    after = last.seq if last else 0
    new = audit_store.count_after(conn, after)
    if new == 0:
        return False
    oldest = audit_store.oldest_after(conn, after)
    return new >= every or (oldest is not None and now_ms - oldest >= max_age_ms)


async def maybe_checkpoint(store: Store, every: int, max_age_seconds: int) -> int | None:
    now_ms = int(time.time() * 1000)
    if not await store.read(_due, every, max_age_seconds * 1000, now_ms):
        return None
    key = await asyncio.get_running_loop().run_in_executor(None, secrets.signing_key)
    return await store.write(checkpoint_now, key, now_ms)


@dataclass(frozen=True)
class StoreVerifyResult:
    ok: bool
    entries: int
    checkpoints: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str = ""


def verify_store(conn: Connection, public: Ed25519PublicKey) -> StoreVerifyResult:
    """The chain, then every checkpoint (signature, and the chain's hash at its seq)."""
    cps = audit_store.checkpoints(conn)
    wanted = {cp.seq for cp in cps}
    hashes: dict[int, str] = {}

    def entries() -> Iterator[StoredEntry]:
        for row in audit_store.iter_entries(conn):
            if row.seq in wanted:
                hashes[row.seq] = row.hash
            yield row

    chain = verify(entries())
    if not chain.ok:
        return StoreVerifyResult(
            False, chain.entries, len(cps), chain.head_hash, chain.first_broken_seq, chain.reason
        )
    last_seq = chain.entries
    good_until = 0
    for cp in cps:
        if not signature_ok(public, cp):
            return StoreVerifyResult(
                False,
                chain.entries,
                len(cps),
                chain.head_hash,
                good_until + 1,
                f"checkpoint at entry {cp.seq} has an invalid signature",
            )
        if cp.seq > last_seq:
            return StoreVerifyResult(
                False,
                chain.entries,
                len(cps),
                chain.head_hash,
                last_seq + 1,
                f"entries up to {cp.seq} were signed, but the log ends at {last_seq}:"
                " entries were deleted",
            )
        if hashes.get(cp.seq) != cp.head_hash:
            return StoreVerifyResult(
                False,
                chain.entries,
                len(cps),
                chain.head_hash,
                good_until + 1,
                f"the chain was rewritten: it does not match the signed checkpoint at entry"
                f" {cp.seq}",
            )
        good_until = cp.seq
    return StoreVerifyResult(True, chain.entries, len(cps), chain.head_hash)
