"""Program membership in the audience index's change log: a resident who joins a program,
completes its registration or leaves it is stamped in `segment_changes` in the same
transaction (as m0010 does for facet rows), so the in-memory index keeps one exact bitmap of
registered members per program and counts per-program audiences without SQL.

Indexes saved before this migration hold no program bitmaps: they are dropped, so the next
start-up builds the index from every row once.
"""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 19
DESCRIPTION = "program membership stamped in the audience index change log"


def _stamp(row: str) -> str:
    # Same stamping as m0010 (DELETE + INSERT: see there why not INSERT OR REPLACE).
    return (
        "UPDATE segment_clock SET seq = seq + 1 WHERE id = 1;\n"
        f"DELETE FROM segment_changes WHERE resident_id = {row}.resident_id;\n"
        "INSERT INTO segment_changes (resident_id, seq)"
        f" SELECT {row}.resident_id, seq FROM segment_clock WHERE id = 1;"
    )


STATEMENTS = [
    f"CREATE TRIGGER segment_changes_member_insert AFTER INSERT ON program_members\nBEGIN\n"
    f"{_stamp('NEW')}\nEND",
    # Only what the index mirrors: registration (not consent or the conversation state).
    "CREATE TRIGGER segment_changes_member_update AFTER UPDATE OF registered_at, resident_id,"
    " program ON program_members\nBEGIN\n"
    f"{_stamp('OLD')}\n{_stamp('NEW')}\nEND",
    f"CREATE TRIGGER segment_changes_member_delete AFTER DELETE ON program_members\nBEGIN\n"
    f"{_stamp('OLD')}\nEND",
    "DELETE FROM segment_index",
    "UPDATE segment_clock SET saved = NULL WHERE id = 1",
]


def upgrade(conn: Connection) -> None:
    for statement in STATEMENTS:
        conn.execute(statement)
