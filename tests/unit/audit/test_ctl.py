"""kairanctl roster (S14) and staff (N5, S8): the handler roster as CSV that Japanese Excel
opens, and roster changes from the command line, each written to the audit log."""

from __future__ import annotations

import csv
import getpass
import io
from pathlib import Path

import pytest

from kairand import ctl
from kairand.config import load_config
from kairand.errors import ExitCode
from kairand.store import audit as audit_store
from kairand.store.bootstrap import open_store


def run(config_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = ctl.main(["--config", str(config_path), *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_staff_commands_and_roster_csv(
    dev_setup: Path, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """S14, S8: staff add/remove/list change the roster and the audit log; `kairanctl roster`
    writes UTF-8 CSV with a BOM, Japanese headings, handlers only unless --all."""
    code, _ = run(
        dev_setup,
        capsys,
        "staff",
        "add",
        "yamada",
        "--name",
        "山田 花子",
        "--role",
        "author",
        "--role",
        "approver",
    )
    assert code == ExitCode.OK
    code, _ = run(
        dev_setup,
        capsys,
        "staff",
        "add",
        "kiosk",
        "--name",
        "窓口端末",
        "--role",
        "auditor",
        "--no-personal-data",
    )
    assert code == ExitCode.OK
    code, _ = run(dev_setup, capsys, "staff", "remove", "yamada")
    assert code == ExitCode.OK
    code, out = run(dev_setup, capsys, "staff", "remove", "nobody-here")
    assert code == ExitCode.USAGE and "not on the staff roster" in out
    code, out = run(dev_setup, capsys, "staff", "list")
    assert "yamada\t山田 花子\tauthor,approver\tinactive" in out

    target = short_tmp / "roster.csv"
    code, _ = run(dev_setup, capsys, "roster", "--output", str(target))
    assert code == ExitCode.OK
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == ["ユーザー名", "氏名", "役割", "個人情報の取扱い", "状態", "登録日", "更新日"]
    by_user = {r[0]: r for r in rows[1:]}
    assert by_user["yamada"][1:5] == ["山田 花子", "作成者・承認者", "取扱者", "無効"]
    assert "kiosk" not in by_user
    code, _ = run(dev_setup, capsys, "roster", "--all", "--output", str(target))
    everyone = {r[0] for r in csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig")))}
    assert "kiosk" in everyone

    with open_store(load_config(dev_setup)) as store:
        stored = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        entries = [e.entry for e in stored]
    actions = [(e.action, e.target) for e in entries]
    assert actions[:3] == [
        ("staff.put", "yamada"),
        ("staff.put", "kiosk"),
        ("staff.remove", "yamada"),
    ]
    assert ("roster.export", "") in actions
    assert all(e.actor.startswith("kairanctl:") for e in entries)
    code, out = run(dev_setup, capsys, "audit", "verify")
    assert code == ExitCode.OK, out


@pytest.mark.req("N5")
def test_kairanctl_cannot_take_away_the_last_admin(
    dev_setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The staff service's rule holds on the command line too: the last active administrator
    can be neither removed nor demoted (nothing written, not even an audit entry); once a
    successor is added, the old administrator can go."""
    me = getpass.getuser()  # `init --dev` made the developer the only administrator

    def staff_actions() -> list[tuple[str, str]]:
        with open_store(load_config(dev_setup)) as store:
            stored = store.read_sync(lambda c: list(audit_store.iter_entries(c)))
        return [(e.entry.action, e.entry.target) for e in stored if e.entry.action[:6] == "staff."]

    before = staff_actions()
    code, out = run(dev_setup, capsys, "staff", "remove", me)
    assert code == ExitCode.USAGE and "last active administrator" in out
    code, out = run(dev_setup, capsys, "staff", "add", me, "--name", "開発者", "--role", "author")
    assert code == ExitCode.USAGE and "last active administrator" in out
    assert staff_actions() == before
    code, out = run(dev_setup, capsys, "staff", "list")
    assert f"{me}\t開発者\tadmin,author,approver,auditor\tactive" in out

    code, _ = run(
        dev_setup, capsys, "staff", "add", "kanri", "--name", "管理 太郎", "--role", "admin"
    )
    assert code == ExitCode.OK
    code, _ = run(dev_setup, capsys, "staff", "remove", me)
    assert code == ExitCode.OK
    assert staff_actions()[len(before) :] == [("staff.put", "kanri"), ("staff.remove", me)]
