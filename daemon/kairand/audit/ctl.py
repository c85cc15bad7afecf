"""kairanctl subcommands of the audit concern: `audit verify|checkpoint`, `roster`, and
`staff add|remove|list` (the roster is the input of identity, its changes are audited)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import sys
import time

from kairand.audit import checkpoints
from kairand.audit.actor import kairanctl_actor
from kairand.audit.chain import AuditEntry
from kairand.config import load_config
from kairand.errors import ExitCode
from kairand.keys import secrets
from kairand.store import audit as audit_store
from kairand.store import roster as roster_store
from kairand.store import staff as staff_store
from kairand.store.bootstrap import open_store, select_keyring
from kairand.store.database import Connection, Store

JST = dt.timezone(dt.timedelta(hours=9), "JST")
ROLE_JA = {"admin": "管理者", "author": "作成者", "approver": "承認者", "auditor": "監査担当"}


def _store(args: argparse.Namespace) -> Store:
    config = load_config(args.config)
    select_keyring(config)
    return open_store(config)


def _actor() -> str:
    return kairanctl_actor()


def _when(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, JST).isoformat(timespec="seconds")


# -- audit -------------------------------------------------------------------------------


def _entry_at(conn: Connection, seq: int) -> AuditEntry | None:
    rows = audit_store.query(conn, audit_store.AuditFilter(before_seq=seq + 1), 1)
    return rows[0].entry if rows and rows[0].seq == seq else None


def cmd_verify(args: argparse.Namespace) -> int:
    with _store(args) as store:
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


def cmd_checkpoint(args: argparse.Namespace) -> int:
    with _store(args) as store:
        key = secrets.signing_key()
        seq = store.write_sync(checkpoints.checkpoint_now, key, int(time.time() * 1000))
        print(f"signed checkpoint at entry {seq}" if seq else "nothing new to checkpoint")
    return ExitCode.OK


# -- roster (S14) ------------------------------------------------------------------------


def roster_csv(rows: list[roster_store.RosterRow], everyone: bool) -> str:
    """UTF-8 with a BOM so that Excel (Japanese Windows) opens it without garbling."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["ユーザー名", "氏名", "役割", "個人情報の取扱い", "状態", "登録日", "更新日"])
    for r in rows:
        if not everyone and not r.handles_personal_data:
            continue
        writer.writerow(
            [
                r.username,
                r.display_name,
                "・".join(ROLE_JA.get(role, role) for role in r.roles),
                "取扱者" if r.handles_personal_data else "なし",
                "有効" if r.active else "無効",
                dt.datetime.fromtimestamp(r.created_at, JST).date().isoformat(),
                dt.datetime.fromtimestamp(r.updated_at, JST).date().isoformat(),
            ]
        )
    return "\ufeff" + out.getvalue()


def cmd_roster(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = store.read_sync(roster_store.rows)
        store.write_sync(
            audit_store.append,
            AuditEntry(int(time.time() * 1000), _actor(), "roster.export", "ok", "", {}),
        )
    text = roster_csv(rows, args.all)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    return ExitCode.OK


# -- staff -------------------------------------------------------------------------------


def _put(conn: Connection, record: staff_store.StaffRecord, actor: str, action: str) -> None:
    now_ms = int(time.time() * 1000)
    staff_store.upsert(conn, record, now_ms // 1000)
    audit_store.append(
        conn,
        AuditEntry(
            now_ms,
            actor,
            action,
            "ok",
            record.username,
            {"roles": list(record.roles), "active": record.active},
        ),
    )


def cmd_staff_add(args: argparse.Namespace) -> int:
    roles = tuple(dict.fromkeys(args.role))
    record = staff_store.StaffRecord(
        args.username, args.name, roles, not args.no_personal_data, True
    )
    with _store(args) as store:
        store.write_sync(_put, record, _actor(), "staff.put")
    print(f"{args.username}: {' '.join(roles)}")
    return ExitCode.OK


def _remove(conn: Connection, username: str, actor: str) -> bool:
    current = staff_store.get(conn, username)
    if current is None:
        return False
    record = staff_store.StaffRecord(
        current.username, current.display_name, current.roles, current.handles_personal_data, False
    )
    _put(conn, record, actor, "staff.remove")
    return True


def cmd_staff_remove(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if not store.write_sync(_remove, args.username, _actor()):
            print(f"kairanctl: {args.username} is not on the staff roster", file=sys.stderr)
            return ExitCode.USAGE
    print(f"{args.username}: deactivated (kept in the roster and the audit log)")
    return ExitCode.OK


def cmd_staff_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        records = store.read_sync(staff_store.all_staff)
    for r in records:
        state = "active" if r.active else "inactive"
        print(f"{r.username}\t{r.display_name}\t{','.join(r.roles)}\t{state}")
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    from pathlib import Path

    audit = sub.add_parser("audit", help="verify or checkpoint the audit log (S8)")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain and signed checkpoints")
    verify.set_defaults(func=cmd_verify)
    checkpoint = audit_sub.add_parser("checkpoint", help="sign the current head now")
    checkpoint.set_defaults(func=cmd_checkpoint)

    roster = sub.add_parser("roster", help="the handler roster (S14) as CSV (UTF-8 with BOM)")
    roster.add_argument("--all", action="store_true", help="include staff without personal data")
    roster.add_argument("--output", "-o", type=Path, help="write to this file, not stdout")
    roster.set_defaults(func=cmd_roster)

    staff = sub.add_parser("staff", help="the staff roster: OS user name → roles")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_sub.add_parser("add", help="add or update a staff member")
    add.add_argument("username", help="the person's OS (Linux) user name")
    add.add_argument("--name", required=True, help="display name (氏名)")
    add.add_argument(
        "--role", action="append", required=True, choices=staff_store.ROLES, help="repeatable"
    )
    add.add_argument(
        "--no-personal-data",
        action="store_true",
        help="the person does not handle personal information (left off the handler roster)",
    )
    add.set_defaults(func=cmd_staff_add)
    remove = staff_sub.add_parser("remove", help="deactivate a staff member")
    remove.add_argument("username")
    remove.set_defaults(func=cmd_staff_remove)
    listing = staff_sub.add_parser("list", help="list the roster")
    listing.set_defaults(func=cmd_staff_list)
