"""`kairand`: the daemon's entry point."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

from kairand import __version__
from kairand.config import load_config
from kairand.daemon import run
from kairand.errors import ExitCode, KairanError
from kairand.logs import get_logger, setup_logging
from kairand.store.bootstrap import open_store, select_keyring

DEFAULT_CONFIG = Path("/etc/kairan/kairan.toml")
log = get_logger("kairand")


def report(prog: str, exc: KairanError) -> int:
    """Print an operator-facing error (message + hint) and return its exit code."""
    print(f"{prog}: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"{prog}: hint: {exc.hint}", file=sys.stderr)
    return int(exc.exit_code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kairand", description="Kairan daemon")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="TOML configuration")
    parser.add_argument(
        "--check", action="store_true", help="validate config, keys and store, then exit"
    )
    parser.add_argument("--version", action="version", version=f"kairand {__version__}")
    args = parser.parse_args(argv)
    setup_logging("info")
    try:
        config = load_config(args.config)
        setup_logging(config.daemon.log_level)
        select_keyring(config)
        store = open_store(config)
    except KairanError as exc:
        log.error("daemon.start_failed", exit_code=int(exc.exit_code), error=exc.message)
        return report("kairand", exc)
    try:
        if args.check:
            print("kairand: configuration, keys and store are usable")
            return ExitCode.OK
        asyncio.run(run(config, store, ready=_started))
    except KairanError as exc:
        log.error("daemon.failed", exit_code=int(exc.exit_code), error=exc.message)
        return report("kairand", exc)
    finally:
        store.close()
    return ExitCode.OK


def _started(app: object) -> None:
    """Every component is up. What start-up created (modules, configuration, the models'
    schemas, the specs) lives as long as the daemon: frozen out of the cyclic collector's
    reach, so a full collection walks only what the daemon made since. Unfrozen, about
    200,000 such objects made every full collection stop the event loop ~80 ms (every 4 s
    under 1,000 webhook events/s on a 2-core appliance: the webhook's and the API's p99)."""
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
