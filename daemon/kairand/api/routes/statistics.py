"""GET /v1/statistics: attribute statistics with small cells suppressed (W4)."""

from __future__ import annotations

from aiohttp import web

from kairand.api import schema
from kairand.api.http import config_of, ok, store_of
from kairand.api.problems import ApiProblem
from kairand.api.statistics import Cell, mail_total, shown_total, suppress
from kairand.store import mail as mail_store
from kairand.store import stats as stats_store
from kairand.store import survey as survey_store

NO_ANSWER = ("_none", "回答なし")


async def statistics(request: web.Request) -> web.Response:
    """?channel=line (default): LINE residents' answers; ?channel=mail: mail subscribers'
    (the same survey answered by mail). Both totals are given either way."""
    store = store_of(request)
    k = config_of(request).privacy.small_cell_threshold
    channel = request.query.get("channel", "line")
    if channel not in ("line", "mail"):
        raise ApiProblem(
            "bad-request",
            "集計の対象（channel）は line か mail を指定してください。",
            field="channel",
        )
    current = await store.read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        raise ApiProblem("not-found", "アンケートが設定されていません。")
    version, definition = current
    years = frozenset(q.code for q in definition.questions if q.kind in ("year", "year_month"))
    line_counts = await store.read(stats_store.answer_counts, years)
    mail_counts = await store.read(mail_store.answer_counts, years)
    counts = mail_counts if channel == "mail" else line_counts
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
            registered_display=shown_total(line_counts.registered, k),
            registered_mail_display=mail_total(
                mail_counts.registered, k, config_of(request).mail.enabled
            ),
            channel=channel,
            threshold=k,
            questions=questions,
        )
    )
