"""Same-day queue: tickets, one-time QR tokens, counters, pushes with retry keys."""

from __future__ import annotations

from kairand.store.database import Connection

VERSION = 12
DESCRIPTION = "same-day queue: tickets, QR tokens, counters, call pushes"


def upgrade(conn: Connection) -> None:
    # One row per ticket. `service` is a queue service code from the configuration (the same
    # code as a reservation service, when there is one: referenced by code, not by table).
    # The number counts 1, 2, 3 per (day, service); the UNIQUE constraint backs the single
    # writer's max()+1. No name, no phone: a LINE ticket links to the resident row only, so
    # the push can find the user, and the link goes when the resident is purged.
    conn.execute(
        """CREATE TABLE queue_tickets (
            id INTEGER PRIMARY KEY,
            day TEXT NOT NULL,
            service TEXT NOT NULL,
            number INTEGER NOT NULL CHECK (number >= 1),
            label TEXT NOT NULL,
            channel TEXT NOT NULL CHECK (channel IN ('line', 'kiosk', 'desk')),
            resident_id INTEGER REFERENCES residents (id) ON DELETE SET NULL,
            state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN
                ('waiting', 'called', 'serving', 'done', 'absent', 'cancelled', 'transferred')),
            priority INTEGER NOT NULL DEFAULT 0 CHECK (priority IN (0, 1)),
            counter INTEGER,
            recalls INTEGER NOT NULL DEFAULT 0,
            transferred_to INTEGER REFERENCES queue_tickets (id),
            closed_by TEXT,
            issued_at REAL NOT NULL,
            called_at REAL,
            serving_at REAL,
            finished_at REAL,
            UNIQUE (day, service, number)
        )"""
    )
    conn.execute("CREATE INDEX queue_tickets_open ON queue_tickets (day, service, state)")
    conn.execute("CREATE INDEX queue_tickets_resident ON queue_tickets (resident_id, day)")
    # The kiosk's QR code carries a token; only its SHA-256 is stored. Single use (used_at),
    # expires at the end of the ticket's day.
    conn.execute(
        """CREATE TABLE queue_tokens (
            token_hash BLOB PRIMARY KEY,
            ticket_id INTEGER NOT NULL REFERENCES queue_tickets (id) ON DELETE CASCADE,
            expires_at REAL NOT NULL,
            used_at REAL
        ) WITHOUT ROWID"""
    )
    # A counter (窓口) that staff paused; absent rows are open.
    conn.execute(
        """CREATE TABLE queue_counters (
            number INTEGER PRIMARY KEY,
            paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
            updated_at REAL NOT NULL,
            updated_by TEXT NOT NULL
        )"""
    )
    # One row per push about a ticket ('near', or 'call<N>' for the Nth call): the retry key is
    # stored in the transaction that decides the push, before it is sent, so a restart reuses
    # it and a 'sent' row is never pushed again.
    conn.execute(
        """CREATE TABLE queue_pushes (
            ticket_id INTEGER NOT NULL REFERENCES queue_tickets (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            retry_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sent', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            sent_at REAL,
            PRIMARY KEY (ticket_id, kind)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX queue_pushes_pending ON queue_pushes (state)")
