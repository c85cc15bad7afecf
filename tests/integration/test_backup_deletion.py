"""Deletion reaches every copy (S18, S11, K2): the signed deletion journal outside the store is
re-applied to every restored backup before anything serves from it; old generations are
destroyed by lifetime, locally and on the mounted target; backups are plain `age` files that
Debian's `age` tool opens without Kairan."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from kairand import ctl
from kairand.audit.chain import verify
from kairand.backup import agefmt, envelope, service
from kairand.config import Config, load_config
from kairand.errors import DataError, ExitCode
from kairand.keys import secrets
from kairand.keys.backends import SERVICE, DirectoryKeyring
from kairand.retention.purge import purge_resident
from kairand.store import audit, receipts, residents
from kairand.store import deletion_journal as journal
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, open_connection
from kairand.store.deletion_journal import JOURNAL_NAME
from tests.support.retention_support import add_resident, decrypted_pages, occurrences

DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 4, 1, 3, 0, tzinfo=dt.UTC)


def _uid(n: int) -> str:
    return "U" + f"{n:032x}"


def _name(n: int) -> str:
    return f"住民テスト{n:04d}"


def _config(path: Path) -> Config:
    config = load_config(path)
    select_keyring(config)
    return config


def _add(config: Config, numbers: range, at: dt.datetime) -> None:
    store = open_store(config)
    try:

        def write(conn: Connection) -> None:
            for n in numbers:
                add_resident(
                    conn,
                    _uid(n),
                    followed=int(at.timestamp()),
                    registered=int(at.timestamp()),
                    answers={"genres": ["bousai"]},
                    display_name=_name(n),
                )

        store.write_sync(write)
    finally:
        store.close()


def _purge(config: Config, numbers: list[int], at: dt.datetime, reason: str = "unfollow") -> None:
    store = open_store(config)
    try:
        hmac_key, signing_key = secrets.receipt_hmac_key(), secrets.signing_key()

        def write(conn: Connection) -> None:
            for n in numbers:
                assert purge_resident(
                    conn, _uid(n), reason, int(at.timestamp()), hmac_key, signing_key
                )

        store.write_sync(write)
        store.checkpoint()
    finally:
        store.close()


def _fresh(root: Path, like: Path) -> Path:
    root.mkdir(mode=0o700)
    for sub in ("state", "run", "keys"):
        (root / sub).mkdir(mode=0o700)
    shutil.copy(like, root / "kairan.toml")
    return root / "kairan.toml"


def _sink(config_path: Path) -> Callable[[str, str], None]:
    keys = DirectoryKeyring(config_path.parent / "keys")
    return lambda name, value: keys.set_password(SERVICE, name, value)


@pytest.fixture
def recovery(short_tmp: Path) -> tuple[Path, Path]:
    key, pub = short_tmp / "recovery.key", short_tmp / "recovery.pub"
    agefmt.generate_recovery_key(key, pub)
    return key, pub


@pytest.mark.req("S18")
@pytest.mark.req("S11")
def test_no_purged_resident_comes_back_from_any_retained_generation(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    """Three daily generations; residents are purged after each. Every retained generation is
    restored onto a rebuilt box (no store, no keys, only the backup folder): the decrypted
    pages of the restored store hold none of the purged ids or names, the residents not purged
    are all there, and every deletion receipt is present (certificates still count them)."""
    key, pub = recovery
    config = _config(dev_setup)
    folder = short_tmp / "backups"
    _add(config, range(0, 30), START - DAY)
    purged: list[int] = []
    made = []
    for day in range(3):
        made.append(service.create_backup(config, pub, folder, now=START + day * DAY).path)
        batch = list(range(day * 5, day * 5 + 5))
        _purge(config, batch, START + day * DAY + dt.timedelta(hours=1))
        purged += batch
    kept = [n for n in range(30) if n not in purged]
    # The journal copy beside the backups is refreshed by a backup; the last purges happened
    # after the last backup, so a rebuilt box must be given the appliance's journal too.
    own_journal = config.database_path.parent / JOURNAL_NAME
    for index, backup in enumerate(made):
        fresh = _fresh(short_tmp / f"fresh{index}", dev_setup)
        # Positive control: the generation itself still holds the residents purged after it.
        control = short_tmp / f"control{index}.db"
        service._decrypt_to(backup, key, control)
        plain = decrypted_pages(secrets.db_key(), control)
        assert occurrences(plain, [_uid(n) for n in purged[index * 5 :]]) == [
            _uid(n) for n in purged[index * 5 :]
        ]
        result = service.restore_backup(
            load_config(fresh),
            backup,
            key,
            _sink(fresh),
            journals=[own_journal, folder / JOURNAL_NAME],
        )
        assert result["reapplied"]["residents"] == len(purged) - index * 5
        restored = load_config(fresh).database_path
        plain = decrypted_pages(secrets.db_key(), restored)
        assert occurrences(plain, [_uid(n) for n in purged]) == []
        assert occurrences(plain, [_name(n) for n in purged]) == []
        assert occurrences(plain, [_uid(n) for n in kept]) == [_uid(n) for n in kept]
        conn = open_connection(restored, secrets.db_key())
        try:
            assert residents.count(conn) == len(kept)
            assert len(receipts.between(conn, 0, 2**40)) == len(purged)
            assert verify(audit.iter_entries(conn)).ok
            [entry] = [e for e in audit.iter_entries(conn) if e.entry.action == "backup.restore"]
            assert entry.entry.detail["residents"] == len(purged) - index * 5
        finally:
            conn.close()
        # The rebuilt box continues the journal from the verified copy.
        assert (restored.parent / JOURNAL_NAME).exists()


@pytest.mark.req("S18")
def test_the_daemon_store_open_reapplies_the_journal(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    """A store put back by hand (an old copy of the file) is corrected when it is opened, before
    the daemon could serve from it; a resident who followed again after the purge is kept."""
    config = _config(dev_setup)
    _add(config, range(0, 4), START)
    old = short_tmp / "old.db"
    store = open_store(config)
    store.checkpoint()
    store.close()
    shutil.copy(config.database_path, old)
    _purge(config, [0, 1], START + DAY)
    _add(config, range(1, 2), START + 2 * DAY)  # resident 1 comes back by re-following
    shutil.copy(config.database_path, short_tmp / "current.db")
    for suffix in ("-wal", "-shm"):
        config.database_path.with_name(config.database_path.name + suffix).unlink(missing_ok=True)
    shutil.copy(old, config.database_path)
    store = open_store(config)
    try:
        uids = store.read_sync(
            lambda conn: {r[0] for r in conn.execute("SELECT line_user_id FROM residents")}
        )
    finally:
        store.close()
    assert uids == {_uid(2), _uid(3)}  # the old file predates the re-follow
    shutil.copy(short_tmp / "current.db", config.database_path)
    store = open_store(config)
    try:
        uids = store.read_sync(
            lambda conn: {r[0] for r in conn.execute("SELECT line_user_id FROM residents")}
        )
    finally:
        store.close()
    assert uids == {_uid(1), _uid(2), _uid(3)}  # the re-followed resident is not purged


@pytest.mark.req("S18")
def test_restore_refuses_without_a_readable_journal(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    """No journal anywhere, an altered line, a removed line or an incomplete last line: the
    restore is refused (exit 65) and the rebuilt box keeps no store and no keys."""
    key, pub = recovery
    config = _config(dev_setup)
    _add(config, range(0, 6), START)
    info = service.create_backup(config, pub, short_tmp / "b", now=START)
    _purge(config, [0, 1, 2], START + DAY)
    own = config.database_path.parent / JOURNAL_NAME
    lines = own.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    fresh = _fresh(short_tmp / "fresh", dev_setup)
    copy = info.path.parent / JOURNAL_NAME
    copy.unlink()
    with pytest.raises(journal.JournalError, match="no deletion journal"):
        service.restore_backup(load_config(fresh), info.path, key, _sink(fresh))
    altered = lines[1].replace(b'"unfollow"', b'"request"')
    assert altered != lines[1]
    cases = {
        "altered": lines[0] + altered + lines[2],
        "removed": lines[0] + lines[2],
        "incomplete": b"".join(lines)[:-10],
        "not json": b"".join(lines) + b"{\n",
    }
    for name, data in cases.items():
        bad = short_tmp / f"{name.replace(' ', '-')}.jsonl"
        bad.write_bytes(data)
        rc = ctl.main(
            [
                "--config",
                str(fresh),
                "backup",
                "restore",
                str(info.path),
                "--recovery-key",
                str(key),
                "--journal",
                str(bad),
            ]
        )
        assert rc == ExitCode.DATA, name
        assert not list((fresh.parent / "state").iterdir()), name
        assert not list((fresh.parent / "keys").iterdir()), name
    # And the intact journal works, through the same command.
    rc = ctl.main(
        [
            "--config",
            str(fresh),
            "backup",
            "restore",
            str(info.path),
            "--recovery-key",
            str(key),
            "--journal",
            str(own),
        ]
    )
    assert rc == ExitCode.OK


@pytest.mark.req("S18")
def test_the_daemon_refuses_to_open_a_store_beside_a_damaged_journal(dev_setup: Path) -> None:
    config = _config(dev_setup)
    _add(config, range(0, 2), START)
    _purge(config, [0], START + DAY)
    own = config.database_path.parent / JOURNAL_NAME
    own.write_bytes(own.read_bytes().replace(b"unfollow", b"request "))
    with pytest.raises(DataError, match="fails verification at line 1"):
        open_store(config)


@pytest.mark.req("S18")
def test_generations_older_than_the_lifetime_are_destroyed_locally_and_on_the_mirror(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    """Daily backups for 20 days with a 7-day lifetime and no count limit: after each run, no
    generation older than 7 days exists in either place, and each destruction is audited."""
    _, pub = recovery
    config = _config(dev_setup)
    _add(config, range(0, 3), START)
    local, mirror = short_tmp / "local", short_tmp / "mnt"
    mirror.mkdir()
    for day in range(20):
        now = START + day * DAY
        service.create_backup(config, pub, local, keep=0, lifetime_days=7, mirror=mirror, now=now)
        for place in (local, mirror):
            stamps = [
                dt.datetime.strptime(p.name[7:23], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                for p in place.glob("*.tar.age")
            ]
            assert stamps and min(stamps) >= now - 7 * DAY, (day, place)
            assert (place / JOURNAL_NAME).exists()
    assert len(list(local.glob("*.tar.age"))) == len(list(mirror.glob("*.tar.age"))) == 8
    conn = open_connection(config.database_path, secrets.db_key())
    try:
        actions = [e.entry for e in audit.iter_entries(conn)]
    finally:
        conn.close()
    destroyed = [f for e in actions if e.action == "backup.destroy" for f in e.detail["files"]]
    assert len(destroyed) == 2 * 12
    assert sum(1 for e in actions if e.action == "backup.create") == 20


@pytest.mark.req("S18")
def test_an_unmounted_mirror_fails_the_backup_clearly(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    _, pub = recovery
    config = _config(dev_setup)
    with pytest.raises(service.BackupError, match="not mounted"):
        service.create_backup(config, pub, short_tmp / "b", mirror=short_tmp / "absent")
    assert not (short_tmp / "b").exists()


@pytest.mark.req("S9")
def test_debian_age_alone_opens_a_backup(
    dev_setup: Path, recovery: tuple[Path, Path], short_tmp: Path
) -> None:
    """Exactly what the manual tells the recovery-key holder: `age -d -i KEY FILE | tar -x`
    gives the README, the manifest, the secrets and the store; the store opens with the db-key
    from secrets.json and matches the manifest's SHA-256."""
    key, pub = recovery
    config = _config(dev_setup)
    _add(config, range(0, 3), START)
    info = service.create_backup(config, pub, short_tmp / "b", now=START)
    out = short_tmp / "opened"
    out.mkdir()
    age = subprocess.run(
        ["age", "-d", "-i", str(key), str(info.path)], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(out)], input=age.stdout, check=True)
    folder = out / "kairan-backup"
    assert sorted(p.name for p in folder.iterdir()) == sorted(agefmt.MEMBERS)
    manifest = json.loads((folder / "manifest.json").read_text())
    escrow = json.loads((folder / "secrets.json").read_text())
    assert escrow[secrets.DB_KEY] == secrets.get_secret(secrets.DB_KEY)
    assert (
        hashlib.sha256((folder / "kairan.db").read_bytes()).hexdigest()
        == (manifest["plaintext_sha256"])
    )
    conn = open_connection(folder / "kairan.db", bytes.fromhex(escrow[secrets.DB_KEY]))
    try:
        assert residents.count(conn) == 3
    finally:
        conn.close()
    # A wrong identity: age refuses.
    other_key, other_pub = short_tmp / "o.key", short_tmp / "o.pub"
    agefmt.generate_recovery_key(other_key, other_pub)
    wrong = subprocess.run(["age", "-d", "-i", str(other_key), str(info.path)], capture_output=True)
    assert wrong.returncode != 0 and not wrong.stdout


