"""Window reservations: versioned service catalogue, bookings, kept contacts, the
booking dialogue's position, and reminder/notice pushes with stored retry keys."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 11
DESCRIPTION = "window reservations: catalogue versions, bookings, contacts, dialogues, notices"


def upgrade(conn: Connection) -> None:
    # Every edit of the services (slot settings, W5) is a new version (JSON of
    # kairand.reservations.model.Catalogue).
    conn.execute(
        """CREATE TABLE reservation_catalogue_versions (
            version INTEGER PRIMARY KEY,
            catalogue TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            created_by TEXT NOT NULL
        )"""
    )
    # One row per booking. `slot` is the slot's start in Japan time (YYYY-MM-DDTHH:MM) and
    # `slot_at` the same instant in Unix seconds (reminders, the W7 masking clock). Capacity is
    # the number of rows in state 'active' or 'attended' for (service, slot): it is checked and
    # taken in the same write transaction. name_kana and phone are the only personal data (W8).
    conn.execute(
        """CREATE TABLE reservation_bookings (
            id INTEGER PRIMARY KEY,
            number TEXT NOT NULL UNIQUE,
            service TEXT NOT NULL,
            slot TEXT NOT NULL,
            slot_at INTEGER NOT NULL,
            resident_id INTEGER REFERENCES residents (id) ON DELETE SET NULL,
            channel TEXT NOT NULL CHECK (channel IN ('line', 'phone')),
            name_kana TEXT,
            phone TEXT,
            state TEXT NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'cancelled', 'attended', 'no_show')),
            cancelled_by TEXT CHECK (cancelled_by IN ('resident', 'staff', 'purge')),
            changed_from INTEGER REFERENCES reservation_bookings (id),
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    conn.execute(
        "CREATE INDEX reservation_bookings_slot ON reservation_bookings (service, slot, state)"
    )
    conn.execute(
        "CREATE INDEX reservation_bookings_resident ON reservation_bookings (resident_id, state)"
    )
    conn.execute("CREATE INDEX reservation_bookings_slot_at ON reservation_bookings (slot_at)")
    # The kana name and phone a resident typed, reused for later bookings while kept.
    conn.execute(
        """CREATE TABLE reservation_contacts (
            resident_id INTEGER PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
            name_kana TEXT NOT NULL,
            phone TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    # Where a resident is in the booking dialogue (kept apart from the survey's position).
    conn.execute(
        """CREATE TABLE reservation_dialogues (
            resident_id INTEGER PRIMARY KEY REFERENCES residents (id) ON DELETE CASCADE,
            state TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    # One row per push about a booking (reminder dN / day, staff cancellation): the retry key
    # is stored before the push, so a retry after a crash reuses it and 'sent' is never resent.
    conn.execute(
        """CREATE TABLE reservation_notices (
            booking_id INTEGER NOT NULL REFERENCES reservation_bookings (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            retry_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            sent_at INTEGER,
            PRIMARY KEY (booking_id, kind)
        ) WITHOUT ROWID"""
    )
    # A purged resident (unfollow, request, expiry): their active bookings are cancelled and
    # the name and phone overwritten before the row goes (S11). The booking rows stay, without
    # person, for the statistics (W4) and so staff see the slot free again.
    conn.execute(
        """CREATE TRIGGER reservation_bookings_purge BEFORE DELETE ON residents
        BEGIN
            UPDATE reservation_bookings
               SET cancelled_by = CASE WHEN state = 'active' THEN 'purge' ELSE cancelled_by END,
                   state = CASE WHEN state = 'active' THEN 'cancelled' ELSE state END,
                   name_kana = NULL, phone = NULL
             WHERE resident_id = OLD.id;
            UPDATE reservation_notices SET state = 'skipped'
             WHERE state = 'pending' AND booking_id IN
                   (SELECT id FROM reservation_bookings WHERE resident_id = OLD.id);
        END"""
    )
