"""Making, listing, verifying, restoring and pruning sealed backups.

What a backup holds: the SQLCipher store file exactly as SQLite's backup API copied it (still
encrypted with the db-key) plus, in its own sealed record, the secrets the appliance generated
itself (db-key, signing-key, receipt-hmac-key). The escrow is what makes a restore onto a fresh
appliance work: the new box gets the old store *and* the key that opens it, and keeps verifying
old deletion receipts and audit checkpoints. LINE's channel secret and access token are not in
the backup: they are re-issued from the LINE Developers console when a box is rebuilt.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring

from kairand import __version__
from kairand.backup import envelope
from kairand.config import Config
from kairand.errors import (
    AlreadyExistsError,
    DataError,
    KairanError,
    SchemaTooNewError,
    StoreError,
)
from kairand.keys import secrets
from kairand.keys.backends import SERVICE
from kairand.logs import get_logger
from kairand.store import backup as store_backup
from kairand.store.database import open_connection, transaction
from kairand.store.migrations import latest_version

log = get_logger(__name__)

ESCROWED = (secrets.DB_KEY, secrets.SIGNING_KEY, secrets.RECEIPT_HMAC_KEY)
SUFFIX = ".kbak"
NAME_RE = re.compile(r"^kairan-(\d{8}T\d{6}Z)(?:-\d+)?\.kbak$")
DEFAULT_DIRECTORY = Path("/var/backups/kairan")
DEFAULT_RECIPIENT = Path("/etc/kairan/recovery.pub")
DEFAULT_CREDSTORE = Path("/etc/credstore.encrypted/kairan")
DEFAULT_KEEP = 14


class BackupError(KairanError):
    """Making a backup failed (the store is untouched)."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size: int
    manifest: dict[str, Any]


def _file_name(now: dt.datetime, directory: Path) -> Path:
    base = f"kairan-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"
    candidate = directory / f"{base}{SUFFIX}"
    n = 1
    while candidate.exists():
        candidate = directory / f"{base}-{n}{SUFFIX}"
        n += 1
    return candidate


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while block := src.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def create_backup(
    config: Config,
    recipient_path: Path,
    directory: Path,
    *,
    keep: int | None = DEFAULT_KEEP,
    now: dt.datetime | None = None,
    chunk_size: int = envelope.DEFAULT_CHUNK_SIZE,
) -> BackupInfo:
    """Copy the live store, seal it (with the escrowed secrets) to RECIPIENT_PATH's public key
    into DIRECTORY, record the success in the store, and prune to KEEP generations."""
    recipient = envelope.load_recipient(recipient_path)
    source = config.database_path
    if not source.exists():
        raise StoreError(f"the store {source} does not exist: nothing to back up")
    key = secrets.db_key()
    escrow = {name: secrets.get_secret(name) for name in ESCROWED}
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=directory))
    target = _file_name(now, directory)
    partial = target.with_name(f".{target.name}.partial")
    try:
        copy = work / "store.db"
        schema = store_backup.copy_store(source, key, copy)
        digest, size = _sha256_file(copy)
        manifest = {
            "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "schema_version": schema,
            "plaintext_sha256": digest,
            "plaintext_size": size,
            "chunk_size": chunk_size,
            "content": "sqlcipher-store+escrowed-secrets",
            "escrowed": list(ESCROWED),
            "kairan_version": __version__,
        }
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out, copy.open("rb") as src:
            writer = envelope.SealedWriter(out, recipient, manifest)
            manifest = writer.manifest
            writer.write_record(json.dumps(escrow).encode())
            block = src.read(chunk_size)
            while True:
                following = src.read(chunk_size)
                writer.write_record(block, final=not following)
                if not following:
                    break
                block = following
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    info = BackupInfo(target, target.stat().st_size, manifest)
    conn = open_connection(source, key)
    try:
        with transaction(conn):
            store_backup.record_success(conn, int(now.timestamp()), target.name, info.size)
    finally:
        conn.close()
    log.info("backup.created", file=target.name, size=info.size, schema_version=schema)
    if keep:
        removed = prune(directory, keep)
        if removed:
            log.info("backup.pruned", removed=len(removed))
    return info


def list_backups(directory: Path) -> list[BackupInfo]:
    """Backups in DIRECTORY, oldest first, with their cleartext manifests."""
    found = []
    if not directory.is_dir():
        return []
    for path in sorted(directory.iterdir()):
        if not NAME_RE.match(path.name):
            continue
        with path.open("rb") as src:
            try:
                header = envelope.read_header(src)
            except DataError as exc:
                found.append(BackupInfo(path, path.stat().st_size, {"error": exc.message}))
                continue
        found.append(BackupInfo(path, path.stat().st_size, header.manifest))
    return found


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the KEEP newest backups (by the time in their names); return them."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    names = sorted(
        (p for p in directory.iterdir() if NAME_RE.match(p.name)),
        key=lambda p: (NAME_RE.match(p.name).group(1), p.name),  # type: ignore[union-attr]
    )
    doomed = names[:-keep]
    for path in doomed:
        path.unlink()
    return doomed


