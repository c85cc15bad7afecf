"""Numbered schema migrations.

Each module `mNNNN_<name>.py` in this package defines `VERSION: int`, `DESCRIPTION: str` and
`def upgrade(conn) -> None`. They are discovered by file name, so concerns can add migrations
without editing a shared list. Each runs in its own transaction together with its row in
`schema_version`; a database newer than the code is refused.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from kairand.errors import SchemaTooNewError
from kairand.store.database import Connection, transaction


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None]


def all_migrations() -> list[Migration]:
    found: dict[int, Migration] = {}
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("m"):
            continue
        module: ModuleType = importlib.import_module(f"{__name__}.{info.name}")
        migration = Migration(module.VERSION, module.DESCRIPTION, module.upgrade)
        if migration.version in found:
            raise RuntimeError(f"two migrations claim version {migration.version}")
        found[migration.version] = migration
    return [found[v] for v in sorted(found)]


def latest_version() -> int:
    return all_migrations()[-1].version


def applied_versions(conn: Connection) -> set[int]:
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if not exists:
        return set()
    return {int(row[0]) for row in conn.execute("SELECT version FROM schema_version")}


def current_version(conn: Connection) -> int:
    return max(applied_versions(conn), default=0)


def migrate(conn: Connection) -> list[int]:
    """Apply every migration newer than the store; return the versions applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    migrations = all_migrations()
    done = applied_versions(conn)
    have = max(done, default=0)
    newest_known = migrations[-1].version
    if have > newest_known:
        raise SchemaTooNewError(
            f"the store has schema version {have}, newer than this program knows ({newest_known})",
            "install the Kairan release that created this store, or restore a matching backup",
        )
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        with transaction(conn):
            migration.upgrade(conn)
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, int(time.time())),
            )
        applied.append(migration.version)
    return applied
