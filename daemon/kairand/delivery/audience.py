"""A delivery's audience: validate a segment filter against the survey and count it in the store.

The shell around the pure segment cores (kairand.segments), which know no store.
"""

from __future__ import annotations

import datetime as dt

from kairand.conversation.survey import SurveyDefinition
from kairand.segments.model import SegmentFilter, send_date, validate_against
from kairand.store import segments as segment_queries
from kairand.store.database import Store


async def audience_count(
    store: Store,
    segment: SegmentFilter,
    survey: SurveyDefinition,
    today: dt.date | None = None,
) -> int:
    """How many residents SEGMENT selects on TODAY (Japan time; now when None).

    Raises kairand.segments.model.SegmentError when the filter does not fit SURVEY.
    """
    validate_against(segment, survey)
    on = today if today is not None else send_date()
    return await store.read(segment_queries.count_segment, segment, on, survey)
