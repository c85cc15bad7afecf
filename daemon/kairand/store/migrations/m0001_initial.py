"""Initial schema: residents and answers, survey versions, inbox, deliveries and batches,
staff roster, audit log, deletion receipts."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 1
DESCRIPTION = "initial schema"

STATEMENTS = [
    # Appliance-wide values that are not personal (bot info, last webhook time, ...).
    """CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # The survey definition is data: every edit is a new version (JSON, see conversation.survey).
    """CREATE TABLE survey_versions (
        version INTEGER PRIMARY KEY,
        definition TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    )""",
    # One row per resident who follows the account. Times are Unix seconds (UTC).
    """CREATE TABLE residents (
        id INTEGER PRIMARY KEY,
        line_user_id TEXT NOT NULL UNIQUE,
        followed_at INTEGER NOT NULL,
        consent_version INTEGER,
        consented_at INTEGER,
        survey_version INTEGER,
        conversation TEXT NOT NULL DEFAULT '{}',
        registered_at INTEGER,
        deliveries_stopped INTEGER NOT NULL DEFAULT 0,
        display_name TEXT,
        last_interaction_at INTEGER NOT NULL
    )""",
    """CREATE INDEX residents_registered ON residents (registered_at, deliveries_stopped)""",
    # One row per chosen option (several for multi-select questions). `value` is the option
    # code, or 'YYYY' / 'YYYY-MM' for year questions with `number` = the year (range filters).
    """CREATE TABLE answers (
        resident_id INTEGER NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
        question TEXT NOT NULL,
        value TEXT NOT NULL,
        number INTEGER,
        answered_at INTEGER NOT NULL,
        PRIMARY KEY (resident_id, question, value)
    ) WITHOUT ROWID""",
    """CREATE INDEX answers_by_value ON answers (question, value, resident_id)""",
    """CREATE INDEX answers_by_number ON answers (question, number, resident_id)""",
    # Webhook events as received, processed by the inbox worker. `line_user_id` orders one
    # resident's events and lets a purge remove them; processed bodies are emptied.
    """CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        webhook_event_id TEXT NOT NULL UNIQUE,
        line_user_id TEXT,
        event_type TEXT NOT NULL,
        event_timestamp INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'done', 'ignored', 'failed')),
        processed_at INTEGER
    )""",
    """CREATE INDEX inbox_pending ON inbox (state, line_user_id, event_timestamp)""",
    """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        confidentiality INTEGER NOT NULL CHECK (confidentiality IN (1, 2, 3)),
        messages TEXT NOT NULL,
        segment TEXT NOT NULL,
        notification_disabled INTEGER NOT NULL DEFAULT 0,
        urgent INTEGER NOT NULL DEFAULT 0,
        scheduled_at INTEGER,
        status TEXT NOT NULL,
        status_reason TEXT,
        author TEXT NOT NULL,
        approver TEXT,
        reject_comment TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        submitted_at INTEGER,
        approved_at INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        recipient_count INTEGER,
        sent_count INTEGER NOT NULL DEFAULT 0,
        failed_count INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE INDEX deliveries_by_status ON deliveries (status, urgent, scheduled_at)""",
    # A delivery frozen into batches of <= 500 at send time; the retry key is stored before
    # the first request so a retry after a crash reuses it.
    """CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        retry_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL DEFAULT 'pending',
        recipient_count INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        first_attempt_at INTEGER,
        last_attempt_at INTEGER,
        accepted_request_id TEXT,
        error TEXT,
        UNIQUE (delivery_id, seq)
    )""",
    """CREATE TABLE batch_recipients (
        batch_id INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        resident_id INTEGER NOT NULL REFERENCES residents (id) ON DELETE CASCADE,
        PRIMARY KEY (batch_id, resident_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX batch_recipients_by_resident ON batch_recipients (resident_id)""",
    # Staff roster: OS user name -> roles (space-separated: admin author approver auditor).
    """CREATE TABLE staff (
        username TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        roles TEXT NOT NULL,
        handles_personal_data INTEGER NOT NULL DEFAULT 1,
        active INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )""",
    # Hash chain: hash = sha256(prev_hash || canonical(entry)). See kairand.audit.chain.
    """CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}',
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    """CREATE INDEX audit_by_time ON audit_log (at_ms)""",
    """CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        head_hash TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    # One signed receipt per purge: an HMAC of the LINE user id, never the id itself.
    """CREATE TABLE deletion_receipts (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        subject_hmac TEXT NOT NULL,
        deleted TEXT NOT NULL,
        digest TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
    """CREATE INDEX receipts_by_subject ON deletion_receipts (subject_hmac)""",
    """CREATE INDEX receipts_by_time ON deletion_receipts (at)""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