@dataclass(frozen=True)
class OpenedBackup:
    manifest: dict[str, Any]
    escrow: dict[str, str]


def _decrypt_to(backup: Path, recovery_key: Path, target: Path | None) -> OpenedBackup:
    """Authenticate and decrypt BACKUP; write the store file to TARGET (or only check it)."""
    key = envelope.load_recovery_key(recovery_key)
    try:
        src = backup.open("rb")
    except FileNotFoundError:
        raise DataError(f"the backup file {backup} does not exist") from None
    with src:
        header, records = envelope.open_records(src, key)
        try:
            escrow = json.loads(next(records))
        except StopIteration:  # pragma: no cover - open_records raises before this
            raise DataError("the backup holds no records") from None
        if not isinstance(escrow, dict) or secrets.DB_KEY not in escrow:
            raise DataError("the backup's key escrow record is malformed")
        digest = hashlib.sha256()
        size = 0
        out = None
        if target is not None:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            out = os.fdopen(fd, "wb")
        try:
            for block in records:
                digest.update(block)
                size += len(block)
                if out is not None:
                    out.write(block)
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
        finally:
            if out is not None:
                out.close()
    manifest = header.manifest
    if digest.hexdigest() != manifest.get("plaintext_sha256") or size != manifest.get(
        "plaintext_size"
    ):
        raise DataError("the restored store does not match the SHA-256 in the backup manifest")
    return OpenedBackup(manifest, escrow)


def verify_backup(backup: Path, recovery_key: Path) -> dict[str, Any]:
    """Decrypt and authenticate every record and check the hash, without writing anything."""
    return _decrypt_to(backup, recovery_key, None).manifest


KeySink = Callable[[str, str], None]


def keyring_sink(name: str, value: str) -> None:
    """Install a restored secret through the configured keyring (development setups)."""
    keyring.set_password(SERVICE, name, value)


def credstore_sink(directory: Path, *, with_key: str = "auto") -> KeySink:
    """Install a restored secret as a systemd credential sealed to this box (appliance)."""

    def sink(name: str, value: str) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = directory / name
        tmp = directory / f".{name}.new"
        try:
            subprocess.run(
                [
                    "systemd-creds",
                    "encrypt",
                    f"--name={name}",
                    f"--with-key={with_key}",
                    "-",
                    str(tmp),
                ],
                input=value.encode(),
                check=True,
                capture_output=True,
            )
        except FileNotFoundError:
            raise BackupError(
                "systemd-creds is not installed: cannot seal the restored secrets",
                "restore on a Kairan appliance (Debian 12 with systemd)",
            ) from None
        except subprocess.CalledProcessError as exc:
            reason = exc.stderr.decode(errors="replace").strip()
            raise BackupError(f"systemd-creds could not seal {name}: {reason}") from None
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)

    return sink


def restore_backup(
    config: Config,
    backup: Path,
    recovery_key: Path,
    install_secret: KeySink,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Restore BACKUP as the configured store and install its escrowed secrets.

    Refuses to replace an existing store unless FORCE. Nothing is changed until the whole file
    has authenticated, matched its hash and opened with its own db-key."""
    target = config.database_path
    if target.exists() and not force:
        raise AlreadyExistsError(
            f"a store already exists at {target}: refusing to overwrite it",
            "restore onto a fresh appliance, or add --force after stopping kairand "
            "(the current store will be replaced)",
        )
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.restore")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    try:
        opened = _decrypt_to(backup, recovery_key, staging)
        db_key = bytes.fromhex(opened.escrow[secrets.DB_KEY])
        version = store_backup.check_restored(staging, db_key)
        if version > latest_version():
            raise SchemaTooNewError(
                f"the backup has schema version {version}, newer than this program knows",
                "install the Kairan release that made the backup (or newer) and restore again",
            )
        for name in ESCROWED:
            if name in opened.escrow:
                install_secret(name, opened.escrow[name])
        parent_stat = target.parent.stat()
        if os.geteuid() == 0:
            os.chown(staging, parent_stat.st_uid, parent_stat.st_gid)
        for stale in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                target.with_name(target.name + stale).unlink()
        os.replace(staging, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
    log.info(
        "backup.restored",
        file=backup.name,
        schema_version=version,
        created_at=opened.manifest.get("created_at"),
    )
    return opened.manifest
