"""Route handlers: load, call, answer. Roles and the access log are the middleware's job
(api.app); the delivery state machine is kairand.delivery.service's."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from kairand.api import roles as roles_table
from kairand.api import schema
from kairand.api.app import (
    STATE,
    Handler,
    config_of,
    json_body,
    line_of,
    note,
    query,
    staff_of,
    store_of,
)
from kairand.api.problems import ApiProblem
from kairand.api.statistics import Cell, shown_total, suppress
from kairand.audit import checkpoints
from kairand.audit.chain import AuditEntry
from kairand.logs import get_logger
from kairand.segments import service as segments_service
from kairand.segments.model import SegmentError
from kairand.store import audit as audit_store
from kairand.store import staff as staff_store
from kairand.store import stats as stats_store
from kairand.store import survey as survey_store
from kairand.store import test_recipients as test_recipients_store
from kairand.store.database import Store

log = get_logger(__name__)
JST = dt.timezone(dt.timedelta(hours=9), "JST")


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


# -- identity ----------------------------------------------------------------------------


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


# -- dashboard ---------------------------------------------------------------------------


async def counters(store: Store) -> schema.DashboardCounters:
    today = japan_today()
    start = int(dt.datetime.combine(today, dt.time(), JST).timestamp())
    c = await store.read(stats_store.counters, start, today.isoformat())
    return schema.DashboardCounters(
        friends=c.friends,
        registered=c.registered,
        deliveries_today=c.deliveries_today,
        messages_sent_today=c.messages_sent_today,
        active_deliveries=c.active_deliveries,
        pending_approval=c.pending_approval,
    )


async def quota(request: web.Request) -> schema.Quota | None:
    """LINE's monthly allowance, cached (config.api.quota_cache_seconds)."""
    state = request.app[STATE]
    cached = state.get("quota")
    ttl = config_of(request).api.quota_cache_seconds
    if cached is not None and time.monotonic() - cached[0] < ttl:
        return cached[1]
    line = line_of(request)
    if line is None:
        return None
    now = int(time.time())
    try:
        limit = await line.messaging.get_message_quota(_request_timeout=line.timeout)
        used = await line.messaging.get_message_quota_consumption(_request_timeout=line.timeout)
    except Exception as exc:  # any transport or API failure: the dashboard shows it as health
        log.warning("api.quota_failed", error=type(exc).__name__)
        await store_of(request).write(stats_store.record_line_call, False, now, type(exc).__name__)
        state["quota"] = (time.monotonic(), None)
        return None
    await store_of(request).write(stats_store.record_line_call, True, now)
    result = schema.Quota(
        type=str(limit.type),
        limit=int(limit.value) if limit.value is not None and limit.type == "limited" else None,
        used=int(used.total_usage),
        checked_at=dt.datetime.now(JST),
    )
    state["quota"] = (time.monotonic(), result)
    return result


async def dashboard(request: web.Request) -> web.Response:
    store = store_of(request)
    today = japan_today()
    first = today - dt.timedelta(days=6)
    figures = await counters(store)
    series = await store.read(stats_store.daily, first.isoformat(), today.isoformat())
    days = [
        schema.DayCount(
            day=d,
            follows=series["follow"].get(d.isoformat(), 0),
            unfollows=series["unfollow"].get(d.isoformat(), 0),
        )
        for d in (first + dt.timedelta(days=i) for i in range(7))
    ]
    q = await quota(request)
    settings = await store.read(stats_store.health_settings)
    last_ok = settings.get("line.last_ok_at")
    last_error = settings.get("line.last_error")
    error_at = last_error.get("at") if isinstance(last_error, dict) else None
    reachable: bool | None
    if last_ok is None and error_at is None:
        reachable = None
    else:
        reachable = error_at is None or (last_ok is not None and last_ok >= error_at)
    not_after = settings.get("tls.not_after")
    backup = settings.get("backup.last_ok_at")
    health = schema.Health(
        last_webhook_at=from_unix(settings.get("webhook.last_seen_at")),  # type: ignore[arg-type]
        line_reachable=reachable,
        line_last_ok_at=from_unix(last_ok),  # type: ignore[arg-type]
        line_last_error=str(last_error.get("error")) if isinstance(last_error, dict) else None,
        tls_not_after=from_unix(not_after) if isinstance(not_after, int | float) else None,
        backup_last_ok_at=from_unix(backup) if isinstance(backup, int | float) else None,
    )
    return ok(
        schema.DashboardOut(
            **figures.model_dump(),
            days=days,
            quota=q,
            health=health,
            training_mode=config_of(request).daemon.training_mode,
        )
    )


