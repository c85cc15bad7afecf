"""GET/PUT /v1/survey: the resident survey and its versions."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from kairand.api import schema
from kairand.api.http import json_body, note, ok, staff_of, store_of
from kairand.api.problems import ApiProblem
from kairand.audit.chain import AuditEntry
from kairand.store import audit as audit_store
from kairand.store import survey as survey_store


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
