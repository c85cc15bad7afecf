"""Sealed backups end to end: real SQLCipher stores, real keyring files, kairanctl (S9, K4)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kairand import ctl
from kairand.backup import agefmt, service
from kairand.config import load_config
from kairand.errors import AlreadyExistsError, DataError, ExitCode
from kairand.keys import secrets
from kairand.keys.backends import SERVICE, DirectoryKeyring
from kairand.store import backup as store_backup
from kairand.store import settings, staff
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import open_connection

NOW = 1_790_000_000


def fill(config_path: Path, n: int) -> None:
    """Real rows in several tables: staff roster entries and settings."""
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    try:
        for i in range(n):
            store.write_sync(
                staff.upsert,
                staff.StaffRecord(
                    username=f"staff{i:03d}",
                    display_name=f"職員{i}",
                    roles=("author",),
                    handles_personal_data=True,
                    active=True,
                ),
                NOW + i,
            )
        store.write_sync(settings.put, "test.marker", {"rows": n, "text": "回覧"})
    finally:
        store.close()


def snapshot(config_path: Path) -> tuple[list, object]:
    config = load_config(config_path)
    select_keyring(config)
    store = open_store(config)
    try:
        people = store.read_sync(lambda conn: staff.all_staff(conn))
        marker = store.read_sync(settings.get, "test.marker")
        return sorted((p.username, p.display_name, p.roles) for p in people), marker
    finally:
        store.close()


def fresh_appliance(root: Path, like: Path) -> Path:
    """A second setup with the same config shape but no store and an empty keyring folder."""
    root.mkdir(mode=0o700)
    for sub in ("state", "run", "keys"):
        (root / sub).mkdir(mode=0o700)
    config = root / "kairan.toml"
    shutil.copy(like, config)
    return config


@pytest.fixture
def recovery(short_tmp: Path) -> tuple[Path, Path]:
    key, pub = short_tmp / "recovery.key", short_tmp / "recovery.pub"
    assert ctl.main(["backup", "keygen", "--private", str(key), "--public", str(pub)]) == 0
    return key, pub


def run_ctl(config: Path, *args: str) -> int:
    return ctl.main(["--config", str(config), *args])


def test_round_trip_onto_a_fresh_appliance(dev_setup: Path, recovery, short_tmp: Path) -> None:
    """S9, K4: `backup create` then `backup restore` on a box with no store and no keys gives
    back every row, the escrowed secrets, and a store that opens with the restored db-key."""
    key, pub = recovery
    fill(dev_setup, 40)
    before = snapshot(dev_setup)
    backups = short_tmp / "backups"
    assert (
        run_ctl(dev_setup, "backup", "create", "--directory", str(backups), "--recipient", str(pub))
        == 0
    )
    [made] = list(backups.glob("*.tar.age"))
    assert made.stat().st_mode & 0o777 == 0o600
    # The sealed file shows neither the db-key nor the store's plaintext SQLite header.
    original_keys = DirectoryKeyring(dev_setup.parent / "keys")
    db_key_hex = original_keys.get_password(SERVICE, secrets.DB_KEY)
    assert db_key_hex is not None
    blob = made.read_bytes()
    assert db_key_hex.encode() not in blob and b"SQLite format 3" not in blob

    fresh = fresh_appliance(short_tmp / "fresh", dev_setup)
    assert run_ctl(fresh, "backup", "restore", str(made), "--recovery-key", str(key)) == 0
    restored_keys = DirectoryKeyring(fresh.parent / "keys")
    for name in service.ESCROWED:
        assert restored_keys.get_password(SERVICE, name) == original_keys.get_password(
            SERVICE, name
        )
    for name in (secrets.CHANNEL_SECRET, secrets.CHANNEL_ACCESS_TOKEN):
        assert restored_keys.get_password(SERVICE, name) is None  # re-issued from LINE instead
    assert (fresh.parent / "state" / "kairan.db").stat().st_mode & 0o077 == 0
    # A fresh box still needs its LINE credentials; then the whole store opens and matches.
    for name in (secrets.CHANNEL_SECRET, secrets.CHANNEL_ACCESS_TOKEN):
        restored_keys.set_password(SERVICE, name, secrets.generate(name))
    assert snapshot(fresh) == before
    # The live store records the backup for health and doctor (the copy predates that record).
    for path, expected in ((dev_setup, made.name), (fresh, None)):
        conn = open_connection(load_config(path).database_path, bytes.fromhex(db_key_hex))
        try:
            assert settings.get(conn, "backup.last_file") == expected
        finally:
            conn.close()


def test_restore_refuses_existing_store_unless_forced(dev_setup: Path, recovery, short_tmp) -> None:
    """S9: restoring over a live store is refused (exit 80) unless --force."""
    key, pub = recovery
    fill(dev_setup, 3)
    info = service.create_backup(load_config(dev_setup), pub, short_tmp / "b")
    fill_more = snapshot(dev_setup)
    assert (
        run_ctl(dev_setup, "backup", "restore", str(info.path), "--recovery-key", str(key))
        == ExitCode.EXISTS
    )
    config = load_config(dev_setup)
    select_keyring(config)
    store = open_store(config)
    store.write_sync(settings.put, "test.marker", "changed after the backup")
    store.close()
    assert (
        run_ctl(
            dev_setup, "backup", "restore", str(info.path), "--recovery-key", str(key), "--force"
        )
        == 0
    )
    assert snapshot(dev_setup) == fill_more


def test_tampered_truncated_and_wrong_key_backups_change_nothing(
    dev_setup: Path, recovery, short_tmp: Path
) -> None:
    """S9: a flipped byte, a cut file or another recovery key is refused with DataError (exit 65)
    and the fresh appliance is left without a store and without keys."""
    key, pub = recovery
    fill(dev_setup, 5)
    info = service.create_backup(load_config(dev_setup), pub, short_tmp / "b")
    data = info.path.read_bytes()
    other_key, other_pub = short_tmp / "o.key", short_tmp / "o.pub"
    agefmt.generate_recovery_key(other_key, other_pub)
    # age: header ending "--- mac\n", a 16-byte nonce, then 64 KiB + 16-byte tag chunks.
    payload = data.index(b"\n", data.index(b"\n---")) + 1 + 16
    assert len(data) > payload + 2 * (65536 + 16), "the backup must span several age chunks"
    cases = {
        "flipped": data[: len(data) // 2]
        + bytes([data[len(data) // 2] ^ 0x80])
        + data[len(data) // 2 + 1 :],
        "truncated": data[: len(data) - 100],
        "cut-at-boundary": data[: payload + 65536 + 16],
        "header-only": data[:payload],
    }
    fresh = fresh_appliance(short_tmp / "fresh", dev_setup)
    for name, blob in cases.items():
        # Beside the real backup, so the deletion journal copy is found: the refusal below is
        # the damaged file's, not a missing journal's.
        damaged = info.path.parent / f"{name}.tar.age"
        damaged.write_bytes(blob)
        with pytest.raises(DataError):
            service.restore_backup(load_config(fresh), damaged, key, service.keyring_sink)
        assert (
            run_ctl(fresh, "backup", "restore", str(damaged), "--recovery-key", str(key))
            == ExitCode.DATA
        ), name
        assert (
            run_ctl(fresh, "backup", "verify", str(damaged), "--recovery-key", str(key))
            == ExitCode.DATA
        ), name
    with pytest.raises(DataError, match="cannot be decrypted with this recovery key"):
        service.verify_backup(info.path, other_key)
    assert not list((fresh.parent / "state").iterdir())
    assert not list((fresh.parent / "keys").iterdir())


def test_backup_is_consistent_while_the_store_is_written(
    dev_setup: Path, recovery, short_tmp: Path
) -> None:
    """S9: the online copy is a consistent snapshot: taken while another connection commits
    rows, the restored store passes SQLCipher's and SQLite's integrity checks and holds a count
    of rows between what existed before and after."""
    key, pub = recovery
    config = load_config(dev_setup)
    select_keyring(config)
    store = open_store(config)
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            store.write_sync(
                staff.upsert,
                staff.StaffRecord(f"w{written[0]:05d}", "書込", ("author",), False, True),
                NOW,
            )
            written[0] += 1
            # A zero-gap loop would hold the write lock almost all the time and starve the
            # backup's final BEGIN IMMEDIATE (SQLite's busy handler polls); the daemon's writer
            # always has gaps. 1 ms still commits hundreds of rows during the copy.
            stop.wait(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 3:
            threading.Event().wait(0.01)
        before = written[0]
        info = service.create_backup(config, pub, short_tmp / "b")
        after = written[0]
    finally:
        stop.set()
        thread.join()
        store.close()
    fresh = fresh_appliance(short_tmp / "fresh", dev_setup)
    service.restore_backup(load_config(fresh), info.path, key, _dir_sink(fresh))
    restored_key = DirectoryKeyring(fresh.parent / "keys").get_password(SERVICE, secrets.DB_KEY)
    assert restored_key is not None
    conn = open_connection(load_config(fresh).database_path, bytes.fromhex(restored_key))
    try:
        assert conn.execute("PRAGMA cipher_integrity_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        count = conn.execute("SELECT count(*) FROM staff WHERE username LIKE 'w%'").fetchone()[0]
    finally:
        conn.close()
    assert before <= count <= after + 1


def test_copy_is_the_committed_snapshot_while_a_writer_holds_a_transaction(
    dev_setup: Path, short_tmp: Path
) -> None:
    """S9: the online copy does not wait for, and does not include, a write transaction that is
    open (uncommitted) while it runs; everything committed before is in it."""
    fill(dev_setup, 4)
    config = load_config(dev_setup)
    select_keyring(config)
    key = secrets.db_key()
    writer = open_connection(config.database_path, key)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM staff")
        started = time.monotonic()
        store_backup.copy_store(config.database_path, key, short_tmp / "copy.db")
        assert time.monotonic() - started < 5  # not blocked until busy_timeout
    finally:
        writer.execute("COMMIT")
        writer.close()
    copy = open_connection(short_tmp / "copy.db", key)
    try:
        names = {row[0] for row in copy.execute("SELECT username FROM staff")}
    finally:
        copy.close()
    assert {f"staff{i:03d}" for i in range(4)} <= names


def _dir_sink(config_path: Path):
    keys = DirectoryKeyring(config_path.parent / "keys")
    return lambda name, value: keys.set_password(SERVICE, name, value)


def test_retention_keeps_the_newest_generations(dev_setup: Path, recovery, short_tmp) -> None:
    """S9: with --keep N only the N newest backups remain; `backup list` shows their manifests."""
    _, pub = recovery
    config = load_config(dev_setup)
    select_keyring(config)
    folder = short_tmp / "b"
    start = dt.datetime(2026, 4, 1, 2, 30, tzinfo=dt.UTC)
    made = [
        service.create_backup(config, pub, folder, keep=3, now=start + dt.timedelta(days=d)).path
        for d in range(5)
    ]
    left = sorted(p.name for p in folder.glob("*.tar.age"))
    assert left == sorted(p.name for p in made[-3:])
    listed = service.list_backups(folder)
    assert [i.manifest["created_at"][:10] for i in listed] == [
        "2026-04-03",
        "2026-04-04",
        "2026-04-05",
    ]
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".tar.age")) == [
        "deletion-journal.jsonl"
    ]
    assert run_ctl(dev_setup, "backup", "list", "--directory", str(folder)) == 0


def test_restore_into_systemd_credstore(dev_setup: Path, recovery, short_tmp: Path) -> None:
    """S9, K4: on an appliance the restored secrets are sealed with systemd-creds (here to a
    throwaway host key) and decrypt back to the escrowed values."""
    key, pub = recovery
    info = service.create_backup(load_config(dev_setup), pub, short_tmp / "b")
    fresh = fresh_appliance(short_tmp / "fresh", dev_setup)
    credstore = short_tmp / "credstore"
    env_key = short_tmp / "host.secret"
    old = os.environ.get("SYSTEMD_CREDENTIAL_SECRET")
    os.environ["SYSTEMD_CREDENTIAL_SECRET"] = str(env_key)
    try:
        service.restore_backup(
            load_config(fresh), info.path, key, service.credstore_sink(credstore, with_key="host")
        )
        original = DirectoryKeyring(dev_setup.parent / "keys")
        for name in service.ESCROWED:
            sealed = (credstore / name).read_bytes()
            escrowed = original.get_password(SERVICE, name)
            assert escrowed is not None and escrowed.encode() not in sealed
            assert (credstore / name).stat().st_mode & 0o777 == 0o600
            plain = subprocess.run(
                ["systemd-creds", "decrypt", f"--name={name}", str(credstore / name), "-"],
                capture_output=True,
                check=True,
            ).stdout.decode()
            assert plain == original.get_password(SERVICE, name)
    finally:
        if old is None:
            os.environ.pop("SYSTEMD_CREDENTIAL_SECRET", None)
        else:
            os.environ["SYSTEMD_CREDENTIAL_SECRET"] = old


def test_create_without_recipient_or_store_fails_clearly(dev_setup: Path, short_tmp) -> None:
    """S9: a missing recovery public key is a configuration error (exit 78), nothing written."""
    rc = run_ctl(
        dev_setup,
        "backup",
        "create",
        "--directory",
        str(short_tmp / "b"),
        "--recipient",
        str(short_tmp / "none.pub"),
    )
    assert rc == ExitCode.CONFIG
    assert not (short_tmp / "b").exists()
    with pytest.raises(AlreadyExistsError):
        agefmt.generate_recovery_key(dev_setup, short_tmp / "x.pub")
