"""A small in-memory staff API on a real unix socket, shaped by kairand.api.schema.

Used for the TUI's snapshot and screen tests, where the figures must not change between runs
(the main flow runs against the real daemon in test_main_flow.py). Every answer is validated
through the schema model before it is sent, so the fake cannot drift from the wire shapes.
Several identities can share one state: start one server per staff member.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kairand.api import roles, schema
from kairand.conversation.survey import default_survey
from kairand.delivery.recurrence import japan_holiday
from tests.support.tui_fake_programs import add_program_routes

JST = dt.timezone(dt.timedelta(hours=9))
NOW = dt.datetime(2026, 4, 1, 10, 0, tzinfo=JST)
"""Fixed 'now' of the fake: old enough that no screen shows a relative time."""


# The holiday tables are read from files on first use: load them here, off the fake's loop.
for _year in range(NOW.year - 1, NOW.year + 3):
    japan_holiday(dt.date(_year, 6, 1))  # (1/1 is 年末年始: answered without the tables)

# Rich-message routes, granted only when a test turns them on (FakeState.rich_routes), so the other
# screens' snapshots (whose navigation lists the allowed screens) stay as they were.
RICH_ROUTES = frozenset(
    name
    for name in roles.BY_NAME
    if name.split(".")[0] in ("media", "link_domains", "templates", "series", "calendar")
)

# The handling report's screen , likewise: granted only when
# a test turns it on (FakeState.handling_report), so the auditor's other snapshots stay.
REPORT_ROUTES = frozenset({"reports.handling"})

# What the fake issues as the report's PDF (the TUI saves it as it comes).
FAKE_REPORT_PDF = b"%PDF-1.4\n% fake handling report\n"


def problem(
    status: int, kind: str, title: str, detail: str, code: str | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:kairan:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if code is not None:
        body["code"] = code
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/problem+json",
    )


def _residents(count: int = 600, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    survey = default_survey()
    area_question, topic_question = survey.question("area"), survey.question("topics")
    assert area_question is not None and topic_question is not None
    areas = [o.code for o in area_question.options]
    topics = [o.code for o in topic_question.options]
    people = []
    for _ in range(count):
        people.append(
            {
                "birth_year": rng.randint(1940, 2008),
                "gender": rng.choice(["female", "male", "female", "male", "other"]),
                "area": rng.choice(areas[:6] * 3 + areas[:-1]),
                "topics": set(rng.sample(topics, rng.randint(1, 3))),
            }
        )
    # A rare area, so that a small cell ("<10") appears in 登録者の傾向.
    for person in people[:4]:
        person["area"] = areas[-1]
    return people


def _small_total(n: int | None) -> str | None:
    """A mail total as the daemon shows it (k = 10), None when mail is off."""
    return None if n is None else (f"{n:,}" if n >= 10 else "<10")


@dataclass
class FakeState:
    staff: dict[str, dict[str, Any]] = field(default_factory=dict)
    survey_version: int = 1
    survey: dict[str, Any] = field(default_factory=lambda: default_survey().model_dump(mode="json"))
    residents: list[dict[str, Any]] = field(default_factory=_residents)
    deliveries: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1
    training_mode: bool = True
    audit: list[dict[str, Any]] = field(default_factory=list)
    send_step: int = 40
    """Recipients 'sent' per tick while a delivery is sending."""
    tick_seconds: float = 0.15
    rich_routes: bool = False
    handling_report: bool = False  # the 取扱状況報告書 screen, see REPORT_ROUTES
    """Grant the issue-20 routes (images, series, calendar)."""
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    series: dict[int, dict[str, Any]] = field(default_factory=dict)
    templates: dict[int, dict[str, Any]] = field(default_factory=dict)
    audience_calls: int = 0
    mail_audience: int = 0
    """Mail subscribers every audience count adds (0: nobody by mail)."""
    mail_registered: int | None = None
    """Registered mail subscribers (None: the mail channel is off). They answered the
    survey as the first that many residents did (for the statistics' mail view)."""
    quota_remaining: int | None = None
    """LINE's remaining monthly messages (None: unlimited)."""
    listeners: list[asyncio.Queue] = field(default_factory=list)
    programs: dict[str, Any] = field(default_factory=dict)
    """State of the issue-16 routes (tests.support.tui_fake_programs)."""

    def broadcast(self, name: str, payload: dict[str, Any]) -> None:
        """Send an SSE event to every open /v1/events stream."""
        for queue in list(self.listeners):
            queue.put_nowait((name, payload))

    def add_staff(self, username: str, display_name: str, roles: list[str]) -> None:
        self.staff[username] = {
            "username": username,
            "display_name": display_name,
            "roles": roles,
            "handles_personal_data": True,
            "active": True,
        }

    def log(self, actor: str, action: str, target: str = "", outcome: str = "ok") -> None:
        seq = len(self.audit) + 1
        at = NOW + dt.timedelta(minutes=seq)
        self.audit.append(
            {
                "seq": seq,
                "at": at.isoformat(),
                "actor": actor,
                "action": action,
                "target": target,
                "outcome": outcome,
                "detail": {},
            }
        )

    def count(self, segment: dict[str, Any]) -> int:
        if segment.get("all_registered"):
            return len(self.residents)
        send_year = NOW.year
        selected = 0
        for person in self.residents:
            ok = True
            for cond in segment.get("conditions", []):
                q = cond["question"]
                if "any_of" in cond:
                    value = person[q]
                    values = value if isinstance(value, set) else {value}
                    if not values & set(cond["any_of"]):
                        ok = False
                else:
                    age = send_year - person[q]
                    if cond.get("age_from") is not None and age < cond["age_from"]:
                        ok = False
                    if cond.get("age_to") is not None and age > cond["age_to"]:
                        ok = False
            selected += ok
        return selected

    def add_delivery(
        self, author: str, content: dict[str, Any], status: str = "draft", **extra: Any
    ) -> int:
        delivery_id = self.next_id
        self.next_id += 1
        created = NOW - dt.timedelta(days=10 - delivery_id)
        self.deliveries[delivery_id] = {
            "id": delivery_id,
            "title": content["title"],
            "status": status,
            "urgent": False,
            "author": author,
            "approver": None,
            "scheduled_at": content.get("scheduled_at"),
            "created_at": created.isoformat(),
            "recipient_count": None,
            "sent_count": 0,
            "failed_count": 0,
            "content": content,
            "reject_comment": None,
            "progress": 0.0,
            "batches_total": 0,
            "batches_done": 0,
            **extra,
        }
        return delivery_id

    def summary(self, d: dict[str, Any]) -> dict[str, Any]:
        sent_back = d["status"] == "draft" and bool(d.get("reject_comment"))
        return schema.DeliverySummary.model_validate({**d, "sent_back": sent_back}).model_dump(
            mode="json"
        )

    def detail(self, d: dict[str, Any]) -> dict[str, Any]:
        return schema.DeliveryDetail.model_validate(d).model_dump(mode="json")


def sample_content(title: str, **overrides: Any) -> dict[str, Any]:
    content = {
        "title": title,
        "confidentiality": 1,
        "messages": [f"{title}のお知らせです。\n詳しくは市のホームページをご覧ください。"],
        "segment": {"conditions": [{"question": "topics", "any_of": ["kosodate"]}]},
        "notification_disabled": False,
        "scheduled_at": None,
        "urgent": False,
    }
    content.update(overrides)
    return content


def demo_state() -> FakeState:
    """Staff with every role combination the tests need, and a few past deliveries."""
    state = FakeState()
    state.add_staff("sato", "佐藤 花子", ["author"])
    state.add_staff("suzuki", "鈴木 一郎", ["approver"])
    state.add_staff("tanaka", "田中 次郎", ["admin"])
    state.add_staff("takahashi", "高橋 三郎", ["auditor"])
    state.add_staff("ito", "伊藤 四郎", ["author", "approver"])
    sent = state.add_delivery(
        "sato", sample_content("乳幼児健診の日程"), status="sent", approver="suzuki"
    )
    state.deliveries[sent].update(recipient_count=212, sent_count=210, failed_count=2, progress=1.0)
    state.add_delivery(
        "sato",
        sample_content(
            "防災訓練のご案内",
            segment={"conditions": [{"question": "area", "any_of": ["honmachi", "ekimae"]}]},
        ),
        status="pending_approval",
    )
    state.add_delivery(
        "ito", sample_content("秋のイベント情報", segment={"all_registered": True}), status="draft"
    )
    for i in range(5):
        state.log(
            ["sato", "suzuki", "tanaka"][i % 3],
            ["api.deliveries.create", "api.deliveries.approve", "api.survey.update"][i % 3],
            f"delivery:{i + 1}",
        )
    return state


def _leaves_no_admin(staff: dict[str, dict[str, Any]]) -> bool:
    return not any("admin" in p["roles"] and p["active"] for p in staff.values())


def make_fake_app(state: FakeState, username: str) -> web.Application:
    routes = web.RouteTableDef()

    def me() -> dict[str, Any]:
        return state.staff[username]

    def allowed(route: str) -> bool:
        if route in REPORT_ROUTES and not state.handling_report:
            return False
        if route in RICH_ROUTES and not state.rich_routes:
            return False
        # The daemon's own roles matrix: a route the fake invents fails here (KeyError).
        return roles.allowed(roles.BY_NAME[route], me()["roles"])

    def guard(route: str) -> web.Response | None:
        if not allowed(route):
            state.log(username, f"api.{route}", outcome="denied")
            return problem(
                403,
                "forbidden",
                "この操作を行う権限がありません",
                "この操作には別の役割が必要です。システム管理者に相談してください。",
            )
        state.log(username, f"api.{route}")
        return None

    def find(request: web.Request) -> dict[str, Any] | None:
        return state.deliveries.get(int(request.match_info["id"]))

    def not_found() -> web.Response:
        return problem(404, "not-found", "見つかりません", "指定された配信は見つかりません。")

    @routes.get("/v1/me")
    async def get_me(_: web.Request) -> web.Response:
        person = me()
        routes_allowed = [
            r
            for r in roles.allowed_routes(person["roles"])
            if (state.rich_routes or r not in RICH_ROUTES)
            and (state.handling_report or r not in REPORT_ROUTES)
        ]
        body = schema.Me.model_validate(
            {
                **person,
                "training_mode": state.training_mode,
                "four_eyes": {"self_approval_threshold": 0, "relaxed": False},
                "allowed": routes_allowed,
            }
        )
        return web.json_response(body.model_dump(mode="json"))

    @routes.get("/v1/reports/handling")
    async def handling_report(request: web.Request) -> web.Response:
        if (denied := guard("reports.handling")) is not None:
            return denied
        first, last = request.query["from"], request.query["to"]
        if first > last:
            return problem(
                422,
                "validation",
                "入力内容を確認してください",
                "開始日が終了日より後になっています。",
            )
        person = me()
        body = schema.HandlingReportOut(
            period_from=dt.date.fromisoformat(first),
            period_to=dt.date.fromisoformat(last),
            author=f"{person['display_name']}（{person['username']}）",
            markdown=f"# 取扱状況報告書\n\n期間：{first}〜{last}\n",
            pdf_base64=base64.b64encode(FAKE_REPORT_PDF).decode(),
        )
        return web.json_response(body.model_dump(mode="json"))

    @routes.get("/v1/dashboard")
    async def dashboard(_: web.Request) -> web.Response:
        if (denied := guard("dashboard")) is not None:
            return denied
        days = [
            {
                "day": (NOW.date() - dt.timedelta(days=6 - i)).isoformat(),
                "follows": [12, 8, 15, 4, 22, 9, 11][i],
                "unfollows": [1, 0, 3, 1, 2, 0, 1][i],
            }
            for i in range(7)
        ]
        body = schema.DashboardOut.model_validate(
            {
                "friends": 642,
                "registered": len(state.residents),
                "deliveries_today": 1,
                "messages_sent_today": 210,
                "active_deliveries": sum(
                    d["status"] in ("approved", "scheduled", "sending")
                    for d in state.deliveries.values()
                ),
                "pending_approval": sum(
                    d["status"] == "pending_approval" for d in state.deliveries.values()
                ),
                "days": days,
                "quota": {
                    "type": "limited",
                    "limit": 5000,
                    "used": 1210,
                    "checked_at": NOW.isoformat(),
                },
                "health": {
                    "last_webhook_at": (NOW - dt.timedelta(minutes=3)).isoformat(),
                    "line_reachable": True,
                    "line_last_ok_at": NOW.isoformat(),
                    "line_last_error": None,
                    "tls_not_after": None,
                },
                "training_mode": state.training_mode,
                "registered_mail": _small_total(state.mail_registered),
            }
        )
        return web.json_response(body.model_dump(mode="json"))

    @routes.get("/v1/statistics")
    async def statistics(request: web.Request) -> web.Response:
        if (denied := guard("statistics")) is not None:
            return denied
        channel = request.query.get("channel", "line")
        people = state.residents[: state.mail_registered or 0] if channel == "mail" else None
        survey = default_survey()
        who = state.residents if people is None else people
        questions = []
        for q in survey.questions:
            cells = []
            if q.kind == "year":
                decades: dict[int, int] = {}
                for p in who:
                    decades[p["birth_year"] // 10 * 10] = (
                        decades.get(p["birth_year"] // 10 * 10, 0) + 1
                    )
                for decade in sorted(decades):
                    n = decades[decade]
                    cells.append(
                        {
                            "code": f"{decade}s",
                            "label": f"{decade}年代",
                            "count": n if n >= 10 else None,
                            "display": str(n) if n >= 10 else "<10",
                        }
                    )
            else:
                for o in q.options:
                    n = sum(
                        o.code in (p[q.code] if isinstance(p[q.code], set) else {p[q.code]})
                        for p in who
                    )
                    cells.append(
                        {
                            "code": o.code,
                            "label": o.label,
                            "count": n if n >= 10 else None,
                            "display": f"{n:,}" if n >= 10 else "<10",
                        }
                    )
            questions.append({"code": q.code, "title": q.title, "kind": q.kind, "cells": cells})
        body = schema.StatisticsOut.model_validate(
            {
                "survey_version": state.survey_version,
                "registered_display": f"{len(state.residents):,}",
                "registered_mail_display": _small_total(state.mail_registered),
                "channel": channel,
                "threshold": 10,
                "questions": questions,
            }
        )
        return web.json_response(body.model_dump(mode="json"))

    @routes.get("/v1/survey")
    async def get_survey(_: web.Request) -> web.Response:
        if (denied := guard("survey.get")) is not None:
            return denied
        body = schema.SurveyOut.model_validate(
            {"version": state.survey_version, "definition": state.survey}
        )
        return web.json_response(body.model_dump(mode="json"))

    @routes.put("/v1/survey")
    async def put_survey(request: web.Request) -> web.Response:
        if (denied := guard("survey.update")) is not None:
            return denied
        update = schema.SurveyUpdate.model_validate(await request.json())
        if update.based_on_version != state.survey_version:
            return problem(
                409,
                "conflict",
                "現在の状態ではこの操作はできません",
                "ほかの職員が先にアンケートを保存しました。読み込み直してください。",
            )
        state.survey_version += 1
        state.survey = update.definition.model_dump(mode="json")
        return web.json_response({"version": state.survey_version})

    @routes.post("/v1/audience-count")
    async def audience(request: web.Request) -> web.Response:
        if (denied := guard("audience.count")) is not None:
            return denied
        state.audience_calls += 1
        body = schema.AudienceCountRequest.model_validate(await request.json())
        n = state.count(body.segment.model_dump(mode="json"))
        m = state.mail_audience
        out = schema.AudienceCount(count=n + m, small=n + m < 10, line=n, mail=m)
        return web.json_response(out.model_dump(mode="json"))

    @routes.get("/v1/deliveries")
    async def list_deliveries(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.list")) is not None:
            return denied
        status = request.query.get("status")
        q = schema.DeliveryQuery.model_validate(dict(request.query))
        items = [
            state.summary(d)
            for d in sorted(state.deliveries.values(), key=lambda d: -d["id"])
            if status is None or d["status"] == status
        ]
        page = items[q.offset : q.offset + q.limit]
        more = q.offset + q.limit < len(items)
        return web.json_response(
            {
                "items": page,
                "limit": q.limit,
                "offset": q.offset,
                "next_offset": q.offset + q.limit if more else None,
            }
        )

    @routes.post("/v1/deliveries")
    async def create(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.create")) is not None:
            return denied
        content = schema.DeliveryContent.model_validate(await request.json())
        delivery_id = state.add_delivery(username, content.model_dump(mode="json"))
        return web.json_response({"id": delivery_id}, status=201)

    @routes.get("/v1/deliveries/{id}")
    async def get_delivery(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.get")) is not None:
            return denied
        d = find(request)
        return not_found() if d is None else web.json_response(state.detail(d))

    @routes.put("/v1/deliveries/{id}")
    async def update(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.update")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        content = schema.DeliveryContent.model_validate(await request.json())
        d["content"] = content.model_dump(mode="json")
        d["title"] = content.title
        return web.Response(status=204)

    def move(d: dict[str, Any], allowed_from: tuple[str, ...], to: str) -> web.Response | None:
        if d["status"] not in allowed_from:
            return problem(
                409,
                "conflict",
                "現在の状態ではこの操作はできません",
                "この配信の状態が変わっています。一覧を更新してください。",
            )
        d["status"] = to
        return None

    @routes.post("/v1/deliveries/{id}/submit")
    async def submit(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.submit")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        if d["status"] == "draft" and state.count(d["content"]["segment"]) == 0:
            return problem(
                422, "validation", "入力内容を確認してください",
                "該当する登録者がいません。条件を見直してください。",
            )  # fmt: skip
        return move(d, ("draft",), "pending_approval") or web.Response(status=204)

    @routes.post("/v1/deliveries/{id}/approve")
    async def approve(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.approve")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        if d["author"] == username:
            return problem(
                403,
                "four-eyes",
                "作成者ご本人はこの配信を承認できません",
                "ほかの承認者に承認を依頼してください。",
            )
        body = schema.ApproveRequest.model_validate(await request.json())
        needed = state.count(d["content"]["segment"])
        if state.quota_remaining is not None and needed > state.quota_remaining:
            if not body.confirm_over_quota:
                return problem(
                    409,
                    "conflict",
                    "現在の状態ではこの操作はできません",
                    f"今月の送信可能数が不足しています（必要 {needed:,} 通、"
                    f"残り {state.quota_remaining:,} 通）。",
                    code="quota_exceeded",
                )
            d["quota_confirmed"] = True
        failed = move(d, ("pending_approval",), "sending")
        if failed is not None:
            return failed
        d["approver"] = username
        d["recipient_count"] = state.count(d["content"]["segment"])
        asyncio.get_running_loop().create_task(_send(state, d))
        return web.Response(status=204)

    @routes.post("/v1/deliveries/{id}/resume")
    async def resume(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.resume")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        schema.ApproveRequest.model_validate(await request.json())
        failed = move(d, ("needs_attention", "quota_exhausted"), "sending")
        if failed is not None:
            return failed
        asyncio.get_running_loop().create_task(_send(state, d))
        return web.Response(status=204)

    @routes.post("/v1/deliveries/{id}/reject")
    async def reject(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.reject")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        body = schema.RejectRequest.model_validate(await request.json())
        d["reject_comment"] = body.comment
        return move(d, ("pending_approval",), "draft") or web.Response(status=204)

    @routes.post("/v1/deliveries/{id}/cancel")
    async def cancel(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.cancel")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        return move(d, ("approved", "scheduled", "sending"), "cancelled") or web.Response(
            status=204
        )

    @routes.post("/v1/deliveries/{id}/test-send")
    async def test_send(request: web.Request) -> web.Response:
        if (denied := guard("deliveries.test_send")) is not None:
            return denied
        d = find(request)
        if d is None:
            return not_found()
        d["test_sent"] = d.get("test_sent", 0) + 1
        return web.json_response({"sent": 1})

    @routes.get("/v1/test-recipients")
    async def test_recipients(_: web.Request) -> web.Response:
        if (denied := guard("test_recipients.get")) is not None:
            return denied
        return web.json_response({"count": 1})

    @routes.post("/v1/test-recipients/code")
    async def test_code(_: web.Request) -> web.Response:
        if (denied := guard("test_recipients.code")) is not None:
            return denied
        return web.json_response(
            {"code": "KAIRAN-482913", "expires_at": (NOW + dt.timedelta(minutes=15)).isoformat()}
        )

    @routes.get("/v1/staff")
    async def staff(_: web.Request) -> web.Response:
        if (denied := guard("staff.list")) is not None:
            return denied
        return web.json_response({"items": [state.staff[k] for k in sorted(state.staff)]})

    @routes.put("/v1/staff/{username}")
    async def staff_put(request: web.Request) -> web.Response:
        if (denied := guard("staff.put")) is not None:
            return denied
        name = request.match_info["username"]
        body = schema.StaffUpdate.model_validate(await request.json())
        record = {"username": name, **body.model_dump(mode="json")}
        if _leaves_no_admin({**state.staff, name: record}):
            return problem(
                409, "conflict", "変更できません",
                "有効な管理者が1人もいなくなるため、この変更はできません。",
            )  # fmt: skip
        state.staff[name] = record
        state.log(username, "staff.put", f"staff:{name}")
        return web.json_response(record)

    @routes.delete("/v1/staff/{username}")
    async def staff_delete(request: web.Request) -> web.Response:
        if (denied := guard("staff.delete")) is not None:
            return denied
        name = request.match_info["username"]
        if name not in state.staff:
            return not_found()
        rest = {k: v for k, v in state.staff.items() if k != name}
        if _leaves_no_admin(rest):
            return problem(
                409, "conflict", "削除できません",
                "有効な管理者が1人もいなくなるため、この職員は削除できません。",
            )  # fmt: skip
        state.staff = rest
        state.log(username, "staff.remove", f"staff:{name}")
        return web.Response(status=204)

    @routes.get("/v1/audit")
    async def audit(request: web.Request) -> web.Response:
        if (denied := guard("audit.list")) is not None:
            return denied
        actor = request.query.get("actor")
        action = request.query.get("action")
        items = [
            e
            for e in reversed(state.audit)
            if (actor is None or e["actor"] == actor)
            and (action is None or e["action"].startswith(action))
        ]
        body = schema.AuditPage.model_validate({"items": items[:8], "next_before_seq": None})
        return web.json_response(body.model_dump(mode="json"))

    @routes.get("/v1/audit/verify")
    async def verify(_: web.Request) -> web.Response:
        if (denied := guard("audit.verify")) is not None:
            return denied
        return web.json_response(
            {
                "ok": True,
                "entries": len(state.audit),
                "checkpoints": 2,
                "first_broken_seq": None,
                "reason": "",
                "head_hash": "ab" * 32,
            }
        )

    @routes.get("/v1/events")
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        state.listeners.append(queue)
        try:
            while True:
                name, payload = await queue.get()
                await response.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            # The client went away or the fake is shutting down: end the stream for real, as
            # the daemon does, so the client notices.
            if request.transport is not None:
                request.transport.close()
        finally:
            state.listeners.remove(queue)
        return response

    add_program_routes(routes, username, guard, state.programs)
    app = web.Application()
    # -- rich messages ---------------------------------------------------------------------

    @routes.post("/v1/media")
    async def media_upload(request: web.Request) -> web.Response:
        if (refused := guard("media.upload")) is not None:
            return refused
        import hashlib
        import urllib.parse

        data = await request.read()
        if not data.startswith((b"\xff\xd8\xff", b"\x89PNG")):
            return problem(
                422, "validation", "画像を読み取れません", "JPEG か PNG を選んでください。"
            )
        media_id = hashlib.sha256(data).hexdigest()
        out = schema.MediaOut(
            id=media_id,
            content_type=request.content_type,
            width=800,
            height=600,
            bytes=len(data),
            preview_bytes=min(len(data), 1024 * 1024),
            file_name=urllib.parse.unquote(request.headers.get("X-File-Name", "")),
        )
        state.media[media_id] = out.model_dump(mode="json")
        return web.json_response(state.media[media_id], status=201)

    def series_out(item: dict[str, Any]) -> dict[str, Any]:
        rule = schema.RecurrenceRule.model_validate(item["rule"])
        after = dt.datetime.combine(NOW.date(), dt.time(0), tzinfo=JST)
        upcoming = (
            schema.occurrences(rule, after=after, limit=5)
            if item["status"] in ("active", "pending_approval", "paused", "draft")
            else []
        )
        return schema.SeriesOut.model_validate(
            {
                **item,
                "rule_text": schema.describe(rule),
                "next_occurrences": upcoming,
                "occurrences_done": item.get("occurrences_done", 0),
            }
        ).model_dump(mode="json")

    @routes.get("/v1/series")
    async def series_list(_: web.Request) -> web.Response:
        if (refused := guard("series.list")) is not None:
            return refused
        items = [series_out(s) for s in sorted(state.series.values(), key=lambda s: -s["id"])]
        return web.json_response({"items": items})

    @routes.post("/v1/series")
    async def series_create(request: web.Request) -> web.Response:
        if (refused := guard("series.create")) is not None:
            return refused
        body = schema.SeriesIn.model_validate(await request.json())
        series_id = len(state.series) + 1
        state.series[series_id] = {
            "id": series_id,
            "title": body.content.title,
            "status": "draft",
            "content": body.content.model_dump(mode="json"),
            "rule": body.rule.model_dump(mode="json"),
            "author": username,
            "approver": None,
        }
        return web.json_response(series_out(state.series[series_id]), status=201)

    @routes.put("/v1/series/{id}")
    async def series_update(request: web.Request) -> web.Response:
        if (refused := guard("series.update")) is not None:
            return refused
        item = state.series.get(int(request.match_info["id"]))
        if item is None:
            return not_found()
        body = schema.SeriesIn.model_validate(await request.json())
        proposed = {
            "title": body.content.title,
            "content": body.content.model_dump(mode="json"),
            "rule": body.rule.model_dump(mode="json"),
        }
        if item["status"] in ("active", "paused"):
            rule = schema.RecurrenceRule.model_validate(proposed["rule"])
            after = dt.datetime.combine(NOW.date(), dt.time(0), tzinfo=JST)
            item["pending_change"] = {
                **proposed,
                "rule_text": schema.describe(rule),
                "next_occurrences": schema.occurrences(rule, after=after, limit=5),
                "proposed_by": username,
                "proposed_at": NOW,
            }
        elif item["status"] in ("draft", "pending_approval"):
            item.update(proposed)
        else:
            return problem(409, "conflict", "操作できません", "この状態では操作できません。")
        return web.json_response(series_out(item))

    @routes.post("/v1/series/{id}/{action}")
    async def series_action(request: web.Request) -> web.Response:
        action = request.match_info["action"]
        if (refused := guard(f"series.{action.replace('-', '_')}")) is not None:
            return refused
        item = state.series.get(int(request.match_info["id"]))
        if item is None:
            return not_found()
        if action in ("approve-change", "reject-change"):
            change = item.pop("pending_change", None)
            if change is None:
                return problem(409, "conflict", "操作できません", "承認待ちの変更はありません。")
            if action == "approve-change":
                item.update({k: change[k] for k in ("title", "content", "rule")})
            return web.json_response(series_out(item))
        moves = {
            "submit": ("draft", "pending_approval"),
            "approve": ("pending_approval", "active"),
            "pause": ("active", "paused"),
            "resume": ("paused", "active"),
            "end": (item["status"], "ended"),
        }
        if action not in moves or item["status"] != moves[action][0]:
            return problem(409, "conflict", "操作できません", "この状態では操作できません。")
        item["status"] = moves[action][1]
        if action == "approve":
            item["approver"] = username
        return web.json_response(series_out(item))

    @routes.get("/v1/templates")
    async def templates_list(_: web.Request) -> web.Response:
        if (refused := guard("templates.list")) is not None:
            return refused
        return web.json_response({"items": list(state.templates.values())})

    @routes.post("/v1/templates")
    async def templates_create(request: web.Request) -> web.Response:
        if (refused := guard("templates.create")) is not None:
            return refused
        body = schema.TemplateIn.model_validate(await request.json())
        template_id = len(state.templates) + 1
        out = schema.TemplateOut(
            id=template_id,
            name=body.name,
            content=body.content,
            version=1,
            updated_by=username,
            updated_at=NOW,
        )
        state.templates[template_id] = out.model_dump(mode="json")
        return web.json_response(state.templates[template_id], status=201)

    @routes.get("/v1/calendar")
    async def calendar(request: web.Request) -> web.Response:
        if (refused := guard("calendar")) is not None:
            return refused
        until = NOW + dt.timedelta(days=int(request.query.get("days", "31")))
        items = []
        for d in state.deliveries.values():
            if d["status"] in ("scheduled", "approved", "pending_approval") and d["scheduled_at"]:
                items.append(
                    {
                        "at": d["scheduled_at"],
                        "title": d["title"],
                        "kind": "delivery",
                        "id": d["id"],
                        "status": d["status"],
                    }
                )
        for item in state.series.values():
            for at in series_out(item)["next_occurrences"]:
                if dt.datetime.fromisoformat(at) >= until:
                    continue
                items.append(
                    {
                        "at": at,
                        "title": item["title"],
                        "kind": "series",
                        "id": item["id"],
                        "status": item["status"],
                    }
                )
        items.sort(key=lambda e: dt.datetime.fromisoformat(e["at"]))
        return web.json_response(
            schema.CalendarOut.model_validate({"items": items}).model_dump(mode="json")
        )

    app = web.Application(client_max_size=32 * 1024 * 1024)
    app.add_routes(routes)
    return app


async def _send(state: FakeState, d: dict[str, Any]) -> None:
    """Pretend to multicast: progress in steps, broadcasting SSE events."""
    total = d["recipient_count"] or 0
    while d["status"] == "sending" and d["sent_count"] < total:
        await asyncio.sleep(state.tick_seconds)
        if d["status"] != "sending":
            return
        d["sent_count"] = min(total, d["sent_count"] + state.send_step)
        d["progress"] = d["sent_count"] / total if total else 1.0
        event = schema.DeliveryEvent.model_validate(d).model_dump(mode="json")
        state.broadcast("delivery", event)
    if d["status"] == "sending":
        d["status"] = "sent"
        d["progress"] = 1.0


class FakeServer:
    """Run make_fake_app for one identity on a unix socket (async context manager)."""

    def __init__(self, state: FakeState, username: str, socket: Path) -> None:
        self.state = state
        self.username = username
        self.socket = socket
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(make_fake_app(self.state, self.username), shutdown_timeout=0.1)
        await self._runner.setup()
        await web.UnixSite(self._runner, str(self.socket)).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