# -- statistics (W4) ---------------------------------------------------------------------

NO_ANSWER = ("_none", "回答なし")


async def statistics(request: web.Request) -> web.Response:
    store = store_of(request)
    k = config_of(request).privacy.small_cell_threshold
    current = await store.read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        raise ApiProblem("not-found", "アンケートが設定されていません。")
    version, definition = current
    years = frozenset(q.code for q in definition.questions if q.kind in ("year", "year_month"))
    counts = await store.read(stats_store.answer_counts, years)
    questions = []
    for q in definition.questions:
        values = counts.values.get(q.code, {})
        if q.code in years:
            cells = [Cell(code, f"{code[:-1]}年代", n) for code, n in sorted(values.items())]
        else:
            cells = [Cell(o.code, o.label, values.get(o.code, 0)) for o in q.options]
        unanswered = counts.registered - counts.answered.get(q.code, 0)
        partition = q.kind != "multi"
        cells.append(Cell(*NO_ANSWER, max(unanswered, 0)))
        shown = suppress(cells, k, partition=partition)
        questions.append(
            schema.StatisticsQuestion(
                code=q.code,
                title=q.title,
                kind=q.kind,
                cells=[
                    schema.StatisticsCell(
                        code=c.code, label=c.label, count=c.count, display=c.display
                    )
                    for c in shown
                ],
            )
        )
    return ok(
        schema.StatisticsOut(
            survey_version=version,
            registered_display=shown_total(counts.registered, k),
            threshold=k,
            questions=questions,
        )
    )


# -- survey ------------------------------------------------------------------------------


async def survey_get(request: web.Request) -> web.Response:
    current = await store_of(request).read(survey_store.current)
    if current is None:  # pragma: no cover
        raise ApiProblem("not-found", "アンケートが設定されていません。")
    return ok(schema.SurveyOut(version=current[0], definition=current[1]))


def _save_survey(
    conn: Any, update: schema.SurveyUpdate, actor: str, at_ms: int
) -> tuple[int | None, int]:
    current = survey_store.current(conn)
    current_version = current[0] if current else 0
    if update.based_on_version is not None and update.based_on_version != current_version:
        return None, current_version
    if current is not None:
        for q in update.definition.questions:
            old = current[1].question(q.code)
            if old is not None and old.kind != q.kind:
                raise ApiProblem(
                    "validation",
                    f"質問「{q.code}」の種類は変更できません（回答の意味が変わるため）。"
                    "新しいコードの質問として追加してください。",
                    field=f"definition.questions.{update.definition.questions.index(q)}.kind",
                )
    version = survey_store.save(conn, update.definition, actor)
    audit_store.append(
        conn,
        AuditEntry(at_ms, actor, "survey.update", "ok", f"survey:{version}", {"version": version}),
    )
    return version, current_version


async def survey_update(request: web.Request) -> web.Response:
    body = await json_body(request, schema.SurveyUpdate)
    actor = staff_of(request).username
    version, current = await store_of(request).write(
        _save_survey, body, actor, int(time.time() * 1000)
    )
    if version is None:
        raise ApiProblem(
            "conflict",
            f"アンケートは他の方により更新されています（現在の版: {current}）。"
            "最新の内容を読み込んでから編集してください。",
            field="based_on_version",
            code="stale_version",
        )
    note(request, version=version)
    return ok(schema.SurveyUpdated(version=version))


# -- audience ----------------------------------------------------------------------------


