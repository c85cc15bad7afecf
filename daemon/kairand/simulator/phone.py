"""The trainee's phone (研修用スマートフォン): one simulated LINE user the trainee drives by hand.

In training there is no real LINE, so テスト送信 would ask for a code sent "from your own LINE"
with no LINE to send it from. The simulator therefore gives the trainee a phone: a LINE user
that is not one of the synthetic residents (nobody reacts for it), that friends the account
on first use, sends what the trainee types as a signed webhook like any LINE user, and shows
every message the account sent it (they are in the simulator's ledger like any other).

The phone is reached through a small local API on a unix socket (mode 0600, the simulator's
own user only), and `kairan-phone` is its command:

    kairan-phone                    # chat: type a line to send it; what arrives is printed
                                    # (typing a button's label taps it)
    kairan-phone send KAIRAN-123456 # send one message
    kairan-phone inbox              # print the conversation so far

`--socket PATH` (or `--dir .demo`, the demo's folder: PATH is .demo/run/phone.sock).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from kairand.simulator.ledger import Receipt
from kairand.simulator.population import line_user_id

DISPLAY_NAME = "研修用スマートフォン"
PHONE_INDEX = -2  # -1 is the bot's own id; residents count from 0
MAX_TEXT = 5000  # LINE's limit for one text message
SOCKET_NAME = "phone.sock"  # in the demo's run/ folder
JST = dt.timezone(dt.timedelta(hours=9), "JST")


def phone_user_id(seed: int) -> str:
    return line_user_id(seed, PHONE_INDEX)


def render(message: dict[str, Any]) -> str:
    """One LINE message as a phone would show it in the chat list, as plain text."""
    kind = message.get("type")
    if kind == "text":
        text = str(message.get("text", ""))
    elif kind in ("flex", "template", "imagemap"):
        text = str(message.get("altText", ""))
    elif kind == "image":
        text = "［画像］"
    elif kind == "sticker":
        text = "［スタンプ］"
    else:
        text = f"［{kind}］"
    items = (message.get("quickReply") or {}).get("items") or []
    labels = [str((i.get("action") or {}).get("label", "")) for i in items]
    if any(labels):
        text += "\n［選択肢］" + " / ".join(label for label in labels if label)
    return text


@dataclass(frozen=True)
class Line:
    """One line of the phone's chat: sent by the phone ("out") or by the account ("in")."""

    seq: int
    at: float
    direction: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "direction": self.direction, "text": self.text}


