"""kairanctl audit verify|checkpoint: the audit log's hash chain and signed checkpoints (S8)."""

from __future__ import annotations

import datetime as dt
import sys
import time

from kairand.audit import checkpoints
from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode
from kairand.evidence.audit import AuditEntry
from kairand.keys import secrets
from kairand.store import audit as audit_store
from kairand.store.database import Connection
from kairand.timeutil import JST


def _when(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, JST).isoformat(timespec="seconds")


def _entry_at(conn: Connection, seq: int) -> AuditEntry | None:
    rows = audit_store.query(conn, audit_store.AuditFilter(before_seq=seq + 1), 1)
    return rows[0].entry if rows and rows[0].seq == seq else None


def cmd_verify(ctx: Context) -> int:
    with ctx.store() as store:
        public = checkpoints.public_key()
        result = store.read_sync(checkpoints.verify_store, public)
        if result.ok:
            print(
                f"audit log intact: {result.entries} entries, {result.checkpoints} signed"
                f" checkpoints, head {result.head_hash}"
            )
            return ExitCode.OK
        seq = result.first_broken_seq
        entry = store.read_sync(_entry_at, seq) if seq is not None else None
        where = f"entry {seq}"
        if entry is not None:
            where += f" ({_when(entry.at_ms)} {entry.action} by {entry.actor})"
        print(f"audit log BROKEN at {where}: {result.reason}", file=sys.stderr)
        print(
            f"{result.entries} entries verified before it; restore the store from a backup and"
            " investigate who changed the file",
            file=sys.stderr,
        )
        return ExitCode.FAILURE


def cmd_checkpoint(ctx: Context) -> int:
    with ctx.store() as store:
        key = secrets.signing_key()
        seq = store.write_sync(checkpoints.checkpoint_now, key, int(time.time() * 1000))
        print(f"signed checkpoint at entry {seq}" if seq else "nothing new to checkpoint")
    return ExitCode.OK


def register(sub: Subparsers) -> None:
    audit = sub.add_parser("audit", help="verify or checkpoint the audit log (S8)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain and signed checkpoints")
    verify.set_defaults(func=cmd_verify)
    checkpoint = audit_sub.add_parser("checkpoint", help="sign the current head now")
    checkpoint.set_defaults(func=cmd_checkpoint)
