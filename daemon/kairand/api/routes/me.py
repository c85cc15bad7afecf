"""GET /v1/me: who the caller is, their roles and the routes they may use."""

from __future__ import annotations

from aiohttp import web

from kairand.api import roles as roles_table
from kairand.api import schema
from kairand.api.http import config_of, ok, staff_of


async def me(request: web.Request) -> web.Response:
    config = config_of(request)
    record = staff_of(request)
    threshold = config.delivery.self_approval_threshold
    return ok(
        schema.Me(
            username=record.username,
            display_name=record.display_name,
            roles=list(record.roles),  # type: ignore[arg-type]
            training_mode=config.daemon.training_mode,
            four_eyes=schema.FourEyes(self_approval_threshold=threshold, relaxed=threshold > 0),
            allowed=roles_table.allowed_routes(record.roles),
        )
    )
