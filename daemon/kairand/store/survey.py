"""Survey definition versions."""

from __future__ import annotations

import functools
import time

from kairand.conversation.survey import SurveyDefinition
from kairand.store.database import Connection


@functools.lru_cache(maxsize=8)
def _parsed(definition: str) -> SurveyDefinition:
    """A stored definition, validated once: the inbox reads the current one for every batch.
    SurveyDefinition is frozen, so the cached object can be shared."""
    return SurveyDefinition.model_validate_json(definition)


def current(conn: Connection) -> tuple[int, SurveyDefinition] | None:
    row = conn.execute(
        "SELECT version, definition FROM survey_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return int(row[0]), _parsed(row[1])


def save(conn: Connection, definition: SurveyDefinition, created_by: str) -> int:
    """Store DEFINITION as a new version and return its number."""
    row = conn.execute("SELECT coalesce(max(version), 0) FROM survey_versions").fetchone()
    version = int(row[0]) + 1
    conn.execute(
        "INSERT INTO survey_versions (version, definition, created_at, created_by)"
        " VALUES (?, ?, ?, ?)",
        (version, definition.model_dump_json(), int(time.time()), created_by),
    )
    return version
