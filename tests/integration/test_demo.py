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
    # Issue 15's walkthrough: resident 1 takes a number in the simulated LINE chat, the kiosk
    # identity issues a paper ticket, resident 2 scans its QR code and checks the position, and
    # the desk calls both while the board identity shows each call.
    line_label = re.search(r"LINE（住民1）：番号札をお取りしました。 番号札 (A-\d{3})", out)
    kiosk_label = re.search(r"発券機：番号札 (A-\d{3}) を発行（QRコード付き）", out)
    assert line_label and kiosk_label, out
    a, b = line_label.group(1), kiosk_label.group(1)
    assert f"LINE（住民2）：紙の番号札をLINEと連携しました。 番号札 {b}" in out
    assert re.search(rf"LINE（住民2）順番を確認：{b}（保育所等利用申込）：あと\d+人・約\d+分", out)
    for label, player in ((a, 1), (b, 2)):
        assert f"窓口（F11 呼出）：{label} を呼び出しました" in out
        assert f"LINE（住民{player}）のお知らせ：{label}番の方、3番窓口へお越しください。" in out
        assert re.search(rf"表示盤：呼出中 (.*、)?{label}→3番窓口", out), out
    assert "demo: window walkthrough ok" in out
    # Issue 16: guardians register by district through the LINE dialogue, and the newcomer's
    # 不審者情報 goes out with no second person.
    assert "配信サービス「子ども安全情報」登録" in out
    assert "を送信しました（承認者の操作なし）" in out
    assert re.search(r"「【緊急】不審者情報」：配信済み", out), out
    assert not re.search(r"U[0-9a-f]{32}", out)
    logs = short_tmp / "demo" / "logs"
    assert (logs / "kairand.log").exists() and (logs / "simulator.log").exists()
    # The daemon's log never names a resident (LINE user ids are U + 32 hex digits).
    assert not re.search(r"U[0-9a-f]{32}", (logs / "kairand.log").read_text())