async def audience_count(request: web.Request) -> web.Response:
    body = await json_body(request, schema.AudienceCountRequest)
    current = await store_of(request).read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        raise ApiProblem("not-found", "アンケートが設定されていません。")
    try:
        count = await segments_service.audience_count(store_of(request), body.segment, current[1])
    except SegmentError as exc:  # a filter naming an unknown question or option
        raise ApiProblem(
            "validation", exc.message_ja, field=dotted("segment." + exc.field)
        ) from None
    k = config_of(request).privacy.small_cell_threshold
    return ok(schema.AudienceCount(count=count, small=count < k))


# -- test recipients ---------------------------------------------------------------------


async def test_recipients_get(request: web.Request) -> web.Response:
    n = await store_of(request).read(test_recipients_store.count_of, staff_of(request).username)
    return ok(schema.TestRecipients(count=n))


async def test_recipients_code(request: web.Request) -> web.Response:
    await json_body(request, deliveries.Empty)
    now = int(time.time())
    code = await store_of(request).write(
        test_recipients_store.new_code, staff_of(request).username, now
    )
    expires = from_unix(now + test_recipients_store.CODE_LIFETIME_SECONDS)
    assert expires is not None
    return ok(schema.TestRecipientCode(code=code, expires_at=expires), status=201)


# -- staff roster ------------------------------------------------------------------------


def _staff_out(r: staff_store.StaffRecord) -> schema.StaffOut:
    return schema.StaffOut(
        username=r.username,
        display_name=r.display_name,
        roles=list(r.roles),  # type: ignore[arg-type]
        handles_personal_data=r.handles_personal_data,
        active=r.active,
    )


async def staff_list(request: web.Request) -> web.Response:
    records = await store_of(request).read(staff_store.all_staff)
    return ok(schema.StaffList(items=[_staff_out(r) for r in records]))


USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _username(request: web.Request) -> str:
    name = request.match_info["username"]
    if not (1 <= len(name) <= 32) or not set(name) <= USERNAME_CHARS or name[0] in "-.":
        raise ApiProblem(
            "validation",
            "OS のユーザー名（英小文字・数字・_ - .）で指定してください。",
            field="username",
        )
    return name


def _active_admins_after(conn: Any, record: staff_store.StaffRecord) -> int:
    others = [r for r in staff_store.all_staff(conn) if r.username != record.username]
    return sum(1 for r in [*others, record] if r.active and "admin" in r.roles)


