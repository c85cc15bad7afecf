"""`kairanctl`: the administrator's command line (provisioning, roster, keys, backups, reports).

One module per command group in this package, listed in GROUPS (in `--help` order). Each has
`register(subparsers)`, which adds its subcommands and sets `func` on each: a handler that takes
the run's `Context` (kairand.ctl.context: config, keyring, store, the operator, audit) and
returns an exit code. A new command group only adds a module and its name here.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from kairand import __version__
from kairand.ctl.context import Context
from kairand.errors import KairanError
from kairand.logs import setup_logging
from kairand.main import DEFAULT_CONFIG, report

GROUPS: list[str] = [
    "init",  # init --dev
    "richmenu",  # richmenu apply|check
    "backup",  # backup keygen|create|list|verify|restore
    "tls",  # tls install|status
    "doctor",  # doctor
    "documents",  # certificate, export, report
    "retention",  # retention show|set|status|run, wipe
    "audit",  # audit verify|checkpoint
    "staff",  # roster, staff add|remove|list
    "records",  # incident record|list|report, training record|list
    "handover",  # handover export (S22)
    "programs",  # programs list|put|install-child-safety|districts|institution
    "mail",  # mail status
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kairanctl", description="Kairan administration")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration")
    parser.add_argument("--version", action="version", version=f"kairanctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    setup_logging("warning")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(Context.from_args(args)))
    except KairanError as exc:
        return report("kairanctl", exc)


__all__ = ["GROUPS", "build_parser", "main"]
