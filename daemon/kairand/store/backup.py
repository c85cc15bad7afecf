"""The store side of backups: an online-consistent copy, checks on a restored file, and the
"last backup" facts kept in `settings` for health and doctor."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kairand.errors import DataError, SecretError, StoreError
from kairand.store import settings
from kairand.store.database import Connection, DatabaseError, open_connection
from kairand.store.migrations import current_version

LAST_OK_AT = "backup.last_ok_at"
LAST_FILE = "backup.last_file"
LAST_SIZE = "backup.last_size"
LOCATIONS = "backup.locations"


def copy_store(source: Path, key: bytes, target: Path) -> int:
    """Copy the live store at SOURCE to a new file TARGET, encrypted with the same KEY, using
    SQLite's online backup API (a consistent snapshot while the daemon keeps writing).
    Returns the schema version of the copy.

    The copy is one backup step: in WAL mode that step reads one snapshot while writers carry
    on. Copying in several steps would restart whenever the daemon commits in between, and a
    busy daemon could starve the backup for ever."""
    src = open_connection(source, key)
    try:
        dst = open_connection(target, key)
        try:
            src.backup(dst, pages=-1)
            # One self-contained file: fold and drop the copy's WAL before it is read back.
            dst.execute("PRAGMA journal_mode = DELETE").fetchall()
            return current_version(dst)
        finally:
            dst.close()
    finally:
        src.close()


def check_restored(path: Path, key: bytes) -> int:
    """Open a decrypted-from-backup store file with its key, check it is sound, and return its
    schema version. Raises DataError when the file is damaged or the key does not open it."""
    try:
        conn = open_connection(path, key)
    except (SecretError, StoreError) as exc:
        raise DataError(
            f"the restored store cannot be opened with the escrowed db-key: {exc.message}",
            "the backup is inconsistent; restore another generation",
        ) from None
    try:
        problems = conn.execute("PRAGMA cipher_integrity_check").fetchall()
        quick = conn.execute("PRAGMA quick_check").fetchall()
        if problems or quick != [("ok",)]:
            raise DataError("the restored store fails its integrity check")
        version = current_version(conn)
        conn.execute("PRAGMA journal_mode = DELETE").fetchall()
        return version
    except DatabaseError as exc:
        raise DataError(f"the restored store is damaged: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def record_success(conn: Connection, at: int, file_name: str, size: int) -> None:
    settings.put(conn, LAST_OK_AT, at)
    settings.put(conn, LAST_FILE, file_name)
    settings.put(conn, LAST_SIZE, size)


def record_locations(
    conn: Connection, places: list[str], keep: int | None, lifetime_days: int | None
) -> None:
    """Where the generations are and how long they live (for the handling report)."""
    settings.put(conn, LOCATIONS, {"places": places, "keep": keep, "lifetime_days": lifetime_days})


def last_backup(conn: Connection) -> dict[str, Any]:
    return {
        "last_ok_at": settings.get(conn, LAST_OK_AT),
        "last_file": settings.get(conn, LAST_FILE),
        "last_size": settings.get(conn, LAST_SIZE),
        "locations": settings.get(conn, LOCATIONS),
    }


def schema_version(conn: Connection) -> int:
    return current_version(conn)
