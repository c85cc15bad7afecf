"""kairanctl handover export --recipient MUNICIPALITY.pub --output FILE (S22): the sealed
hand-over of the residents' data to the municipality before the contract-end wipe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kairand import __version__
from kairand.backup import handover
from kairand.ctl.context import Context, Subparsers
from kairand.errors import DataError, ExitCode
from kairand.reports import export
from kairand.store import reports
from kairand.store import survey as survey_store
from kairand.store.database import Connection


def _gather(conn: Connection) -> tuple[str, int, dict[str, Any]]:
    current = survey_store.current(conn)
    if current is None:
        raise DataError("the store has no survey definition", "run kairand once to seed it")
    text, rows = export.personal_csv(reports.personal_rows(conn))
    return text, rows, current[1].model_dump(mode="json")


def _cmd_export(ctx: Context) -> int:
    args = ctx.args
    now = int(time.time())
    with ctx.store() as store:
        text, rows, survey = store.read_sync(_gather)
        digest = handover.write_handover(
            args.output,
            args.recipient,
            residents_csv=text,
            survey=survey,
            manifest={"created_at": now, "residents": rows, "kairan_version": __version__},
            mtime=now,
        )
        store.write_sync(
            ctx.audit,
            "handover.export",
            {"rows": rows, "sha256": digest, "file": args.output.name},
            "ok",
            str(args.output),
        )
    print(f"引継ぎデータを作成しました（{rows} 件、自治体の鍵で封印）：{args.output}")
    print(f"  SHA-256：{digest}")
    return ExitCode.OK


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("handover", help="contract end: sealed hand-over (S22)")
    sub = parser.add_subparsers(dest="handover_command", required=True)
    exp = sub.add_parser("export", help="residents' data sealed to the municipality's age key")
    exp.add_argument("--recipient", type=Path, required=True, help="the municipality's age1… key")
    exp.add_argument("--output", type=Path, required=True, help="file to write (.tar.age)")
    exp.set_defaults(func=_cmd_export)
