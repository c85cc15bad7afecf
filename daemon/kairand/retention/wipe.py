"""Contract-end wipe (S13): destroy all personal data irrecoverably and certify it.

Order, so that a failure half-way never loses the proof:
1. refuse while kairand runs (its API socket answers);
2. in the store: count what is about to be destroyed, audit `wipe.started`, purge every person
   with a `contract_end` receipt; then read every receipt's digest and the audit chain head;
3. write the signed final record (JSON) next to the state directory (the final certificate
   comes last, see `final_certificate`);
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
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keyring
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand.audit.chain import AuditEntry
from kairand.audit.chain import verify as verify_chain
from kairand.backup.service import NAME_RE, destroy_file
from kairand.config import Config
from kairand.errors import ExitCode, KairanError, StoreError
from kairand.keys import secrets
from kairand.keys.backends import CredentialsKeyring, DirectoryKeyring, MemoryKeyring
from kairand.logs import get_logger
from kairand.reports import certificate
from kairand.reports.common import Period, datetime_ja, iso_jst
from kairand.reports.signing import sign_json, verify_document
from kairand.retention.purge import purge_resident
from kairand.store import audit, reports
from kairand.store.bootstrap import open_store
from kairand.store.database import Connection, open_connection
from kairand.store.deletion_journal import JOURNAL_NAME, journal_beside
from kairand.timeutil import JST

log = get_logger(__name__)

CREDSTORE_FILES = ("/etc/credstore.encrypted/kairan/db-key", "/etc/credstore/kairan/db-key")


class DaemonRunningError(KairanError):
    """A precondition failed: the daemon holds the store open."""

    exit_code = ExitCode.FAILURE


FINAL_RECORD_KIND = "kairan.final_record"
STATE_NAME = "kairan-wipe-state.json"


class WipeStepError(KairanError):
    """A contract-end step is missing or came in the wrong order."""

    exit_code = ExitCode.FAILURE


@dataclass
class WipeResult:
    final_record: Path | None = None
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
    handovers = [
        {"at": iso_jst(e.entry.at_ms / 1000), "by": e.entry.actor, **e.entry.detail}
        for e in audit.iter_entries(conn)
        if e.entry.action == "handover.export" and e.entry.outcome == "ok"
    ]
    return {
        "handovers": handovers,
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
        rows = certificate.receipt_rows(prepared["gathered"], signing_key.public_key())
        record = {
            "kind": FINAL_RECORD_KIND,
            "format": 2,
            "wiped_at": iso_jst(now),
            "wiped_by": actor,
            "personal_rows": prepared["personal_rows"],
            "db_key": key_text,
            "audit_chain": prepared["chain"],
            "masked": prepared["gathered"].masked,
            "handovers": prepared["handovers"],
            "receipts": rows,
        }
        output_dir.mkdir(parents=True, exist_ok=True)
        result.final_record = output_dir / f"kairan-final-record-{stamp}.json"
        result.final_record.write_text(sign_json(record, signing_key), encoding="utf-8")
        _save_state(output_dir, {"final_record": result.final_record.name, "steps": {}})
    # Crypto-erase: the files first (random overwrite), then the key that decrypts them.
    family = [db_path.with_name(db_path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    # The deletion journal (HMACs only) has served its purpose once nothing is left to protect:
    # its entries are in the final record; the copies beside the backups go with the backups.
    journal_file = journal_beside(db_path)
    for path in [
        db_path,
        *family,
        *sorted(db_path.parent.glob(db_path.name + "*")),
        journal_file,
    ]:
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


# -- after the wipe: backups, recovery key, then the final certificate ---------------------------
#
# The final certificate says the data cannot be restored. That is only true once every backup
# generation and the recovery key that opens them are gone, so it is issued last, from the
# signed final record and the recorded confirmation of each step (who, when, what). The store
# (and its audit chain) no longer exists at this point: the steps are kept in
# kairan-wipe-state.json beside the final record and printed on the certificate.


def _state_path(output_dir: Path) -> Path:
    return output_dir / STATE_NAME


def _save_state(output_dir: Path, state: dict[str, Any]) -> None:
    path = _state_path(output_dir)
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_state(output_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads(_state_path(output_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WipeStepError(
            f"no wipe record in {output_dir}: the store has not been wiped (or another --output "
            "was used)",
            "run `kairanctl wipe --i-understand --output DIR` first, then use the same --output",
        ) from None
    if not isinstance(state, dict) or "final_record" not in state:
        raise WipeStepError(f"{_state_path(output_dir)} is damaged")
    return state


def confirm_backups(config: Config, output_dir: Path, *, actor: str, now: int) -> list[Path]:
    """Destroy every backup generation and journal copy Kairan knows (the local folder and the
    mounted mirror) and record the step. A configured mirror that is not mounted stops here:
    its generations must be destroyed too."""
    state = load_state(output_dir)
    places = [config.backup.directory]
    if config.backup.mirror is not None:
        if not config.backup.mirror.is_dir():
            raise WipeStepError(
                f"the backup target {config.backup.mirror} is not mounted: its generations "
                "cannot be destroyed",
                "mount it and run `kairanctl wipe confirm-backups` again",
            )
        places.append(config.backup.mirror)
    destroyed: list[Path] = []
    for place in places:
        if not place.is_dir():
            continue
        for path in sorted(place.iterdir()):
            if NAME_RE.match(path.name) or path.name == JOURNAL_NAME:
                destroy_file(path)
                destroyed.append(path)
    generations = sum(1 for p in destroyed if NAME_RE.match(p.name))
    state["steps"]["backups"] = {
        "at": iso_jst(now),
        "by": actor,
        "places": [str(p) for p in places],
        "destroyed": [str(p) for p in destroyed],
        "summary": (
            f"{datetime_ja(now)} に {actor} が {'、'.join(str(p) for p in places)} の"
            f"バックアップ {generations} 世代を乱数で上書きして消去したことを確認"
        ),
    }
    _save_state(output_dir, state)
    log.info("wipe.backups_destroyed", generations=generations)
    return destroyed


def confirm_recovery_key(output_dir: Path, *, actor: str, now: int, recipient: str) -> None:
    """Record the administrator's confirmation that every copy of the recovery private key was
    destroyed (the appliance never holds it, so a person attests it)."""
    state = load_state(output_dir)
    if "backups" not in state["steps"]:
        raise WipeStepError(
            "the backups have not been destroyed yet",
            "run `kairanctl wipe confirm-backups` first",
        )
    state["steps"]["recovery_key"] = {
        "at": iso_jst(now),
        "by": actor,
        "recipient": recipient,
        "summary": f"{datetime_ja(now)} に {actor} がすべての複製の物理的な破壊を確認"
        + (f"（公開鍵 {recipient}）" if recipient else ""),
    }
    _save_state(output_dir, state)


def _handover_summary(handovers: list[dict[str, Any]]) -> str | None:
    if not handovers:
        return None
    last = handovers[-1]
    return (
        f"{last['at']} に {last['by']} が {last.get('rows', 0)} 件を自治体の鍵で封印して作成"
        f"（{last.get('file', '')}、SHA-256 {last.get('sha256', '')}）"
    )


def final_certificate(
    config: Config, output_dir: Path, *, now: int, handover: str | None = None
) -> certificate.Written:
    """Issue the contract-end certificate once the wipe, the backups and the recovery key are
    all recorded as done."""
    state = load_state(output_dir)
    missing = [step for step in ("backups", "recovery_key") if step not in state["steps"]]
    if missing:
        raise WipeStepError(
            "the final certificate needs every step confirmed first; missing: "
            + ", ".join(missing),
            "run `kairanctl wipe confirm-backups` and `kairanctl wipe confirm-recovery-key`",
        )
    signing_key = secrets.signing_key()
    record_path = output_dir / state["final_record"]
    checked = verify_document(record_path.read_bytes(), signing_key.public_key())
    if not checked.ok or checked.payload is None:
        raise WipeStepError(f"the final record {record_path} fails verification: {checked.reason}")
    record = checked.payload
    rows = record["receipts"]
    wiped = dt.datetime.fromisoformat(record["wiped_at"])
    first = dt.datetime.fromisoformat(rows[0]["at"]).date() if rows else wiped.date()
    if config.contract.start is not None:
        first = max(first, config.contract.start)
    period = Period(first, wiped.date())
    final = {
        "wiped_at": record["wiped_at"],
        "wiped_at_ja": datetime_ja(wiped.timestamp()),
        "wiped_by": record["wiped_by"],
        "personal_rows": record["personal_rows"],
        "db_key": record["db_key"],
        "backups": state["steps"]["backups"],
        "recovery_key": state["steps"]["recovery_key"],
        "handover": handover or _handover_summary(record.get("handovers", [])),
        "final_record": state["final_record"],
    }

    def payload_for(annex: dict[str, Any]) -> dict[str, Any]:
        return certificate.build_payload(
            rows,
            period=period,
            issued_at=now,
            public_key=signing_key.public_key(),
            contract=config.contract,
            audit_chain=record["audit_chain"],
            annex=annex,
            masked=int(record.get("masked", 0)),
            backup_lifetime_days=config.backup.lifetime_days,
            final=final,
        )

    stamp = wiped.strftime("%Y%m%d-%H%M%S")
    _payload, written = certificate.write_certificate(
        rows, payload_for, signing_key, output_dir, f"deletion-certificate-final-{stamp}"
    )
    state["certificate"] = written.json.name
    _save_state(output_dir, state)
    return written
