"""Deletion certificates through kairanctl (S11, S13): issue for a period, verify, detect
edits, export the public key, and answer a resident's "prove my data was deleted"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand import ctl
from kairand.config import Config
from kairand.keys import secrets
from kairand.reports.signing import public_key_pem
from kairand.retention.purge import purge_resident
from kairand.store import receipts
from kairand.store.database import Connection, Store
from tests.support.retention_support import (
    add_resident,
    restore_root_logging,  # noqa: F401 (autouse fixture)
    t,
)

USERS = {
    "U" + "a1" * 16: ("unfollow", t(2026, 5, 10)),
    "U" + "b2" * 16: ("request", t(2026, 8, 1)),
    "U" + "c3" * 16: ("annual_expiry", t(2027, 3, 31, 23, 59)),
    "U" + "d4" * 16: ("annual_expiry", t(2027, 3, 31, 23, 59)),
    "U" + "e5" * 16: ("unfollow", t(2027, 4, 2)),  # outside the period
}


def _purged(conn: Connection, hmac_key: bytes, key: Ed25519PrivateKey) -> None:
    for uid, (reason, at) in USERS.items():
        add_resident(
            conn,
            uid,
            followed=t(2026, 4, 2),
            registered=t(2026, 4, 2),
            answers={"area": ["honmachi"]},
        )
        purge_resident(conn, uid, reason, at, hmac_key, key)


@pytest.fixture
def purged(store: Store) -> Store:
    store.write_sync(_purged, secrets.receipt_hmac_key(), secrets.signing_key())
    return store


def _kairanctl(dev_setup: Path, *argv: str) -> int:
    return ctl.main(["--config", str(dev_setup), *argv])


def test_certificate_lists_period_by_reason_and_verifies(
    dev_setup: Path, purged: Store, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S11, S13: the certificate for FY2026 counts deletions by reason, lists every receipt
    digest of the period (and none outside), is in Japanese, and verifies in both forms."""
    out = short_tmp / "cert"
    assert (
        _kairanctl(
            dev_setup,
            "certificate",
            "--from",
            "2026-04-01",
            "--to",
            "2027-03-31",
            "--output",
            str(out),
        )
        == 0
    )
    (text_file,) = out.glob("*.txt")
    (json_file,) = out.glob("*.json")
    payload = json.loads(json_file.read_text(encoding="utf-8"))["payload"]
    assert payload["counts_by_reason"] == {
        "unfollow": 1,
        "request": 1,
        "annual_expiry": 2,
        "retention": 0,
        "contract_end": 0,
    }
    expected = {r.digest for r in purged.read_sync(receipts.between, t(2026, 4, 1), t(2027, 4, 1))}
    assert {r["digest"] for r in payload["receipts"]} == expected and len(expected) == 4
    assert all(r["signature_valid"] for r in payload["receipts"])
    text = text_file.read_text(encoding="utf-8")
    assert "削除証明書" in text and "年度末削除" in text and "2026年4月1日 〜 2027年3月31日" in text
    for digest in expected:
        assert digest in text
    for uid in USERS:
        assert uid not in text and uid not in json_file.read_text(encoding="utf-8")
    capsys.readouterr()
    for path in (text_file, json_file):
        assert _kairanctl(dev_setup, "certificate", "verify", str(path)) == 0
        assert "検証に成功しました" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("suffix", "old", "new"),
    [
        (".txt", "年度末削除", "年度未削除"),
        (".txt", "       2 件", "       1 件"),
        (".json", '"annual_expiry": 2', '"annual_expiry": 1'),
        (".json", '"unfollow"', '"request"'),
    ],
)
def test_edited_certificate_fails(
    dev_setup: Path,
    purged: Store,
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    suffix: str,
    old: str,
    new: str,
) -> None:
    """S11: any edit of the issued text or JSON fails `kairanctl certificate verify`."""
    out = short_tmp / "cert"
    _kairanctl(
        dev_setup, "certificate", "--from", "2026-04-01", "--to", "2027-03-31", "--output", str(out)
    )
    (path,) = out.glob("*" + suffix)
    content = path.read_text(encoding="utf-8")
    assert old in content
    path.write_text(content.replace(old, new, 1), encoding="utf-8")
    capsys.readouterr()
    assert _kairanctl(dev_setup, "certificate", "verify", str(path)) == 1
    assert "検証に失敗しました" in capsys.readouterr().out


def test_public_key_export_and_foreign_key(dev_setup: Path, purged: Store, short_tmp: Path) -> None:
    """S13: a third party verifies with the exported public key; another key refuses."""
    out = short_tmp / "cert"
    _kairanctl(
        dev_setup, "certificate", "--from", "2026-04-01", "--to", "2027-03-31", "--output", str(out)
    )
    pem = short_tmp / "kairan.pub"
    assert _kairanctl(dev_setup, "certificate", "public-key", "--output", str(pem)) == 0
    other = short_tmp / "other.pub"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    (path,) = out.glob("*.json")
    assert _kairanctl(dev_setup, "certificate", "verify", str(path), "--public-key", str(pem)) == 0
    assert (
        _kairanctl(dev_setup, "certificate", "verify", str(path), "--public-key", str(other)) == 1
    )


def test_lookup_by_line_user_id(
    dev_setup: Path,
    purged: Store,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """S11: a resident's id (read from stdin) finds exactly their receipt by recomputing the
    HMAC; the id is not printed nor stored; an unknown id finds nothing."""
    import io

    uid = next(u for u, (reason, _) in USERS.items() if reason == "request")
    monkeypatch.setattr("sys.stdin", io.StringIO(uid + "\n"))
    capsys.readouterr()
    assert _kairanctl(dev_setup, "certificate", "lookup", "--line-user-id", "-") == 0
    out = capsys.readouterr().out
    mine = [
        r for r in purged.read_sync(receipts.between, 0, t(2030, 1, 1)) if r.reason == "request"
    ]
    assert "削除記録が 1 件" in out and mine[0].digest in out and uid not in out
    assert _kairanctl(dev_setup, "certificate", "lookup", "--line-user-id", "U" + "0" * 32) == 0
    assert "見つかりませんでした" in capsys.readouterr().out
    stored = purged.read_sync(
        lambda c: c.execute(
            "SELECT count(*) FROM audit_log WHERE detail LIKE ?", (f"%{uid}%",)
        ).fetchone()[0]
    )
    assert stored == 0


def test_bad_dates_are_a_usage_error(dev_setup: Path, config: Config) -> None:
    """S11: a malformed or reversed period is refused with the usage exit code."""
    assert _kairanctl(dev_setup, "certificate", "--from", "2027-13-01", "--to", "2027-12-31") == 64
    assert _kairanctl(dev_setup, "certificate", "--from", "2027-03-01", "--to", "2027-02-01") == 64
