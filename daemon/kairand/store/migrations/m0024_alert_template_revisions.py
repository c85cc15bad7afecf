"""Alert templates can be revised and withdrawn. `replaces` names the template a draft revises
(same program); approving the revision retires the one it replaces in the same transaction, so
the approved original stays usable until then. At most one open (draft) revision per template,
kept by a partial unique index as well as by kairand.programs.service. `retired_at` records when
a template stopped being usable (its reason is in the audit log)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 24
DESCRIPTION = "alert_templates.replaces, retired_at: revising and withdrawing alert templates"


def upgrade(conn: Connection) -> None:
    conn.execute(
        "ALTER TABLE alert_templates ADD COLUMN replaces INTEGER REFERENCES alert_templates (id)"
    )
    conn.execute("ALTER TABLE alert_templates ADD COLUMN retired_at INTEGER")
    conn.execute(
        "CREATE UNIQUE INDEX alert_templates_one_open_revision ON alert_templates (replaces)"
        " WHERE status = 'draft' AND replaces IS NOT NULL"
    )
