"""A change log of segment facet rows, so the in-memory audience index (kairand.segments.bitmap)
follows every write in the same transaction as the write itself.

Triggers on `segment_facets` (itself maintained by triggers on residents and answers) stamp the
changed resident with the next value of a clock. `segment_changes` keeps only each resident's
latest stamp, so it never holds more rows than there are residents. The daemon saves its index
(`segment_index`, roaring bitmaps of internal row ids, at clock value `saved`) and prunes the
log up to that point; at start-up it loads the saved index and applies only later changes, and
an index older than the prune point rebuilds from the facet rows. Only internal row ids are
kept: nothing that identifies a resident.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 10
DESCRIPTION = "segment facet change log for the in-memory audience index"


def _stamp(row: str) -> str:
    # DELETE + INSERT rather than INSERT OR REPLACE: a conflict clause inside a trigger is
    # overridden by the outer statement's (INSERT OR IGNORE INTO answers would ignore it).
    return (
        "UPDATE segment_clock SET seq = seq + 1 WHERE id = 1;\n"
        f"DELETE FROM segment_changes WHERE resident_id = {row}.resident_id;\n"
        "INSERT INTO segment_changes (resident_id, seq)"
        f" SELECT {row}.resident_id, seq FROM segment_clock WHERE id = 1;"
    )


STATEMENTS = [
    """CREATE TABLE segment_clock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        pruned INTEGER NOT NULL,
        saved INTEGER
    )""",
    "INSERT INTO segment_clock (id, seq, pruned, saved) VALUES (1, 0, 0, NULL)",
    "CREATE TABLE segment_index (key TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID",
    """CREATE TABLE segment_changes (
        resident_id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL
    )""",
    "CREATE INDEX segment_changes_by_seq ON segment_changes (seq)",
    f"CREATE TRIGGER segment_changes_insert AFTER INSERT ON segment_facets\nBEGIN\n"
    f"{_stamp('NEW')}\nEND",
    f"CREATE TRIGGER segment_changes_update AFTER UPDATE ON segment_facets\nBEGIN\n"
    f"{_stamp('NEW')}\nEND",
    f"CREATE TRIGGER segment_changes_delete AFTER DELETE ON segment_facets\nBEGIN\n"
    f"{_stamp('OLD')}\nEND",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
