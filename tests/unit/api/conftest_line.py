"""A loopback stand-in for the Messaging API endpoints the staff API reaches: quota
(dashboard, approval) and push (test send)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeLine:
    url: str = ""
    limit: int | None = 1000
    used: int = 120
    hits: list[str] = field(default_factory=list)
    pushed: list[dict] = field(default_factory=list)


def make_app(state: FakeLine) -> web.Application:
    async def quota(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        if state.limit is None:
            return web.json_response({"type": "none"})
        return web.json_response({"type": "limited", "value": state.limit})

    async def consumption(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        return web.json_response({"totalUsage": state.used})

    async def push(request: web.Request) -> web.Response:
        state.hits.append(request.path)
        state.pushed.append(await request.json())
        return web.json_response({"sentMessages": [{"id": "1", "quoteToken": "q"}]})

    app = web.Application()
    app.router.add_post("/v2/bot/message/push", push)
    app.router.add_get("/v2/bot/message/quota", quota)
    app.router.add_get("/v2/bot/message/quota/consumption", consumption)
    return app
