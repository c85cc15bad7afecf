"""kairanctl roster | staff add|remove|list: the staff roster (OS user name -> roles), the
input of identity, and the handler roster (S14) made from it. Every change is audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
import time
from pathlib import Path

from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode
from kairand.glossary import ROLE_LABELS
from kairand.staff import service as staff_service
from kairand.store import roster as roster_store
from kairand.store import staff as staff_store
from kairand.timeutil import JST

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
                "・".join(ROLE_LABELS.get(role, role) for role in r.roles),
                "取扱者" if r.handles_personal_data else "なし",
                "有効" if r.active else "無効",
                dt.datetime.fromtimestamp(r.created_at, JST).date().isoformat(),
                dt.datetime.fromtimestamp(r.updated_at, JST).date().isoformat(),
            ]
        )
    return "\ufeff" + out.getvalue()


def cmd_roster(ctx: Context) -> int:
    with ctx.store() as store:
        rows = store.read_sync(roster_store.rows)
        store.write_sync(ctx.audit, "roster.export")
    text = roster_csv(rows, ctx.args.all)
    if ctx.args.output:
        ctx.args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.flush()
    return ExitCode.OK


# -- staff -------------------------------------------------------------------------------


LAST_ADMIN_HINT = (
    "kairanctl: {username} is the last active administrator; nothing was changed.\n"
    "  Add the successor first: kairanctl staff add NAME --name 氏名 --role admin"
)


def _refused(username: str) -> int:
    print(LAST_ADMIN_HINT.format(username=username), file=sys.stderr)
    return ExitCode.USAGE


def cmd_staff_add(ctx: Context) -> int:
    args = ctx.args
    roles = tuple(dict.fromkeys(args.role))
    record = staff_store.StaffRecord(
        args.username, args.name, roles, not args.no_personal_data, True
    )
    with ctx.store() as store:
        try:
            store.write_sync(staff_service.apply_put, record, ctx.actor, _now_ms())
        except staff_service.LastAdminError:
            return _refused(args.username)
    print(f"{args.username}: {' '.join(roles)}")
    return ExitCode.OK


def _now_ms() -> int:
    return int(time.time() * 1000)


def cmd_staff_remove(ctx: Context) -> int:
    """The same rule as the staff screens (kairand.staff.service): the last active
    administrator cannot be removed. There is no override: the operator can always add a
    successor first, and locking the OS account (docs/運用マニュアル.md 4.2) shuts a person out
    at once whatever the roster says."""
    username = ctx.args.username
    with ctx.store() as store:
        try:
            store.write_sync(staff_service.apply_remove, username, ctx.actor, _now_ms())
        except staff_service.NotOnRoster:
            print(f"kairanctl: {username} is not on the staff roster", file=sys.stderr)
            return ExitCode.USAGE
        except staff_service.LastAdminError:
            return _refused(username)
    print(f"{username}: deactivated (kept in the roster and the audit log)")
    return ExitCode.OK


def cmd_staff_list(ctx: Context) -> int:
    with ctx.store() as store:
        records = store.read_sync(staff_store.all_staff)
    for r in records:
        state = "active" if r.active else "inactive"
        print(f"{r.username}\t{r.display_name}\t{','.join(r.roles)}\t{state}")
    return ExitCode.OK


def register(sub: Subparsers) -> None:
    roster = sub.add_parser("roster", help="the handler roster (S14) as CSV (UTF-8 with BOM)")
    roster.add_argument("--all", action="store_true", help="include staff without personal data")
    roster.add_argument("--output", "-o", type=Path, help="write to this file, not stdout")
    roster.set_defaults(func=cmd_roster)

    staff = sub.add_parser("staff", help="the staff roster: OS user name → roles")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_sub.add_parser(
        "add",
        help="add or update a staff member (the last active administrator cannot lose the role)",
    )
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
    remove = staff_sub.add_parser(
        "remove",
        help="deactivate a staff member (not the last active administrator: add a successor first)",
    )
    remove.add_argument("username")
    remove.set_defaults(func=cmd_staff_remove)
    listing = staff_sub.add_parser("list", help="list the roster")
    listing.set_defaults(func=cmd_staff_list)
