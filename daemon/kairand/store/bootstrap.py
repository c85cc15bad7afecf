"""Open the configured store: key from keyring, pragmas, migrations, default survey."""

from __future__ import annotations

import os
from pathlib import Path

from kairand.config import Config
from kairand.conversation.survey import default_survey
from kairand.errors import StoreError
from kairand.keys import secrets
from kairand.logs import get_logger
from kairand.store import confighistory, deletion_journal, survey
from kairand.store.database import Connection, Store, transaction
from kairand.store.migrations import migrate

log = get_logger(__name__)


def select_keyring(config: Config) -> None:
    """Use the backend the config names; otherwise keyring's own choice (PYTHON_KEYRING_BACKEND)."""
    if config.keyring.backend:
        options = {"directory": config.keyring.directory} if config.keyring.directory else {}
        secrets.use_backend(config.keyring.backend, options)


def reapply_journal(conn: Connection) -> None:
    """S18: re-apply the deletion journal beside the store before anything serves from it (a
    store put back by hand, or a restore interrupted after the move). A journal that exists but
    fails verification stops here (JournalError), so the daemon never starts on it."""
    path = deletion_journal.journal_for(conn)
    if path is None or not path.exists():
        return
    entries = deletion_journal.read_journal(path, secrets.signing_key().public_key())
    with transaction(conn):
        done = deletion_journal.reapply(conn, entries, secrets.receipt_hmac_key())
    if done["residents"] or done["answers"] or done["test_recipients"]:
        log.warning("store.journal_reapplied", **dict(done))


def open_store(config: Config, *, create: bool = False) -> Store:
    """Open (and with CREATE, make) the store, bring its schema up to date, seed the survey."""
    path: Path = config.database_path
    if not create and not path.exists():
        raise StoreError(
            f"the store {path} does not exist",
            "create it with `kairanctl init --dev DIR` (development) or provisioning/install.sh",
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The file (and the -wal/-shm SQLite creates with the same mode) is for the daemon only.
    old_umask = os.umask(0o077)
    try:
        store = Store(path, secrets.db_key(), read_threads=config.daemon.read_threads)
    finally:
        os.umask(old_umask)
    try:
        conn = store.raw_writer()
        applied = migrate(conn)
        if applied:
            log.info("store.migrated", versions=applied)
        with transaction(conn):
            if survey.current(conn) is None:
                survey.save(conn, default_survey(), created_by="system")
        reapply_journal(conn)
        confighistory.observe(conn, config)
    except BaseException:
        store.close()
        raise
    return store
