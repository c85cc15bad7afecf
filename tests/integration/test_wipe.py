"""Contract-end wipe (S13): no readable personal data is left under the state directory, the
store cannot be opened any more, and the signed final record keeps the audit head and every
receipt digest."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from kairand import ctl
from kairand.audit.chain import AuditEntry
from kairand.config import Config, load_config
from kairand.errors import ExitCode, StoreError
from kairand.keys import secrets
from kairand.retention.purge import purge_resident
from kairand.store import audit, receipts
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, Store, open_connection
from tests.support.retention_support import (
    add_resident,
    decrypted_pages,
    occurrences,
    restore_root_logging,  # noqa: F401 (autouse fixture)
    t,
)

PEOPLE = {
    "U" + "7a" * 16: "やまだはなこ",
    "U" + "8b" * 16: "すずきいちろう",
    "U" + "9c" * 16: "さとうみどり",
}
GONE = "U" + "6f" * 16


def _populate(conn: Connection, hmac_key: bytes, signing_key: object) -> None:
    for uid, name in PEOPLE.items():
        add_resident(
            conn,
            uid,
            followed=t(2026, 5, 1),
            registered=t(2026, 5, 1),
            display_name=name,
            answers={"area": ["kawabe"], "topics": ["bousai"]},
        )
    add_resident(conn, GONE, followed=t(2026, 5, 1))
    purge_resident(conn, GONE, "unfollow", t(2026, 6, 1), hmac_key, signing_key)  # type: ignore[arg-type]
    audit.append(conn, AuditEntry(t(2026, 6, 2) * 1000, "tanaka", "delivery.approve", "allowed"))


@pytest.fixture
def populated(store: Store) -> Store:
    store.write_sync(_populate, secrets.receipt_hmac_key(), secrets.signing_key())
    return store


def _needles() -> list[str]:
    return [*PEOPLE, *PEOPLE.values()]


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_wipe_leaves_nothing_readable(
    dev_setup: Path, config: Config, populated: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """S13: after `kairanctl wipe --i-understand` no file under the state directory (nor
    anywhere in the setup) holds a user id or name, even decrypted with the old key; the key
    file is gone; the store cannot be opened; the final record and certificate verify and
    carry the audit head and all receipt digests."""
    key = secrets.db_key()
    populated.checkpoint()
    assert occurrences(decrypted_pages(key, config.database_path), _needles()) == _needles()
    digests = [r.digest for r in populated.read_sync(receipts.between, 0, t(2030, 1, 1))]
    populated.close()

    assert ctl.main(["--config", str(dev_setup), "wipe"]) == ExitCode.USAGE
    assert config.database_path.exists()
    capsys.readouterr()
    assert ctl.main(["--config", str(dev_setup), "wipe", "--i-understand"]) == 0
    out = capsys.readouterr().out
    assert "データベースを開けないことを確認しました" in out

    state_files = _all_files(config.daemon.state_dir)
    assert state_files == []
    setup_root = dev_setup.parent
    for path in _all_files(setup_root):
        data = path.read_bytes()
        assert occurrences(data, _needles()) == [], path
        assert key.hex().encode() not in data, path
        if path.suffix == ".db" or "kairan.db" in path.name:
            assert occurrences(decrypted_pages(key, path), _needles()) == []
    assert not (setup_root / "keys" / secrets.DB_KEY).exists()
    with pytest.raises(StoreError):
        open_store(config)
    with pytest.raises(StoreError):
        open_connection(config.database_path, key, readonly=True)

    (record_path,) = setup_root.glob("kairan-final-record-*.json")
    record = json.loads(record_path.read_text(encoding="utf-8"))["payload"]
    listed = [r["digest"] for r in record["receipts"]]
    assert listed[: len(digests)] == digests
    assert [r["reason"] for r in record["receipts"][len(digests) :]] == ["contract_end"] * 3
    assert record["personal_rows"]["residents"] == len(PEOPLE)
    assert record["audit_chain"]["intact"] and record["audit_chain"]["entries"] >= 3
    for path in [record_path, *setup_root.glob("deletion-certificate-final-*")]:
        assert ctl.main(["--config", str(dev_setup), "certificate", "verify", str(path)]) == 0
    (text,) = setup_root.glob("deletion-certificate-final-*.txt")
    assert "契約終了に伴う全データの消去" in text.read_text(encoding="utf-8")
    (final_json,) = setup_root.glob("deletion-certificate-final-*.json")
    counts = json.loads(final_json.read_text(encoding="utf-8"))["payload"]["counts_by_reason"]
    assert counts["contract_end"] == len(PEOPLE) and counts["unfollow"] == 1


@pytest.mark.parametrize("which", ["api", "webhook"])
def test_wipe_refused_while_daemon_runs(
    dev_setup: Path, config: Config, store: Store, which: str
) -> None:
    """S13: with kairand running (its API or webhook socket answers) the wipe refuses and
    changes nothing; a stale socket file alone does not block it."""
    path = config.api.socket if which == "api" else config.webhook.socket
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)
        code = ctl.main(["--config", str(dev_setup), "wipe", "--i-understand"])
    assert code == ExitCode.FAILURE
    assert config.database_path.exists()
    assert secrets.db_key()
    assert path.exists()  # the socket file is left behind, nobody listens now
    store.close()
    assert ctl.main(["--config", str(dev_setup), "wipe", "--i-understand"]) == 0
    assert not config.database_path.exists()


def test_wipe_with_systemd_credentials_prints_the_command(
    dev_setup: Path,
    populated: Store,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """S13: systemd credentials are read-only, so the wipe erases the files, leaves the
    sealed key to the administrator and prints the exact command to destroy it."""
    populated.close()
    credentials = short_tmp / "credentials"
    shutil.copytree(dev_setup.parent / "keys", credentials)
    text = dev_setup.read_text(encoding="utf-8")
    text = text.replace(
        'backend = "kairand.keys.backends.DirectoryKeyring"',
        'backend = "kairand.keys.backends.CredentialsKeyring"',
    )
    text = text.replace('directory = "keys"\n', "")
    systemd_config = dev_setup.with_name("systemd.toml")
    systemd_config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    select_keyring(load_config(systemd_config))
    capsys.readouterr()
    code = ctl.main(["--config", str(systemd_config), "wipe", "--i-understand"])
    out = capsys.readouterr().out
    assert code == 0
    assert "shred -u /etc/credstore.encrypted/kairan/db-key" in out
    assert (credentials / secrets.DB_KEY).exists()  # read-only: the admin's job
    state_dir = load_config(systemd_config).daemon.state_dir
    assert _all_files(state_dir) == []
    assert not os.listdir(state_dir)
