"""`kairanctl`: the administrator's command line (provisioning, roster, keys, backups, reports).

Each concern registers its subcommands from its own module (`register(subparsers)`), listed in
SUBCOMMAND_MODULES; a subcommand's handler takes the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from kairand import __version__
from kairand.errors import ExitCode, KairanError
from kairand.logs import setup_logging
from kairand.main import DEFAULT_CONFIG, report

SUBCOMMAND_MODULES: list[str] = [
    "kairand.line.richmenu",
    "kairand.backup.cli",  # issue-8: backup keygen|create|list|verify|restore
    "kairand.tls",  # issue-8: tls install|status
    "kairand.doctor",  # issue-8: doctor
    "kairand.reports.ctl",  # issue-9: certificate, wipe, export, report
    "kairand.retention.ctl",  # issue-9: retention show|set|status|run
    "kairand.audit.ctl",  # issue-6: audit verify|checkpoint, roster, staff add|remove|list
    "kairand.reports.records_ctl",  # issue-13: incident record|list|report, training record|list
]


def _cmd_init(args: argparse.Namespace) -> int:
    from kairand.devsetup import init_dev

    if not args.dev:
        print(
            "kairanctl: init without --dev is done by provisioning/install.sh on the appliance",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    config_path = init_dev(args.directory)
    print(f"開発用の環境を作成しました / development setup created: {config_path}")
    print(f"start the daemon with: kairand --config {config_path}")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kairanctl", description="Kairan administration")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration")
    parser.add_argument("--version", action="version", version=f"kairanctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create a development setup (config, keys, empty store)")
    init.add_argument("--dev", action="store_true", required=True, help="development setup")
    init.add_argument("directory", type=Path, help="folder for the setup (must not hold one)")
    init.set_defaults(func=_cmd_init)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging("warning")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KairanError as exc:
        return report("kairanctl", exc)


if __name__ == "__main__":
    sys.exit(main())
