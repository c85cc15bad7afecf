"""kairanctl doctor: the appliance's health, one line per check (日本語/English)."""

from __future__ import annotations

from kairand import doctor
from kairand.ctl.context import Context, Subparsers
from kairand.errors import ExitCode


def _cmd_doctor(ctx: Context) -> int:
    results = doctor.run_checks(doctor.Context(ctx.config_path))
    print(doctor.render(results))
    return ExitCode.FAILURE if any(r.status == doctor.FAIL for r in results) else ExitCode.OK


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("doctor", help="check the appliance's health (日本語/English)")
    parser.set_defaults(func=_cmd_doctor)
