"""Making, listing, verifying, restoring and pruning sealed backups.

What a backup holds: the SQLCipher store file exactly as SQLite's backup API copied it (still
encrypted with the db-key) plus, in its own sealed record, the secrets the appliance generated
itself (db-key, signing-key, receipt-hmac-key). The escrow is what makes a restore onto a fresh
appliance work: the new box gets the old store *and* the key that opens it, and keeps verifying
old deletion receipts and audit checkpoints. LINE's channel secret and access token are not in
the backup: they are re-issued from the LINE Developers console when a box is rebuilt.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand import __version__
from kairand.audit.chain import AuditEntry
from kairand.backup import agefmt, envelope
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
from kairand.store import audit
from kairand.store import backup as store_backup
from kairand.store import deletion_journal as journal
from kairand.store.database import open_connection, transaction
from kairand.store.deletion_journal import JOURNAL_NAME, JournalError, journal_beside
from kairand.store.migrations import latest_version

log = get_logger(__name__)

ESCROWED = (secrets.DB_KEY, secrets.SIGNING_KEY, secrets.RECEIPT_HMAC_KEY)
SUFFIX = ".tar.age"
LEGACY_SUFFIX = ".kbak"
NAME_RE = re.compile(r"^kairan-(\d{8}T\d{6}Z)(?:-\d+)?(?:\.kbak|\.tar\.age)$")
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


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _copy_file(source: Path, target: Path) -> None:
    """Copy SOURCE to TARGET atomically (0600, fsynced)."""
    partial = target.with_name(f".{target.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    _fsync_dir(target.parent)


def _journal_copy(config: Config, directory: Path) -> None:
    """Keep a copy of the deletion journal beside the backups (HMACs only), so a restore onto
    a rebuilt box re-applies every deletion up to the newest backup. Always written, even
    empty: a restore refuses when no journal can be read at all."""
    source = journal_beside(config.database_path)
    target = directory / JOURNAL_NAME
    if not journal.copy_journal(source, target):
        fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)


def create_backup(
    config: Config,
    recipient_path: Path,
    directory: Path,
    *,
    keep: int | None = DEFAULT_KEEP,
    lifetime_days: int | None = None,
    mirror: Path | None = None,
    now: dt.datetime | None = None,
    actor: str = "system:backup",
) -> BackupInfo:
    """Copy the live store, seal it (with the escrowed secrets) in the age format to the
    recovery recipient into DIRECTORY (and copy it to the mounted MIRROR), record the success
    and the audit entries in the store, and destroy generations beyond KEEP or older than
    LIFETIME_DAYS in both places (S18)."""
    recipient = agefmt.load_recipient(recipient_path)
    source = config.database_path
    if not source.exists():
        raise StoreError(f"the store {source} does not exist: nothing to back up")
    if mirror is not None and not mirror.is_dir():
        raise BackupError(
            f"the backup target {mirror} is not mounted (no such folder)",
            "mount the backup target (see the manual's backup chapter) and run the backup again",
        )
    key = secrets.db_key()
    escrow = {name: secrets.get_secret(name) for name in ESCROWED}
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=directory))
    target = _file_name(now, directory)
    partial = target.with_name(f".{target.name}.partial")
    try:
        copy = work / "kairan.db"
        schema = store_backup.copy_store(source, key, copy)
        digest, size = _sha256_file(copy)
        manifest = {
            "format": agefmt.FORMAT,
            "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "schema_version": schema,
            "plaintext_sha256": digest,
            "plaintext_size": size,
            "content": "sqlcipher-store+escrowed-secrets",
            "escrowed": list(ESCROWED),
            "kairan_version": __version__,
            "recipient": str(agefmt.load_recipient_text(recipient_path)),
        }
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            agefmt.write_backup(out, recipient, manifest, escrow, copy)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
        _fsync_dir(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    info = BackupInfo(target, target.stat().st_size, manifest)
    _journal_copy(config, directory)
    places = [directory]
    if mirror is not None:
        _copy_file(target, mirror / target.name)
        _journal_copy(config, mirror)
        places.append(mirror)
    destroyed: list[Path] = []
    for place in places:
        destroyed += destroy_expired(place, keep=keep, lifetime_days=lifetime_days, now=now)
    at = int(now.timestamp())
    conn = open_connection(source, key)
    try:
        with transaction(conn):
            store_backup.record_success(conn, at, target.name, info.size)
            store_backup.record_locations(conn, [str(p) for p in places], keep, lifetime_days)
            audit.append(
                conn,
                AuditEntry(
                    at_ms=at * 1000,
                    actor=actor,
                    action="backup.create",
                    outcome="ok",
                    target=target.name,
                    detail={"size": info.size, "places": [str(p) for p in places]},
                ),
            )
            if destroyed:
                audit.append(
                    conn,
                    AuditEntry(
                        at_ms=at * 1000,
                        actor=actor,
                        action="backup.destroy",
                        outcome="ok",
                        target=f"{len(destroyed)} files",
                        detail={
                            "files": [str(p) for p in destroyed],
                            "keep": keep,
                            "lifetime_days": lifetime_days,
                        },
                    ),
                )
    finally:
        conn.close()
    log.info("backup.created", file=target.name, size=info.size, schema_version=schema)
    if destroyed:
        log.info("backup.destroyed", removed=len(destroyed))
    return info


def list_backups(directory: Path) -> list[BackupInfo]:
    """Backups in DIRECTORY, oldest first. Legacy (v1) files show their cleartext manifest;
    age files show only what their name says (the manifest is inside the encryption)."""
    found = []
    if not directory.is_dir():
        return []
    for path in sorted(directory.iterdir()):
        match = NAME_RE.match(path.name)
        if not match:
            continue
        if path.name.endswith(SUFFIX):
            stamp = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            manifest: dict[str, Any] = {
                "format": agefmt.FORMAT,
                "created_at": stamp.isoformat(timespec="seconds"),
            }
            if not agefmt.is_age_file(path):
                manifest = {"error": "not an age file (damaged?)"}
            found.append(BackupInfo(path, path.stat().st_size, manifest))
            continue
        with path.open("rb") as src:
            try:
                header = envelope.read_header(src)
            except DataError as exc:
                found.append(BackupInfo(path, path.stat().st_size, {"error": exc.message}))
                continue
        found.append(BackupInfo(path, path.stat().st_size, header.manifest))
    return found


def _generations(directory: Path) -> list[tuple[dt.datetime, Path]]:
    found = []
    for path in directory.iterdir():
        match = NAME_RE.match(path.name)
        if match:
            stamp = dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            found.append((stamp, path))
    return sorted(found, key=lambda item: (item[0], item[1].name))


def destroy_file(path: Path) -> None:
    """Overwrite PATH with random bytes, fsync, unlink. (The content is already sealed to an
    offline key; the overwrite removes even that ciphertext from this file system.)"""
    try:
        size = path.stat().st_size
        with path.open("r+b") as out:
            remaining = size
            while remaining > 0:
                n = min(remaining, 1 << 20)
                out.write(os.urandom(n))
                remaining -= n
            out.flush()
            os.fsync(out.fileno())
    except FileNotFoundError:
        return
    path.unlink()


def destroy_expired(
    directory: Path,
    *,
    keep: int | None,
    lifetime_days: int | None,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Destroy every backup generation in DIRECTORY beyond the KEEP newest or older than
    LIFETIME_DAYS (by the time in its name); return the destroyed files."""
    if keep is not None and keep < 0:
        raise ValueError("keep must not be negative")
    now = now or dt.datetime.now(dt.UTC)
    generations = _generations(directory)
    doomed: list[Path] = []
    if keep:
        doomed += [path for _, path in generations[:-keep]]
    if lifetime_days is not None:
        limit = now - dt.timedelta(days=lifetime_days)
        doomed += [path for stamp, path in generations if stamp < limit and path not in doomed]
    for path in doomed:
        destroy_file(path)
    if doomed:
        _fsync_dir(directory)
    return doomed