@dataclass
class TraineePhone:
    """The phone's state; `send` is given the simulator's hooks (follow, send text)."""

    user_id: str
    follow: Callable[[], None]
    send_text: Callable[[str], None]
    send_postback: Callable[[str], None]
    is_friend: Callable[[], bool]
    clock: Callable[[], float]
    chat: list[Line] = field(default_factory=list)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The quick-reply buttons of the last message that had any: label -> action."""

    def send(self, text: str) -> bool:
        """Send TEXT to the account (friending it first if needed); True if it followed now.
        TEXT that is the label of a quick-reply button on screen taps that button instead."""
        text = text.strip()
        if not text:
            raise ValueError("メッセージが空です。")
        if len(text) > MAX_TEXT:
            raise ValueError(f"メッセージは {MAX_TEXT} 文字までです。")
        action = self.choices.get(text)
        if action is not None and action.get("type") not in ("postback", "message"):
            raise ValueError(f"「{text}」は研修用スマートフォンでは選べません（日付の選択など）。")
        followed = False
        if not self.is_friend():
            self.follow()
            followed = True
        if action is not None and action.get("type") == "postback":
            self._add("out", f"［{text}］を選択")
            self.send_postback(str(action.get("data", "")))
            return followed
        if action is not None:  # a message button sends its text
            text = str(action.get("text", text))
        self._add("out", text)
        self.send_text(text)
        return followed

    def on_delivery(self, receipt: Receipt, messages: list[dict[str, Any]]) -> None:
        if receipt.user_id != self.user_id:
            return
        for message in messages:
            self._add("in", render(message))
            items = (message.get("quickReply") or {}).get("items") or []
            actions = [i.get("action") or {} for i in items]
            if actions:
                self.choices = {str(a.get("label", "")): a for a in actions if a.get("label")}

    def _add(self, direction: str, text: str) -> None:
        self.chat.append(Line(len(self.chat) + 1, self.clock(), direction, text))

    def lines_after(self, seq: int) -> list[Line]:
        return self.chat[max(0, seq) :]

    def received(self) -> list[str]:
        return [line.text for line in self.chat if line.direction == "in"]


# ---- the local API ------------------------------------------------------------------------

PHONE_KEY = web.AppKey("phone", TraineePhone)


async def _send(request: web.Request) -> web.Response:
    phone = request.app[PHONE_KEY]
    try:
        body = await request.json()
        text = body["text"] if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ValueError("text がありません。")
        followed = phone.send(text)
    except (ValueError, KeyError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else "text がありません。"
        return web.json_response({"error": message}, status=400)
    return web.json_response({"sent": True, "followed": followed})


async def _messages(request: web.Request) -> web.Response:
    phone = request.app[PHONE_KEY]
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return web.json_response({"error": "after は数字で指定してください。"}, status=400)
    lines = phone.lines_after(after)
    return web.json_response({"name": DISPLAY_NAME, "lines": [x.to_json() for x in lines]})


def make_phone_app(phone: TraineePhone) -> web.Application:
    app = web.Application()
    app[PHONE_KEY] = phone
    app.router.add_post("/phone/send", _send)
    app.router.add_get("/phone/messages", _messages)
    return app


async def serve(phone: TraineePhone, path: Path) -> web.AppRunner:
    """Listen on PATH (a unix socket only this user can open); the caller cleans up the runner."""

    def prepare() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a socket left by a simulator that was killed

    await asyncio.to_thread(prepare)
    runner = web.AppRunner(make_phone_app(phone), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    old = os.umask(0o177)
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old)
    return runner


# ---- kairan-phone ---------------------------------------------------------------------------


class PhoneUnavailable(Exception):
    pass


class PhoneClient:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def _call(self, method: str, url: str, body: Any = None) -> dict[str, Any]:
        try:
            connector = aiohttp.UnixConnector(path=str(self.path))
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.request(method, "http://phone" + url, json=body) as response,
            ):
                data: dict[str, Any] = await response.json()
        except (OSError, aiohttp.ClientError) as exc:
            raise PhoneUnavailable(
                f"研修用スマートフォンに接続できません（{self.path}）。"
                "訓練モードのデモ（make demo）が動いているか確認してください。"
            ) from exc
        if response.status != 200:
            raise ValueError(str(data.get("error", response.status)))
        return data

    async def send(self, text: str) -> bool:
        return bool((await self._call("POST", "/phone/send", {"text": text}))["followed"])

    async def lines_after(self, seq: int) -> list[dict[str, Any]]:
        data = await self._call("GET", f"/phone/messages?after={seq}")
        lines: list[dict[str, Any]] = data["lines"]
        return lines


def format_line(line: dict[str, Any]) -> str:
    at = dt.datetime.fromtimestamp(float(line["at"]), JST).strftime("%H:%M")
    who = "あなた" if line["direction"] == "out" else "公式アカウント"
    text = str(line["text"]).replace("\n", "\n    ")
    return f"{at} {who}:\n    {text}"


async def _chat(client: PhoneClient, poll_s: float = 0.5) -> int:
    print(
        f"{DISPLAY_NAME}（訓練モード）: 送るメッセージを入力して Enter。［選択肢］はその文字を"
        "入力すると選べます。終了は Ctrl+D です。"
    )
    seen = 0
    loop = asyncio.get_running_loop()
    typed: asyncio.Queue[str | None] = asyncio.Queue()
    pending = b""
    fd = sys.stdin.fileno()

    def readable() -> None:
        nonlocal pending
        chunk = os.read(fd, 65536)
        if not chunk:
            typed.put_nowait(None)
            loop.remove_reader(fd)
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            typed.put_nowait(raw.decode("utf-8", "replace"))

    loop.add_reader(fd, readable)
    try:
        while True:
            for line in await client.lines_after(seen):
                seen = int(line["seq"])
                print(format_line(line), flush=True)
            try:
                text = await asyncio.wait_for(typed.get(), poll_s)
            except TimeoutError:
                continue
            if text is None:
                return 0
            if text.strip():
                try:
                    if await client.send(text):
                        print("（公式アカウントを友だちに追加しました）", flush=True)
                except ValueError as exc:
                    print(f"送信できませんでした: {exc}", flush=True)
    finally:
        loop.remove_reader(fd)


async def _run(args: argparse.Namespace) -> int:
    client = PhoneClient(args.socket or args.dir / "run" / SOCKET_NAME)
    if args.command == "send":
        if await client.send(" ".join(args.text)):
            print("公式アカウントを友だちに追加しました。")
        print("送信しました。")
        return 0
    if args.command == "inbox":
        lines = await client.lines_after(0)
        for line in lines:
            print(format_line(line))
        if not lines:
            print("まだメッセージはありません。")
        return 0
    return await _chat(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kairan-phone",
        description="訓練モードの研修用スマートフォン（LINEの利用者を1人、手で操作します）",
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="the demo folder")
    parser.add_argument("--socket", type=Path, help="the phone's socket (default DIR/run/)")
    sub = parser.add_subparsers(dest="command")
    send = sub.add_parser("send", help="send one message (e.g. the テスト送信先 code)")
    send.add_argument("text", nargs="+")
    sub.add_parser("inbox", help="print the conversation so far")
    sub.add_parser("chat", help="type messages and see replies (the default)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except PhoneUnavailable as exc:
        print(f"kairan-phone: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"kairan-phone: 送信できませんでした: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
