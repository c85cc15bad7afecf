"""kairanctl init --dev DIR: a development setup (config, keys, empty store)."""

from __future__ import annotations

import sys
from pathlib import Path

from kairand.ctl.context import Context, Subparsers
from kairand.devsetup import init_dev
from kairand.errors import ExitCode


def _cmd_init(ctx: Context) -> int:
    args = ctx.args
    if not args.dev:
        print(
            "kairanctl: init without --dev is done by provisioning/install.sh on the appliance",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    config_path = init_dev(args.directory, images=True)
    print(f"開発用の環境を作成しました / development setup created: {config_path}")
    print(f"start the daemon with: kairand --config {config_path}")
    return ExitCode.OK


def register(sub: Subparsers) -> None:
    init = sub.add_parser("init", help="create a development setup (config, keys, empty store)")
    init.add_argument("--dev", action="store_true", required=True, help="development setup")
    init.add_argument("directory", type=Path, help="folder for the setup (must not hold one)")
    init.set_defaults(func=_cmd_init)
