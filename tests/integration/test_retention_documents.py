"""Exports (K6, S17, W4) and the handling report (S15, S14) through kairanctl on a real store."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from kairand import ctl
from kairand.audit.chain import AuditEntry
from kairand.config import Config
from kairand.keys import secrets
from kairand.retention.purge import purge_resident
from kairand.store import audit, metrics, settings, staff
from kairand.store.database import Connection, Store
from tests.support.retention_support import (
    add_resident,
    restore_root_logging,  # noqa: F401 (autouse fixture)
    t,
)

AREAS = {"honmachi": 23, "ekimae": 12, "kawabe": 4}


def _residents(conn: Connection) -> None:
    n = 0
    for area, count in AREAS.items():
        for _ in range(count):
            n += 1
            add_resident(
                conn,
                f"U{n:032x}",
                followed=t(2027, 5, 1),
                registered=t(2027, 5, 1),
                answers={"area": [area], "gender": ["female" if n % 2 else "male"]},
            )


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def _audit_actions(conn: Connection, action: str) -> list[tuple[str, str]]:
    return [
        (e.entry.outcome, str(e.entry.detail.get("rows")))
        for e in audit.iter_entries(conn)
        if e.entry.action == action
    ]


def test_stats_export_is_aggregate_excel_csv_and_audited(
    dev_setup: Path, store: Store, short_tmp: Path
) -> None:
    """K6, S17, W4: BOM + CRLF CSV of counts per option, small cells (and their complement)
    shown as "<10", no LINE user id in it, and the export audited with its row count."""
    store.write_sync(_residents)
    out = short_tmp / "stats.csv"
    assert ctl.main(["--config", str(dev_setup), "export", "stats", "--output", str(out)]) == 0
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    assert b"U000" not in raw
    rows = _rows(raw.decode("utf-8"))
    area = {r[3]: r[4] for r in rows if r[1] == "area" and r[3]}
    assert area["honmachi"] == "23" and area["ekimae"] == "12" and area["kawabe"] == "<10"
    assert area["minato"] == "<10"  # zero is not shown as zero either
    assert rows[1][4] == str(sum(AREAS.values()))
    assert (out.stat().st_mode & 0o777) == 0o600
    assert store.read_sync(_audit_actions, "export.stats") == [("ok", str(len(rows) - 1))]


def test_personal_export_needs_config_and_is_audited(
    dev_setup: Path, config: Config, store: Store, short_tmp: Path
) -> None:
    """K6, S17: personal data cannot be exported unless privacy.allow_personal_export is set;
    the refusal is audited; when enabled the export is audited with its row count."""
    store.write_sync(_residents)
    out = short_tmp / "personal.csv"
    code = ctl.main(["--config", str(dev_setup), "export", "personal", "--output", str(out)])
    assert code == 1 and not out.exists()
    assert store.read_sync(_audit_actions, "export.personal") == [("denied", "0")]

    dev_setup.write_text(
        dev_setup.read_text(encoding="utf-8") + "\n[privacy]\nallow_personal_export = true\n",
        encoding="utf-8",
    )
    assert ctl.main(["--config", str(dev_setup), "export", "personal", "--output", str(out)]) == 0
    rows = _rows(out.read_text(encoding="utf-8"))
    total = sum(AREAS.values())
    assert len(rows) == total + 1 and rows[1][1].startswith("U")
    assert store.read_sync(_audit_actions, "export.personal") == [
        ("denied", "0"),
        ("ok", str(total)),
    ]


def _history(conn: Connection, hmac_key: bytes, signing_key: object) -> None:
    staff.upsert(conn, staff.StaffRecord("tanaka", "田中 花子", ("author",)), t(2027, 4, 1))
    staff.upsert(
        conn, staff.StaffRecord("sato", "佐藤 一郎", ("approver", "auditor")), t(2027, 4, 1)
    )
    for at, actor, action, outcome in [
        (t(2027, 5, 1), "tanaka", "delivery.create", "allowed"),
        (t(2027, 5, 1, 1), "tanaka", "delivery.submit", "allowed"),
        (t(2027, 5, 1, 2), "tanaka", "delivery.approve", "denied"),
        (t(2027, 5, 1, 3), "sato", "delivery.approve", "allowed"),
        (t(2027, 7, 1), "sato", "audit.view", "allowed"),  # outside the period
    ]:
        audit.append(conn, AuditEntry(at * 1000, actor, action, outcome))
    conn.execute(
        "INSERT INTO deliveries (title, confidentiality, messages, segment, status, author,"
        " created_at, updated_at, recipient_count, sent_count) VALUES"
        " ('防災訓練のお知らせ', 1, '[]', '{}', 'sent', 'tanaka', ?, ?, 39, 39)",
        (t(2027, 5, 1), t(2027, 5, 1)),
    )
    for uid, reason in (("U" + "1" * 32, "unfollow"), ("U" + "2" * 32, "request")):
        add_resident(conn, uid, followed=t(2027, 4, 1))
        purge_resident(conn, uid, reason, t(2027, 5, 20), hmac_key, signing_key)  # type: ignore[arg-type]
    metrics.increment(conn, "follow", t(2027, 5, 2), 5)
    metrics.increment(conn, "unfollow", t(2027, 5, 20), 1)
    settings.put(conn, "backup.last_ok_at", t(2027, 5, 31, 2))


def test_handling_report(dev_setup: Path, store: Store, short_tmp: Path) -> None:
    """S15, S14: the report counts residents, deliveries, staff actions by person and action,
    denied accesses, purges by reason, chain status, backup status and lists the handler
    roster — for the period only, in Japanese, with no user id."""
    store.write_sync(_residents)
    store.write_sync(_history, secrets.receipt_hmac_key(), secrets.signing_key())
    out = short_tmp / "report.md"
    assert (
        ctl.main(
            [
                "--config",
                str(dev_setup),
                "report",
                "--from",
                "2027-05-01",
                "--to",
                "2027-05-31",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text(encoding="utf-8")
    assert "# 個人情報取扱状況報告書" in text
    assert f"| うち受信設定の登録完了 | {sum(AREAS.values())} |" in text
    assert "| 対象期間の友だち追加 | 5 |" in text
    assert "| 配信済み | 1 | 39 | 39 | 0 |" in text
    assert "| tanaka | 配信の作成 | 許可 | 1 |" in text
    assert "| sato | 配信の承認 | 許可 | 1 |" in text
    assert "audit.view" not in text  # outside the period
    denied = text.split("## 7. 拒否されたアクセス")[1].split("## 8.")[0]
    assert "| tanaka | 配信の承認 | 1 |" in denied
    assert "| ブロック（友だち解除）による削除 | 1 | 0 | 1 |" in text
    assert "| ご本人の申し出による削除 | 1 | 0 | 1 |" in text
    assert "| tanaka | 田中 花子 |" in text
    assert "改ざんは検出されませんでした" in text
    assert "2027年5月31日 02:00" in text
    assert "U000" not in text and "U111" not in text


def test_report_flags_a_tampered_audit_log(dev_setup: Path, store: Store, short_tmp: Path) -> None:
    """S15: an edited audit entry shows as 異常あり with the entry number."""
    store.write_sync(_history, secrets.receipt_hmac_key(), secrets.signing_key())
    store.write_sync(lambda c: c.execute("UPDATE audit_log SET actor = 'x' WHERE seq = 2"))
    out = short_tmp / "report.md"
    ctl.main(
        [
            "--config",
            str(dev_setup),
            "report",
            "--from",
            "2027-05-01",
            "--to",
            "2027-05-31",
            "--output",
            str(out),
        ]
    )
    assert "**異常あり**：記録番号 2" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize("argv", [["report", "--from", "2027-05-01", "--to", "x"]])
def test_report_bad_dates(dev_setup: Path, config: Config, argv: list[str]) -> None:
    """S15: a malformed period is a usage error."""
    assert ctl.main(["--config", str(dev_setup), *argv]) == 64
