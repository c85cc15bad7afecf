"""Migrations always run in order: the files form 1..N, and a store is brought up strictly in
sequence (a gap, a duplicate, a misnamed file or a store missing a real older migration is
refused with exit code 79 and nothing applied)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kairand.config import Config
from kairand.errors import ExitCode, MigrationOrderError
from kairand.keys import secrets
from kairand.store import settings
from kairand.store.database import Connection, open_connection, transaction
from kairand.store.migrations import (
    Migration,
    all_migrations,
    applied_versions,
    current_version,
    discover,
    latest_version,
    migrate,
)

FIELD_VERSIONS = (1, 2, 4, 5, 6, 9)  # what stores installed before the placeholders hold
_packages = itertools.count()

BODY = (
    "from kairand.store.database import Connection\n"
    "VERSION = {version}\n"
    "DESCRIPTION = 'test {version}'\n"
    "def upgrade(conn: Connection) -> None:\n"
    "    conn.execute('CREATE TABLE t{version} (x)')\n"
)


def _package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, int]
) -> tuple[str, list[str]]:
    """A throwaway migrations package holding FILES (module name -> its VERSION)."""
    name = f"kt_migrations_{next(_packages)}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, version in files.items():
        (folder / f"{module}.py").write_text(BODY.format(version=version))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, [str(folder)]


def test_the_shipped_migrations_are_contiguous_from_one() -> None:
    versions = [m.version for m in all_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert latest_version() == versions[-1] >= 9
    placeholders = {m.version for m in all_migrations() if m.placeholder}
    assert placeholders == {3, 7, 8}


def test_a_placeholder_changes_nothing(tmp_path: Path) -> None:
    conn = open_connection(tmp_path / "p.db", b"\x02" * 32)
    try:
        before = conn.execute("SELECT name FROM sqlite_master").fetchall()
        for migration in all_migrations():
            if migration.placeholder:
                migration.upgrade(conn)
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == before
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"m0001_a": 1, "m0002_b": 2, "m0004_c": 4}, "migration 3 is missing"),
        ({"m0002_a": 2}, "migration 1 is missing"),
        ({"m0001_a": 1, "m0002_b": 2, "m0002_c": 2}, "two migrations claim version 2"),
        ({"m0001_a": 1, "m0002_b": 3}, "m0002_b.py declares VERSION = 3"),
        ({"m0001_a": 1, "m2_b": 2}, "m2_b.py is not named mNNNN_<name>.py"),
    ],
    ids=["gap", "no-first", "duplicate", "name-disagrees", "misnamed"],
)
def test_a_broken_sequence_of_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, int], message: str
) -> None:
    name, path = _package(tmp_path, monkeypatch, files)
    with pytest.raises(MigrationOrderError, match=message) as caught:
        discover(name, path)
    assert caught.value.exit_code == int(ExitCode.SCHEMA) == 79
    assert caught.value.hint


def test_a_good_sequence_is_discovered_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, path = _package(tmp_path, monkeypatch, {"m0002_b": 2, "m0001_a": 1, "m0003_c": 3})
    assert [m.version for m in discover(name, path)] == [1, 2, 3]


def _field_store(conn: Connection) -> None:
    """A store as installed in the field before the placeholders existed: 1, 2, 4, 5, 6, 9."""
    conn.execute(
        "CREATE TABLE schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)"
    )
    for migration in all_migrations():
        if migration.version in FIELD_VERSIONS:
            with transaction(conn):
                migration.upgrade(conn)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (migration.version, migration.description, int(time.time())),
                )


def test_a_field_store_at_version_9_records_the_placeholders_and_keeps_working(
    tmp_path: Path,
) -> None:
    conn = open_connection(tmp_path / "field.db", b"\x03" * 32)
    try:
        _field_store(conn)
        with transaction(conn):
            settings.put(conn, "kept", {"a": 1})
        schema_before = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert current_version(conn) == 9
        applied = migrate(conn)
        assert applied[:3] == [3, 7, 8]
        assert all(v > 9 for v in applied[3:])
        assert applied_versions(conn) == set(range(1, latest_version() + 1))
        if latest_version() == 9:
            after = conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
            assert after == schema_before
        assert settings.get(conn, "kept") == {"a": 1}
        assert migrate(conn) == []
    finally:
        conn.close()


def test_a_store_lacking_a_real_older_migration_is_refused(tmp_path: Path) -> None:
    conn = open_connection(tmp_path / "odd.db", b"\x04" * 32)
    try:
        _field_store(conn)
        with transaction(conn):
            conn.execute("DELETE FROM schema_version WHERE version = 5")
        rows_before = sorted(applied_versions(conn))
        with pytest.raises(MigrationOrderError, match="lacks migration 5") as caught:
            migrate(conn)
        assert caught.value.exit_code == ExitCode.SCHEMA
        assert sorted(applied_versions(conn)) == rows_before  # nothing recorded, not even 3
    finally:
        conn.close()


def test_migrate_applies_a_given_sequence_strictly_in_order(tmp_path: Path) -> None:
    order: list[int] = []

    def step(version: int) -> Migration:
        return Migration(version, f"step {version}", lambda conn: order.append(version))

    conn = open_connection(tmp_path / "seq.db", b"\x05" * 32)
    try:
        assert migrate(conn, [step(1), step(2), step(3)]) == [1, 2, 3]
        assert order == [1, 2, 3]
    finally:
        conn.close()


def test_kairand_exits_79_on_a_store_missing_an_older_migration(
    config: Config, dev_setup: Path
) -> None:
    """The daemon refuses to start (exit 79, explained) rather than run a migration late."""
    conn = open_connection(config.database_path, secrets.db_key())
    try:
        with transaction(conn):
            conn.execute("DELETE FROM schema_version WHERE version = 4")
    finally:
        conn.close()
    result = subprocess.run(
        [sys.executable, "-m", "kairand", "--config", str(dev_setup), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == int(ExitCode.SCHEMA) == 79
    assert "lacks migration 4" in result.stderr
    assert "hint:" in result.stderr
