"""The staff API client: the TUI's only I/O.

HTTP over the daemon's unix socket (aiohttp.UnixConnector). Responses are parsed into the wire
models of kairand.api.schema; application/problem+json answers become ApiError carrying the
daemon's Japanese `detail`, so screens can show it as is. A lost connection becomes
ConnectionLost; the next call opens a new connection, so the client reconnects by itself once
the daemon is back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError

from kairand.api import schema

CONNECTION_LOST_MESSAGE = (
    "Kairanのサーバー（kairand）に接続できません。"
    "自動的に再接続を試みています。しばらく待っても戻らない場合は、システム管理者に連絡してください。"
)


class ApiError(Exception):
    """The API refused a request (problem+json). `detail` is Japanese, written for staff."""

    def __init__(
        self, status: int, type_: str, title: str, detail: str, code: str | None = None
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.type = type_
        self.title = title
        self.detail = detail
        self.code = code
        """The API's finer machine code (e.g. quota_exceeded), when it sent one."""

    @property
    def message(self) -> str:
        """What to show: the daemon's explanation, or a generic one by status."""
        if self.detail:
            return self.detail
        if self.title and self.status not in _GENERIC_BY_STATUS:
            return self.title
        return _GENERIC_BY_STATUS.get(
            self.status,
            f"処理できませんでした（コード {self.status}）。"
            "もう一度お試しいただき、続く場合はシステム管理者に連絡してください。",
        )


_GENERIC_BY_STATUS = {
    400: "入力内容に誤りがあります。内容を確認して、もう一度お試しください。",
    401: "職員として登録されていません。システム管理者に職員登録を依頼してください。",
    403: (
        "この操作を行う権限がありません。必要な場合はシステム管理者に役割の追加を依頼してください。"
    ),
    404: "対象が見つかりません。一覧を更新して、もう一度お試しください。",
    409: (
        "ほかの職員が先に操作したため、実行できませんでした。画面を更新して状態を確認してください。"
    ),
    422: "入力内容を処理できませんでした。内容を確認して、もう一度お試しください。",
    500: "サーバーで問題が発生しました。時間をおいてもう一度お試しください。",
    503: "サーバーが一時的に利用できません。時間をおいてもう一度お試しください。",
}


class ConnectionLost(ApiError):
    """The daemon cannot be reached (not running, restarting, or socket missing)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(0, "connection-lost", "接続できません", CONNECTION_LOST_MESSAGE)
        self.reason = reason


class ApiClient:
    """One aiohttp session over the unix socket; safe to share between workers."""

    def __init__(self, socket_path: Path | str, *, timeout: float = 15.0) -> None:
        self.socket_path = Path(socket_path)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=3)
        self._session: aiohttp.ClientSession | None = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=str(self.socket_path))
            # The host part is ignored on a unix socket; "kairan" reads well in daemon logs.
            self._session = aiohttp.ClientSession(
                base_url="http://kairan",
                connector=connector,
                timeout=self._timeout,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _reset(self) -> None:
        # A daemon restart leaves dead keep-alive connections in the pool: start afresh.
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Call the API; returns parsed JSON (or None for 204). Raises ApiError/ConnectionLost."""
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        # Only requests without side effects are retried after a dropped connection.
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            session = self._ensure_session()
            try:
                async with session.request(
                    method, path, json=json_body, params=clean or None
                ) as response:
                    body = await response.read()
                    return _decode(response.status, response.content_type, body)
            except (aiohttp.ClientError, ConnectionError, OSError) as exc:
                await self._reset()
                if attempt + 1 >= attempts:
                    raise ConnectionLost(type(exc).__name__) from exc
            except TimeoutError as exc:
                await self._reset()
                raise ConnectionLost("timeout") from exc
        raise ConnectionLost("unreachable")  # pragma: no cover - loop always returns or raises

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", path, json_body=body)

    async def put(self, path: str, body: Any = None) -> Any:
        return await self.request("PUT", path, json_body=body)

    async def events(
        self, path: str, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[tuple[str, Any]]:
        """Server-sent events from PATH as (event name, parsed data) pairs until it closes.
        ON_OPEN is called once the daemon has accepted the stream."""
        session = self._ensure_session()
        try:
            async with session.get(
                path,
                headers={"Accept": "text/event-stream"},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=60, connect=3),
            ) as response:
                if response.status >= 400:
                    body = await response.read()
                    _decode(response.status, response.content_type, body)
                if on_open is not None:
                    on_open()
                event, data_lines = "message", list[str]()
                async for raw in response.content:
                    line = raw.decode("utf-8").rstrip("\r\n")
                    if not line:
                        if data_lines:
                            yield event, _json_or_text("\n".join(data_lines))
                        event, data_lines = "message", []
                    elif line.startswith(":"):
                        continue
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data_lines.append(line[5:].lstrip())
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            await self._reset()
            raise ConnectionLost(type(exc).__name__) from exc
        except TimeoutError as exc:
            await self._reset()
            raise ConnectionLost("timeout") from exc


