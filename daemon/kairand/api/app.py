"""The staff API site: aiohttp on a unix socket, identity + roles + audit in one middleware.

Every request: resolve the caller (SO_PEERCRED → user name → staff roster), check the route's
roles in api.roles.ROUTES, run the handler, and append one audit entry (allowed or denied).
Handlers raise ApiProblem for anything the caller did wrong; the middleware answers
application/problem+json. An unexpected exception is logged and answered as a problem too (500),
but the fuzz tests prove no body reaches that path.

Handlers live in api.routes (one module per route group) and use api.http's helpers; this
module imports them, never the other way round. Rules (four eyes, the last administrator) are
the services' (kairand.delivery, kairand.staff); handlers load, call and answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from kairand.api import roles as roles_table
from kairand.api.guard import (
    API_LIMITS,
    GUARD,
    ConnectionGuard,
    GuardedUnixSite,
    Limits,
    body_guard,
    request_timer,
)
from kairand.api.http import (
    AUDIT_DETAIL,
    AUDITED,
    RESOLVER,
    ROUTE,
    STAFF,
    STATE,
    ApiState,
    Handler,
    now_ms,
)
from kairand.api.identity import Peer, PeerResolver, peer_from_socket, training_resolver
from kairand.api.problems import ApiProblem
from kairand.api.routes import (
    audience,
    audit_log,
    content,
    dashboard,
    deliveries,
    events,
    me,
    programs,
    queue,
    reports,
    reservations,
    series,
    staff,
    statistics,
    survey,
    test_recipients,
)
from kairand.api.routes.content import IMAGE_TYPES
from kairand.audit.chain import AuditEntry
from kairand.audit.worker import checkpoint_component
from kairand.config import Config
from kairand.errors import ConfigError
from kairand.line.client import LineApi
from kairand.logs import get_logger
from kairand.mail import notices as mail_notices
from kairand.queue.signals import SIGNALS, QueueSignals
from kairand.reservations import notices as reservation_notices
from kairand.runtime import CONFIG, DELIVERY_WAKE, LINE, STORE
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store.database import Store

log = get_logger(__name__)

HANDLERS: dict[str, Handler] = {
    "me": me.me,
    "dashboard": dashboard.dashboard,
    "events": events.stream,
    "statistics": statistics.statistics,
    "survey.get": survey.survey_get,
    "survey.update": survey.survey_update,
    "audience.count": audience.audience_count,
    "deliveries.list": deliveries.list_,
    "deliveries.create": deliveries.create,
    "deliveries.get": deliveries.detail,
    "deliveries.update": deliveries.update,
    "deliveries.test_send": deliveries.test_send,
    "deliveries.submit": deliveries.submit,
    "deliveries.approve": deliveries.approve,
    "deliveries.reject": deliveries.reject,
    "deliveries.resume": deliveries.resume,
    "deliveries.cancel": deliveries.cancel,
    "test_recipients.get": test_recipients.test_recipients_get,
    "test_recipients.code": test_recipients.test_recipients_code,
    "staff.list": staff.staff_list,
    "staff.put": staff.staff_put,
    "staff.delete": staff.staff_delete,
    "audit.list": audit_log.audit_list,
    "audit.verify": audit_log.audit_verify,
    "queue.board": queue.board,
    "queue.board_events": queue.board_events,
    "queue.issue": queue.issue,
    "queue.desk": queue.desk,
    "queue.call": queue.call,
    "queue.action": queue.action,
    "queue.pause": queue.pause,
    "queue.statistics": queue.statistics,
    **reservations.HANDLERS,  # window reservations
    "reports.handling": reports.handling_report,
    "programs.list": programs.programs_list,
    "programs.put": programs.programs_put,
    "districts.list": programs.districts_list,
    "districts.upload": programs.districts_import,
    "institutions.list": programs.institutions_list,
    "institutions.mine": programs.institutions_mine,
    "institutions.put": programs.institutions_put,
    "institutions.staff": programs.institutions_staff,
    "alert_templates.list": programs.templates_list,
    "alert_templates.create": programs.templates_create,
    "alert_templates.approve": programs.templates_approve,
    "alert_templates.retire": programs.templates_retire,
    "alerts.list": programs.alerts_list,
    "alerts.send": programs.alerts_send,
    "alerts.follow_up": programs.alerts_follow_up,
    **content.HANDLERS,  # images, link allowlist, templates
    **series.HANDLERS,  # recurring deliveries, calendar
}
"""Route name (api.roles.ROUTES) → handler."""


async def audit(request: web.Request, actor: str, outcome: str, detail: dict[str, Any]) -> None:
    """Append the access-log entry for this call (S8). Never bodies, user ids or answers."""
    route = request.get(ROUTE)
    action = f"api.{route.name}" if route else "api.unknown"
    target = request.match_info.get("id") or request.match_info.get("username") or ""
    entry = AuditEntry(now_ms(), actor, action, outcome, target, detail)
    try:
        await request.app[STORE].write(audit_store.append, entry, urgent=True)
    except Exception as exc:  # the answer still goes out; the failure is loud in the journal
        log.error("api.audit_failed", action=action, error=type(exc).__name__)


def _route_of(request: web.Request) -> roles_table.Route | None:
    route = request.match_info.route
    name = getattr(route, "name", None)
    return roles_table.BY_NAME.get(name) if name else None


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = _route_of(request)
    if route is not None:
        request[ROUTE] = route
    resolver = request.app[RESOLVER]
    try:
        peer: Peer = await resolver(request)
    except OSError as exc:  # the peer's credentials could not be read: nobody, then
        log.warning("api.peer_unknown", error=type(exc).__name__)
        peer = Peer(None, None)
    record = (
        await request.app[STORE].read(staff_store.get, peer.username) if peer.username else None
    )
    base = {"method": request.method}
    if record is None or not record.active:
        reason = "inactive" if record is not None else "not_on_roster"
        await audit(request, peer.label, "denied", {**base, "reason": reason, "uid": peer.uid})
        log.warning("api.denied", reason=reason, uid=peer.uid)
        return ApiProblem(
            "forbidden",
            "職員名簿に登録された有効な利用者だけが操作できます。管理者にお問い合わせください。",
            code=reason,
        ).response()
    request[STAFF] = record
    if route is None:
        # Unknown path or method: still an access, still logged.
        try:
            resp = await handler(request)
        except web.HTTPMethodNotAllowed:
            problem = ApiProblem("method-not-allowed", "このメソッドは使えません。")
        except web.HTTPException:
            problem = ApiProblem("not-found", "そのアドレスの API はありません。")
        else:  # pragma: no cover - aiohttp only routes through here for 404/405
            return resp
        await audit(request, record.username, "failed", {**base, "status": problem.status})
        return problem.response()
    if not roles_table.allowed(route, record.roles):
        await audit(request, record.username, "denied", {**base, "reason": "role"})
        return ApiProblem(
            "forbidden",
            "この操作に必要な役割がありません。管理者にお問い合わせください。",
            code="role",
        ).response()
    if route.stream:
        await audit(request, record.username, "allowed", base)
        request[AUDITED] = True
    try:
        response = await handler(request)
    except ApiProblem as problem:
        response = problem.response()
    except web.HTTPException as exc:
        response = problem_from_http(exc).response()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("api.internal_error", route=route.name, error=type(exc).__name__)
        response = ApiProblem("internal", "時間をおいてもう一度お試しください。").response()
    if not request.get(AUDITED):
        status = response.status
        outcome = "allowed" if status < 400 else ("denied" if status == 403 else "failed")
        detail = {**base, "status": status, **request.get(AUDIT_DETAIL, {})}
        await audit(request, record.username, outcome, detail)
    return response


def problem_from_http(exc: web.HTTPException) -> ApiProblem:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiProblem("payload-too-large", "送信内容が大きすぎます。", field="body")
    if exc.status >= 500:
        return ApiProblem("internal", "時間をおいてもう一度お試しください。")
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status, "bad-request")
    return ApiProblem(kind, "", status=exc.status)


async def _default_problem_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: whatever escapes the access middleware (a store failure while looking up the
    caller, aiohttp's own errors) still becomes problem+json."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return problem_from_http(exc).response()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("api.internal_error", route="(access)", error=type(exc).__name__)
        return ApiProblem("internal", "時間をおいてもう一度お試しください。").response()


problem_guard = web.middleware(_default_problem_guard)


def make_api_app(
    config: Config,
    store: Store,
    line: LineApi | None = None,
    resolver: PeerResolver = peer_from_socket,
    signals: QueueSignals | None = None,
    wake: asyncio.Event | None = None,
    reservation_wake: asyncio.Event | None = None,
    mail_wake: asyncio.Event | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[request_timer, problem_guard, access_middleware, body_guard],
        client_max_size=config.api.max_body_bytes,
    )
    app[CONFIG] = config
    app[STORE] = store
    app[API_LIMITS] = Limits(
        config.api.max_body_bytes,
        config.api.body_timeout_seconds,
        raw_routes={"media.upload": (IMAGE_TYPES, config.media.max_upload_bytes)},
    )
    if line is not None:
        app[LINE] = line
    app[RESOLVER] = resolver
    app[STATE] = ApiState()
    app[SIGNALS] = signals or QueueSignals()  # shared with the queue's push worker
    if wake is not None:  # shared with the delivery sender (kairand.runtime.DELIVERY_WAKE)
        app[DELIVERY_WAKE] = wake
    if reservation_wake is not None:  # the desk's change/cancel wakes the notice worker
        app[reservation_notices.WAKE] = reservation_wake
    if mail_wake is not None:  # a raised consent version wakes the mail notices at once
        app[mail_notices.WAKE] = mail_wake
    for route in roles_table.ROUTES:
        app.router.add_route(route.method, route.path, HANDLERS[route.name], name=route.name)
    app.cleanup_ctx.append(checkpoint_component)
    app.on_shutdown.append(stop_streams)
    return app


async def stop_streams(app: web.Application) -> None:
    """on_shutdown: end open event streams so the daemon stops at once."""
    app[STATE].stopping.set()


def _prepare_socket(path: Path, mode: int, group: str) -> None:
    os.chmod(path, mode)
    if not group:
        return
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(
            f"api.socket_group {group!r} does not exist",
            'create the group (provisioning/install.sh does) or set api.socket_group = ""',
        ) from None
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        raise ConfigError(
            f"cannot give the API socket to group {group!r}",
            "run kairand as root or as a member of that group (the systemd unit does)",
        ) from None


@contextlib.asynccontextmanager
async def serve(
    config: Config,
    store: Store,
    line: LineApi | None = None,
    resolver: PeerResolver = peer_from_socket,
    signals: QueueSignals | None = None,
    path: Path | None = None,
    wake: asyncio.Event | None = None,
    reservation_wake: asyncio.Event | None = None,
    mail_wake: asyncio.Event | None = None,
) -> AsyncIterator[web.Application]:
    """Run the API on config.api.socket (or PATH) until the block exits (the daemon and tests
    use it)."""
    app = make_api_app(
        config,
        store,
        line,
        resolver,
        signals,
        wake=wake,
        reservation_wake=reservation_wake,
        mail_wake=mail_wake,
    )
    guard = ConnectionGuard(
        header_timeout=config.api.header_timeout_seconds,
        idle_timeout=config.api.idle_timeout_seconds,
        max_per_peer=config.api.max_connections_per_peer,
    )
    app[GUARD] = guard
    # lingering_time: after refusing an unread body, aiohttp keeps reading (so the client gets
    # the answer, not a reset) for at most this long before closing.
    runner = web.AppRunner(app, handle_signals=False, access_log=None, lingering_time=2.0)
    await runner.setup()
    path = config.api.socket if path is None else path
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: path.parent.mkdir(parents=True, exist_ok=True))
    try:
        site = GuardedUnixSite(runner, str(path), guard)
        await site.start()
        await loop.run_in_executor(
            None, _prepare_socket, path, config.api.socket_mode, config.api.socket_group
        )
        log.info("api.listening", socket=str(path))
        yield app
    finally:
        await runner.cleanup()
        with contextlib.suppress(OSError):
            await loop.run_in_executor(None, path.unlink)


async def api_component(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context for kairand.daemon.components(): the staff API site."""
    config = app[CONFIG]
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            serve(
                config,
                app[STORE],
                app.get(LINE),
                signals=app.get(SIGNALS),
                wake=app.get(DELIVERY_WAKE),
                reservation_wake=app.get(reservation_notices.WAKE),
                mail_wake=app.get(mail_notices.WAKE),
            )
        )
        if config.daemon.training_mode:
            for identity, socket_path in config.api.training_sockets.items():
                await stack.enter_async_context(
                    serve(
                        config,
                        app[STORE],
                        app.get(LINE),
                        training_resolver(identity),
                        signals=app.get(SIGNALS),
                        path=socket_path,
                        wake=app.get(DELIVERY_WAKE),
                        reservation_wake=app.get(reservation_notices.WAKE),
                        mail_wake=app.get(mail_notices.WAKE),
                    )
                )
        yield
