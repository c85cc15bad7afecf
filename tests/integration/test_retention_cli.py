"""kairanctl retention: rules as data edited by an administrator (K2, W7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kairand import ctl
from kairand.store import audit
from kairand.store import retention as retention_store
from kairand.store.database import Store
from tests.support.retention_support import (
    add_resident,
    restore_root_logging,  # noqa: F401 (autouse fixture)
    t,
)

RULES = {
    "rules": [
        {"scope": "registration", "policy": {"kind": "annual", "month": 3, "day": 31}},
        {
            "scope": "question",
            "question": "gender",
            "policy": {"kind": "months_after_interaction", "months": 6},
        },
    ],
    "masking": [{"target": "residents.display_name", "keep": [0], "after_months": 3}],
}


def test_set_show_status_run(
    dev_setup: Path, store: Store, short_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """K2, W7: rules are saved as a new audited version, shown in Japanese, and a manual run
    applies them (a resident silent for over 6 months loses the gender answer)."""
    path = short_tmp / "rules.json"
    path.write_text(json.dumps(RULES), encoding="utf-8")
    assert ctl.main(["--config", str(dev_setup), "retention", "set", str(path)]) == 0
    assert "版 1" in capsys.readouterr().out
    assert ctl.main(["--config", str(dev_setup), "retention", "show"]) == 0
    shown = capsys.readouterr().out
    assert (
        "毎年3月31日 23:59" in shown
        and "質問「性別」の回答：最後のやり取りから6か月後に削除" in shown
    )
    assert "LINEの表示名：3か月経過後に復元できない形で上書き" in shown
    version = store.read_sync(retention_store.current_rules)
    assert version is not None and version[0] == 1
    actions = store.read_sync(lambda c: [e.entry.action for e in audit.iter_entries(c)])
    assert "retention.rules_saved" in actions

    store.write_sync(
        lambda c: add_resident(
            c,
            "U" + "ab" * 16,
            followed=t(2020, 1, 1),
            registered=t(2020, 1, 1),
            answers={"gender": ["female"], "area": ["minato"]},
        )
    )
    assert ctl.main(["--config", str(dev_setup), "retention", "run"]) == 0
    assert '"retention.answer_sets": 1' in capsys.readouterr().out
    assert ctl.main(["--config", str(dev_setup), "retention", "status"]) == 0
    status = capsys.readouterr().out
    assert "最終実行：" in status and "次回の年度末削除：" in status


@pytest.mark.parametrize(
    "rules",
    [
        {
            "rules": [
                {"scope": "question", "question": "no_such_question", "policy": {"kind": "annual"}}
            ]
        },
        {"rules": [{"scope": "registration", "policy": {"kind": "annual", "day": 30, "month": 2}}]},
        {"rules": [{"scope": "registration", "policy": {"kind": "forever"}}]},
    ],
)
def test_invalid_rules_are_refused_and_nothing_changes(
    dev_setup: Path, store: Store, short_tmp: Path, rules: dict[str, object]
) -> None:
    """K2: unknown questions, impossible dates and unknown policies are refused (exit 65)."""
    path = short_tmp / "rules.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    assert ctl.main(["--config", str(dev_setup), "retention", "set", str(path)]) == 65
    assert store.read_sync(retention_store.current_rules) is None
