"""`make demo` in headless mode: simulator, daemon and sample deliveries, end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.allow_blocking
def test_headless_demo_onboards_residents_and_delivers(short_tmp: Path) -> None:
    """S5, N1, N4: the training demo runs only against the simulator; synthetic residents
    register through the real conversation and the sample deliveries reach them. Output is in
    Japanese and carries counts only (no LINE user ids)."""
    result = subprocess.run(
        [
            sys.executable, "-m", "kairand.demo",
            "--dir", str(short_tmp / "demo"),
            "--headless", "--duration", "12", "--population", "400",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "訓練モード" in out
    assert "demo: ok" in out
    assert "配信番号 1 「防災訓練のお知らせ」：配信済み" in out
    # Issue 15: a same-day queue is running (window tickets, one called) for the desk and board.
    assert "demo: same-day queue running (6 tickets at the window)" in out
    assert re.search(r"番号札: 呼出中 A-001→1番窓口 / お待ち 保育所等利用申込 \d+人", out)
    # Issue 16: guardians register by district through the LINE dialogue, and the newcomer's
    # 不審者情報 goes out with no second person.
    assert "配信サービス「子ども安全情報」登録" in out
    assert "を送信しました（承認者の操作なし）" in out
    assert re.search(r"「【緊急】不審者情報」：配信済み", out), out
    # Issue 18 item 14: テスト送信 in training, through the trainee's phone (make phone).
    assert "テスト送信：研修用スマートフォンに届きました（【テスト送信】）" in out
    assert not re.search(r"U[0-9a-f]{32}", out)
    logs = short_tmp / "demo" / "logs"
    assert (logs / "kairand.log").exists() and (logs / "simulator.log").exists()
    # The daemon's log never names a resident (LINE user ids are U + 32 hex digits).
    assert not re.search(r"U[0-9a-f]{32}", (logs / "kairand.log").read_text())
