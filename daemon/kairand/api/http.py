"""What every route module uses: the API application's keys, the request's keys, and the
helpers that read a request and write an answer. Imports no route module and not the
application (api.app imports the route modules), so the API package has no import circle.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from kairand.api import roles as roles_table
from kairand.api import schema
from kairand.api.identity import PeerResolver
from kairand.api.problems import ApiProblem, from_validation
from kairand.config import Config
from kairand.line.client import LineApi
from kairand.runtime import CONFIG, DELIVERY_WAKE, LINE, STORE
from kairand.store import staff as staff_store
from kairand.store.database import Store
from kairand.timeutil import JST

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiState:
    """Mutable state of one API application."""

    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on shutdown: open event streams end."""
    quota: tuple[float, schema.Quota | None] | None = None
    """(monotonic time read, LINE's monthly quota or None if unreadable), for the dashboard."""


# The API application uses the daemon's CONFIG, STORE and LINE keys (kairand.runtime) for the
# same things; LINE is absent when the API runs without LINE (tests, a store without a token).
RESOLVER: Final[web.AppKey[PeerResolver]] = web.AppKey("api_peer_resolver")
STATE: Final = web.AppKey("api_state", ApiState)

STAFF: Final = web.RequestKey("staff", staff_store.StaffRecord)
ROUTE: Final = web.RequestKey("route", roles_table.Route)
AUDIT_DETAIL: Final[web.RequestKey[dict[str, Any]]] = web.RequestKey("audit_detail")
AUDITED: Final = web.RequestKey("audited", bool)


def now_ms() -> int:
    return int(time.time() * 1000)


def line_of(request: web.Request) -> LineApi | None:
    return request.app.get(LINE)


def wake_sender(request: web.Request) -> None:
    """A delivery became due now: wake the delivery sender instead of waiting for its poll."""
    wake = request.app.get(DELIVERY_WAKE)
    if wake is not None:
        wake.set()


def config_of(request: web.Request) -> Config:
    return request.app[CONFIG]


def store_of(request: web.Request) -> Store:
    return request.app[STORE]


def staff_of(request: web.Request) -> staff_store.StaffRecord:
    return request[STAFF]


def note(request: web.Request, **detail: Any) -> None:
    """Add non-personal facts (a delivery's title, a new version number) to the audit entry."""
    request.setdefault(AUDIT_DETAIL, {}).update(detail)


def ok(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=model.model_dump_json(), content_type="application/json"
    )


def from_unix(seconds: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(seconds, JST) if seconds is not None else None


def japan_today() -> dt.date:
    return dt.datetime.now(JST).date()


def dotted(path: str) -> str:
    """`conditions[1].any_of[0]` → `conditions.1.any_of.0` (the API's field notation)."""
    return path.replace("[", ".").replace("]", "")


class Empty(BaseModel):
    """Action routes without options take no body, or `{}`: anything else is refused."""

    model_config = ConfigDict(extra="forbid")


async def json_body(request: web.Request, model: type[M]) -> M:
    """Read and validate the request body; every failure names the field (4xx, no write)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiProblem(
            "payload-too-large",
            f"送信できる大きさは {request.app[CONFIG].api.max_body_bytes} バイトまでです。",
            field="body",
        ) from None
    if not raw.strip():
        raw = b"{}"
    elif request.content_type != "application/json":
        raise ApiProblem(
            "unsupported-media-type",
            "本文は JSON で、Content-Type: application/json を付けて送信してください。",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiProblem(
            "bad-request", "本文が JSON として読み取れません。", field="body"
        ) from None
    except RecursionError:
        raise ApiProblem("bad-request", "本文の入れ子が深すぎます。", field="body") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None
    except RecursionError:  # pragma: no cover - json.loads refuses such depth first
        raise ApiProblem("bad-request", "本文の入れ子が深すぎます。", field="body") from None


def query(request: web.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values[0] if len(values) == 1 else values
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None
