"""The LINE Messaging API endpoints Kairan uses, with LINE's limits, errors, rate limits, retry
keys, quota and injectable faults. `make_api_app(platform)` builds the aiohttp app; all state
lives in `Platform`, so tests can look inside and move its clock.

LINE serves two hosts: api.line.me (the Messaging API) and api-data.line.me (the operations
whose spec `servers` is api-data: rich-menu images, message content). The simulator mirrors
that with two apps on two listeners, `make_api_app` and `make_data_app`: an operation asked of
the wrong host gets LINE's 404, as it would at LINE. Both record every request they receive
(`Platform.calls`: listener, method, path) so tests can check where each call went.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import struct
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kairand.logs import get_logger
from kairand.simulator import limits
from kairand.simulator.clock import Clock, RealClock
from kairand.simulator.faults import FaultInjector, FaultKind, FaultProfile
from kairand.simulator.ledger import Ledger, Receipt
from kairand.simulator.media import ImageFetcher, image_urls
from kairand.simulator.ratelimit import RateLimiter
from kairand.simulator.spec import ErrorDetail, messaging_spec

log = get_logger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_RICH_MENU_IMAGE_BYTES = 1024 * 1024
MAX_RICH_MENUS = 1000
RETRY_KEY_TTL_S = 24 * 3600.0
REPLY_TOKEN_TTL_S = 60.0
JAPAN = dt.timezone(dt.timedelta(hours=9), "JST")  # LINE counts the month in Japan time

MSG_AUTH_MISSING = (
    "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'"
)
MSG_AUTH_INVALID = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)
MSG_RATE_LIMIT = "The API rate limit has been exceeded"
MSG_MONTHLY_LIMIT = "You have reached your monthly limit."
MSG_RETRY_KEY_ACCEPTED = "The retry key is already accepted"
MSG_INVALID_REPLY_TOKEN = "Invalid reply token"  # noqa: S105 - an error text
MSG_NOT_FOUND = "Not found"
MSG_TOO_LARGE = "Request Entity Too Large"
MSG_INTERNAL = "Internal server error"
MSG_IMAGE_REQUIRED = "must upload richmenu image before applying it to user"

# Per-request keys; the rest of a body (the messages) repeats and its validation is cached.
VOLATILE = ("replyToken", "to")

# Called for every receipt with the already parsed messages (no second parse per resident).
DeliveryListener = Callable[[Receipt, list[dict[str, Any]]], None]


@dataclass(slots=True)
class ReplyToken:
    """Issued with a webhook event; deleted when used (single use) or pruned when expired."""

    user_id: str
    issued_at: float


@dataclass
class RichMenu:
    rich_menu_id: str
    body: dict[str, Any]
    image: bytes | None = None
    content_type: str | None = None


@dataclass
class Platform:
    """LINE's state for one channel, in memory. Never touches the Kairan store."""

    channel_secret: str
    access_tokens: frozenset[str]
    bot_user_id: str
    bot_display_name: str = "訓練用アカウント"
    clock: Clock = field(default_factory=RealClock)
    faults: FaultProfile = field(default_factory=FaultProfile)
    rates: dict[str, float] | None = None
    burst_seconds: float = 1.0
    quota_limit: int | None = None  # None: type "none" (unlimited)
    reply_token_ttl_s: float = REPLY_TOKEN_TTL_S
    retry_key_ttl_s: float = RETRY_KEY_TTL_S
    seed: int = 0
    fault_endpoints: frozenset[str] = frozenset({"push", "multicast", "reply"})
    ledger: Ledger = field(default_factory=Ledger)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # followers' profiles
    blocked: set[str] = field(default_factory=set)
    image_fetcher: ImageFetcher | None = None  # None: image URLs are checked, not fetched

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.clock, self.rates, self.burst_seconds)
        self.injector = FaultInjector(self.faults)
        self._rng = random.Random(f"platform:{self.seed}")
        self.reply_tokens: dict[str, ReplyToken] = {}
        self._prune_at = 10_000
        self.retry_keys: dict[str, tuple[str, float]] = {}  # key -> (request id, accepted at)
        self.usage = 0
        self._usage_month = self._month()
        self.rich_menus: dict[str, RichMenu] = {}
        self.default_rich_menu: str | None = None
        self.user_rich_menus: dict[str, str] = {}
        self._message_seq = 580_000_000_000_000_000
        self.listeners: list[DeliveryListener] = []
        self.counters: dict[str, int] = {}
        # Seconds from an event's reply token being issued to the reply being accepted: what a
        # resident waits for an answer (bench/webhook_ingest.py reports its percentiles).
        self.reply_delays: deque[float] = deque(maxlen=1_000_000)
        # (listener "api" | "data", method, path) of every request, routed or not.
        self.calls: deque[tuple[str, str, str]] = deque(maxlen=100_000)

    def set_faults(self, profile: FaultProfile) -> None:
        """Switch the fault profile (e.g. "the network heals"); its seed restarts the sequence."""
        self.faults = profile
        self.injector = FaultInjector(profile)

    # ---- ids -----------------------------------------------------------------------------
    def new_request_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_reply_token(self, user_id: str) -> str:
        token = f"{self._rng.getrandbits(128):032x}"
        self.reply_tokens[token] = ReplyToken(user_id, self.clock.now())
        if len(self.reply_tokens) > self._prune_at:
            self._prune_reply_tokens()
        return token

    def new_message_id(self) -> str:
        self._message_seq += 1
        return str(self._message_seq)

    def new_quote_token(self) -> str:
        return f"q{self._rng.getrandbits(160):040x}"

    # ---- followers ------------------------------------------------------------------------
    def add_follower(self, profile: dict[str, Any]) -> None:
        self.profiles[profile["userId"]] = profile
        self.blocked.discard(profile["userId"])

    def block(self, user_id: str) -> None:
        self.blocked.add(user_id)
        self.user_rich_menus.pop(user_id, None)

    def is_follower(self, user_id: str) -> bool:
        return user_id in self.profiles and user_id not in self.blocked

    def rich_menu_for(self, user_id: str) -> RichMenu | None:
        menu_id = self.user_rich_menus.get(user_id) or self.default_rich_menu
        return self.rich_menus.get(menu_id) if menu_id else None

    # ---- quota ------------------------------------------------------------------------------
    def _month(self) -> tuple[int, int]:
        # LINE's allowance runs by calendar month in Japan time: in UTC the month would turn
        # at 09:00 on the 1st, and that morning's messages would drop out of 今月.
        d = dt.datetime.fromtimestamp(self.clock.now(), tz=JAPAN)
        return (d.year, d.month)

    def usage_month(self) -> tuple[int, int]:
        """(year, month) of the allowance month now, in Japan time."""
        return self._month()

    def current_usage(self) -> int:
        month = self._month()
        if month != self._usage_month:
            self._usage_month, self.usage = month, 0
        return self.usage

    def quota_allows(self, count: int) -> bool:
        return self.quota_limit is None or self.current_usage() + count <= self.quota_limit

    # ---- retry keys / reply tokens --------------------------------------------------------
    def accepted_request_for(self, key: str) -> str | None:
        found = self.retry_keys.get(key)
        if found is None:
            return None
        request_id, at = found
        if self.clock.now() - at >= self.retry_key_ttl_s:
            del self.retry_keys[key]
            return None
        return request_id

    def _prune_reply_tokens(self) -> None:
        now = self.clock.now()
        for token in [
            t for t, r in self.reply_tokens.items() if now - r.issued_at > self.reply_token_ttl_s
        ]:
            del self.reply_tokens[token]
        # Amortised: the next prune waits until the dict has doubled.
        self._prune_at = max(10_000, 2 * len(self.reply_tokens))

    # ---- delivery -------------------------------------------------------------------------
    def deliver(
        self,
        user_ids: list[str],
        kind: str,
        messages: list[dict[str, Any]],
        request_id: str,
        retry_key: str | None,
        body: bytes,
    ) -> int:
        """Hand messages to followers; returns how many received them (blocked ones do not)."""
        now = self.clock.now()
        count = 0
        for user_id in user_ids:
            if not self.is_follower(user_id):
                continue
            receipt = Receipt(user_id, kind, request_id, retry_key, body, now)
            self.ledger.record(receipt)
            count += 1
            for listener in self.listeners:
                listener(receipt, messages)
        return count


