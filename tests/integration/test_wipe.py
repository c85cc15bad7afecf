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
    assert ctl.main(["--config", str(dev_setup), "certificate", "verify", str(record_path)]) == 0
    # No final certificate until the backups and the recovery key are confirmed destroyed.
    assert not list(setup_root.glob("deletion-certificate-final-*"))


def _wipe(dev_setup: Path, *args: str) -> int:
    return ctl.main(["--config", str(dev_setup), "wipe", *args])


@pytest.mark.req("S13")
@pytest.mark.req("S18")
def test_final_certificate_only_after_backups_and_recovery_key_are_destroyed(
    dev_setup: Path,
    config: Config,
    populated: Store,
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S13: the contract-end certificate is issued last: the wipe, then `confirm-backups`
    (which destroys every generation Kairan knows), then `confirm-recovery-key` (a person
    attests it), in that order; the certificate names each step with its time and person, the
    method (crypto-erase and overwrite) and the scope, and verifies as PDF, text and JSON."""
    from kairand.backup import agefmt, service

    populated.close()
    key, pub = short_tmp / "recovery-key.txt", short_tmp / "recovery.pub"
    agefmt.generate_recovery_key(key, pub)
    made = service.create_backup(config, pub, config.backup.directory).path
    assert made.exists() and made.parent == dev_setup.parent / "backups"
    out = short_tmp / "final"
    assert _wipe(dev_setup, "--i-understand", "--output", str(out)) == 0
    assert _wipe(dev_setup, "certificate", "--output", str(out)) == ExitCode.FAILURE
    assert _wipe(dev_setup, "confirm-recovery-key", "--output", str(out), "--yes") == 1
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    assert _wipe(dev_setup, "confirm-backups", "--output", str(out)) == ExitCode.FAILURE
    assert made.exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert _wipe(dev_setup, "confirm-backups", "--output", str(out)) == 0
    assert not made.exists() and not list((dev_setup.parent / "backups").iterdir())
    assert _wipe(dev_setup, "certificate", "--output", str(out)) == ExitCode.FAILURE
    assert (
        _wipe(dev_setup, "confirm-recovery-key", "--output", str(out), "--recipient", str(pub)) == 0
    )
    capsys.readouterr()
    assert _wipe(dev_setup, "certificate", "--output", str(out)) == 0
    (final_json,) = out.glob("deletion-certificate-final-*.json")
    payload = json.loads(final_json.read_text(encoding="utf-8"))["payload"]
    assert payload["counts_by_reason"]["contract_end"] == len(PEOPLE)
    assert payload["counts_by_reason"]["unfollow"] == 1
    final = payload["final"]
    assert str(made) in final["backups"]["destroyed"]
    assert final["recovery_key"]["recipient"] == agefmt.load_recipient_text(pub)
    assert final["backups"]["by"].startswith("kairanctl:")
    assert any("暗号化消去" in m for m in payload["method"])
    assert any("復旧用秘密鍵" in item for item in payload["scope"])
    assert payload["addressee"] == config.contract.addressee
    for suffix in (".pdf", ".txt", ".json"):
        (path,) = out.glob(f"deletion-certificate-final-*{suffix}")
        assert ctl.main(["--config", str(dev_setup), "certificate", "verify", str(path)]) == 0
    (pdf_path,) = out.glob("deletion-certificate-final-*.pdf")
    from tests.support.pdftext import pdf_text

    text = pdf_text(pdf_path.read_bytes())
    assert "個人情報削除証明書（契約終了）" in text and "復旧用秘密鍵" in text
    assert config.contract.handling_manager in text


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


@pytest.mark.req("S22")
def test_handover_is_sealed_to_the_municipality_and_named_in_the_final_certificate(
    dev_setup: Path, config: Config, populated: Store, short_tmp: Path
) -> None:
    """S22: before the wipe an administrator seals the residents' data to the municipality's
    own age key; Debian's age opens it with that key only; the export is audited and the final
    certificate names it (count and SHA-256)."""
    import hashlib
    import subprocess

    from kairand.backup import agefmt

    populated.close()
    key, pub = short_tmp / "city-key.txt", short_tmp / "city.pub"
    agefmt.generate_recovery_key(key, pub)
    other_key, other_pub = short_tmp / "other.txt", short_tmp / "other.pub"
    agefmt.generate_recovery_key(other_key, other_pub)
    sealed = short_tmp / "handover.tar.age"
    argv = ["--config", str(dev_setup), "handover", "export", "--recipient", str(pub)]
    assert ctl.main([*argv, "--output", str(sealed)]) == 0
    data = sealed.read_bytes()
    assert occurrences(data, _needles()) == []  # sealed: nothing readable
    opened = subprocess.run(["age", "-d", "-i", str(key), str(sealed)], capture_output=True)
    assert opened.returncode == 0
    listing = subprocess.run(
        ["tar", "-xO", "handover/residents.csv"], input=opened.stdout, capture_output=True
    )
    csv_text = listing.stdout.decode("utf-8-sig")
    assert all(uid in csv_text for uid in PEOPLE)
    wrong = subprocess.run(["age", "-d", "-i", str(other_key), str(sealed)], capture_output=True)
    assert wrong.returncode != 0
    out = short_tmp / "final"
    assert (
        ctl.main(["--config", str(dev_setup), "wipe", "--i-understand", "--output", str(out)]) == 0
    )
    for step in ("confirm-backups", "confirm-recovery-key"):
        assert (
            ctl.main(["--config", str(dev_setup), "wipe", step, "--output", str(out), "--yes"]) == 0
        )
    assert ctl.main(["--config", str(dev_setup), "wipe", "certificate", "--output", str(out)]) == 0
    (final_json,) = out.glob("deletion-certificate-final-*.json")
    final = json.loads(final_json.read_text(encoding="utf-8"))["payload"]["final"]
    assert hashlib.sha256(data).hexdigest() in final["handover"]
    assert f"{len(PEOPLE)} 件" in final["handover"]
