"""Tampering with the audit log in the real SQLCipher store (S8): `kairanctl audit verify` exits
non-zero and names the first broken entry after an edit, a deletion, a reordering, a rewrite of
the chain from some entry on, a truncated tail, or a forged checkpoint."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kairand import ctl
from kairand.audit import checkpoints
from kairand.audit.chain import GENESIS, AuditEntry, link
from kairand.errors import ExitCode
from kairand.keys import secrets
from kairand.store import audit as audit_store
from kairand.store.database import Connection, Store

N = 12


@pytest.fixture
def logged(store: Store) -> Store:
    """N entries, a signed checkpoint at entry 8, then four more."""
    for i in range(1, N + 1):
        entry = AuditEntry(
            1_760_000_000_000 + i, f"staff{i % 3}", "api.me", "allowed", "", {"i": i}
        )
        store.write_sync(audit_store.append, entry)
        if i == 8:
            store.write_sync(checkpoints.checkpoint_now, secrets.signing_key(), 1_760_000_000_500)
    return store


def verify(config_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = ctl.main(["--config", str(config_path), "audit", "verify"])
    out = capsys.readouterr()
    return code, out.out + out.err


def sql(store: Store, statement: str, *params: object) -> None:
    store.write_sync(lambda conn: conn.execute(statement, params))


def test_intact_log_verifies(logged: Store, dev_setup: Path, capsys) -> None:
    """S8: untouched, the chain and its signed checkpoint verify (exit 0)."""
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.OK, out
    assert f"{N} entries" in out and "1 signed checkpoints" in out


@pytest.mark.parametrize("seq", [1, 5, 10, N])
def test_edited_entry_is_named(logged: Store, dev_setup: Path, capsys, seq: int) -> None:
    """S8: changing one column of entry SEQ in the database breaks verification at SEQ."""
    sql(logged, "UPDATE audit_log SET actor = 'intruder' WHERE seq = ?", seq)
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE
    assert f"BROKEN at entry {seq} " in out and "modified" in out


def test_edited_detail_is_named(logged: Store, dev_setup: Path, capsys) -> None:
    """S8: an edit inside the JSON detail is caught too."""
    sql(logged, "UPDATE audit_log SET detail = '{\"i\": 99}' WHERE seq = 3")
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE and "BROKEN at entry 3 " in out


@pytest.mark.parametrize("seq", [1, 6, 11])
def test_deleted_entry_is_named(logged: Store, dev_setup: Path, capsys, seq: int) -> None:
    """S8: deleting entry SEQ is reported at SEQ (the gap)."""
    sql(logged, "DELETE FROM audit_log WHERE seq = ?", seq)
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE
    assert f"BROKEN at entry {seq}" in out and "missing or out of order" in out


def test_reordered_entries_are_named(logged: Store, dev_setup: Path, capsys) -> None:
    """S8: swapping entries 4 and 5 (their positions) is reported at 4."""

    def swap(conn: Connection) -> None:
        conn.execute("UPDATE audit_log SET seq = -1 WHERE seq = 4")
        conn.execute("UPDATE audit_log SET seq = 4 WHERE seq = 5")
        conn.execute("UPDATE audit_log SET seq = 5 WHERE seq = -1")

    logged.write_sync(swap)
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE and "BROKEN at entry 4 " in out


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(
    logged: Store, dev_setup: Path, capsys
) -> None:
    """S8: someone edits entry 6 and recomputes every later hash (the chain alone then holds);
    the signed checkpoint at 8 no longer matches, so verify fails at the first entry after the
    last good checkpoint (here: 1, as 8 is the only checkpoint)."""

    def rewrite(conn: Connection) -> None:
        conn.execute("UPDATE audit_log SET actor = 'intruder' WHERE seq = 6")
        prev = GENESIS
        for row in list(audit_store.iter_entries(conn)):
            digest = link(prev, row.seq, row.entry)
            conn.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev, digest, row.seq),
            )
            prev = digest

    logged.write_sync(rewrite)
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE
    assert "BROKEN at entry 1 " in out and "checkpoint at entry 8" in out


def test_truncated_tail_before_a_checkpoint_is_caught(
    logged: Store, dev_setup: Path, capsys
) -> None:
    """S8: deleting the newest entries back past a checkpoint is caught by that checkpoint."""
    sql(logged, "DELETE FROM audit_log WHERE seq >= 7")
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE and "BROKEN at entry 7" in out and "deleted" in out


def test_forged_checkpoint_signature_is_caught(logged: Store, dev_setup: Path, capsys) -> None:
    """S8: a checkpoint whose signature does not verify with the appliance key is reported."""
    sql(logged, "UPDATE audit_checkpoints SET signature = ? WHERE seq = 8", "00" * 64)
    code, out = verify(dev_setup, capsys)
    assert code == ExitCode.FAILURE and "invalid signature" in out


async def test_periodic_checkpoint_every_n_entries(store: Store) -> None:
    """S8: maybe_checkpoint signs when N entries wait, or when the oldest waiting entry is older
    than the maximum age — not before."""
    now_ms = int(time.time() * 1000)
    for _ in range(4):
        await store.write(audit_store.append, AuditEntry(now_ms, "a", "x", "ok"))
    assert await checkpoints.maybe_checkpoint(store, every=5, max_age_seconds=3600) is None
    await store.write(audit_store.append, AuditEntry(now_ms, "a", "x", "ok"))
    assert await checkpoints.maybe_checkpoint(store, every=5, max_age_seconds=3600) == 5
    assert await checkpoints.maybe_checkpoint(store, every=5, max_age_seconds=3600) is None
    await store.write(audit_store.append, AuditEntry(now_ms - 7_200_000, "a", "x", "ok"))
    assert await checkpoints.maybe_checkpoint(store, every=5, max_age_seconds=3600) == 6
    cps = await store.read(audit_store.checkpoints)
    public = await asyncio.to_thread(checkpoints.public_key)
    assert [c.seq for c in cps] == [5, 6] and all(checkpoints.signature_ok(public, c) for c in cps)
