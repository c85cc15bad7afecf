"""`make demo`: a complete training environment (訓練モード) on this machine.

Creates a development setup in the given folder (once), then runs the daemon against it.
Nothing here touches real residents: the LINE endpoint is the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from kairand.config import load_config
from kairand.devsetup import CONFIG_NAME, init_dev
from kairand.errors import KairanError
from kairand.logs import setup_logging
from kairand.main import report

BANNER = (
    "訓練モード（シミュレーター）: 実在の住民には一切送信されません / training mode: simulator only"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kairan-demo", description=BANNER)
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="demo folder")
    args = parser.parse_args(argv)
    setup_logging("info")
    print(BANNER)
    try:
        config_path = args.dir.resolve() / CONFIG_NAME
        if not config_path.exists():
            init_dev(args.dir)
        config = load_config(config_path)
        from kairand.daemon import run
        from kairand.store.bootstrap import open_store, select_keyring

        select_keyring(config)
        store = open_store(config)
    except KairanError as exc:
        return report("kairan-demo", exc)
    print(f"daemon: config {config_path} (Ctrl-C to stop)")
    try:
        asyncio.run(run(config, store))
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
