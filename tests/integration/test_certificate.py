"""Deletion certificates through kairanctl (S11, S13): issue for a period, verify, detect
edits, export the public key, and answer a resident's "prove my data was deleted"."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kairand import ctl
from kairand.config import Config, load_config
from kairand.errors import ExitCode
from kairand.keys import secrets
from kairand.reports.signing import public_key_pem, sign_pdf
from kairand.retention.purge import purge_resident
from kairand.store import receipts
from kairand.store.database import Connection, Store
from tests.support.pdftext import pdf_text
from tests.support.retention_support import (
    add_resident,
    restore_root_logging,  # noqa: F401 (autouse fixture)
    t,
)

# FY2025 (the development contract starts 2025-04-01; a certificate covers only the past).
USERS = {
    "U" + "a1" * 16: ("unfollow", t(2025, 5, 10)),
    "U" + "b2" * 16: ("request", t(2025, 8, 1)),
    "U" + "c3" * 16: ("annual_expiry", t(2026, 3, 31, 23, 59)),
    "U" + "d4" * 16: ("annual_expiry", t(2026, 3, 31, 23, 59)),
    "U" + "e5" * 16: ("unfollow", t(2026, 4, 2)),  # outside the period
}
FROM, TO = "2025-04-01", "2026-03-31"


def _purged(conn: Connection, hmac_key: bytes, key: Ed25519PrivateKey) -> None:
    for uid, (reason, at) in USERS.items():
        add_resident(
            conn,
            uid,
            followed=t(2025, 4, 2),
            registered=t(2025, 4, 2),
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
    """S11, S13: the certificate for FY2025 names the addressee, the contractor, the 取扱責任者
    and the contract; counts deletions by reason; states method, scope and that the data
    cannot be restored; puts every receipt digest of the period (and none outside) in the CSV
    annex whose SHA-256 it carries; and verifies as PDF, text and JSON."""
    out = short_tmp / "cert"
    assert (
        _kairanctl(
            dev_setup,
            "certificate",
            "--from",
            FROM,
            "--to",
            TO,
            "--output",
            str(out),
        )
        == 0
    )
    (text_file,) = out.glob("*.txt")
    (json_file,) = out.glob("*.json")
    (pdf_file,) = out.glob("*.pdf")
    (annex_file,) = out.glob("*-annex.csv")
    payload = json.loads(json_file.read_text(encoding="utf-8"))["payload"]
    assert payload["counts_by_reason"] == {
        "unfollow": 1,
        "request": 1,
        "annual_expiry": 2,
        "retention": 0,
        "masking": 0,
        "contract_end": 0,
    }
    contract = load_config(dev_setup).contract
    assert payload["addressee"] == contract.addressee
    assert payload["issuer"]["contractor"] == contract.contractor
    assert payload["issuer"]["handling_manager"] == contract.handling_manager
    assert payload["contract"]["name"] == contract.name
    assert payload["contract"]["number"] == contract.number
    assert (
        payload["method"]
        and payload["scope"]
        and "復元することはできません" in (payload["statement"])
    )
    expected = {r.digest for r in purged.read_sync(receipts.between, t(2025, 4, 1), t(2026, 4, 1))}
    annex = annex_file.read_bytes()
    assert hashlib.sha256(annex).hexdigest() == payload["annex"]["sha256"]
    lines = annex.decode("utf-8-sig").splitlines()[1:]
    assert {line.split(",")[3] for line in lines} == expected and len(expected) == 4
    assert all(line.endswith("確認済み") for line in lines)
    text = text_file.read_text(encoding="utf-8")
    assert "削除証明書" in text and "年度末削除" in text and "2025年4月1日 〜 2026年3月31日" in text
    assert contract.addressee in text and contract.handling_manager in text
    assert payload["annex"]["sha256"] in text
    pdf = pdf_text(pdf_file.read_bytes())
    for needle in ("個人情報削除証明書", contract.addressee, contract.contractor, "年度末削除"):
        assert "".join(needle.split()) in "".join(pdf.split()), needle
    for uid in USERS:
        for path in (text_file, json_file, annex_file):
            assert uid not in path.read_text(encoding="utf-8")
    capsys.readouterr()
    for path in (pdf_file, text_file, json_file):
        assert _kairanctl(dev_setup, "certificate", "verify", str(path)) == 0
        assert "検証に成功しました" in capsys.readouterr().out
    # The annex is part of what is certified: a changed annex fails every form's verify.
    annex_file.write_bytes(annex.replace(b"\r\n", b"\n", 1))
    for path in (pdf_file, text_file, json_file):
        assert _kairanctl(dev_setup, "certificate", "verify", str(path)) == 1
        assert "別紙" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("suffix", "old", "new"),
    [
        (".txt", "年度末削除", "年度未削除"),
        (".txt", "年度末削除：2 件", "年度末削除：1 件"),
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
    _kairanctl(dev_setup, "certificate", "--from", FROM, "--to", TO, "--output", str(out))
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
    _kairanctl(dev_setup, "certificate", "--from", FROM, "--to", TO, "--output", str(out))
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


def test_pdf_edits_fail_verification(
    dev_setup: Path, purged: Store, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S11: any change to the signed PDF (one byte of the document, the signature line, a
    re-signature with another key) fails verify."""
    out = short_tmp / "cert"
    _kairanctl(dev_setup, "certificate", "--from", FROM, "--to", TO, "--output", str(out))
    (pdf_file,) = out.glob("*.pdf")
    data = pdf_file.read_bytes()
    other = Ed25519PrivateKey.generate()
    body = data[: data.rfind(b"\n%KAIRAN-SIGNATURE ") + 1]
    cases = {
        "byte": data[:200] + bytes([data[200] ^ 1]) + data[201:],
        "unsigned": body,
        "resigned": sign_pdf(body, other),
        "appended": data + b"%more\n",
    }
    for name, blob in cases.items():
        pdf_file.write_bytes(blob)
        assert _kairanctl(dev_setup, "certificate", "verify", str(pdf_file)) == 1, name


@pytest.mark.parametrize(
    ("first", "last", "why"),
    [
        ("2030-01-01", "2030-12-31", "after today"),
        ("2025-04-01", "2099-03-31", "after today"),
        ("2024-04-01", "2025-03-31", "before the contract start"),
    ],
)
def test_future_or_pre_contract_periods_are_refused(
    dev_setup: Path,
    purged: Store,
    short_tmp: Path,
    capsys: pytest.CaptureFixture[str],
    first: str,
    last: str,
    why: str,
) -> None:
    """S11, S13: a certificate never covers a period that has not ended, nor one before the
    contract began; nothing is written."""
    out = short_tmp / "cert"
    capsys.readouterr()
    rc = _kairanctl(dev_setup, "certificate", "--from", first, "--to", last, "--output", str(out))
    assert rc == 64
    assert why in capsys.readouterr().err
    assert not out.exists()


def test_a_certificate_needs_the_contract(dev_setup: Path, purged: Store, short_tmp: Path) -> None:
    """S11: without addressee, contractor, 取扱責任者 and contract, no certificate is issued
    (a configuration error naming the missing keys)."""
    text = dev_setup.read_text(encoding="utf-8")
    start = text.index("[contract]")
    dev_setup.write_text(text[:start] + "[contract]\nstart = 2025-04-01\n", encoding="utf-8")
    out = short_tmp / "cert"
    rc = _kairanctl(dev_setup, "certificate", "--from", FROM, "--to", TO, "--output", str(out))
    assert rc == ExitCode.CONFIG
    assert not out.exists()
