"""kairanctl programs: the district list by CSV (all or nothing), institutions and their
staff, the child-safety program — each in the operator's name in the audit log (S8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kairand import ctl
from kairand.config import load_config
from kairand.programs import catalogue
from kairand.store import audit as audit_store
from kairand.store import programs as q
from kairand.store import staff as staff_store
from kairand.store.bootstrap import open_store


def run(config_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = ctl.main(["--config", str(config_path), *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.req("K8")
@pytest.mark.req("S8")
def test_districts_institutions_and_program(
    dev_setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "districts.csv"
    good.write_text(catalogue.DEMO_DISTRICTS_CSV, encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(catalogue.DEMO_DISTRICTS_CSV + "dup,朝日,あさひ,higashi,西中学校区\n", "utf-8")
    code, out = run(dev_setup, capsys, "programs", "districts", "import", str(bad))
    assert code != 0 and "13行目" in out and "何も変更していません" in out
    code, out = run(dev_setup, capsys, "programs", "districts", "import", str(good))
    assert code == 0 and "added=11" in out
    code, out = run(dev_setup, capsys, "programs", "install-child-safety")
    assert code == 0 and "kodomo: created" in out
    code, out = run(
        dev_setup, capsys, "programs", "institution", "put", "tanpopo", "--name",
        "たんぽぽこども園", "--kind", "kodomoen", "--district", "asahi", "--district", "hikari",
    )  # fmt: skip
    assert code == 0
    code, out = run(
        dev_setup, capsys, "programs", "institution", "put", "x", "--name", "x", "--kind",
        "school", "--district", "nowhere",
    )  # fmt: skip
    assert code != 0 and "nowhere" in out
    code, out = run(dev_setup, capsys, "programs", "institution", "assign", "tanpopo", "nobody")
    assert code != 0 and "職員名簿" in out
    config = load_config(dev_setup)
    store = open_store(config)
    try:
        store.write_sync(
            staff_store.upsert, staff_store.StaffRecord("yamada", "山田", ("author",)), 1
        )
    finally:
        store.close()
    code, out = run(
        dev_setup, capsys, "programs", "institution", "assign", "tanpopo", "yamada", "--head"
    )
    assert code == 0
    code, out = run(dev_setup, capsys, "programs", "list")
    assert "kodomo\t子ども安全情報\tprogram\tregistered=<10" in out
    store = open_store(config)
    try:
        assert store.read_sync(q.heads_of, "tanpopo") == ["yamada"]
        assert len(store.read_sync(q.districts)) == 11
        actions = [e.entry for e in store.read_sync(lambda c: list(audit_store.iter_entries(c)))]
    finally:
        store.close()
    names = [e.action for e in actions]
    assert "program.districts_import" in names and "program.staff_assign" in names
    assert all(e.actor.startswith("kairanctl:") for e in actions if e.action.startswith("program."))