@pytest.mark.req("S9")
def test_legacy_v1_backups_and_pem_keys_still_work(dev_setup: Path, short_tmp: Path) -> None:
    """A .kbak file written by the previous release (the v1 envelope, X25519 PEM key) is
    restored; the same PEM key pair seals new age backups, opened by Debian's age with the
    converted identity."""
    config = _config(dev_setup)
    _add(config, range(0, 2), START)
    pem_key, pem_pub = short_tmp / "old.key", short_tmp / "old.pub"
    envelope.generate_recovery_key(pem_key, pem_pub)
    folder = short_tmp / "b"
    folder.mkdir()
    legacy = folder / "kairan-20260101T000000Z.kbak"
    _write_legacy(config, pem_pub, legacy)
    fresh = _fresh(short_tmp / "fresh", dev_setup)
    (folder / JOURNAL_NAME).touch()
    service.restore_backup(load_config(fresh), legacy, pem_key, _sink(fresh))
    conn = open_connection(load_config(fresh).database_path, secrets.db_key())
    try:
        assert residents.count(conn) == 2
    finally:
        conn.close()
    info = service.create_backup(config, pem_pub, folder, now=START)
    assert agefmt.is_age_file(info.path)
    identity = short_tmp / "converted.txt"
    identity.write_text(agefmt.identity_from_x25519(envelope.load_recovery_key(pem_key)) + "\n")
    opened = subprocess.run(["age", "-d", "-i", str(identity), str(info.path)], capture_output=True)
    assert opened.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(opened.stdout)) as tar:
        names = tar.getnames()
    assert "kairan-backup/kairan.db" in names
    assert [i.manifest.get("format") for i in service.list_backups(folder)] == [
        1,
        agefmt.FORMAT,
    ]


