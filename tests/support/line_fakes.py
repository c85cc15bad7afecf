"""Test helpers for the LINE side: complete webhook events, signed bodies, and a small aiohttp
stand-in for the Messaging API (reply, profile, rich menu) that records what it received.

The stand-in serves only the endpoints the LINE side calls, with the status codes LINE uses; it
lets tests drive exact answer paths and inspect every reply by token. The 1,000-resident run
uses the real simulator (test_onboarding_simulator.py).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from ulid import ULID

from kairand.config import Config, load_config
from kairand.daemon import STOPPING, run
from kairand.devsetup import init_dev
from kairand.store import inbox
from kairand.store.bootstrap import select_keyring
from tests.support.ports import free_port


def setup_dev(
    directory: Path, line_port: int, *, data_port: int | None = None, extra: str = ""
) -> tuple[Path, Config]:
    """A development setup on free ports (the shared fixture uses fixed ones). DATA_PORT is
    the LINE data host's port (rich-menu images): the simulator's second listener, or the
    stand-in's own port (it serves both)."""
    path = init_dev(
        directory,
        webhook_port=free_port(),
        simulator_port=line_port,
        simulator_data_port=free_port() if data_port is None else data_port,
    )
    if extra:
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    config = load_config(path)
    select_keyring(config)
    return path, config


def channel_secret(config: Config) -> str:
    assert config.keyring.directory is not None
    return (config.keyring.directory / "line-channel-secret").read_text().strip()


def user_id() -> str:
    return "U" + secrets.token_hex(16)


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def post_signed(config: Config, secret: str, body: bytes) -> int:
    """POST BODY, signed with SECRET, to the daemon's webhook unix socket; the HTTP status."""
    assert config.webhook.socket is not None
    connector = aiohttp.UnixConnector(path=str(config.webhook.socket))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            "http://localhost" + config.webhook.path,
            data=body,
            headers={"x-line-signature": sign(secret, body)},
        ) as response,
    ):
        return response.status


