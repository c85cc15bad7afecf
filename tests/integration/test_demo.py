"""`make demo` in headless mode: simulator, daemon and sample deliveries, end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.allow_blocking
@pytest.mark.req("N4")
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
        timeout=300,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "訓練モード" in out
    assert "demo: ok" in out
    assert "配信番号 1 「防災訓練のお知らせ」：配信済み" in out
    # a same-day queue is running (window tickets, one called) for the desk and board.
    assert "demo: same-day queue running (6 tickets at the window)" in out
    assert re.search(r"番号札: 呼出中 A-001→1番窓口 / お待ち 保育所等利用申込 \d+人", out)
    # The queue walkthrough: resident 1 takes a number in the simulated LINE chat, the kiosk
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
    # guardians register by district through the LINE dialogue, and the newcomer's
    # 不審者情報 goes out with no second person.
    assert "配信サービス「子ども安全情報」登録" in out
    assert "を送信しました（承認者の操作なし）" in out
    assert re.search(r"「【緊急】不審者情報」：配信済み", out), out
    # guardians who do not use LINE register by 空メール (dovecot + a local relay),
    # the sample delivery reaches those it concerns by mail once each, and one stops.
    assert "demo: mail guardians send their 空メール" in out
    assert re.search(
        r"「防災訓練のお知らせ」：配信済み（配信対象 \d+ 人、送信済み \d+ 人、うちメール 2 人）",
        out,
    )
    # Two mail guardians joined 子ども安全情報 by mail; the newcomer's alert reaches the one
    # in 朝日小学校区 by mail (the other chose 港小学校区): 4 sample mails + 1 alert.
    assert re.search(
        r"「【緊急】不審者情報」：配信済み（配信対象 \d+ 人、送信済み \d+ 人、うちメール 1 人）",
        out,
    ), out
    assert (
        "メールの住民 4 人：登録済み 3 人・配信停止 1 人・受け取ったお知らせ 5 通（重複 0 通）"
        in out
    )
    assert "@" not in out
    # a card with an image and a link button reaches a segment, LINE (the simulator)
    # fetched the image through the relay path, and a weekly reminder arrives twice.
    assert re.search(
        r"「特定健診のご案内（画像つき）」：配信済み（配信対象 (\d+) 人、送信済み \1 人"
        r"(?:、うちメール \d+ 人)?）",
        out,
    )
    assert re.search(r"定期配信 \d+「資源ごみの日」毎週 .曜 7:00.* を承認しました（次回 ", out)
    weeks = set(
        re.findall(
            r"「資源ごみの日（(\d+/\d+)）」：配信済み（配信対象 (\d+) 人、送信済み \2 人"
            r"(?:、うちメール \d+ 人)?）",
            out,
        )
    )
    assert len({day for day, _ in weeks}) == 2, out  # two occurrences, on two dates
    assert re.search(r"定期配信 \d+ を終了しました", out)
    # テスト送信 in training, through the trainee's phone (make phone).
    assert "テスト送信：研修用スマートフォンに届きました（【テスト送信】）" in out
    assert not re.search(r"U[0-9a-f]{32}", out)
    logs = short_tmp / "demo" / "logs"
    simulator = (logs / "simulator.log").read_text()
    final = simulator.strip().splitlines()[-1]
    cards = re.search(r"カード (\d+) ", final)
    assert cards and int(cards.group(1)) > 0, final
    fetched = re.search(r"画像取得 成功 (\d+) 失敗 (\d+)", final)
    assert fetched and int(fetched.group(1)) >= 1 and fetched.group(2) == "0", final
    assert (logs / "kairand.log").exists() and (logs / "simulator.log").exists()
    # The daemon's log never names a resident (LINE user ids are U + 32 hex digits).
    assert not re.search(r"U[0-9a-f]{32}", (logs / "kairand.log").read_text())
