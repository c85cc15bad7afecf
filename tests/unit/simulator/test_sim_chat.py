"""The trainee's simulated LINE chat (the queue demo): residents played by hand never react by
themselves and are left alone by arrivals and the queue; the control socket sends their text,
taps and QR scans; `kairan-sim-chat` shows what they receive with numbered buttons."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kairand.simulator import Simulator, SimulatorConfig
from kairand.simulator.chat import parse_command, render, scan_file_for
from kairand.simulator.control import serve_control

QUESTION = {
    "type": "text",
    "text": "どちらの窓口の番号札をお取りしますか。",
    "quickReply": {
        "items": [
            {"type": "action", "action": {"type": "postback", "label": "保育所", "data": "q=1"}},
            {"type": "action", "action": {"type": "message", "label": "住民票", "text": "住民票"}},
        ]
    },
}
LINK = "https://line.me/R/oaMessage/%40kairan/?%E7%95%AA%E5%8F%B7%E6%9C%AD%20abc"


async def _push(sim: Simulator, user_id: str, message: dict[str, Any]) -> None:
    token = next(iter(sim.platform.access_tokens))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.api_url}/v2/bot/message/push",
            json={"to": user_id, "messages": [message]},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 200, await response.text()


def _texts(sim: Simulator, user_id: str) -> list[tuple[str, str]]:
    return [
        (e["type"], e["message"]["text"] if e["type"] == "message" else e["postback"]["data"])
        for e in sim.outbox
        if e["source"]["userId"] == user_id and e["type"] in ("message", "postback")
    ]


@pytest.mark.req("S5")
async def test_played_residents_are_driven_only_through_the_control_socket(
    short_tmp: Path,
) -> None:
    async with Simulator(SimulatorConfig(seed=3, population=6)) as sim:
        played = sim.play(2)
        assert played == [r.user_id for r in sim.population.residents[-2:]]
        assert all(sim.platform.is_follower(uid) for uid in played)
        followed = sim.follow(10)  # arrivals skip the played residents
        assert {r.user_id for r in followed}.isdisjoint(played)
        assert not [e for e in sim.outbox if e["source"]["userId"] in played]
        runner = await serve_control(sim, short_tmp / "ctl.sock")
        assert (os.stat(short_tmp / "ctl.sock").st_mode & 0o777) == 0o600
        try:
            connector = aiohttp.UnixConnector(path=str(short_tmp / "ctl.sock"))
            async with aiohttp.ClientSession(connector=connector) as phone:
                async with phone.get("http://sim/players") as r:
                    assert await r.json() == {"players": [1, 2]}
                async with phone.post("http://sim/players/1/send", json={"text": "番号札を取る"}):
                    pass
                await _push(sim, played[0], QUESTION)
                await sim.wait_idle()
                # Nobody reacted for the resident: the trainee does.
                assert _texts(sim, played[0]) == [("message", "番号札を取る")]
                async with phone.get("http://sim/players/1/messages") as r:
                    seen = await r.json()
                assert seen["next"] == 1
                assert seen["messages"] == [
                    {
                        "kind": "push",
                        "type": "text",
                        "text": QUESTION["text"],
                        "buttons": ["保育所", "住民票"],
                    }
                ]
                async with phone.get("http://sim/players/1/messages?since=1") as r:
                    assert (await r.json())["messages"] == []
                for body in ({"tap": 1}, {"tap": 2}):  # a postback, then a message button
                    async with phone.post("http://sim/players/1/send", json=body) as r:
                        assert r.status == 200
                async with phone.post("http://sim/players/2/send", json={"scan": LINK}) as r:
                    assert r.status == 200
                assert _texts(sim, played[0])[1:] == [("postback", "q=1"), ("message", "住民票")]
                assert _texts(sim, played[1]) == [("message", "番号札 abc")]
                # Bad input: a clear refusal, nothing sent.
                refused: tuple[tuple[int, dict[str, Any], int], ...] = (
                    (1, {"tap": 3}, 400),
                    (2, {"scan": "https://example.com/x"}, 400),
                    (1, {}, 400),
                    (3, {"text": "x"}, 404),
                )
                for n, body, status in refused:
                    async with phone.post(f"http://sim/players/{n}/send", json=body) as r:
                        assert r.status == status, body
                assert len(_texts(sim, played[0])) == 3 and len(_texts(sim, played[1])) == 1
        finally:
            await runner.cleanup()


@pytest.mark.req("S5")
@pytest.mark.allow_blocking
async def test_sim_chat_command_shows_messages_and_sends_lines(short_tmp: Path) -> None:
    async with Simulator(SimulatorConfig(seed=4, population=3)) as sim:
        uid = sim.play(1)[0]
        runner = await serve_control(sim, short_tmp / "ctl.sock")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kairand.simulator.chat",
            "--socket", str(short_tmp / "ctl.sock"), "--as", "1",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write("番号札を取る\n".encode())
            await proc.stdin.drain()
            async with asyncio.timeout(30):
                while not _texts(sim, uid):  # noqa: ASYNC110 - another process sends it
                    await asyncio.sleep(0.05)
            await _push(sim, uid, QUESTION)
            out = b""
            async with asyncio.timeout(30):
                while "[2] 住民票" not in out.decode(errors="replace"):
                    chunk = await proc.stdout.read(4096)
                    assert chunk, out.decode(errors="replace")
                    out += chunk
            proc.stdin.write(b"2\nq\n")
            await proc.stdin.drain()
            async with asyncio.timeout(30):
                assert await proc.wait() == 0
            assert _texts(sim, uid) == [("message", "番号札を取る"), ("message", "住民票")]
            text = out.decode()
            assert "住民 1 としてトークします" in text
            assert "市役所> ［お知らせ］どちらの窓口の番号札をお取りしますか。" in text
            assert uid not in text  # no LINE user id is shown
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await runner.cleanup()


def test_chat_commands_and_rendering(tmp_path: Path) -> None:
    scan = tmp_path / "run" / "kiosk-qr.txt"
    assert parse_command("  順番を確認 ", None) == {"text": "順番を確認"}
    assert parse_command("2", None) == {"tap": 2}
    assert parse_command("", None) == ""
    assert parse_command(f"scan {LINK}", None) == {"scan": LINK}
    assert "設定されていません" in str(parse_command("scan", None))
    assert "まだ発券機で番号札が発行されていません" in str(parse_command("scan", scan))
    scan.parent.mkdir()
    scan.write_text(LINK + "\n", encoding="utf-8")
    assert parse_command("scan", scan) == {"scan": LINK}
    config = tmp_path / "kairan.toml"
    config.write_text('[kiosk]\ntraining_scan_file = "run/kiosk-qr.txt"\n', encoding="utf-8")
    assert scan_file_for(config) == scan.resolve()
    config.write_text("[kiosk]\n", encoding="utf-8")
    assert scan_file_for(config) is None
    shown = render(
        [
            {"kind": "reply", "type": "text", "text": "番号札 A-001", "buttons": ["順番を確認"]},
            {"kind": "push", "type": "sticker", "text": "", "buttons": []},
        ]
    )
    assert shown == "市役所> 番号札 A-001\n    [1] 順番を確認\n市役所> ［お知らせ］（sticker）"
