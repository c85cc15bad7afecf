"""Numbered schema migrations, applied strictly in order.

Each module `mNNNN_<name>.py` in this package defines `VERSION: int` (equal to NNNN),
`DESCRIPTION: str` and `def upgrade(conn) -> None`; a no-op kept only to fill a number also sets
`PLACEHOLDER = True`. They are discovered by file name, so concerns can add migrations without
editing a shared list. Each runs in its own transaction together with its row in
`schema_version`.

Order is a guarantee, not a hope: the files must number 1, 2, 3, ... with no gap, no duplicate
and no file whose name disagrees with its VERSION; a store must hold every version up to its
newest (a missing placeholder is recorded, a missing real migration is refused, since it would
run after later ones); and a store newer than the code is refused. Each refusal is a
`MigrationOrderError` or `SchemaTooNewError` (exit code 79) and applies nothing.
See docs/development.md, "Adding a migration".
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

from kairand.errors import MigrationOrderError, SchemaTooNewError
from kairand.store.database import Connection, transaction

FILE_NAME = re.compile(r"^m(\d{4})_[a-z0-9_]+$")


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[Connection], None]
    placeholder: bool = False


def discover(package: str, path: Iterable[str]) -> list[Migration]:
    """The migrations of PACKAGE (its __path__ is PATH), checked to be 1..N in order."""
    found: dict[int, tuple[str, Migration]] = {}
    for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
        if not info.name.startswith("m"):
            continue
        match = FILE_NAME.match(info.name)
        if match is None:
            raise MigrationOrderError(
                f"migration file {info.name}.py is not named mNNNN_<name>.py",
                "rename it to the next free number, e.g. m0010_<what>.py",
            )
        module: ModuleType = importlib.import_module(f"{package}.{info.name}")
        version = int(module.VERSION)
        if version != int(match.group(1)):
            raise MigrationOrderError(
                f"migration file {info.name}.py declares VERSION = {version}",
                "the number in the file name and VERSION must be the same",
            )
        migration = Migration(
            version, module.DESCRIPTION, module.upgrade, bool(getattr(module, "PLACEHOLDER", 0))
        )
        if version in found:
            raise MigrationOrderError(
                f"two migrations claim version {version}: {found[version][0]}.py and"
                f" {info.name}.py",
                "give the newer one the next free number",
            )
        found[version] = (info.name, migration)
    versions = sorted(found)
    for expected, version in enumerate(versions, start=1):
        if version != expected:
            raise MigrationOrderError(
                f"migration {expected} is missing (the files jump to {version})",
                "migrations must be numbered 1, 2, 3, ... with no gap: add a placeholder"
                " (PLACEHOLDER = True, an upgrade that does nothing) for the missing number",
            )
    return [found[v][1] for v in versions]


def all_migrations() -> list[Migration]:
    return discover(__name__, __path__)


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


def migrate(conn: Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Bring the store to the newest version, strictly in order; return the versions applied.

    Refuses (applying nothing) a store newer than the code, and a store that lacks a real
    migration older than its newest one; a missing placeholder is only recorded."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    if migrations is None:
        migrations = all_migrations()
    done = applied_versions(conn)
    have = max(done, default=0)
    newest_known = migrations[-1].version if migrations else 0
    if have > newest_known:
        raise SchemaTooNewError(
            f"the store has schema version {have}, newer than this program knows ({newest_known})",
            "install the Kairan release that created this store, or restore a matching backup",
        )
    skipped = [m for m in migrations if m.version < have and m.version not in done]
    real = [m.version for m in skipped if not m.placeholder]
    if real:
        raise MigrationOrderError(
            f"the store is at schema version {have} but lacks migration {real[0]}, which must"
            " run before the later ones; nothing was changed",
            "restore a backup taken by this release, or report it with `kairanctl doctor` output",
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
