"""`kairan-sim-chat`: the simulated LINE chat of one resident, for a trainee (訓練モード).

    kairan-sim-chat --dev-config .demo/kairan.toml          # resident 1
    kairan-sim-chat --dev-config .demo/kairan.toml --as 2   # resident 2

Type a message and press Enter to send it (e.g. 番号札を取る, 順番を確認). A number taps that
button of the last message. `scan` reads the QR code of the ticket the training kiosk printed
last (`kairan kiosk` writes its link to [kiosk] training_scan_file); `scan URL` reads a link
you paste. `q` quits. The simulator must run with `--players` (make demo does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import aiohttp

CONTROL_SOCKET = "run/simulator-control.sock"

HELP = (
    "入力して Enter で送信します（例：番号札を取る、順番を確認）。"
    "数字：そのボタンを押す / scan：発券機の番号札のQRコードを読み取る / "
    "scan URL：そのリンクを読み取る / q：終了"
)


def control_socket_for(config_path: Path) -> Path:
    """Where `kairan-sim --dev-config CONFIG --players N` listens for the chat."""
    return config_path.resolve().parent / CONTROL_SOCKET


def scan_file_for(config_path: Path) -> Path | None:
    """[kiosk] training_scan_file of a development kairan.toml (relative to it), if set."""
    try:
        raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    kiosk = raw.get("kiosk")
    value = kiosk.get("training_scan_file") if isinstance(kiosk, dict) else None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else config_path.resolve().parent / path


def render(items: list[dict[str, Any]], bot_name: str = "市役所") -> str:
    """Messages as a person reads them in the chat, buttons numbered for `tap`."""
    lines: list[str] = []
    for item in items:
        prefix = "［お知らせ］" if item.get("kind") in ("push", "multicast") else ""
        text = item.get("text") or f"（{item.get('type')}）"
        lines.append(f"{bot_name}> {prefix}{text}")
        buttons = item.get("buttons") or []
        if buttons:
            lines.append("    " + "  ".join(f"[{n}] {b}" for n, b in enumerate(buttons, 1)))
    return "\n".join(lines)


def parse_command(line: str, scan_file: Path | None) -> dict[str, Any] | str:
    """What to send for one typed line, or a message for the trainee (str)."""
    text = line.strip()
    if not text:
        return ""
    if text.isdigit():
        return {"tap": int(text)}
    if text == "scan" or text.startswith("scan "):
        url = text[4:].strip()
        if not url:
            if scan_file is None:
                return (
                    "発券機のQRコードの置き場所（[kiosk] training_scan_file）が設定されていません。"
                )
            try:
                url = scan_file.read_text(encoding="utf-8").strip()
            except OSError:
                return "まだ発券機で番号札が発行されていません（kairan kiosk で発券してください）。"
        return {"scan": url}
    return {"text": text}


class ChatClient:
    def __init__(self, session: aiohttp.ClientSession, player: int) -> None:
        self.session = session
        self.player = player
        self.seen = 0

    async def fetch(self) -> list[dict[str, Any]]:
        async with self.session.get(
            f"http://sim/players/{self.player}/messages", params={"since": str(self.seen)}
        ) as response:
            if response.status != 200:
                raise RuntimeError(await response.text())
            body = await response.json()
        self.seen = int(body["next"])
        return list(body["messages"])

    async def send(self, body: dict[str, Any]) -> str:
        async with self.session.post(f"http://sim/players/{self.player}/send", json=body) as r:
            return "" if r.status == 200 else f"送信できませんでした：{await r.text()}"


async def run(socket: Path, player: int, scan_file: Path | None) -> int:
    connector = aiohttp.UnixConnector(path=str(socket))
    async with aiohttp.ClientSession(connector=connector) as session:
        client = ChatClient(session, player)
        try:
            print(render(await client.fetch()), flush=True)
        except (OSError, aiohttp.ClientError):
            print(
                f"kairan-sim-chat: シミュレーターに接続できません（{socket}）。"
                "make demo が動いているか確認してください。",
                file=sys.stderr,
            )
            return 1
        print(f"住民 {player} としてトークします。{HELP}", flush=True)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        pending = bytearray()

        def readable() -> None:
            # Raw reads: several lines may arrive at once (a paste, a pipe), and a buffered
            # readline would keep the rest where the event loop cannot see it.
            chunk = os.read(sys.stdin.fileno(), 4096)
            if not chunk:
                loop.remove_reader(sys.stdin.fileno())
                lines.put_nowait(None)
                return
            pending.extend(chunk)
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                lines.put_nowait(line.decode("utf-8", errors="replace"))

        loop.add_reader(sys.stdin.fileno(), readable)
        try:
            while True:
                line: str | None = ""
                with contextlib.suppress(TimeoutError):
                    line = await asyncio.wait_for(lines.get(), 0.5)
                if line is None or line.strip() in ("q", "quit", "exit"):
                    return 0
                command = parse_command(line, scan_file)
                if isinstance(command, str):
                    if command:
                        print(command, flush=True)
                else:
                    problem = await client.send(command)
                    if problem:
                        print(problem, flush=True)
                new = await client.fetch()
                if new:
                    print(render(new), flush=True)
        finally:
            loop.remove_reader(sys.stdin.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kairan-sim-chat", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dev-config", type=Path, help="the demo's kairan.toml (.demo/kairan.toml)"
    )
    parser.add_argument("--socket", type=Path, help="the simulator's control socket")
    parser.add_argument("--as", dest="player", type=int, default=1, help="resident number (1..N)")
    args = parser.parse_args(argv)
    if args.socket is None and args.dev_config is None:
        parser.error("give --dev-config (or --socket)")
    socket = args.socket or control_socket_for(args.dev_config)
    scan_file = scan_file_for(args.dev_config) if args.dev_config else None
    try:
        return asyncio.run(run(socket, args.player, scan_file))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
