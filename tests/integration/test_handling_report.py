"""The handling report a council's audit asks for (S15, S14, S19, S21, S8): signed Markdown and
PDF, a named author, Japanese labels only, the roster with the 取扱責任者, incidents and their
written report, security-measure (configuration) changes, handler education, administrator
access, export settings, backup generations and places, and the OS update status."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from kairand import ctl
from kairand.backup import agefmt, service
from kairand.config import load_config
from kairand.store import audit, staff
from kairand.store.bootstrap import open_store, select_keyring
from kairand.timeutil import JST
from tests.support.pdftext import pdf_text
from tests.support.retention_support import restore_root_logging  # noqa: F401 (autouse fixture)

CODE_RE = re.compile(
    r"\b(?:api|backup|config|incident|training|report|delivery|resident)\.[a-z_.]+"
)


def _ctl(config: Path, *argv: str) -> int:
    return ctl.main(["--config", str(config), *argv])


@pytest.mark.req("S15")
@pytest.mark.req("S14")
@pytest.mark.req("S19")
@pytest.mark.req("S21")
@pytest.mark.req("S8")
def test_handling_report_has_what_a_council_asks_for(
    dev_setup: Path,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SUDO_USER", "yamada")
    config = load_config(dev_setup)
    select_keyring(config)
    store = open_store(config)
    try:
        for user, name in (("yamada", "山田 次郎"), ("tanaka", "田中 花子")):
            store.write_sync(
                staff.upsert, staff.StaffRecord(user, name, ("admin",), True, True), 1_700_000_000
            )
    finally:
        store.close()
    today = dt.datetime.now(JST).date()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    # An incident, its written report; a training; a configuration change; backups.
    assert (
        _ctl(
            dev_setup,
            "incident",
            "record",
            "--kind",
            "loss",
            "--occurred",
            f"{yesterday}T09:30",
            "--summary",
            "配信テスト用の端末を一時紛失（個人情報の保存なし）",
            "--reported-to",
            "架空市 広報課",
            "--reported-at",
            f"{yesterday}T10:00",
            "--measures",
            "同日中に回収",
        )
        == 0
    )
    capsys.readouterr()
    assert _ctl(dev_setup, "incident", "report", "1", "--output", str(short_tmp / "inc.md")) == 0
    incident_text = (short_tmp / "inc.md").read_text(encoding="utf-8")
    assert "個人情報に関する事故報告書" in incident_text and "滅失・き損" in incident_text
    assert config.contract.addressee in incident_text
    assert _ctl(dev_setup, "certificate", "verify", str(short_tmp / "inc.md")) == 0
    assert (
        _ctl(
            dev_setup,
            "training",
            "record",
            "--date",
            yesterday,
            "--title",
            "個人情報保護研修",
            "--attendee",
            "yamada",
        )
        == 0
    )
    assert (
        _ctl(
            dev_setup,
            "training",
            "record",
            "--date",
            yesterday,
            "--title",
            "x",
            "--attendee",
            "nobody",
        )
        == 64
    )
    text = dev_setup.read_text(encoding="utf-8")
    mirror = short_tmp / "mnt"
    mirror.mkdir()
    dev_setup.write_text(
        text.replace("[backup]\n", f'[backup]\nmirror = "{mirror}"\nlifetime_days = 7\n')
        + "\n[privacy]\nallow_personal_export = true\n",
        encoding="utf-8",
    )
    config = load_config(dev_setup)
    key, pub = short_tmp / "k.txt", short_tmp / "k.pub"
    agefmt.generate_recovery_key(key, pub)
    service.create_backup(config, pub, config.backup.directory, mirror=config.backup.mirror)

    out = short_tmp / "report"
    out.mkdir()
    capsys.readouterr()
    assert (
        _ctl(
            dev_setup,
            "report",
            "--from",
            yesterday,
            "--to",
            today.isoformat(),
            "--output",
            str(out),
        )
        == 0
    )
    (md,) = out.glob("handling-report-*.md")
    (pdf,) = out.glob("handling-report-*.pdf")
    body = md.read_text(encoding="utf-8")
    assert "作成者：山田 次郎（yamada）" in body
    assert f"個人情報取扱責任者：{config.contract.handling_manager}" in body
    assert "| yamada | 山田 次郎 | 管理者 | 取扱者 | 有効 |" in body
    assert "| 1 | 滅失・き損 |" in body and "架空市 広報課" in body
    assert "個人データの出力の許可（privacy.allow_personal_export） | False → True" in body
    assert "バックアップの保存期限（日）（backup.lifetime_days） | 14 → 7" in body
    assert "| 2025" not in body.split("## 13.")[1].split("## 14.")[0]
    assert "個人情報保護研修" in body
    untrained = body.split("研修を受講していない取扱者：")[1].split("\n")[0]
    assert "tanaka" in untrained and "yamada" not in untrained
    assert "yamada（管理コマンド） | 事故の記録" in body
    assert "個人データの出力（エクスポート）の設定：許可" in body
    assert str(mirror) in body and str(config.backup.directory) in body
    assert "保存期限：7 日" in body
    assert "最後にパッケージを更新した日時：" in body and "未適用のセキュリティ更新：" in body
    # No raw action code anywhere (configuration keys appear only beside their Japanese name).
    unsigned = body.split("-----BEGIN KAIRAN SIGNATURE-----")[0]
    without_config = unsigned.split("## 12.")[0] + unsigned.split("## 13.")[1]
    assert not CODE_RE.findall(without_config), CODE_RE.findall(without_config)
    for path in (md, pdf):
        assert _ctl(dev_setup, "certificate", "verify", str(path)) == 0
    visible = "".join(pdf_text(pdf.read_bytes()).split())
    for needle in ("個人情報取扱状況報告書", "山田次郎（yamada）", "事故とその報告", "研修"):
        assert needle in visible, needle
    # The actions were audited with the person, not the service account.
    store = open_store(config)
    try:
        entries = store.read_sync(lambda c: list(audit.iter_entries(c)))
    finally:
        store.close()
    actors = {e.entry.action: e.entry.actor for e in entries}
    for action in ("incident.record", "training.record", "report.issue", "backup.create"):
        assert actors[action] in ("kairanctl:yamada", "system:backup"), action
    assert actors["incident.record"] == "kairanctl:yamada"
    assert "config.change" in actors


def test_incident_in_the_future_or_unknown_is_refused(dev_setup: Path) -> None:
    assert (
        _ctl(
            dev_setup,
            "incident",
            "record",
            "--kind",
            "leak",
            "--occurred",
            "2099-01-01",
            "--summary",
            "x",
        )
        == 64
    )
    assert _ctl(dev_setup, "incident", "report", "9") == 65