def event(
    kind: str,
    user: str,
    timestamp: int,
    *,
    reply_token: str | None = None,
    text: str | None = None,
    data: str | None = None,
    params: dict[str, str] | None = None,
    message_type: str = "text",
    mode: str = "active",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A complete webhook event as LINE sends it (all fields the SDK models require)."""
    body: dict[str, Any] = {
        "type": kind,
        "mode": mode,
        "timestamp": timestamp,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id or str(ULID()),
        "deliveryContext": {"isRedelivery": False},
    }
    if kind != "unfollow":
        body["replyToken"] = reply_token or secrets.token_hex(16)
    if kind == "follow":
        body["follow"] = {"isUnblocked": False}
    elif kind == "message":
        message: dict[str, Any] = {"id": str(secrets.randbelow(10**17)), "type": message_type}
        if message_type == "text":
            message["text"] = text or ""
            message["quoteToken"] = secrets.token_hex(8)
        elif message_type == "image":
            message["contentProvider"] = {"type": "line"}
        body["message"] = message
    elif kind == "postback":
        postback: dict[str, Any] = {"data": data or ""}
        if params:
            postback["params"] = params
        body["postback"] = postback
    return body


def envelope(destination: str, events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"destination": destination, "events": events}, ensure_ascii=False).encode()


class LineStandIn:
    """Records replies (by reply token), serves profiles and rich-menu calls."""

    def __init__(self, reply_delay: float = 0.0) -> None:
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self.reply_waiters: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self.reply_delay = reply_delay
        self.profile_calls = 0
        self.duplicate_replies = 0
        self.calls: list[tuple[str, str]] = []
        self.rich_menus: dict[str, dict[str, Any]] = {}
        self.rich_menu_images: dict[str, tuple[str, int]] = {}
        self.default_rich_menu: str | None = None
        self.fail_status: dict[str, int] = defaultdict(int)
        self.runner: web.AppRunner | None = None
        self.port = 0

    def wait_reply(self, token: str) -> asyncio.Future[list[dict[str, Any]]]:
        future = self.reply_waiters.get(token)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self.reply_waiters[token] = future
            if token in self.replies:
                future.set_result(self.replies[token])
        return future

    async def _reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.calls.append(("reply", ""))
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        token = body["replyToken"]
        messages = body["messages"]
        if not 1 <= len(messages) <= 5:
            return web.json_response({"message": "bad messages"}, status=400)
        if token in self.replies:
            self.duplicate_replies += 1
            return web.json_response({"message": "Invalid reply token"}, status=400)
        self.replies[token] = messages
        future = self.reply_waiters.get(token)
        if future is not None and not future.done():
            future.set_result(messages)
        sent = [
            {"id": str(secrets.randbelow(10**17)), "quoteToken": secrets.token_hex(8)}
            for _ in messages
        ]
        return web.json_response({"sentMessages": sent})

    async def _profile(self, request: web.Request) -> web.Response:
        self.profile_calls += 1
        return web.json_response(
            {
                "displayName": "山田 花子",
                "userId": request.match_info["user"],
                "pictureUrl": "https://profile.example/picture.jpg",
                "statusMessage": "ステータス（保存してはいけない）",
                "language": "ja",
            }
        )

    async def _create_menu(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_status["create"]:
            return web.json_response({"message": "fail"}, status=self.fail_status["create"])
        menu_id = "richmenu-" + secrets.token_hex(16)
        self.rich_menus[menu_id] = body
        self.calls.append(("create", menu_id))
        return web.json_response({"richMenuId": menu_id})

    async def _upload(self, request: web.Request) -> web.Response:
        menu_id = request.match_info["id"]
        data = await request.read()
        if menu_id not in self.rich_menus:
            return web.json_response({"message": "not found"}, status=404)
        if self.fail_status["upload"]:
            return web.json_response({"message": "fail"}, status=self.fail_status["upload"])
        self.rich_menu_images[menu_id] = (request.content_type, len(data))
        self.calls.append(("upload", menu_id))
        return web.json_response({})

    async def _set_default(self, request: web.Request) -> web.Response:
        menu_id = request.match_info["id"]
        if menu_id not in self.rich_menu_images:
            return web.json_response({"message": "must upload an image first"}, status=400)
        self.default_rich_menu = menu_id
        self.calls.append(("default", menu_id))
        return web.json_response({})

    async def _get_default(self, request: web.Request) -> web.Response:
        if self.default_rich_menu is None:
            return web.json_response({"message": "no default"}, status=404)
        return web.json_response({"richMenuId": self.default_rich_menu})

    async def _delete(self, request: web.Request) -> web.Response:
        menu_id = request.match_info["id"]
        self.rich_menus.pop(menu_id, None)
        self.calls.append(("delete", menu_id))
        return web.json_response({})

    async def _list(self, request: web.Request) -> web.Response:
        menus = [{"richMenuId": k, **v} for k, v in self.rich_menus.items()]
        return web.json_response({"richmenus": menus})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_get("/v2/bot/profile/{user}", self._profile)
        app.router.add_post("/v2/bot/richmenu", self._create_menu)
        app.router.add_get("/v2/bot/richmenu/list", self._list)
        app.router.add_post("/v2/bot/richmenu/{id}/content", self._upload)
        app.router.add_delete("/v2/bot/richmenu/{id}", self._delete)
        app.router.add_post("/v2/bot/user/all/richmenu/{id}", self._set_default)
        app.router.add_get("/v2/bot/user/all/richmenu", self._get_default)
        return app

    async def start(self, port: int) -> None:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.port = port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class InProcessDaemon:
    """`kairand.daemon.run` in the test's loop (the real components, webhook on a unix socket
    and loopback TCP), plus a signed-webhook client."""

    def __init__(self, config: Config, store: Any) -> None:
        self.config = config
        self.store = store
        self.secret = channel_secret(config)
        self.app: web.Application | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.session: Any = None

    async def __aenter__(self) -> InProcessDaemon:
        def ready(app: web.Application) -> None:
            self.app = app
            self._ready.set()

        self._task = asyncio.create_task(run(self.config, self.store, ready=ready))
        waiter = asyncio.create_task(self._ready.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=20, return_when="FIRST_COMPLETED"
        )
        if self._task in done:
            waiter.cancel()
            self._task.result()
            raise RuntimeError("daemon stopped at start-up")
        assert self.config.webhook.socket is not None
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self.config.webhook.socket))
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self.app is not None:
            self.app[STOPPING].set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 20)

    async def post(self, events: list[dict[str, Any]]) -> int:
        body = envelope(self.config.webhook.bot_user_id, events)
        async with self.session.post(
            "http://localhost" + self.config.webhook.path,
            data=body,
            headers={
                "x-line-signature": sign(self.secret, body),
                "Content-Type": "application/json",
            },
        ) as response:
            await response.read()
            return int(response.status)

    async def settle(self, limit_seconds: float = 20.0) -> None:
        """Wait until the inbox has nothing pending: every event received so far is applied and
        committed. Replies go out after the commit: wait for one with `LineStandIn.wait_reply`,
        and prove that none went out with `InProcessDaemon.replies_flushed`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_seconds
        while await self.store.read(inbox.count_pending):
            if loop.time() > deadline:
                raise TimeoutError("inbox not drained")
            await asyncio.sleep(0.02)

    async def replies_flushed(self, line: LineStandIn, limit_seconds: float = 10.0) -> None:
        """Wait until every reply to the events received so far has reached LINE.

        The inbox worker applies a batch, commits, sends that batch's replies and only then
        takes the next batch. So: settle, then post a marker event (an active follow of a new
        user, in a later batch) and wait for ITS reply; any reply owed to an earlier event has
        arrived by then. The marker adds one resident."""
        await self.settle()
        marker = event("follow", user_id(), 1)
        assert await self.post([marker]) == 200
        await asyncio.wait_for(line.wait_reply(marker["replyToken"]), limit_seconds)
