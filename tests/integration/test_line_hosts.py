"""Every LINE operation Kairan calls goes to the host LINE's OpenAPI spec lists for it.

LINE serves the Messaging API on api.line.me and a few operations (rich-menu images, content)
only on api-data.line.me (the spec's per-operation `servers`). line-bot-sdk sends every URL to
`Configuration.host`, so Kairan keeps one client per host; the simulator mirrors LINE with one
listener per host and refuses an operation on the wrong one.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from linebot.v3.messaging import (
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    TextMessage,
)

from kairand.delivery.quota import read_quota
from kairand.doctor import _bot_info
from kairand.line.client import DATA_API_BASE, MESSAGING_API_BASE, line_api
from kairand.line.inbox import PendingReply, send_replies
from kairand.line.richmenu import apply_plan, load_plan
from kairand.simulator import Simulator, SimulatorConfig
from kairand.simulator.spec import messaging_spec

pytestmark = pytest.mark.req("S2")

TOKEN = "test-token-hosts"
DAEMON = Path(__file__).resolve().parents[2] / "daemon" / "kairand"
EXAMPLE = Path(__file__).resolve().parents[2] / "provisioning" / "richmenu" / "default.toml"
LISTENER_HOST = {"api": MESSAGING_API_BASE, "data": DATA_API_BASE}


def spec_operations() -> list[tuple[str, re.Pattern[str], str, str]]:
    """(METHOD, path regex, operationId, server URL) for every operation of the spec."""
    document = messaging_spec().document
    root = document["servers"][0]["url"]
    found = []
    for template, item in document["paths"].items():
        path_servers = item.get("servers")
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$")
        for method, operation in item.items():
            if method not in ("get", "post", "put", "delete", "patch"):
                continue
            servers = operation.get("servers") or path_servers
            server = servers[0]["url"] if servers else root
            found.append((method.upper(), pattern, operation["operationId"], server))
    return found


def server_for(method: str, path: str) -> tuple[str, str]:
    # A literal path (…/richmenu/list) wins over a template (…/richmenu/{richMenuId}).
    matches = [
        (op_id, server, pattern.pattern.count("[^/]+"))
        for m, pattern, op_id, server in spec_operations()
        if m == method and pattern.match(path)
    ]
    assert matches, f"{method} {path} is not an operation of LINE's spec"
    op_id, server, _ = min(matches, key=lambda m: m[2])
    return op_id, server


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def sdk_calls_in_daemon() -> set[str]:
    """Names of line-bot-sdk API methods called anywhere in kairand (outside the simulator)."""
    methods = {
        name
        for cls in (AsyncMessagingApi, AsyncMessagingApiBlob)
        for name in vars(cls)
        if not name.startswith("_") and not name.endswith("_with_http_info")
    }
    called: set[str] = set()
    for path in DAEMON.rglob("*.py"):
        if "simulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in methods
            ):
                called.add(node.func.attr)
    return called


def test_every_sdk_operation_kairand_calls_is_on_the_client_for_its_spec_server() -> None:
    """Static: each SDK method Kairan calls belongs to the SDK client (messaging or blob) whose
    host is the server LINE's spec lists for that operation."""
    by_id = {op_id: server for _, _, op_id, server in spec_operations()}
    called = sdk_calls_in_daemon()
    assert {"multicast", "set_rich_menu_image"} <= called
    # Replies go through the messaging client's ApiClient without the model layer
    # (kairand.line.client.reply_json): the same host as the SDK's reply_message.
    assert by_id["replyMessage"] == MESSAGING_API_BASE
    source = (DAEMON / "line" / "client.py").read_text(encoding="utf-8")
    assert "client = api.messaging.api_client" in source
    assert '"/v2/bot/message/reply"' in source
    for name in sorted(called):
        server = by_id[camel(name)]
        on_blob = hasattr(AsyncMessagingApiBlob, name)
        expected = DATA_API_BASE if on_blob else MESSAGING_API_BASE
        assert server == expected, f"{name}: spec server {server}, SDK client {expected}"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(population=3, access_token=TOKEN)) as simulator:
        yield simulator


async def test_simulator_serves_blob_operations_only_on_its_data_host(sim: Simulator) -> None:
    """The rich-menu image upload on the messaging host is a 404, as at LINE; messaging
    operations on the data host too."""
    assert sim.api_url != sim.data_url
    headers = {"Authorization": f"Bearer {TOKEN}"}
    menu = {
        "size": {"width": 2500, "height": 843},
        "selected": False,
        "name": "m",
        "chatBarText": "メニュー",
        "areas": [],
    }
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(sim.api_url + "/v2/bot/richmenu", json=menu) as response:
            assert response.status == 200
            menu_id = (await response.json())["richMenuId"]
        path = f"/v2/bot/richmenu/{menu_id}/content"
        png = {"Content-Type": "image/png"}
        async with http.post(sim.api_url + path, data=b"\x89PNG", headers=png) as response:
            assert response.status == 404
        async with http.get(sim.data_url + "/v2/bot/info") as response:
            assert response.status == 404
        async with http.post(sim.data_url + "/v2/bot/richmenu", json=menu) as response:
            assert response.status == 404
        async with http.post(sim.data_url + path, data=b"\x89PNG", headers=png) as response:
            assert response.status == 400  # reached the operation: the image is not a PNG
    assert sim.platform.rich_menus[menu_id].image is None


async def test_every_request_kairand_sends_reaches_the_spec_server(sim: Simulator) -> None:
    """Dynamic: Kairan's own code paths (rich-menu apply, quota, replies, pushes, multicast,
    profile, the doctor's bot-info check) through its line_api; every request the simulator
    received arrived on the listener for the server LINE's spec lists, and none was a 404."""
    plan = await asyncio.to_thread(load_plan, EXAMPLE)
    uid = sim.follow(1)[0].user_id
    token = sim.send_text(uid, "こんにちは")["replyToken"]
    text: Any = TextMessage(text="お知らせ")
    async with line_api(sim.api_url, TOKEN, 5.0, data_base=sim.data_url) as line:
        new_id, _ = await apply_plan(line, plan)
        await apply_plan(line, plan)  # replaces (and deletes) the first one
        await read_quota(line)
        sent, failed = await send_replies(
            line, [PendingReply(token, ({"type": "text", "text": "x"},))]
        )
        assert (sent, failed) == (1, 0)
        await line.messaging.push_message(PushMessageRequest(to=uid, messages=[text]))
        await line.messaging.multicast(MulticastRequest(to=[uid], messages=[text]))
        await line.messaging.get_profile(uid)
    status, _ = await _bot_info(sim.api_url, TOKEN, 5.0)
    assert status == 200
    assert new_id not in sim.platform.rich_menus and len(sim.platform.rich_menus) == 1
    calls = list(sim.platform.calls)
    assert {listener for listener, _, _ in calls} == {"api", "data"}
    operations = set()
    for listener, method, path in calls:
        op_id, server = server_for(method, path)
        operations.add(op_id)
        assert LISTENER_HOST[listener] == server, f"{op_id} sent to {listener}, spec: {server}"
    assert {"setRichMenuImage", "multicast", "replyMessage", "createRichMenu"} <= operations
