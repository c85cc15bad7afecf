"""kairanctl programs ...: subscription programs, school districts and sending institutions
. Every change goes through kairand.programs.service (rules and audit there), in the
operator's name.

    kairanctl programs list
    kairanctl programs install-child-safety          # the 子ども安全情報 program
    kairanctl programs put CODE DEFINITION.json
    kairanctl programs districts import FILE.csv     # code,name,kana,junior_high,junior_high_name
    kairanctl programs districts list
    kairanctl programs institution put CODE --name N --kind K [--all-districts | --district D ...]
    kairanctl programs institution assign CODE USERNAME [--head]
    kairanctl programs institution list
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode
from kairand.programs import catalogue, service
from kairand.programs.model import DistrictCsvError, ProgramDefinition
from kairand.programs.scope import INSTITUTION_KINDS
from kairand.store import programs as q

T = TypeVar("T")


def _run(awaitable: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await awaitable

    return asyncio.run(wrap())


def _refused(message: str) -> int:
    print(f"kairanctl: {message}", file=sys.stderr)
    return ExitCode.DATA


def cmd_list(ctx: Context) -> int:
    k = ctx.config.privacy.small_cell_threshold
    with ctx.store() as store:
        for row in store.read_sync(q.list_programs):
            if row.is_default:
                n = store.read_sync(q.default_counts)
            else:
                n = store.read_sync(q.member_counts, row.code)[0]
            shown = f"<{k}" if n < k else str(n)
            kind = "default" if row.is_default else "program"
            print(f"{row.code}\t{row.name}\t{kind}\tregistered={shown}")
        store.write_sync(ctx.audit, "programs.list")
    return ExitCode.OK


def _put(ctx: Context, code: str, definition: ProgramDefinition) -> int:
    with ctx.store() as store:
        try:
            created = _run(service.put_program(store, ctx.actor, code, definition))
        except service.ProgramError as exc:
            return _refused(exc.message_ja)
    print(f"{code}: {'created' if created else 'updated'}")
    return ExitCode.OK


def cmd_install_child_safety(ctx: Context) -> int:
    return _put(ctx, catalogue.CHILD_SAFETY_CODE, catalogue.child_safety())


def cmd_put(ctx: Context) -> int:
    try:
        raw = json.loads(Path(ctx.args.definition).read_text(encoding="utf-8"))
        definition = ProgramDefinition.model_validate(raw)
    except (OSError, ValueError, ValidationError) as exc:
        return _refused(f"cannot read the program definition: {type(exc).__name__}: {exc}")
    return _put(ctx, ctx.args.code, definition)


def cmd_districts_import(ctx: Context) -> int:
    try:
        text = Path(ctx.args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return _refused(f"cannot read {ctx.args.file}: {type(exc).__name__}")
    with ctx.store() as store:
        try:
            counts = _run(service.import_districts(store, ctx.actor, text))
        except DistrictCsvError as exc:
            return _refused(f"{exc.line}行目: {exc.message_ja}（何も変更していません）")
    print(f"added={counts['added']} updated={counts['updated']} retired={counts['retired']}")
    return ExitCode.OK


def cmd_districts_list(ctx: Context) -> int:
    with ctx.store() as store:
        for d in store.read_sync(service.districts_of):
            print(f"{d.code}\t{d.name}\t{d.kana}\t{d.junior_high}\t{d.junior_high_name}")
    return ExitCode.OK


def cmd_institution_put(ctx: Context) -> int:
    a = ctx.args
    with ctx.store() as store:
        try:
            _run(
                service.put_institution(
                    store, ctx.actor, a.code, a.name, a.kind, a.all_districts, a.district or []
                )
            )
        except service.ProgramError as exc:
            return _refused(exc.message_ja)
    print(f"{a.code}: {a.name}")
    return ExitCode.OK


def cmd_institution_assign(ctx: Context) -> int:
    a = ctx.args
    with ctx.store() as store:
        try:
            _run(service.assign_staff(store, ctx.actor, a.username, a.code, a.head))
        except service.ProgramError as exc:
            return _refused(exc.message_ja)
    print(f"{a.username} → {a.code}{' (head)' if a.head else ''}")
    return ExitCode.OK


def cmd_institution_list(ctx: Context) -> int:
    with ctx.store() as store:
        for code, name, kind, all_d, ds in store.read_sync(q.institutions):
            covered = "ALL" if all_d else ",".join(sorted(ds))
            print(f"{code}\t{name}\t{kind}\t{covered}")
    return ExitCode.OK


def register(sub: Subparsers) -> None:
    programs = sub.add_parser("programs", help="programs, school districts, institutions")
    p_sub = programs.add_subparsers(dest="programs_command", required=True)
    p_sub.add_parser("list", help="programs and their registered counts").set_defaults(
        func=cmd_list
    )
    p_sub.add_parser(
        "install-child-safety", help="create or update the 子ども安全情報 program"
    ).set_defaults(func=cmd_install_child_safety)
    put = p_sub.add_parser("put", help="create or update a program from a JSON definition")
    put.add_argument("code")
    put.add_argument("definition", type=Path)
    put.set_defaults(func=cmd_put)

    districts = p_sub.add_parser("districts", help="the school district list")
    d_sub = districts.add_subparsers(dest="districts_command", required=True)
    imp = d_sub.add_parser("import", help="replace the list from a UTF-8 CSV")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_districts_import)
    d_sub.add_parser("list").set_defaults(func=cmd_districts_list)

    inst = p_sub.add_parser("institution", help="sending institutions (発信元)")
    i_sub = inst.add_subparsers(dest="institution_command", required=True)
    iput = i_sub.add_parser("put", help="create or update an institution")
    iput.add_argument("code")
    iput.add_argument("--name", required=True)
    iput.add_argument("--kind", required=True, choices=sorted(INSTITUTION_KINDS))
    iput.add_argument("--all-districts", action="store_true", help="教育委員会: every district")
    iput.add_argument("--district", action="append", help="a covered district code (repeat)")
    iput.set_defaults(func=cmd_institution_put)
    assign = i_sub.add_parser("assign", help="make a staff member an author of the institution")
    assign.add_argument("code")
    assign.add_argument("username")
    assign.add_argument("--head", action="store_true", help="the head (園長・校長): notified")
    assign.set_defaults(func=cmd_institution_assign)
    i_sub.add_parser("list").set_defaults(func=cmd_institution_list)
