"""`kairan-sim`: run the LINE Platform simulator standalone (訓練モード).

    kairan-sim --dev-config .demo/kairan.toml --population 10000 --follow-rate 50
    kairan-sim --port 8471 --channel-secret S --access-token T \
               --webhook-url https://127.0.0.1:8470/webhook --webhook-insecure --faults flaky
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from kairand.errors import ConfigError, ExitCode, KairanError
from kairand.keys import secrets
from kairand.logs import get_logger, setup_logging
from kairand.simulator.booking import TAP_TIME_S, TYPING_TIME_S
from kairand.simulator.chat import control_socket_for
from kairand.simulator.control import serve_control
from kairand.simulator.faults import PROFILES
from kairand.simulator.population import Municipality
from kairand.simulator.simulator import BANNER, Simulator, SimulatorConfig
from kairand.simulator.webhook import WebhookTarget

log = get_logger(__name__)

# The development keyring stores one file per secret, named like the keyring entry.
CHANNEL_SECRET_FILE = secrets.CHANNEL_SECRET
ACCESS_TOKEN_FILE = secrets.CHANNEL_ACCESS_TOKEN


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kairan-sim", description=BANNER)
    p.add_argument(
        "--dev-config",
        type=Path,
        help="a development setup's kairan.toml: take secrets from its keyring folder, "
        "the bot user id, the webhook port and the simulator port from it",
    )
    p.add_argument(
        "--keyring-dir",
        type=Path,
        help="folder with line-channel-secret and line-channel-access-token files",
    )
    p.add_argument("--channel-secret", help="channel secret used to sign webhooks")
    p.add_argument("--access-token", help="the Bearer token the API accepts")
    p.add_argument("--bot-user-id", help="webhook destination (default: derived from the seed)")
    p.add_argument("--host", default="127.0.0.1", help="API listen address (loopback)")
    p.add_argument("--port", type=int, help="API port (default 8471, or the dev config's)")
    p.add_argument(
        "--data-port",
        type=int,
        help="data API port (rich-menu images; default 8472, or the dev config's data_base)",
    )
    p.add_argument("--population", type=int, default=1000, help="number of synthetic residents")
    p.add_argument("--seed", type=int, default=0, help="seed for residents, ids and faults")
    p.add_argument("--municipality", default="みなと市", help="name shown as the bot's name")
    p.add_argument("--areas", help="comma-separated area names (default: six sample areas)")
    p.add_argument(
        "--school-districts",
        help="comma-separated 小学校区:中学校区 name pairs: guardians register for the"
        " child-safety program in these districts (default: nobody registers)",
    )
    p.add_argument("--faults", choices=sorted(PROFILES), default="none", help="fault profile")
    p.add_argument("--latency-ms", type=float, nargs=2, metavar=("MIN", "MAX"))
    p.add_argument("--error-ratio", type=float)
    p.add_argument("--timeout-ratio", type=float)
    p.add_argument("--lost-ratio", type=float)
    p.add_argument("--quota", type=int, help="monthly message limit (default: none)")
    p.add_argument("--webhook-url", help="the bot's webhook URL (http(s)://host:port/path)")
    p.add_argument("--webhook-unix-socket", help="reach the webhook URL through this unix socket")
    p.add_argument("--webhook-ca", help="CA file to trust for an https webhook")
    p.add_argument(
        "--webhook-insecure",
        action="store_true",
        help="accept any certificate (the daemon's self-signed development cert)",
    )
    p.add_argument("--no-redelivery", action="store_true", help="do not retry failed webhooks")
    p.add_argument("--duplicate-ratio", type=float, default=0.0)
    p.add_argument("--reorder-ratio", type=float, default=0.0)
    p.add_argument("--follow", type=int, default=0, help="residents who follow at start")
    p.add_argument(
        "--follow-rate",
        type=float,
        default=0.0,
        help="then this many residents follow per second until all have",
    )
    p.add_argument(
        "--think-time",
        type=float,
        nargs=2,
        default=TAP_TIME_S,
        metavar=("MIN", "MAX"),
        help="seconds a resident takes before tapping (default 1-4)",
    )
    p.add_argument(
        "--typing-time",
        type=float,
        nargs=2,
        default=TYPING_TIME_S,
        metavar=("MIN", "MAX"),
        help="further seconds a booking resident takes to type a name or phone (default 3-8)",
    )
    p.add_argument(
        "--queue-rate",
        type=float,
        default=0.0,
        help="friends who take a same-day queue ticket in LINE per second",
    )
    p.add_argument(
        "--booking-rate",
        type=float,
        default=0.0,
        help="friends who start booking a window appointment per second",
    )
    p.add_argument(
        "--rush",
        type=int,
        default=0,
        help="the October rush: this many friends type 予約 at once, --rush-after seconds in",
    )
    p.add_argument("--rush-after", type=float, default=30.0)
    p.add_argument(
        "--players",
        type=int,
        default=0,
        help="residents a trainee plays by hand in `kairan-sim-chat` (訓練: the last N residents)",
    )
    p.add_argument(
        "--control-socket",
        type=Path,
        help="unix socket for kairan-sim-chat (default with --dev-config:"
        " run/simulator-control.sock"
        " beside it)",
    )
    p.add_argument(
        "--phone-socket",
        help="serve the trainee's phone (研修用スマートフォン, kairan-phone) on this unix socket",
    )
    p.add_argument(
        "--state",
        help="keep who is a friend, who blocked and this month's message count in this file"
        " between runs (LINE never forgets them)",
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--report-every", type=float, default=10.0, help="status line interval (s)")
    p.add_argument("--log-level", default="warning")
    return p


def _read_secret(folder: Path, name: str) -> str:
    path = folder / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}",
            "point --keyring-dir at a development setup's keys folder (kairanctl init --dev)",
        ) from None


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    secret, token, bot_id = args.channel_secret, args.access_token, args.bot_user_id
    port, webhook_url, keyring_dir = args.port, args.webhook_url, args.keyring_dir
    data_port = args.data_port
    ca_file = args.webhook_ca
    image_target = None
    if args.dev_config is not None:
        try:
            dev: dict[str, Any] = tomllib.loads(args.dev_config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(
                f"cannot read {args.dev_config}: {exc}", "create one with: kairanctl init --dev DIR"
            ) from None
        base = args.dev_config.resolve().parent
        keyring_dir = keyring_dir or base / dev.get("keyring", {}).get("directory", "keys")
        hook = dev.get("webhook", {})
        bot_id = bot_id or hook.get("bot_user_id") or None
        if webhook_url is None and hook.get("tcp_port"):
            # The daemon serves TLS on its webhook listener when tls_cert is set; its
            # self-signed certificate is then the CA to trust.
            scheme = "https" if hook.get("tls_cert") else "http"
            host = hook.get("tcp_host") or "127.0.0.1"
            webhook_url = f"{scheme}://{host}:{hook['tcp_port']}{hook.get('path', '/webhook')}"
            if hook.get("tls_cert") and ca_file is None:
                ca_file = str(base / hook["tls_cert"])
        public = str(dev.get("media", {}).get("public_base_url", ""))
        if public.startswith("https://") and hook.get("socket") and hook.get("tls_cert"):
            # Images: LINE fetches them from the relay's name; the relay pipes TLS into the
            # webhook socket (kairand.simulator.media), trusting the setup's certificate.
            image_target = WebhookTarget(
                f"{public}{hook.get('path', '/webhook')}",
                unix_socket=str(base / hook["socket"]),
                ca_file=str(base / hook["tls_cert"]),
            )
        api_base = str(dev.get("line", {}).get("api_base", ""))
        if port is None and api_base.rsplit(":", 1)[-1].isdigit():
            port = int(api_base.rsplit(":", 1)[-1])
        data_base = str(dev.get("line", {}).get("data_base", ""))
        if data_port is None and data_base.rsplit(":", 1)[-1].isdigit():
            data_port = int(data_base.rsplit(":", 1)[-1])
    if keyring_dir is not None:
        secret = secret or _read_secret(Path(keyring_dir), CHANNEL_SECRET_FILE)
        token = token or _read_secret(Path(keyring_dir), ACCESS_TOKEN_FILE)
    if not secret or not token:
        raise ConfigError(
            "the channel secret and access token are required",
            "pass --channel-secret/--access-token, --keyring-dir or --dev-config",
        )
    faults = PROFILES[args.faults]
    overrides: dict[str, Any] = {"seed": args.seed}
    if args.latency_ms:
        overrides["latency_min_ms"], overrides["latency_max_ms"] = args.latency_ms
    for name in ("error_ratio", "timeout_ratio", "lost_ratio"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    try:
        faults = dataclasses.replace(faults, **overrides)
    except ValueError as exc:
        raise ConfigError(
            f"invalid fault settings: {exc}", "check --*-ratio and --latency-ms"
        ) from None
    municipality = Municipality(name=args.municipality)
    if args.areas:
        names = [a.strip() for a in args.areas.split(",") if a.strip()]
        municipality = dataclasses.replace(municipality, areas=tuple((a, 1.0) for a in names))
    if args.school_districts:
        pairs = tuple(tuple(p.split(":", 1)) for p in args.school_districts.split(",") if ":" in p)
        municipality = dataclasses.replace(
            municipality,
            school_districts=tuple((a.strip(), b.strip()) for a, b in pairs),
        )
    webhook = None
    if webhook_url:
        webhook = WebhookTarget(
            webhook_url, args.webhook_unix_socket, ca_file, args.webhook_insecure
        )
    return SimulatorConfig(
        seed=args.seed,
        population=args.population,
        municipality=municipality,
        channel_secret=secret,
        access_token=token,
        bot_user_id=bot_id,
        host=args.host,
        port=8471 if port is None else port,
        data_port=8472 if data_port is None else data_port,
        webhook=webhook,
        image_target=image_target,
        faults=faults,
        quota_limit=args.quota,
        think_time_s=(args.think_time[0], args.think_time[1]),
        typing_time_s=(args.typing_time[0], args.typing_time[1]),
        redelivery=not args.no_redelivery,
        duplicate_ratio=args.duplicate_ratio,
        reorder_ratio=args.reorder_ratio,
        freeze_gc=True,  # a process of its own: nothing else to disturb
        phone_socket=args.phone_socket,
        state_file=args.state,
    )


def dev_setup_config(config_path: Path, **overrides: Any) -> SimulatorConfig:
    """A SimulatorConfig matching a `kairanctl init --dev` setup (secrets from its keyring
    folder, its bot user id, simulator port and webhook URL), for `make demo`. Reads files:
    call it before the event loop starts or through `asyncio.to_thread`."""
    args = build_parser().parse_args(["--dev-config", str(config_path)])
    return dataclasses.replace(config_from_args(args), **overrides)


def control_socket_of(args: argparse.Namespace) -> Path | None:
    if args.control_socket is not None:
        return Path(args.control_socket)
    if args.dev_config is not None:
        return control_socket_for(Path(args.dev_config))
    return None


def status_line(sim: Simulator, started: float) -> str:
    return f"{time.monotonic() - started:6.0f}s | {sim.status_text()}"


async def run(config: SimulatorConfig, args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Simulator(config) as sim:
        print(BANNER, flush=True)
        print(
            f"Messaging API: {sim.api_url}   data API: {sim.data_url}   "
            f"bot user id: {sim.bot_user_id}",
            flush=True,
        )
        print(
            f"residents: {len(sim.population)} (seed {config.seed})   "
            f"webhook: {config.webhook.url if config.webhook else '(none)'}",
            flush=True,
        )
        started = time.monotonic()
        control = None
        if args.players > 0:
            sim.play(args.players)
            path = control_socket_of(args)
            if path is None:
                raise ConfigError(
                    "--players needs a place for the chat's socket",
                    "pass --control-socket PATH or --dev-config",
                )
            control = await serve_control(sim, path)
            print(f"trainee chat: kairan-sim-chat --socket {path} (players 1-{args.players})")
        sim.follow(args.follow)

        async def reports() -> None:
            while True:
                await asyncio.sleep(args.report_every)
                print(status_line(sim, started), flush=True)

        tasks: list[asyncio.Task[Any]] = [asyncio.create_task(reports())]
        if args.follow_rate > 0:
            tasks.append(asyncio.create_task(sim.arrive(args.follow_rate)))
        if args.booking_rate > 0:
            tasks.append(asyncio.create_task(sim.book_over_time(args.booking_rate)))
        if args.queue_rate > 0:
            tasks.append(asyncio.create_task(sim.queue_over_time(args.queue_rate)))
        if args.rush > 0:

            async def rush() -> None:
                await asyncio.sleep(args.rush_after)
                print(f"rush: {sim.rush(args.rush)} residents type 予約 now", flush=True)

            tasks.append(asyncio.create_task(rush()))
        try:
            if args.duration:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.duration)
            else:
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if control is not None:
                await control.cleanup()
            print(status_line(sim, started), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = config_from_args(args)
        asyncio.run(run(config, args))
    except KairanError as exc:
        print(f"kairan-sim: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except OSError as exc:
        print(f"kairan-sim: {exc}", file=sys.stderr)
        return int(ExitCode.RUNTIME)
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