def _write_legacy(config: Config, recipient: Path, target: Path) -> None:
    from kairand.store import backup as store_backup

    copy = target.with_name("copy.db")
    store_backup.copy_store(config.database_path, secrets.db_key(), copy)
    digest, size = service._sha256_file(copy)
    manifest = {
        "created_at": "2026-01-01T00:00:00+00:00",
        "schema_version": 1,
        "plaintext_sha256": digest,
        "plaintext_size": size,
        "chunk_size": 65536,
    }
    escrow = {name: secrets.get_secret(name) for name in service.ESCROWED}
    with target.open("wb") as out:
        writer = envelope.SealedWriter(out, envelope.load_recipient(recipient), manifest)
        writer.write_record(json.dumps(escrow).encode())
        data = copy.read_bytes()
        chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        for index, chunk in enumerate(chunks):
            writer.write_record(chunk, final=index == len(chunks) - 1)
    copy.unlink()


def test_journal_holds_no_personal_data(dev_setup: Path) -> None:
    config = _config(dev_setup)
    _add(config, range(0, 3), START)
    _purge(config, [0, 1, 2], START + DAY)
    data = (config.database_path.parent / JOURNAL_NAME).read_bytes()
    assert occurrences(data, [_uid(n) for n in range(3)] + [_name(n) for n in range(3)]) == []
    assert len(data.splitlines()) == 3