# ---- HTTP plumbing --------------------------------------------------------------------------

PLATFORM_KEY = web.AppKey("platform", Platform)

Handler = Callable[[web.Request, "Call"], Awaitable[web.StreamResponse]]


def error(
    status: int,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = [d.to_json() for d in details]
    return web.json_response(body, status=status, headers=headers)


def invalid(details: list[ErrorDetail]) -> web.Response:
    return error(400, f"The request body has {len(details)} error(s)", details)


@dataclass
class Call:
    """What the wrapper learned before the handler runs."""

    platform: Platform
    request_id: str
    body: Any = None
    raw: bytes = b""


def endpoint(
    group: str, *, schema: str | None = None, json_body: bool = False
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Auth → fault → rate limit → size → parse → validate, then the handler."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            platform = request.app[PLATFORM_KEY]
            request_id = platform.new_request_id()
            response = await checked(request, platform, request_id)
            # LINE issues a request id for every request, errors included.
            response.headers.setdefault("x-line-request-id", request_id)
            return response

        async def checked(
            request: web.Request, platform: Platform, request_id: str
        ) -> web.StreamResponse:
            platform.counters[group] = platform.counters.get(group, 0) + 1
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return error(401, MSG_AUTH_MISSING)
            if auth.removeprefix("Bearer ").strip() not in platform.access_tokens:
                return error(401, MSG_AUTH_INVALID)
            decision = None
            if group in platform.fault_endpoints and platform.faults.active:
                decision = platform.injector.decide()
                if decision.latency_s:
                    await asyncio.sleep(decision.latency_s)
                if decision.kind is FaultKind.ERROR:
                    return error(500, MSG_INTERNAL)
                if decision.kind is FaultKind.TIMEOUT:
                    await asyncio.sleep(platform.faults.hang_seconds)
                    return error(500, MSG_INTERNAL)
            if not platform.limiter.allow(group):
                return error(429, MSG_RATE_LIMIT)
            if (request.content_length or 0) > MAX_BODY_BYTES:
                return error(413, MSG_TOO_LARGE)
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return error(413, MSG_TOO_LARGE)
            except ConnectionResetError:
                # The client went away mid-body (a daemon stopped while replies were on
                # their way): nobody reads an answer; nothing was accepted.
                return error(400, "The request body was not received")
            if len(raw) > MAX_BODY_BYTES:
                return error(413, MSG_TOO_LARGE)
            call = Call(platform, request_id, raw=raw)
            if json_body:
                try:
                    call.body = json.loads(raw)
                except ValueError:
                    return error(400, "The request body could not be parsed as JSON")
                if schema is not None:
                    details = messaging_spec().validate(schema, call.body, VOLATILE)
                    if details:
                        return invalid(details)
            response = await handler(request, call)
            if decision is not None and decision.kind is FaultKind.LOST and response.status < 300:
                log.info("simulator.fault.lost_response", endpoint=group)
                if platform.faults.lost_mode == "500":
                    return error(500, MSG_INTERNAL)
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # nothing reaches the client
            return response

        return run

    return wrap


def _retry_key(request: web.Request) -> tuple[str | None, web.Response | None]:
    key = request.headers.get("X-Line-Retry-Key")
    if key is None:
        return None, None
    try:
        uuid.UUID(key)
    except ValueError:
        return None, error(400, "The value of the X-Line-Retry-Key header must be a UUID")
    return key, None


async def image_details(platform: Platform, messages: Any) -> list[ErrorDetail]:
    """LINE fetches every image of the messages: one it cannot use fails the request."""
    out = []
    for where, url, limit in image_urls(messages):
        if platform.image_fetcher is None:
            problem = None if url.startswith("https://") else "The image URL must use HTTPS"
        else:
            problem = await platform.image_fetcher.check(url, limit, platform.clock.now())
        if problem:
            out.append(ErrorDetail(problem, where))
    return out


def _sent_messages(platform: Platform, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sentMessages": [
            {"id": platform.new_message_id(), "quoteToken": platform.new_quote_token()}
            for _ in messages
        ]
    }


# ---- messages -------------------------------------------------------------------------------


@endpoint("reply", schema="ReplyMessageRequest", json_body=True)
async def reply(request: web.Request, call: Call) -> web.Response:
    if "X-Line-Retry-Key" in request.headers:
        return error(400, "The retry key cannot be used with the reply API")
    details = limits.message_details(call.body["messages"])
    if details:
        return invalid(details)
    platform = call.platform
    fetch = await image_details(platform, call.body["messages"])
    if fetch:
        return invalid(fetch)
    token = platform.reply_tokens.get(call.body["replyToken"])
    now = platform.clock.now()
    if token is None or now - token.issued_at > platform.reply_token_ttl_s:
        platform.counters["reply_refused"] = platform.counters.get("reply_refused", 0) + 1
        return error(400, MSG_INVALID_REPLY_TOKEN)
    del platform.reply_tokens[call.body["replyToken"]]  # single use
    platform.reply_delays.append(now - token.issued_at)
    platform.deliver(
        [token.user_id], "reply", call.body["messages"], call.request_id, None, call.raw
    )
    return web.json_response(_sent_messages(platform, call.body["messages"]))


async def _send(request: web.Request, call: Call, kind: str, to: list[str]) -> web.Response:
    platform = call.platform
    key, bad = _retry_key(request)
    if bad is not None:
        return bad
    details = limits.recipient_details(call.body["to"]) + limits.message_details(
        call.body["messages"]
    )
    if details:
        return invalid(details)
    if key is not None:
        accepted = platform.accepted_request_for(key)
        if accepted is not None:
            # The first attempt was delivered: the caller must treat this as sent.
            return error(
                409,
                MSG_RETRY_KEY_ACCEPTED,
                headers={"x-line-accepted-request-id": accepted},
            )
    fetch = await image_details(platform, call.body["messages"])
    if fetch:
        return invalid(fetch)
    recipients = [u for u in dict.fromkeys(to) if platform.is_follower(u)]
    # All-or-nothing: refuse the whole request when the quota cannot cover every recipient.
    if not platform.quota_allows(len(recipients)):
        return error(429, MSG_MONTHLY_LIMIT)
    if key is not None:
        platform.retry_keys[key] = (call.request_id, platform.clock.now())
    delivered = platform.deliver(
        recipients, kind, call.body["messages"], call.request_id, key, call.raw
    )
    platform.usage = platform.current_usage() + delivered
    if kind == "push":
        return web.json_response(_sent_messages(platform, call.body["messages"]))
    return web.json_response({})


@endpoint("push", schema="PushMessageRequest", json_body=True)
async def push(request: web.Request, call: Call) -> web.Response:
    return await _send(request, call, "push", [call.body["to"]])


@endpoint("multicast", schema="MulticastRequest", json_body=True)
async def multicast(request: web.Request, call: Call) -> web.Response:
    return await _send(request, call, "multicast", list(call.body["to"]))


@endpoint("quota")
async def quota(request: web.Request, call: Call) -> web.Response:
    limit = call.platform.quota_limit
    body: dict[str, Any] = (
        {"type": "none"} if limit is None else {"type": "limited", "value": limit}
    )
    return web.json_response(body)


@endpoint("quota")
async def quota_consumption(request: web.Request, call: Call) -> web.Response:
    return web.json_response({"totalUsage": call.platform.current_usage()})


@endpoint("profile")
async def profile(request: web.Request, call: Call) -> web.Response:
    user_id = request.match_info["userId"]
    if not call.platform.is_follower(user_id):
        return error(404, MSG_NOT_FOUND)
    return web.json_response(call.platform.profiles[user_id])


@endpoint("bot_info")
async def bot_info(request: web.Request, call: Call) -> web.Response:
    platform = call.platform
    return web.json_response(
        {
            "userId": platform.bot_user_id,
            "basicId": "@" + platform.bot_user_id[1:9],
            "displayName": platform.bot_display_name,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }
    )


# ---- rich menus -----------------------------------------------------------------------------


def image_size(data: bytes, content_type: str) -> tuple[int, int] | None:
    """Width and height of a PNG or JPEG, or None if the bytes are not that format."""
    if content_type == "image/png":
        if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
            return None
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if content_type == "image/jpeg":
        if data[:2] != b"\xff\xd8":
            return None
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def _menu_response(menu: RichMenu) -> dict[str, Any]:
    return {"richMenuId": menu.rich_menu_id, **menu.body}


@endpoint("richmenu_create", schema="RichMenuRequest", json_body=True)
async def create_rich_menu(request: web.Request, call: Call) -> web.Response:
    details = limits.rich_menu_details(call.body)
    if details:
        return invalid(details)
    platform = call.platform
    if len(platform.rich_menus) >= MAX_RICH_MENUS:
        return error(400, "The maximum number of rich menus has been reached")
    menu_id = f"richmenu-{platform._rng.getrandbits(128):032x}"
    platform.rich_menus[menu_id] = RichMenu(menu_id, call.body)
    return web.json_response({"richMenuId": menu_id})


@endpoint("richmenu_other")
async def upload_rich_menu_image(request: web.Request, call: Call) -> web.Response:
    menu = call.platform.rich_menus.get(request.match_info["richMenuId"])
    if menu is None:
        return error(404, MSG_NOT_FOUND)
    content_type = request.content_type
    if content_type not in ("image/png", "image/jpeg"):
        return error(415, "Unsupported Media Type: use image/jpeg or image/png")
    if len(call.raw) > MAX_RICH_MENU_IMAGE_BYTES:
        return error(413, MSG_TOO_LARGE)
    if menu.image is not None:
        return error(400, "An image has already been uploaded to the richmenu")
    size = image_size(call.raw, content_type)
    if size is None:
        return error(400, "The image could not be read as " + content_type)
    expected = (menu.body["size"]["width"], menu.body["size"]["height"])
    if size != expected:
        return error(400, f"The image size {size[0]}x{size[1]} must match the rich menu size")
    menu.image, menu.content_type = call.raw, content_type
    return web.json_response({})


@endpoint("richmenu_other")
async def get_rich_menu(request: web.Request, call: Call) -> web.Response:
    menu = call.platform.rich_menus.get(request.match_info["richMenuId"])
    return error(404, MSG_NOT_FOUND) if menu is None else web.json_response(_menu_response(menu))


@endpoint("richmenu_other")
async def delete_rich_menu(request: web.Request, call: Call) -> web.Response:
    platform = call.platform
    menu_id = request.match_info["richMenuId"]
    if platform.rich_menus.pop(menu_id, None) is None:
        return error(404, MSG_NOT_FOUND)
    if platform.default_rich_menu == menu_id:
        platform.default_rich_menu = None
    for user_id in [u for u, m in platform.user_rich_menus.items() if m == menu_id]:
        del platform.user_rich_menus[user_id]
    return web.json_response({})


@endpoint("richmenu_other")
async def list_rich_menus(request: web.Request, call: Call) -> web.Response:
    return web.json_response(
        {"richmenus": [_menu_response(m) for m in call.platform.rich_menus.values()]}
    )


def _appliable(platform: Platform, menu_id: str) -> web.Response | None:
    menu = platform.rich_menus.get(menu_id)
    if menu is None:
        return error(404, MSG_NOT_FOUND)
    if menu.image is None:
        return error(400, MSG_IMAGE_REQUIRED)
    return None


@endpoint("richmenu_link")
async def set_default_rich_menu(request: web.Request, call: Call) -> web.Response:
    menu_id = request.match_info["richMenuId"]
    bad = _appliable(call.platform, menu_id)
    if bad is not None:
        return bad
    call.platform.default_rich_menu = menu_id
    return web.json_response({})


@endpoint("richmenu_link")
async def get_default_rich_menu(request: web.Request, call: Call) -> web.Response:
    menu_id = call.platform.default_rich_menu
    if menu_id is None:
        return error(404, "no default richmenu")
    return web.json_response({"richMenuId": menu_id})


@endpoint("richmenu_link")
async def cancel_default_rich_menu(request: web.Request, call: Call) -> web.Response:
    call.platform.default_rich_menu = None
    return web.json_response({})


@endpoint("richmenu_link")
async def link_rich_menu(request: web.Request, call: Call) -> web.Response:
    user_id, menu_id = request.match_info["userId"], request.match_info["richMenuId"]
    if not limits.USER_ID_RE.match(user_id):
        return error(400, "The user ID is invalid")
    bad = _appliable(call.platform, menu_id)
    if bad is not None:
        return bad
    call.platform.user_rich_menus[user_id] = menu_id
    return web.json_response({})


@endpoint("richmenu_link")
async def unlink_rich_menu(request: web.Request, call: Call) -> web.Response:
    call.platform.user_rich_menus.pop(request.match_info["userId"], None)
    return web.json_response({})


@endpoint("richmenu_link")
async def get_user_rich_menu(request: web.Request, call: Call) -> web.Response:
    menu_id = call.platform.user_rich_menus.get(request.match_info["userId"])
    if menu_id is None:
        return error(404, "the user has no richmenu")
    return web.json_response({"richMenuId": menu_id})


@endpoint("richmenu_other")
async def get_rich_menu_image(request: web.Request, call: Call) -> web.StreamResponse:
    menu = call.platform.rich_menus.get(request.match_info["richMenuId"])
    if menu is None or menu.image is None:
        return error(404, MSG_NOT_FOUND)
    return web.Response(body=menu.image, content_type=menu.content_type or "image/png")


API_LISTENER = "api"
DATA_LISTENER = "data"


def _recorder(listener: str) -> Any:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        request.app[PLATFORM_KEY].calls.append((listener, request.method, request.path))
        return await handler(request)

    return record


def make_api_app(platform: Platform) -> web.Application:
    """api.line.me: every operation Kairan uses except the data host's (see make_data_app)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_recorder(API_LISTENER)])
    app[PLATFORM_KEY] = platform
    r = app.router
    r.add_post("/v2/bot/message/reply", reply)
    r.add_post("/v2/bot/message/push", push)
    r.add_post("/v2/bot/message/multicast", multicast)
    r.add_get("/v2/bot/message/quota", quota)
    r.add_get("/v2/bot/message/quota/consumption", quota_consumption)
    r.add_get("/v2/bot/profile/{userId}", profile)
    r.add_get("/v2/bot/info", bot_info)
    r.add_post("/v2/bot/richmenu", create_rich_menu)
    r.add_get("/v2/bot/richmenu/list", list_rich_menus)
    r.add_get("/v2/bot/richmenu/{richMenuId}", get_rich_menu)
    r.add_delete("/v2/bot/richmenu/{richMenuId}", delete_rich_menu)
    r.add_post("/v2/bot/user/all/richmenu/{richMenuId}", set_default_rich_menu)
    r.add_get("/v2/bot/user/all/richmenu", get_default_rich_menu)
    r.add_delete("/v2/bot/user/all/richmenu", cancel_default_rich_menu)
    r.add_post("/v2/bot/user/{userId}/richmenu/{richMenuId}", link_rich_menu)
    r.add_delete("/v2/bot/user/{userId}/richmenu", unlink_rich_menu)
    r.add_get("/v2/bot/user/{userId}/richmenu", get_user_rich_menu)
    return app


def make_data_app(platform: Platform) -> web.Application:
    """api-data.line.me: only the operations LINE's spec lists with that server."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_recorder(DATA_LISTENER)])
    app[PLATFORM_KEY] = platform
    r = app.router
    r.add_post("/v2/bot/richmenu/{richMenuId}/content", upload_rich_menu_image)
    r.add_get("/v2/bot/richmenu/{richMenuId}/content", get_rich_menu_image)
    return app
