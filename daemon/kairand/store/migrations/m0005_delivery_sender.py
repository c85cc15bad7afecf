"""Delivery sender: batch states and confirmation time, quota confirmation, and holding the
LINE user ids of residents purged while their batch is in flight (identical retries)."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 5
DESCRIPTION = "delivery sender: batch states, quota confirmation, in-flight holds"

STATEMENTS = [
    # Staff confirmed sending although LINE's limited monthly quota would be exceeded.
    "ALTER TABLE deliveries ADD COLUMN quota_confirmed INTEGER NOT NULL DEFAULT 0",
    # Japan-time date the segment was evaluated on (ages are computed on it).
    "ALTER TABLE deliveries ADD COLUMN send_date TEXT",
    # When LINE confirmed a batch (200, or 409 for an already accepted retry key).
    "ALTER TABLE batches ADD COLUMN confirmed_at INTEGER",
    # batches.state: pending | in_flight | sent | failed | needs_attention | cancelled.
    "CREATE INDEX batches_by_state ON batches (delivery_id, state, seq)",
    # A purge deletes the resident row, and batch_recipients cascades with it. For a batch
    # already attempted but not yet confirmed, the retry must repeat the identical request
    # (same retry key, same recipients), so the purged resident's LINE user id is held here
    # until the batch is confirmed, failed or flagged; then it is deleted. Only in-flight
    # batches hold ids: a pending batch simply loses the resident.
    """CREATE TABLE batch_recipients_held (
        batch_id INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        resident_id INTEGER NOT NULL,
        line_user_id TEXT NOT NULL,
        PRIMARY KEY (batch_id, resident_id)
    ) WITHOUT ROWID""",
    # Two ways a purge removes a batch entry: the FK cascade from residents (the resident row
    # is read before it goes), or an explicit DELETE FROM batch_recipients before the resident
    # row (kairand.store.residents.delete does that). Either trigger holds the id.
    """CREATE TRIGGER residents_hold_in_flight BEFORE DELETE ON residents
    BEGIN
        INSERT OR IGNORE INTO batch_recipients_held (batch_id, resident_id, line_user_id)
        SELECT br.batch_id, OLD.id, OLD.line_user_id
        FROM batch_recipients br JOIN batches b ON b.id = br.batch_id
        WHERE br.resident_id = OLD.id AND b.state = 'in_flight';
    END""",
    """CREATE TRIGGER batch_recipients_hold_in_flight BEFORE DELETE ON batch_recipients
    BEGIN
        INSERT OR IGNORE INTO batch_recipients_held (batch_id, resident_id, line_user_id)
        SELECT b.id, r.id, r.line_user_id
        FROM batches b JOIN residents r ON r.id = OLD.resident_id
        WHERE b.id = OLD.batch_id AND b.state = 'in_flight';
    END""",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)


# -- segment facets: one compact row per resident, so an audience count is one index range
# scan instead of one probe per resident per condition (see docs/delivery.md, "Audience
# counts"). Maintained entirely by triggers on residents and answers, so no writer has to
# know about it. Slots are assigned to questions on their first answer: a choice / multi
# question gets a bitmask column c0..c7 (option bits assigned on first sight, 0..61), a year
# question a column y0..y3 holding the year. A question beyond the slots, an option beyond
# bit 61 or a question seen with both kinds of row is not covered, and the compiler falls back
# to the answers table for it.

C_SLOTS = 8
Y_SLOTS = 4
MAX_BITS = 62


def _kind(row: str) -> str:
    return f"CASE WHEN {row}.number IS NULL THEN 'c' ELSE 'y' END"


def _assign(row: str) -> list[str]:
    return [
        f"UPDATE segment_slots SET mixed = 1 WHERE question = {row}.question"
        f" AND kind != {_kind(row)};",
        "INSERT OR IGNORE INTO segment_slots (question, kind, slot)"
        f" VALUES ({row}.question, {_kind(row)},"
        f" (SELECT count(*) FROM segment_slots WHERE kind = {_kind(row)}));",
        "INSERT OR IGNORE INTO segment_bits (question, value, bit)"
        f" SELECT {row}.question, {row}.value,"
        f" (SELECT count(*) FROM segment_bits WHERE question = {row}.question)"
        f" WHERE {row}.number IS NULL;",
    ]


def _apply(row: str, add: bool) -> str:
    sets = []
    for k in range(C_SLOTS):
        change = f"c{k} | x.mask" if add else f"c{k} & ~x.mask"
        sets.append(f"c{k} = CASE WHEN x.kind = 'c' AND x.slot = {k} THEN {change} ELSE c{k} END")
    for k in range(Y_SLOTS):
        value = f"{row}.number" if add else "NULL"
        sets.append(f"y{k} = CASE WHEN x.kind = 'y' AND x.slot = {k} THEN {value} ELSE y{k} END")
    return (
        "UPDATE segment_facets SET "
        + ", ".join(sets)
        + " FROM (SELECT s.kind AS kind, s.slot AS slot, CASE WHEN s.kind = 'c' AND"
        f" {row}.number IS NULL THEN coalesce((SELECT 1 << b.bit FROM segment_bits b"
        f" WHERE b.question = {row}.question AND b.value = {row}.value"
        f" AND b.bit < {MAX_BITS}), 0) ELSE 0 END AS mask"
        f" FROM segment_slots s WHERE s.question = {row}.question"
        f" AND s.kind = {_kind(row)}) AS x"
        f" WHERE segment_facets.resident_id = {row}.resident_id;"
    )


FACET_STATEMENTS = [
    """CREATE TABLE segment_slots (
        question TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('c', 'y')),
        slot INTEGER NOT NULL,
        mixed INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE segment_bits (
        question TEXT NOT NULL,
        value TEXT NOT NULL,
        bit INTEGER NOT NULL,
        PRIMARY KEY (question, value)
    ) WITHOUT ROWID""",
    "CREATE TABLE segment_facets (\n"
    "    resident_id INTEGER PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,\n"
    "    eligible INTEGER NOT NULL DEFAULT 0,\n"
    + "".join(f"    c{k} INTEGER NOT NULL DEFAULT 0,\n" for k in range(C_SLOTS))
    + ",\n".join(f"    y{k} INTEGER" for k in range(Y_SLOTS))
    + "\n)",
    # Age conditions drive: a covering range scan on the first year slot (birth year).
    "CREATE INDEX segment_facets_y0 ON segment_facets (y0, eligible, "
    + ", ".join(f"c{k}" for k in range(C_SLOTS))
    + ")",
    """CREATE TRIGGER segment_facets_resident_insert AFTER INSERT ON residents
    BEGIN
        INSERT OR REPLACE INTO segment_facets (resident_id, eligible)
        VALUES (NEW.id, NEW.registered_at IS NOT NULL AND NEW.deliveries_stopped = 0);
    END""",
    """CREATE TRIGGER segment_facets_resident_update
    AFTER UPDATE OF registered_at, deliveries_stopped ON residents
    BEGIN
        UPDATE segment_facets
        SET eligible = (NEW.registered_at IS NOT NULL AND NEW.deliveries_stopped = 0)
        WHERE resident_id = NEW.id;
    END""",
    "CREATE TRIGGER segment_facets_answer_assign BEFORE INSERT ON answers\nBEGIN\n"
    + "\n".join(_assign("NEW"))
    + "\nEND",
    "CREATE TRIGGER segment_facets_answer_insert AFTER INSERT ON answers\nBEGIN\n"
    + _apply("NEW", True)
    + "\nEND",
    "CREATE TRIGGER segment_facets_answer_delete AFTER DELETE ON answers\nBEGIN\n"
    + _apply("OLD", False)
    + "\nEND",
    "CREATE TRIGGER segment_facets_answer_reassign BEFORE UPDATE ON answers\nBEGIN\n"
    + "\n".join(_assign("NEW"))
    + "\nEND",
    "CREATE TRIGGER segment_facets_answer_update AFTER UPDATE ON answers\nBEGIN\n"
    + _apply("OLD", False)
    + "\n"
    + _apply("NEW", True)
    + "\nEND",
    # Backfill whatever is already stored: facet rows, then replay the answers through the
    # triggers.
    "INSERT INTO segment_facets (resident_id, eligible) SELECT id,"
    " registered_at IS NOT NULL AND deliveries_stopped = 0 FROM residents",
    "CREATE TEMP TABLE answers_replay AS SELECT * FROM answers",
    "DELETE FROM answers",
    "INSERT INTO answers (resident_id, question, value, number, answered_at)"
    " SELECT resident_id, question, value, number, answered_at FROM answers_replay"
    " ORDER BY resident_id, question, value",
    "DROP TABLE answers_replay",
]
STATEMENTS.extend(FACET_STATEMENTS)