class KairanApi(ApiClient):
    """Typed calls of the staff API (docs/api.md): every answer parsed into a schema model."""

    async def _model(
        self, model: type[M], method: str, path: str, body: Any = None, **params: Any
    ) -> M:
        payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        data = await self.request(method, path, json_body=payload, params=params)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ApiError(
                0,
                "urn:kairan:client:unexpected-answer",
                "想定外の応答",
                "サーバーから想定外の応答がありました。画面とサーバーの版が合っているか、"
                "システム管理者に確認してください。",
            ) from exc

    # identity and overview
    async def me(self) -> schema.Me:
        return await self._model(schema.Me, "GET", "/v1/me")

    async def dashboard(self) -> schema.DashboardOut:
        return await self._model(schema.DashboardOut, "GET", "/v1/dashboard")

    async def statistics(self, channel: str = "line") -> schema.StatisticsOut:
        """CHANNEL "mail": the answers of mail subscribers; LINE residents' else."""
        params = {"channel": channel} if channel != "line" else {}
        return await self._model(schema.StatisticsOut, "GET", "/v1/statistics", **params)

    # segments
    async def audience_count(self, segment: schema.SegmentFilter) -> schema.AudienceCount:
        body = schema.AudienceCountRequest(segment=segment)
        return await self._model(schema.AudienceCount, "POST", "/v1/audience-count", body)

    # deliveries
    async def deliveries(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> schema.DeliveryPage:
        return await self._model(
            schema.DeliveryPage, "GET", "/v1/deliveries", status=status, limit=limit, offset=offset
        )

    async def delivery(self, delivery_id: int) -> schema.DeliveryDetail:
        return await self._model(schema.DeliveryDetail, "GET", f"/v1/deliveries/{delivery_id}")

    async def create_draft(self, content: schema.DeliveryContent) -> int:
        created = await self._model(schema.Created, "POST", "/v1/deliveries", content)
        return created.id

    async def update_draft(self, delivery_id: int, content: schema.DeliveryContent) -> None:
        payload = content.model_dump(mode="json")
        await self.request("PUT", f"/v1/deliveries/{delivery_id}", json_body=payload)

    async def _action(self, delivery_id: int, action: str, body: Any = None) -> None:
        path = f"/v1/deliveries/{delivery_id}/{action}"
        await self.request("POST", path, json_body={} if body is None else body)

    async def submit(self, delivery_id: int) -> None:
        await self._action(delivery_id, "submit")

    async def approve(self, delivery_id: int, *, confirm_over_quota: bool = False) -> None:
        body = schema.ApproveRequest(confirm_over_quota=confirm_over_quota)
        await self._action(delivery_id, "approve", body.model_dump(mode="json"))

    async def resume(self, delivery_id: int, *, confirm_over_quota: bool = False) -> None:
        body = schema.ApproveRequest(confirm_over_quota=confirm_over_quota)
        await self._action(delivery_id, "resume", body.model_dump(mode="json"))

    async def reject(self, delivery_id: int, comment: str) -> None:
        await self._action(delivery_id, "reject", {"comment": comment})

    async def cancel(self, delivery_id: int) -> None:
        await self._action(delivery_id, "cancel")

    async def test_send(self, delivery_id: int) -> schema.TestSendResult:
        return await self._model(
            schema.TestSendResult, "POST", f"/v1/deliveries/{delivery_id}/test-send", {}
        )

    # test recipients
    async def test_recipients(self) -> schema.TestRecipients:
        return await self._model(schema.TestRecipients, "GET", "/v1/test-recipients")

    async def new_test_recipient_code(self) -> schema.TestRecipientCode:
        return await self._model(schema.TestRecipientCode, "POST", "/v1/test-recipients/code", {})

    # survey
    async def survey(self) -> schema.SurveyOut:
        return await self._model(schema.SurveyOut, "GET", "/v1/survey")

    async def save_survey(
        self, definition: schema.SurveyDefinition, based_on_version: int | None
    ) -> int:
        body = schema.SurveyUpdate(definition=definition, based_on_version=based_on_version)
        updated = await self._model(schema.SurveyUpdated, "PUT", "/v1/survey", body)
        return updated.version

    # staff and audit
    async def staff(self) -> schema.StaffList:
        return await self._model(schema.StaffList, "GET", "/v1/staff")

    async def put_staff(self, username: str, update: schema.StaffUpdate) -> schema.StaffOut:
        return await self._model(schema.StaffOut, "PUT", f"/v1/staff/{username}", update)

    async def delete_staff(self, username: str) -> None:
        await self.request("DELETE", f"/v1/staff/{username}")

    async def audit(self, query: schema.AuditQuery) -> schema.AuditPage:
        params = query.model_dump(mode="json", exclude_none=True)
        return await self._model(schema.AuditPage, "GET", "/v1/audit", **params)

    async def verify_audit(self) -> schema.AuditVerifyResult:
        return await self._model(schema.AuditVerifyResult, "GET", "/v1/audit/verify")

    # window reservations
    async def reservation_services(self) -> schema.ReservationServices:
        return await self._model(schema.ReservationServices, "GET", "/v1/reservations/services")

    async def save_reservation_services(self, catalogue: schema.Catalogue) -> int:
        body = schema.ReservationServicesUpdate(catalogue=catalogue)
        saved = await self._model(
            schema.ReservationServicesUpdated, "PUT", "/v1/reservations/services", body
        )
        return saved.version

    async def desk(self, service: str | None, first: dt.date | None, days: int = 1) -> schema.Desk:
        params: dict[str, Any] = {"days": days}
        if service:
            params["service"] = service
        if first:
            params["first"] = first.isoformat()
        return await self._model(schema.Desk, "GET", "/v1/reservations/bookings", **params)

    async def phone_booking(self, body: schema.PhoneBooking) -> schema.DeskBooking:
        return await self._model(schema.DeskBooking, "POST", "/v1/reservations/bookings", body)

    async def change_booking(self, booking_id: int, slot: str) -> schema.DeskBooking:
        path = f"/v1/reservations/bookings/{booking_id}/change"
        return await self._model(schema.DeskBooking, "POST", path, {"slot": slot})

    async def cancel_booking(self, booking_id: int) -> schema.DeskBooking:
        path = f"/v1/reservations/bookings/{booking_id}/cancel"
        return await self._model(schema.DeskBooking, "POST", path, {})

    async def booking_outcome(self, booking_id: int, outcome: str) -> schema.DeskBooking:
        path = f"/v1/reservations/bookings/{booking_id}/outcome"
        return await self._model(schema.DeskBooking, "POST", path, {"outcome": outcome})

    async def reservation_statistics(
        self, first: dt.date, last: dt.date
    ) -> schema.ReservationStats:
        return await self._model(
            schema.ReservationStats,
            "GET",
            "/v1/reservations/statistics",
            first=first.isoformat(),
            last=last.isoformat(),
        )

    # programs, districts, institutions, alerts
    async def programs(self) -> schema.ProgramList:
        return await self._model(schema.ProgramList, "GET", "/v1/programs")

    async def districts(self) -> schema.DistrictList:
        return await self._model(schema.DistrictList, "GET", "/v1/districts")

    async def institutions(self) -> schema.InstitutionList:
        return await self._model(schema.InstitutionList, "GET", "/v1/institutions")

    async def my_institutions(self) -> schema.MyInstitutions:
        return await self._model(schema.MyInstitutions, "GET", "/v1/me/institutions")

    async def alert_templates(self) -> schema.AlertTemplateList:
        return await self._model(schema.AlertTemplateList, "GET", "/v1/alert-templates")

    async def put_program(self, code: str, definition: dict[str, Any]) -> None:
        await self.put(f"/v1/programs/{code}", {"definition": definition})

    async def import_districts(self, csv_text: str) -> schema.DistrictImportResult:
        body = schema.DistrictImport(csv=csv_text)
        return await self._model(schema.DistrictImportResult, "POST", "/v1/districts/import", body)

    async def put_institution(self, code: str, body: schema.InstitutionPut) -> None:
        await self.put(f"/v1/institutions/{code}", body.model_dump(mode="json"))

    async def assign_institution_staff(self, code: str, body: schema.InstitutionStaff) -> None:
        await self.post(f"/v1/institutions/{code}/staff", body.model_dump(mode="json"))

    async def create_alert_template(self, body: schema.AlertTemplateCreate) -> schema.Created:
        return await self._model(schema.Created, "POST", "/v1/alert-templates", body)

    async def approve_template(self, template_id: int) -> None:
        await self.post(f"/v1/alert-templates/{template_id}/approve", {})

    async def retire_template(self, template_id: int) -> None:
        await self.post(f"/v1/alert-templates/{template_id}/retire", {})

    async def send_alert(self, body: schema.AlertSend) -> schema.AlertSent:
        return await self._model(schema.AlertSent, "POST", "/v1/alerts", body)

    async def alerts(self) -> schema.AlertList:
        return await self._model(schema.AlertList, "GET", "/v1/alerts")

    async def follow_up(self, delivery_id: int, body: schema.AlertFollowUp) -> schema.AlertSent:
        return await self._model(
            schema.AlertSent, "POST", f"/v1/alerts/{delivery_id}/follow-up", body
        )

    # images, link allowlist, templates, recurring deliveries, calendar
    async def upload_image(self, data: bytes, file_name: str, content_type: str) -> schema.MediaOut:
        """POST /v1/media with the picture's bytes (the TUI read the file from the folder)."""
        session = self._ensure_session()
        headers = {"Content-Type": content_type, "X-File-Name": quote(file_name)}
        try:
            async with session.post("/v1/media", data=data, headers=headers) as response:
                body = await response.read()
                decoded = _decode(response.status, response.content_type, body)
        except (aiohttp.ClientError, ConnectionError, OSError, TimeoutError) as exc:
            await self._reset()
            raise ConnectionLost(type(exc).__name__) from exc
        return schema.MediaOut.model_validate(decoded)

    async def link_domains(self) -> schema.LinkDomains:
        return await self._model(schema.LinkDomains, "GET", "/v1/link-domains")

    async def templates(self) -> schema.TemplateList:
        return await self._model(schema.TemplateList, "GET", "/v1/templates")

    async def save_template(
        self, body: schema.TemplateIn, template_id: int | None = None
    ) -> schema.TemplateOut:
        if template_id is None:
            return await self._model(schema.TemplateOut, "POST", "/v1/templates", body)
        return await self._model(schema.TemplateOut, "PUT", f"/v1/templates/{template_id}", body)

    async def series_list(self) -> schema.SeriesList:
        return await self._model(schema.SeriesList, "GET", "/v1/series")

    async def create_series(self, body: schema.SeriesIn) -> schema.SeriesOut:
        return await self._model(schema.SeriesOut, "POST", "/v1/series", body)

    async def update_series(self, series_id: int, body: schema.SeriesIn) -> schema.SeriesOut:
        """Change a series (approved ones: a change that waits for its own approval)."""
        return await self._model(schema.SeriesOut, "PUT", f"/v1/series/{series_id}", body)

    async def series_action(
        self, series_id: int, action: str, comment: str = ""
    ) -> schema.SeriesOut:
        """submit | approve | reject | pause | resume | end | approve-change | reject-change."""
        path = f"/v1/series/{series_id}/{action}"
        return await self._model(schema.SeriesOut, "POST", path, {"comment": comment})

    async def calendar(self, days: int = 31) -> schema.CalendarOut:
        return await self._model(schema.CalendarOut, "GET", "/v1/calendar", days=days)

    async def delivery_events(self) -> AsyncIterator[schema.DeliveryEvent]:
        """Progress of deliveries from the SSE stream (GET /v1/events)."""
        async for name, data in self.events("/v1/events"):
            if name == "delivery" and isinstance(data, dict):
                yield schema.DeliveryEvent.model_validate(data)

    # -- same-day queue ---------------------------------------------------------

    async def queue_board(self) -> schema.QueueBoard:
        return await self._model(schema.QueueBoard, "GET", "/v1/queue/board")

    async def queue_board_events(
        self, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[schema.QueueBoard]:
        """The board whenever it changes (GET /v1/queue/board/events)."""
        async for name, data in self.events("/v1/queue/board/events", on_open):
            if name == "board" and isinstance(data, dict):
                yield schema.QueueBoard.model_validate(data)

    async def queue_issue(self, service: str) -> schema.QueueIssued:
        body = schema.QueueIssue(service=service)
        return await self._model(schema.QueueIssued, "POST", "/v1/queue/tickets", body)

    async def queue_desk(self) -> schema.QueueDesk:
        return await self._model(schema.QueueDesk, "GET", "/v1/queue/desk")

    async def queue_call(self, service: str, counter: int) -> schema.QueueTicket:
        body = schema.QueueCall(service=service, counter=counter)
        return await self._model(schema.QueueTicket, "POST", "/v1/queue/call", body)

    async def queue_action(
        self, ticket_id: int, action: str, service: str | None = None
    ) -> schema.QueueTicket:
        body = schema.QueueAction.model_validate({"action": action, "service": service})
        return await self._model(
            schema.QueueTicket, "POST", f"/v1/queue/tickets/{ticket_id}/action", body
        )

    async def queue_pause(self, counter: int, paused: bool) -> schema.QueueDesk:
        body = schema.QueuePause(paused=paused)
        return await self._model(
            schema.QueueDesk, "POST", f"/v1/queue/counters/{counter}/pause", body
        )

    async def handling_report(self, first: str, last: str) -> schema.HandlingReportOut:
        """The handling report (取扱状況報告書) for FIRST..LAST (ISO days), signed PDF and
        Markdown, issued by the daemon in the caller's name."""
        return await self._model(
            schema.HandlingReportOut, "GET", "/v1/reports/handling", **{"from": first, "to": last}
        )

    async def queue_statistics(self, first: str, last: str) -> schema.QueueStatistics:
        return await self._model(
            schema.QueueStatistics, "GET", "/v1/queue/statistics", **{"from": first, "to": last}
        )

    async def queue_statistics_csv(self, first: str, last: str) -> bytes:
        """The CSV (UTF-8 with BOM) as the daemon wrote it."""
        session = self._ensure_session()
        params = {"from": first, "to": last, "format": "csv"}
        try:
            async with session.get("/v1/queue/statistics", params=params) as response:
                body = await response.read()
                if response.status >= 400:
                    _decode(response.status, response.content_type, body)
                return body
        except (aiohttp.ClientError, ConnectionError, OSError) as exc:
            await self._reset()
            raise ConnectionLost(type(exc).__name__) from exc


M = TypeVar("M", bound=BaseModel)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _decode(status: int, content_type: str, body: bytes) -> Any:
    if status >= 400:
        problem: dict[str, Any] = {}
        if body:
            try:
                parsed = json.loads(body)
                if isinstance(parsed, dict):
                    problem = parsed
            except ValueError:
                pass
        raise ApiError(
            status,
            str(problem.get("type", "about:blank")),
            str(problem.get("title", "")),
            str(problem.get("detail", "")),
            str(problem["code"]) if problem.get("code") else None,
        )
    if status == 204 or not body:
        return None
    if content_type in ("application/json", "application/problem+json") or body[:1] in b"[{":
        return json.loads(body)
    return body.decode("utf-8")
