"""The trainee's side of the simulated LINE chat (訓練モード): a small HTTP API on a unix socket
through which a person plays one of the simulator's residents by hand (`kairan-sim-chat`).

It is no part of the LINE Platform (LINE has no such API): it stands for the resident's phone.
Residents are numbered 1..N (`kairan-sim --players N`); no LINE user id leaves the simulator.

    GET  /players                      {"players": [1, 2]}
    GET  /players/{n}/messages?since=K  what resident n received from message K on
    POST /players/{n}/send              {"text": "番号札を取る"} | {"tap": 1} | {"scan": "https://line.me/R/oaMessage/…"}
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from kairand.simulator.simulator import Simulator

SIMULATOR_KEY = web.AppKey("simulator", Simulator)


def _player(request: web.Request) -> str:
    sim = request.app[SIMULATOR_KEY]
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise web.HTTPNotFound(text="no such player") from None
    if not 1 <= n <= len(sim.played):
        raise web.HTTPNotFound(text=f"no player {n} (kairan-sim --players)")
    return sim.played[n - 1]


def _button_label(action: dict[str, Any]) -> str:
    return str(action.get("label") or action.get("text") or action.get("type", ""))


async def players(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    return web.json_response({"players": list(range(1, len(sim.played) + 1))})


async def messages(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    uid = _player(request)
    try:
        since = max(0, int(request.query.get("since", "0")))
    except ValueError:
        raise web.HTTPBadRequest(text="since must be a number") from None
    items: list[dict[str, Any]] = []
    for receipt in sim.ledger.for_user(uid):
        for message in receipt.messages:
            items.append(
                {
                    "kind": receipt.kind,
                    "type": message.get("type", ""),
                    "text": str(message.get("text", message.get("altText", ""))),
                    "buttons": [
                        _button_label(item["action"])
                        for item in (message.get("quickReply") or {}).get("items", [])
                        if isinstance(item.get("action"), dict)
                    ],
                }
            )
    return web.json_response({"messages": items[since:], "next": len(items)})


async def send(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR_KEY]
    uid = _player(request)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="send a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="send a JSON object")
    try:
        if isinstance(body.get("text"), str) and body["text"].strip():
            sim.send_text(uid, body["text"].strip())
        elif isinstance(body.get("tap"), int):
            sim.tap(uid, body["tap"])
        elif isinstance(body.get("scan"), str):
            sim.scan_qr(uid, body["scan"].strip())
        else:
            raise ValueError("give text, tap or scan")
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    return web.json_response({"sent": True})


def make_control_app(sim: Simulator) -> web.Application:
    app = web.Application()
    app[SIMULATOR_KEY] = sim
    app.router.add_get("/players", players)
    app.router.add_get("/players/{n}/messages", messages)
    app.router.add_post("/players/{n}/send", send)
    return app


async def serve_control(sim: Simulator, path: Path) -> web.AppRunner:
    """Listen on the unix socket PATH (owner only); clean up the returned runner to stop."""
    runner = web.AppRunner(make_control_app(sim), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await asyncio.to_thread(path.unlink, missing_ok=True)
    await web.UnixSite(runner, str(path)).start()
    await asyncio.to_thread(os.chmod, path, 0o600)
    return runner
