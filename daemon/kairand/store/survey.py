"""Survey definition versions."""

from __future__ import annotations

import threading
import time

from kairand.conversation.survey import SurveyDefinition
from kairand.store.database import Connection

_parsed_lock = threading.Lock()
_parsed: dict[str, SurveyDefinition] = {}


def current(conn: Connection) -> tuple[int, SurveyDefinition] | None:
    """(version, definition) of the newest survey. Parsed definitions are cached by content
    (they are frozen): the inbox worker reads it for every batch, and the booking rush makes a
    batch of one or two events per webhook."""
    row = conn.execute(
        "SELECT version, definition FROM survey_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    text = str(row[1])
    with _parsed_lock:
        definition = _parsed.get(text)
    if definition is None:
        definition = SurveyDefinition.model_validate_json(text)
        with _parsed_lock:
            _parsed.clear()
            _parsed[text] = definition
    return int(row[0]), definition


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
