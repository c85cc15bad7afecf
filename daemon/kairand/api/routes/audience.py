"""POST /v1/audience/count: how many residents a segment selects, by channel (LINE, mail)."""

from __future__ import annotations

from aiohttp import web

from kairand.api import schema
from kairand.api.http import config_of, dotted, json_body, ok, store_of
from kairand.api.problems import ApiProblem
from kairand.delivery import audience
from kairand.programs import service as programs
from kairand.segments.model import SegmentError


async def audience_count(request: web.Request) -> web.Response:
    body = await json_body(request, schema.AudienceCountRequest)
    # The segment's program decides which questions it is checked against.
    survey = await store_of(request).read(programs.survey_for, body.segment.program)
    if survey is None:
        raise ApiProblem(
            "validation", "指定された配信サービスはありません。", field="segment.program"
        )
    try:
        counts = await audience.channel_counts(store_of(request), body.segment, survey)
    except SegmentError as exc:  # a filter naming an unknown question or option
        raise ApiProblem(
            "validation", exc.message_ja, field=dotted("segment." + exc.field)
        ) from None
    k = config_of(request).privacy.small_cell_threshold
    count = counts.total
    return ok(
        schema.AudienceCount(count=count, small=count < k, line=counts.line, mail=counts.mail)
    )
