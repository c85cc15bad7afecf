"""POST /v1/audience/count: how many residents a segment selects."""

from __future__ import annotations

from aiohttp import web

from kairand.api import schema
from kairand.api.http import config_of, dotted, json_body, ok, store_of
from kairand.api.problems import ApiProblem
from kairand.delivery import audience
from kairand.segments.model import SegmentError
from kairand.store import survey as survey_store


async def audience_count(request: web.Request) -> web.Response:
    body = await json_body(request, schema.AudienceCountRequest)
    current = await store_of(request).read(survey_store.current)
    if current is None:  # pragma: no cover - open_store seeds the default survey
        raise ApiProblem("not-found", "アンケートが設定されていません。")
    try:
        count = await audience.audience_count(store_of(request), body.segment, current[1])
    except SegmentError as exc:  # a filter naming an unknown question or option
        raise ApiProblem(
            "validation", exc.message_ja, field=dotted("segment." + exc.field)
        ) from None
    k = config_of(request).privacy.small_cell_threshold
    return ok(schema.AudienceCount(count=count, small=count < k))