def prune(directory: Path, keep: int) -> list[Path]:
    """Destroy all but the KEEP newest backups (by the time in their names); return them."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    return destroy_expired(directory, keep=keep, lifetime_days=None)


@dataclass(frozen=True)
class OpenedBackup:
    manifest: dict[str, Any]
    escrow: dict[str, str]


def _decrypt_legacy(backup: Path, recovery_key: Path, target: Path | None) -> OpenedBackup:
    """Read a version-1 (.kbak) backup made by earlier releases."""
    key = envelope.load_recovery_key(recovery_key)
    with backup.open("rb") as src:
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


def _decrypt_age(backup: Path, recovery_key: Path, target: Path | None) -> OpenedBackup:
    identity = agefmt.load_identity(recovery_key)
    digest = hashlib.sha256()
    sizes = [0]

    def sink(stream: Any) -> None:
        out = None
        if target is not None:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            out = os.fdopen(fd, "wb")
        try:
            while block := stream.read(1 << 20):
                digest.update(block)
                sizes[0] += len(block)
                if out is not None:
                    out.write(block)
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
        finally:
            if out is not None:
                out.close()

    with backup.open("rb") as src:
        manifest, escrow = agefmt.read_backup(src, identity, sink)
    if secrets.DB_KEY not in escrow:
        raise DataError("the backup's key escrow is malformed (no db-key)")
    if digest.hexdigest() != manifest.get("plaintext_sha256") or sizes[0] != manifest.get(
        "plaintext_size"
    ):
        raise DataError("the restored store does not match the SHA-256 in the backup manifest")
    return OpenedBackup(manifest, escrow)


def _decrypt_to(backup: Path, recovery_key: Path, target: Path | None) -> OpenedBackup:
    """Authenticate and decrypt BACKUP (age, or the legacy v1 format); write the store file to
    TARGET (or only check it)."""
    if not backup.exists():
        raise DataError(f"the backup file {backup} does not exist")
    if agefmt.is_age_file(backup):
        return _decrypt_age(backup, recovery_key, target)
    return _decrypt_legacy(backup, recovery_key, target)


def verify_backup(backup: Path, recovery_key: Path) -> dict[str, Any]:
    """Decrypt and authenticate the whole file and check the hash, without writing anything."""
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


def _journal_sources(config: Config, backup: Path, given: list[Path] | None) -> list[Path]:
    if given:
        return given
    found = [
        path
        for path in (journal_beside(config.database_path), backup.parent / JOURNAL_NAME)
        if path.exists()
    ]
    if not found:
        raise JournalError(
            "no deletion journal was found beside the store or beside the backup: refusing to "
            "restore, because residents deleted after this backup would come back",
            "give the journal with --journal FILE (a copy is kept beside every backup, "
            f"named {JOURNAL_NAME})",
        )
    return found


def restore_backup(
    config: Config,
    backup: Path,
    recovery_key: Path,
    install_secret: KeySink,
    *,
    force: bool = False,
    journals: list[Path] | None = None,
    actor: str = "kairanctl",
) -> dict[str, Any]:
    """Restore BACKUP as the configured store and install its escrowed secrets.

    Refuses to replace an existing store unless FORCE. Before the restored store is moved into
    place, every deletion in the deletion journal (the appliance's, the copy beside the backup,
    or JOURNALS) is re-applied to it (S18); a journal that cannot be read or verified stops
    the restore. Nothing is changed until the whole file has authenticated, matched its hash,
    opened with its own db-key and had the journal re-applied."""
    target = config.database_path
    if target.exists() and not force:
        raise AlreadyExistsError(
            f"a store already exists at {target}: refusing to overwrite it",
            "restore onto a fresh appliance, or add --force after stopping kairand "
            "(the current store will be replaced)",
        )
    sources = _journal_sources(config, backup, journals)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.restore")
    for stale in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            staging.with_name(staging.name + stale).unlink()
    try:
        opened = _decrypt_to(backup, recovery_key, staging)
        db_key = bytes.fromhex(opened.escrow[secrets.DB_KEY])
        version = store_backup.check_restored(staging, db_key)
        if version > latest_version():
            raise SchemaTooNewError(
                f"the backup has schema version {version}, newer than this program knows",
                "install the Kairan release that made the backup (or newer) and restore again",
            )
        public = _escrowed_signing_key(opened.escrow).public_key()
        entries = journal.merge(*(journal.read_journal(path, public) for path in sources))
        hmac_key = base64.b64decode(opened.escrow[secrets.RECEIPT_HMAC_KEY])
        done = _reapply_to(staging, db_key, entries, hmac_key, backup.name, actor)
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
        own = journal_beside(target)
        if not own.exists():
            # A rebuilt box: continue the chain from the copy that was verified.
            _copy_file(sources[0], own)
            if os.geteuid() == 0:
                os.chown(own, parent_stat.st_uid, parent_stat.st_gid)
    finally:
        for stale in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                staging.with_name(staging.name + stale).unlink()
    log.info(
        "backup.restored",
        file=backup.name,
        schema_version=version,
        created_at=opened.manifest.get("created_at"),
        reapplied_residents=done["residents"],
        reapplied_answers=done["answers"],
    )
    return {**opened.manifest, "reapplied": dict(done)}


def _escrowed_signing_key(escrow: dict[str, str]) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(escrow[secrets.SIGNING_KEY]))
    except (KeyError, ValueError):
        raise DataError(
            "the backup holds no usable signing key: the deletion journal cannot be verified"
        ) from None


def _reapply_to(
    staging: Path,
    db_key: bytes,
    entries: list[journal.JournalEntry],
    hmac_key: bytes,
    file_name: str,
    actor: str,
) -> Counter[str]:
    """Re-apply the journal to the staged store and audit the restore in it."""
    conn = open_connection(staging, db_key)
    try:
        with transaction(conn):
            done = journal.reapply(conn, entries, hmac_key)
            audit.append(
                conn,
                AuditEntry(
                    at_ms=int(time.time() * 1000),
                    actor=actor,
                    action="backup.restore",
                    outcome="ok",
                    target=file_name,
                    detail={"journal_entries": len(entries), **dict(done)},
                ),
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        conn.execute("PRAGMA journal_mode = DELETE").fetchall()
    finally:
        conn.close()
    return done