def _put_staff(
    conn: Any, record: staff_store.StaffRecord, actor: str, at_ms: int, action: str
) -> bool:
    if _active_admins_after(conn, record) == 0:
        return False
    staff_store.upsert(conn, record, at_ms // 1000)
    audit_store.append(
        conn,
        AuditEntry(
            at_ms,
            actor,
            action,
            "ok",
            record.username,
            {"roles": list(record.roles), "active": record.active},
        ),
    )
    return True


def _deactivate(conn: Any, username: str, actor: str, at_ms: int) -> bool | None:
    current = staff_store.get(conn, username)
    if current is None:
        return None
    record = staff_store.StaffRecord(
        current.username,
        current.display_name,
        current.roles,
        current.handles_personal_data,
        active=False,
    )
    return _put_staff(conn, record, actor, at_ms, "staff.remove")


LAST_ADMIN = (
    "有効な管理者が一人もいなくなるため、この変更はできません。先に別の管理者を登録してください。"
)


async def staff_put(request: web.Request) -> web.Response:
    username = _username(request)
    body = await json_body(request, schema.StaffUpdate)
    record = staff_store.StaffRecord(
        username,
        body.display_name,
        tuple(dict.fromkeys(body.roles)),
        body.handles_personal_data,
        body.active,
    )
    done = await store_of(request).write(
        _put_staff, record, staff_of(request).username, int(time.time() * 1000), "staff.put"
    )
    if not done:
        raise ApiProblem("conflict", LAST_ADMIN, field="roles", code="last_admin")
    return ok(_staff_out(record))


async def staff_delete(request: web.Request) -> web.Response:
    username = _username(request)
    done = await store_of(request).write(
        _deactivate, username, staff_of(request).username, int(time.time() * 1000)
    )
    if done is None:
        raise ApiProblem("not-found", "その職員は名簿に登録されていません。", field="username")
    if not done:
        raise ApiProblem("conflict", LAST_ADMIN, field="username", code="last_admin")
    return web.Response(status=204)


# -- audit -------------------------------------------------------------------------------


def _ms(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=JST)
    return int(value.timestamp() * 1000)


async def audit_list(request: web.Request) -> web.Response:
    q = query(request, schema.AuditQuery)
    rows = await store_of(request).read(
        audit_store.query,
        audit_store.AuditFilter(
            actor=q.actor,
            action=q.action,
            since_ms=_ms(q.since),
            until_ms=_ms(q.until),
            before_seq=q.before_seq,
        ),
        q.limit + 1,
    )
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [
        schema.AuditEntryOut(
            seq=r.seq,
            at=dt.datetime.fromtimestamp(r.entry.at_ms / 1000, JST),
            actor=r.entry.actor,
            action=r.entry.action,
            target=r.entry.target,
            outcome=r.entry.outcome,
            detail=r.entry.detail,
        )
        for r in rows
    ]
    return ok(schema.AuditPage(items=items, next_before_seq=rows[-1].seq if more else None))


async def audit_verify(request: web.Request) -> web.Response:
    public_key = await asyncio.get_running_loop().run_in_executor(None, checkpoints.public_key)
    result = await store_of(request).read(checkpoints.verify_store, public_key)
    note(request, ok=result.ok)
    return ok(
        schema.AuditVerifyResult(
            ok=result.ok,
            entries=result.entries,
            checkpoints=result.checkpoints,
            first_broken_seq=result.first_broken_seq,
            reason=result.reason,
            head_hash=result.head_hash,
        )
    )


async def stop_streams(app: web.Application) -> None:
    """on_shutdown: end open event streams so the daemon stops at once."""
    app[STATE]["stopping"].set()


# -- background: signed checkpoints -------------------------------------------------------


async def background(app: web.Application) -> AsyncIterator[None]:
    """Checkpoint the audit chain every N entries or every hour (config.api.audit_*)."""
    from kairand.api.app import CONFIG, STORE

    config, store = app[CONFIG], app[STORE]

    async def loop() -> None:
        while True:
            await asyncio.sleep(min(30.0, config.api.audit_checkpoint_seconds / 4))
            try:
                await checkpoints.maybe_checkpoint(
                    store,
                    every=config.api.audit_checkpoint_every,
                    max_age_seconds=config.api.audit_checkpoint_seconds,
                )
            except Exception as exc:
                log.error("audit.checkpoint_failed", error=type(exc).__name__)

    task = asyncio.get_running_loop().create_task(loop(), name="audit-checkpoints")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Sign whatever was logged since the last checkpoint, so a clean stop leaves no tail unsigned.
    try:
        await checkpoints.maybe_checkpoint(store, every=1, max_age_seconds=0)
    except Exception as exc:
        log.error("audit.checkpoint_failed", error=type(exc).__name__)


# -- deliveries and events live in their own module ---------------------------------------

from kairand.api import deliveries, events  # noqa: E402

HANDLERS: dict[str, Handler] = {
    "me": me,
    "dashboard": dashboard,
    "events": events.stream,
    "statistics": statistics,
    "survey.get": survey_get,
    "survey.update": survey_update,
    "audience.count": audience_count,
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
    "test_recipients.get": test_recipients_get,
    "test_recipients.code": test_recipients_code,
    "staff.list": staff_list,
    "staff.put": staff_put,
    "staff.delete": staff_delete,
    "audit.list": audit_list,
    "audit.verify": audit_verify,
}

# issue 20: rich content, templates, recurring deliveries (their own modules)
from kairand.api import content as _content  # noqa: E402
from kairand.api import series as _series  # noqa: E402

HANDLERS.update(_content.HANDLERS)
HANDLERS.update(_series.HANDLERS)
