"""Incident and handler-education records (S19, S21)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kairand.store.database import Connection


@dataclass(frozen=True)
class Incident:
    id: int
    kind: str
    occurred_at: int
    discovered_at: int
    summary: str
    affected: str
    reported_to: str
    reported_at: int | None
    measures: str
    prevention: str
    recorded_by: str
    recorded_at: int


@dataclass(frozen=True)
class Training:
    id: int
    held_on: str
    title: str
    instructor: str
    attendees: tuple[str, ...]
    recorded_by: str
    recorded_at: int


_INCIDENT_COLUMNS = (
    "id, kind, occurred_at, discovered_at, summary, affected, reported_to, reported_at,"
    " measures, prevention, recorded_by, recorded_at"
)


def add_incident(conn: Connection, incident: Incident) -> int:
    cursor = conn.execute(
        "INSERT INTO incidents (kind, occurred_at, discovered_at, summary, affected,"
        " reported_to, reported_at, measures, prevention, recorded_by, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            incident.kind,
            incident.occurred_at,
            incident.discovered_at,
            incident.summary,
            incident.affected,
            incident.reported_to,
            incident.reported_at,
            incident.measures,
            incident.prevention,
            incident.recorded_by,
            incident.recorded_at,
        ),
    )
    return int(cursor.lastrowid or 0)


def incidents_between(conn: Connection, start: int, end: int) -> list[Incident]:
    rows = conn.execute(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents"
        " WHERE occurred_at >= ? AND occurred_at < ? ORDER BY occurred_at, id",
        (start, end),
    ).fetchall()
    return [Incident(*row) for row in rows]


def incident(conn: Connection, incident_id: int) -> Incident | None:
    row = conn.execute(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
    ).fetchone()
    return Incident(*row) if row else None


def add_training(conn: Connection, training: Training) -> int:
    cursor = conn.execute(
        "INSERT INTO training_records (held_on, title, instructor, attendees, recorded_by,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            training.held_on,
            training.title,
            training.instructor,
            json.dumps(list(training.attendees), ensure_ascii=False),
            training.recorded_by,
            training.recorded_at,
        ),
    )
    return int(cursor.lastrowid or 0)


def trainings_between(conn: Connection, first: str, last: str) -> list[Training]:
    rows = conn.execute(
        "SELECT id, held_on, title, instructor, attendees, recorded_by, recorded_at"
        " FROM training_records WHERE held_on BETWEEN ? AND ? ORDER BY held_on, id",
        (first, last),
    ).fetchall()
    return [
        Training(i, held, title, inst, tuple(json.loads(att)), by, at)
        for i, held, title, inst, att, by, at in rows
    ]
