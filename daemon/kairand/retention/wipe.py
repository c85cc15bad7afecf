"""Contract-end wipe (S13): destroy all personal data irrecoverably and certify it.

Order, so that a failure half-way never loses the proof:
1. refuse while kairand runs (its API socket answers);
2. in the store: count what is about to be destroyed, audit `wipe.started`, purge every person
   with a `contract_end` receipt; then read every receipt's digest and the audit chain head;
3. write the signed final record (JSON) and the final deletion certificate next to the state
   directory;
4. crypto-erase: overwrite the database file and its -wal/-shm/-journal with random bytes,
   fsync, unlink; then destroy the db-key where the keyring backend allows it
   (DirectoryKeyring: overwrite + unlink; systemd credentials are read-only: print the exact
   command the administrator must run);
5. check that the store can no longer be opened.
The signing key is kept so the certificate and final record stay verifiable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.audit.chain import AuditEntry
from kairand.audit.chain import verify as verify_chain
from kairand.config import Config
from kairand.errors import ExitCode, KairanError, StoreError
from kairand.keys import secrets
from kairand.keys.backends import CredentialsKeyring, DirectoryKeyring, MemoryKeyring
from kairand.logs import get_logger
from kairand.reports import certificate
from kairand.reports.common import Period, iso_jst
from kairand.reports.signing import sign_json
from kairand.retention.purge import purge_resident
from kairand.store import audit, reports
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, open_connection
from kairand.timeutil import JST

log = get_logger(__name__)

CREDSTORE_FILES = ("/etc/credstore.encrypted/kairan/db-key", "/etc/credstore/kairan/db-key")


class DaemonRunningError(KairanError):
    """A precondition failed: the daemon holds the store open."""

    exit_code = ExitCode.FAILURE


@dataclass
class WipeResult:
    final_record: Path | None = None
    certificate: tuple[Path, Path] | None = None
    erased: list[Path] = field(default_factory=list)
    key: str = ""
    admin_command: str | None = None
    left_in_state_dir: list[Path] = field(default_factory=list)
    store_unreadable: bool = False


def _daemon_running(config: Config) -> bool:
    """True if kairand answers on its API or webhook socket (a stale socket file does not)."""
    for path in (config.api.socket, config.webhook.socket):
        if path is None or not path.exists():
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(path))
            except OSError:
                continue
        return True
    return False


def _prepare(
    conn: Connection, now: int, actor: str, hmac_key: bytes, signing_key: Ed25519PrivateKey
) -> dict[str, Any]:
    counts = reports.personal_counts(conn)
    audit.append(
        conn,
        AuditEntry(
            at_ms=now * 1000, actor=actor, action="wipe.started", outcome="ok", detail=counts
        ),
    )
    # One contract_end receipt per person, so the final certificate counts them like any
    # other deletion; the crypto-erase below then destroys whatever else the file holds.
    for line_user_id in reports.subject_ids(conn):
        purge_resident(conn, line_user_id, "contract_end", now, hmac_key, signing_key, actor=actor)
    chain = verify_chain(audit.iter_entries(conn))
    return {
        "personal_rows": counts,
        "receipts": reports.receipt_digests(conn),
        "chain": {"intact": chain.ok, "entries": chain.entries, "head_hash": chain.head_hash},
        "gathered": certificate.gather(conn, 0, now + 1),
    }


def _overwrite_and_unlink(path: Path) -> bool:
    """Overwrite PATH with random bytes (its full length), fsync, unlink."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    with path.open("r+b") as handle:
        remaining = size
        while remaining > 0:
            chunk = min(remaining, 1 << 20)
            handle.write(os.urandom(chunk))
            remaining -= chunk
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()
    return True


def _key_plan() -> tuple[str, str | None]:
    """(what will happen to the db-key, command the administrator must run or None)."""
    backend = keyring.get_keyring()
    if isinstance(backend, DirectoryKeyring):
        return "鍵ファイルを乱数で上書きして削除（DirectoryKeyring）", None
    if isinstance(backend, MemoryKeyring):
        return "メモリ上の鍵を削除（MemoryKeyring）", None
    command = (
        "sudo systemctl stop kairand && sudo shred -u "
        + " ".join(p for p in CREDSTORE_FILES)
        + " 2>/dev/null; ls -l /etc/credstore*/kairan/"
    )
    if isinstance(backend, CredentialsKeyring):
        return "systemd 資格情報（読み取り専用）：管理者が削除コマンドを実行", command
    return f"鍵保管方式 {type(backend).__name__}：管理者が削除", command


def _destroy_key() -> str:
    backend = keyring.get_keyring()
    if isinstance(backend, DirectoryKeyring):
        path = backend.directory / secrets.DB_KEY
        return "destroyed" if _overwrite_and_unlink(path) else "absent"
    if isinstance(backend, MemoryKeyring):
        return "destroyed" if MemoryKeyring.store.pop(secrets.DB_KEY, None) else "absent"
    return "administrator"


def wipe(config: Config, *, output_dir: Path | None, now: int, actor: str) -> WipeResult:
    if _daemon_running(config):
        raise DaemonRunningError(
            "kairand is running: the store cannot be wiped while it is open",
            "stop the daemon first (`sudo systemctl stop kairand`) and run the wipe again",
        )
    result = WipeResult()
    output_dir = output_dir or config.daemon.state_dir.parent
    db_path = config.database_path
    key_text, result.admin_command = _key_plan()
    signing_key = secrets.signing_key()
    if db_path.exists():
        store = open_store(config)
        try:
            prepared = store.write_sync(
                _prepare, now, actor, secrets.receipt_hmac_key(), signing_key
            )
            store.checkpoint()
        finally:
            store.close()
        stamp = dt.datetime.fromtimestamp(now, JST).strftime("%Y%m%d-%H%M%S")
        final = {
            "wiped_at": iso_jst(now),
            "personal_rows": prepared["personal_rows"],
            "db_key": key_text,
        }
        record = {
            "kind": "kairan.final_record",
            "format": 1,
            **final,
            "audit_chain": prepared["chain"],
            "receipts": [
                {"at": iso_jst(at), "reason": reason, "digest": digest}
                for at, reason, digest in prepared["receipts"]
            ],
        }
        output_dir.mkdir(parents=True, exist_ok=True)
        result.final_record = output_dir / f"kairan-final-record-{stamp}.json"
        result.final_record.write_text(sign_json(record, signing_key), encoding="utf-8")
        gathered = prepared["gathered"]
        first_at = gathered.receipts[0].at if gathered.receipts else now
        period = Period(
            dt.datetime.fromtimestamp(first_at, JST).date(),
            dt.datetime.fromtimestamp(now, JST).date(),
        )
        payload = certificate.build_payload(
            gathered,
            period=period,
            issued_at=now,
            public_key=signing_key.public_key(),
            final=final,
        )
        result.certificate = certificate.write_certificate(
            payload, signing_key, output_dir, f"deletion-certificate-final-{stamp}"
        )
    # Crypto-erase: the files first (random overwrite), then the key that decrypts them.
    family = [db_path.with_name(db_path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    for path in [db_path, *family, *sorted(db_path.parent.glob(db_path.name + "*"))]:
        if _overwrite_and_unlink(path):
            result.erased.append(path)
    outcome = _destroy_key()
    result.key = key_text if outcome != "absent" else "鍵は既に存在しません"
    if outcome == "administrator":
        result.key += "（未完了：表示されたコマンドを実行してください）"
    result.left_in_state_dir = sorted(p for p in config.daemon.state_dir.rglob("*") if p.is_file())
    result.store_unreadable = _store_unreadable(db_path)
    log.info("wipe.done", erased=len(result.erased), key=outcome)
    return result


def _store_unreadable(db_path: Path) -> bool:
    if not db_path.exists():
        return True
    try:
        key = secrets.db_key()
    except KairanError:
        return True
    try:
        conn = open_connection(db_path, key, readonly=True)
    except (StoreError, KairanError):
        return True
    with contextlib.suppress(Exception):
        conn.close()
    return False
